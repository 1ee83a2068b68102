"""The Nexus operation inbound interceptor: check before a Nexus handler runs.

Experimental, as Nexus is upstream. Every start is checked by
:class:`~tenuo_temporal._nexus.NexusCheck` for the tool
``nexus:<nexus_endpoint>:<service>:<operation>``; a denial reaches the caller
as a Nexus ``HandlerError`` of type ``UNAUTHORIZED`` (not retried). Cancels
pass through: they carry no input to authorize.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from temporalio.worker import ExecuteNexusOperationStartInput, NexusOperationInboundInterceptor

from ._audit import Recorder
from ._nexus import NexusCheck, unauthorized
from .errors import TenuoTemporalError

__all__ = ["NexusInbound"]

logger = logging.getLogger("tenuo_temporal")


class NexusInbound(NexusOperationInboundInterceptor):
    """Checks each Nexus start before its handler runs.

    Args:
        next: The next inbound interceptor.
        check: The plugin's Nexus check.
        recorder: Counts each decision in the plugin's metrics (denials are
            also logged; audit callbacks see activities only).
    """

    def __init__(self, next: NexusOperationInboundInterceptor, check: NexusCheck,
                 recorder: Recorder) -> None:
        super().__init__(next)
        self._check = check
        self._recorder = recorder

    async def execute_nexus_operation_start(self, input: ExecuteNexusOperationStartInput) -> Any:
        ctx = input.ctx
        started = time.perf_counter()
        tool = self._check.tool_for(ctx.service, ctx.operation)
        try:
            self._check.check(ctx.headers, ctx.service, ctx.operation, input.input)
        except TenuoTemporalError as error:
            self._recorder.count(tool, (time.perf_counter() - started) * 1000.0, error)
            logger.warning("tenuo: denied Nexus %s (request %s): %s", tool, ctx.request_id,
                           error)
            raise unauthorized(error) from None
        self._recorder.count(tool, (time.perf_counter() - started) * 1000.0, None)
        return await self.next.execute_nexus_operation_start(input)
