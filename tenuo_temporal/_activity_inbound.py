"""The activity inbound interceptor: nothing runs before the verifier allows it.

Every activity but the plugin's own local activities goes through
:meth:`Verifier.check <tenuo_temporal._verify.Verifier.check>` (then
:meth:`~tenuo_temporal._verify.Verifier.claim` when a shared replay store
answers asynchronously, and :meth:`~tenuo_temporal._verify.Verifier.approve`
when an approval gate needs ``approval_handler``), inside a ``tenuo.authorize``
span when OpenTelemetry records (:mod:`~tenuo_temporal._tracing`). A denial is counted, audited and
then, by the config: raised as a typed, non-retryable ``ApplicationError``
(``on_denial="raise"``, the default); answered with None without running the
activity (``"log"``, ``"skip"``); or, in shadow mode (``dry_run``), recorded as
a shadow denial while the activity runs. It fails closed unless told
otherwise: only a check that returns lets the activity run.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import temporalio.activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

from . import _headers as H
from ._audit import Recorder
from ._ids import MINT_ACTIVITY, REMOTE_SIGN_ACTIVITY
from ._tracing import Tracing
from ._verify import ApprovalPending, Verifier
from .errors import TenuoTemporalError, denial

__all__ = ["ActivityInbound"]

logger = logging.getLogger("tenuo_temporal")


def _presented_warrant_id(input: ExecuteActivityInput) -> str | None:
    """The id of the warrant an activity presents, unverified; None when unreadable."""
    try:
        context = H.activity_headers(input.headers)[0]
    except TenuoTemporalError:
        return None
    return str(context.warrant.id) if context is not None else None


class ActivityInbound(ActivityInboundInterceptor):
    """Verifies each activity before it runs.

    Args:
        next: The next inbound interceptor.
        verifier: The plugin's verifier.
        recorder: The plugin's metrics and audit.
        tracing: The ``tenuo.authorize`` spans; a new :class:`Tracing` when None.
    """

    def __init__(self, next: ActivityInboundInterceptor, verifier: Verifier,
                 recorder: Recorder, tracing: Tracing | None = None) -> None:
        super().__init__(next)
        self._verifier = verifier
        self._recorder = recorder
        self._tracing = tracing or Tracing()
        config = verifier.config
        self._mappings = config.tool_mappings
        self._shadow = config.dry_run
        self._on_denial = config.on_denial

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = temporalio.activity.info()
        if info.is_local and info.activity_type in (MINT_ACTIVITY, REMOTE_SIGN_ACTIVITY):
            return await super().execute_activity(input)
        verifier, recorder = self._verifier, self._recorder
        started = time.perf_counter()
        mappings = self._mappings
        tool = mappings.get(info.activity_type, info.activity_type) if mappings \
            else info.activity_type
        tracing = self._tracing
        span = tracing.start()
        try:
            try:
                context, args, pending = verifier.check(input, info, tool)
            except ApprovalPending as gate:  # approval_handler: may do I/O, so awaited here
                context, args, pending = await verifier.approve(gate)
            if pending is not None and context is not None:
                await verifier.claim(pending, tool, context)
        except TenuoTemporalError as error:
            error.tool = error.tool or tool
            return await self._denied(input, info, tool, started, span, error)
        if span is not None:
            tracing.finish(span, tool, "allow", None,
                           str(context.warrant.id) if context else None)
        if recorder.audits_allow:
            await recorder.record(
                info, tool, started, str(context.warrant.id) if context else None,
                len(context.chain) if context else 0, args, None)
        elif recorder.counting:
            recorder.count(tool, (time.perf_counter() - started) * 1000.0, None)
        return await self.next.execute_activity(input)

    async def _denied(self, input: ExecuteActivityInput, info: temporalio.activity.Info,
                      tool: str, started: float, span: Any,
                      error: TenuoTemporalError) -> Any:
        """Record a denial, then enforce it as configured (or run, in shadow mode)."""
        shadow = self._shadow
        warrant_id = _presented_warrant_id(input)
        if span is not None:
            self._tracing.finish(span, tool, "shadow-deny" if shadow else "deny", error.type,
                                 warrant_id)
        await self._recorder.record(info, tool, started, warrant_id, 0, {}, error,
                                    shadow=shadow, log=self._on_denial != "skip")
        if shadow:
            return await self.next.execute_activity(input)
        if self._on_denial == "raise":
            raise denial(error) from None
        if self._on_denial == "log" and self._recorder.audit_callback is not None:
            logger.warning("tenuo: denied %s for workflow %s: %s", tool, info.workflow_id,
                           error)
        return None
