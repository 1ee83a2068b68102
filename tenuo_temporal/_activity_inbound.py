"""The activity inbound interceptor: nothing runs before the verifier allows it.

Every activity but the plugin's own local activities goes through
:meth:`Verifier.check <tenuo_temporal._verify.Verifier.check>` (then
:meth:`~tenuo_temporal._verify.Verifier.claim` when a shared replay store
answers asynchronously); a denial is counted, audited and raised as a typed,
non-retryable ``ApplicationError``. It fails closed: only a check that
returns lets the activity run.
"""

from __future__ import annotations

import time
from typing import Any

import temporalio.activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

from ._audit import Recorder
from ._ids import MINT_ACTIVITY, REMOTE_SIGN_ACTIVITY
from ._verify import Verifier
from .errors import TenuoTemporalError, denial

__all__ = ["ActivityInbound"]


class ActivityInbound(ActivityInboundInterceptor):
    """Verifies each activity before it runs.

    Args:
        next: The next inbound interceptor.
        verifier: The plugin's verifier.
        recorder: The plugin's metrics and audit.
    """

    def __init__(self, next: ActivityInboundInterceptor, verifier: Verifier,
                 recorder: Recorder) -> None:
        super().__init__(next)
        self._verifier = verifier
        self._recorder = recorder
        self._mappings = verifier.config.tool_mappings

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = temporalio.activity.info()
        if info.is_local and info.activity_type in (MINT_ACTIVITY, REMOTE_SIGN_ACTIVITY):
            return await super().execute_activity(input)
        verifier, recorder = self._verifier, self._recorder
        started = time.perf_counter()
        mappings = self._mappings
        tool = mappings.get(info.activity_type, info.activity_type) if mappings \
            else info.activity_type
        try:
            context, args, pending = verifier.check(input, info, tool)
            if pending is not None and context is not None:
                await verifier.claim(pending, tool, context)
        except TenuoTemporalError as error:
            error.tool = error.tool or tool
            await recorder.record(info, tool, started, None, 0, {}, error)
            raise denial(error) from None
        if recorder.audit_callback is not None:
            await recorder.record(
                info, tool, started, str(context.warrant.id) if context else None,
                len(context.chain) if context else 0, args, None)
        elif recorder.counting:
            recorder.count(tool, (time.perf_counter() - started) * 1000.0, None)
        return await self.next.execute_activity(input)
