"""Audit events and metrics: what one plugin reports about its decisions.

:class:`Recorder` is the one place decisions are counted and audited, on
both sides: the activity inbound interceptor calls :meth:`Recorder.allowed`
and :meth:`Recorder.denied`; the workflow side, which runs on a worker thread
inside the sandbox, calls :meth:`Recorder.workflow_denial`, whose event is
handed to the worker's event loop. Metrics go to the Temporal runtime's meter
(:meth:`Recorder.set_meter`); audit events to ``TenuoPluginConfig.audit_callback``
(allowed ones unless ``audit_allow`` is off, denials unless ``audit_deny`` is),
and denials are logged as warnings when there is none.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import temporalio.activity
import temporalio.workflow
from temporalio.exceptions import ApplicationError

from ._bounded import BoundedMap
from .errors import TenuoTemporalError

__all__ = ["AuditCallback", "AuditEvent", "Recorder", "redact"]

logger = logging.getLogger("tenuo_temporal")

HANDLER_EVENTS_IN_FLIGHT = 256
"""Signal and update refusals waiting for the audit callback; more are counted, not kept."""


@dataclass(frozen=True)
class AuditEvent:
    """One authorization decision on an activity worker.

    Arguments are redacted: names and value types only, never values.

    Attributes:
        decision: ``"allow"`` or ``"deny"`` (a shadow denial is ``"deny"``
            with ``shadow`` set).
        tool: The activity type checked against the warrant.
        reason: The denial's wire type (``TENUO_...``), None when allowed.
        detail: The denial's human reason, None when allowed.
        warrant_id: The leaf warrant's id, when one was presented.
        chain_length: Links in the presented chain.
        workflow_id: The workflow that scheduled the activity.
        run_id: Its run.
        activity_id: The activity.
        attempt: The activity attempt.
        args: Argument name to ``<type>`` (redacted).
        latency_ms: Time spent verifying.
        shadow: True for a denial shadow mode (``dry_run``) did not enforce:
            the activity ran.
    """

    decision: Literal["allow", "deny"]
    tool: str
    reason: str | None
    detail: str | None
    warrant_id: str | None
    chain_length: int
    workflow_id: str | None
    run_id: str | None
    activity_id: str | None
    attempt: int
    args: Mapping[str, str] = field(default_factory=dict)
    latency_ms: float = 0.0
    shadow: bool = False


AuditCallback = Callable[[AuditEvent], Any]
"""Receives every :class:`AuditEvent`; may be sync or async. Exceptions are logged, not raised."""


def redact(args: Mapping[str, Any]) -> dict[str, str]:
    """Argument names with value types only."""
    return {name: f"<{type(value).__name__}>" for name, value in args.items()}


class Recorder:
    """Metrics and audit events of one plugin.

    Args:
        audit_callback: Receives every decision's event; None logs denials only.
        metrics: Whether to export metrics once a meter is set.
        audit_allow: Send allowed decisions to ``audit_callback``.
        audit_deny: Send denials to ``audit_callback``.
    """

    def __init__(self, audit_callback: AuditCallback | None, metrics: bool, *,
                 audit_allow: bool = True, audit_deny: bool = True) -> None:
        self.audit_callback = audit_callback
        self.audits_allow = audit_callback is not None and audit_allow
        self._audits_deny = audit_deny
        self._metrics = metrics
        self.meter: Any = None
        self._counters: dict[str, Any] = {}
        # tool names come from registered activities: a few
        self._per_tool: BoundedMap[str, tuple[Any, Any]] = BoundedMap(1024)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Future[None]] = set()
        # Refused signals and updates are sent by whoever can signal a run, so
        # their audit events are bounded in flight (see handler_denial).
        self._handler_slots = threading.BoundedSemaphore(HANDLER_EVENTS_IN_FLIGHT)
        self.handler_events_shed = 0

    @property
    def counting(self) -> bool:
        """Whether metrics are exported (a meter is set and metrics are on)."""
        return bool(self._counters)

    def set_meter(self, meter: Any) -> None:
        """Use this Temporal metric meter for the plugin's metrics (once)."""
        if not self._metrics or meter is None or self.meter is not None:
            return
        self.meter = meter
        self._counters = {
            "allow": meter.create_counter(
                "tenuo_activity_authorized", "Activities authorized by Tenuo"),
            "deny": meter.create_counter(
                "tenuo_activity_denied", "Activities denied by Tenuo"),
            "shadow": meter.create_counter(
                "tenuo_activity_shadow_denied",
                "Activities Tenuo would have denied, run in shadow mode (dry_run)"),
            "latency": meter.create_histogram_float(
                "tenuo_authorization_latency", "Verification latency", "ms"),
            "cache": meter.create_counter(
                "tenuo_key_cache_events", "Key resolver cache events"),
            "revocation": meter.create_counter(
                "tenuo_revocation_refresh",
                "Revocation list refreshes by outcome (loaded, unchanged, rollback, "
                "untrusted, failed)"),
        }

    def revocation_refresh(self, outcome: str) -> None:
        """Count one revocation list refresh by its outcome (a rollback among them)."""
        counter = self._counters.get("revocation")
        if counter is not None:
            counter.add(1, {"outcome": outcome})

    def cache_counter(self) -> Any:
        """The counter resolver cache events are exported to, if metrics are on."""
        return self._counters.get("cache")

    @property
    def has_loop(self) -> bool:
        """Whether an event loop was bound for workflow-side audit events."""
        return self._loop is not None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The worker's event loop: workflow-side audit events are emitted on it."""
        self._loop = loop

    # -- activity side -------------------------------------------------------

    def count(self, tool: str, latency_ms: float, error: TenuoTemporalError | None,
              shadow: bool = False) -> None:
        """Add one decision to the metrics (a no-op when metrics are off).

        A shadow denial (``shadow``) is counted apart from enforced ones.

        Allowed calls go through per-tool metric handles with the ``tool``
        attribute bound once: an attribute dict per call costs the Temporal
        meter about a microsecond more per instrument.
        """
        if not self._counters:
            return
        if error is None:
            bound = self._per_tool.get(tool)
            if bound is None:
                bound = self._bind(tool)
            bound[0].add(1)
            bound[1].record(latency_ms)
            return
        attrs = {"tool": tool}
        self._counters["shadow" if shadow else "deny"].add(1, {**attrs, "reason": error.type})
        self._counters["latency"].record(latency_ms, attrs)

    def _bind(self, tool: str) -> tuple[Any, Any]:
        attrs = {"tool": tool}
        bound = (self._counters["allow"].with_additional_attributes(attrs),
                 self._counters["latency"].with_additional_attributes(attrs))
        self._per_tool[tool] = bound
        return bound

    async def record(
        self,
        info: temporalio.activity.Info,
        tool: str,
        started: float,
        warrant_id: str | None,
        chain_length: int,
        args: Mapping[str, Any],
        error: TenuoTemporalError | None,
        *,
        shadow: bool = False,
        log: bool = True,
    ) -> None:
        """Count one activity decision and emit its audit event.

        Args:
            info: The activity's info.
            tool: The tool checked.
            started: ``time.perf_counter()`` when verification began.
            warrant_id: The leaf warrant's id, when one was presented.
            chain_length: Links in the presented chain.
            args: The constraint arguments (redacted in the event).
            error: The denial, None when allowed.
            shadow: The denial was not enforced (shadow mode): the activity runs.
            log: Log a denial as a warning when there is no audit callback.
        """
        latency_ms = (time.perf_counter() - started) * 1000.0
        self.count(tool, latency_ms, error, shadow)
        if self.audit_callback is None:
            if error is not None and log:
                logger.warning("tenuo: %s %s for workflow %s: %s",
                               "shadow mode would deny" if shadow else "denied", tool,
                               info.workflow_id, error)
            return
        if not (self._audits_deny if error is not None else self.audits_allow):
            return
        await self._emit(AuditEvent(
            decision="deny" if error else "allow",
            tool=tool,
            reason=error.type if error else None,
            detail=error.reason if error else None,
            warrant_id=warrant_id,
            chain_length=chain_length,
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
            activity_id=info.activity_id,
            attempt=info.attempt,
            args=redact(args),
            latency_ms=latency_ms,
            shadow=shadow,
        ))

    async def _emit(self, event: AuditEvent) -> None:
        callback = self.audit_callback
        if callback is None:
            logger.warning("tenuo: denied %s for workflow %s: %s", event.tool,
                           event.workflow_id, event.detail)
            return
        try:
            result = callback(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("tenuo: audit callback raised; ignored")

    # -- workflow side -------------------------------------------------------

    def workflow_denial(self, error: ApplicationError, tool: str | None) -> ApplicationError:
        """Audit a denial raised in workflow code (never on replay); return it.

        Workflow code runs on a worker thread inside the sandbox, so the event is
        handed to the worker's event loop, where activity-side events run too.
        """
        if temporalio.workflow.unsafe.is_replaying():
            return error
        info = temporalio.workflow.info()
        event = AuditEvent(
            decision="deny", tool=tool or "", reason=error.type, detail=error.message,
            warrant_id=None, chain_length=0, workflow_id=info.workflow_id,
            run_id=info.run_id, activity_id=None, attempt=info.attempt)
        if self._counters:
            self._counters["deny"].add(1, {"tool": tool or "", "reason": error.type or ""})
        loop = self._loop
        audited = self._audits_deny or self.audit_callback is None  # else: logged
        if loop is not None and not loop.is_closed() and audited:
            loop.call_soon_threadsafe(self._emit_soon, event)
        return error

    def _emit_soon(self, event: AuditEvent) -> None:
        task = asyncio.ensure_future(self._emit(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def handler_denial(self, kind: Literal["signal", "update"], error: TenuoTemporalError,
                       warrant_id: str | None) -> None:
        """Audit a signal dropped or an update rejected by an allowlist (never on replay).

        The sender picks the name and how often to send, so: the metric's
        ``tool`` label is fixed (``signal:<unlisted>``), the event's ``tool``
        is the error's (which shortens a long name), and at most
        :data:`HANDLER_EVENTS_IN_FLIGHT` events wait for the audit callback;
        past that they are counted in :attr:`handler_events_shed` and logged
        sparsely, never queued.
        """
        if temporalio.workflow.unsafe.is_replaying():
            return
        if self._counters:
            self._counters["deny"].add(1, {"tool": f"{kind}:<unlisted>", "reason": error.type})
        loop = self._loop
        if loop is None or loop.is_closed() or not (self._audits_deny
                                                    or self.audit_callback is None):
            return
        if not self._handler_slots.acquire(blocking=False):
            self.handler_events_shed += 1
            shed = self.handler_events_shed
            if shed & (shed - 1) == 0:  # 1, 2, 4, 8...: a flood logs a few lines
                logger.warning("tenuo: %d refused signal/update audit events shed (audit "
                               "callback behind)", shed)
            return
        info = temporalio.workflow.info()
        event = AuditEvent(
            decision="deny", tool=error.tool or kind, reason=error.type,
            detail=error.reason, warrant_id=warrant_id, chain_length=0,
            workflow_id=info.workflow_id, run_id=info.run_id, activity_id=None,
            attempt=info.attempt)
        try:
            loop.call_soon_threadsafe(self._emit_handler_event, event)
        except RuntimeError:  # the loop closed meanwhile: the worker is stopping
            self._handler_slots.release()

    def _emit_handler_event(self, event: AuditEvent) -> None:
        task = asyncio.ensure_future(self._emit(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        task.add_done_callback(lambda _: self._handler_slots.release())
