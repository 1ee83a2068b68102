"""The interceptors: sign PoP when workflows schedule, verify before activities run."""

from __future__ import annotations

import asyncio
import binascii
import inspect
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import temporalio.activity
import temporalio.client
import temporalio.worker
import temporalio.workflow
import tenuo.exceptions as tx
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError

from tenuo_keys import KeyResolutionError

from . import _headers as H
from ._audit import AuditEvent, redact
from ._bounded import BoundedMap
from ._config import TenuoPluginConfig
from ._headers import WarrantContext
from ._ids import MINT_ACTIVITY, PLUGIN_ID, REMOTE_SIGN_ACTIVITY, SUMMARY_PREFIX
from ._remote import workflow_pop
from ._signing import signed_view
from ._state import (
    RunPolicy,
    RunState,
    activity_fn_override,
    child_context_override,
    client_context,
    current_run_state,
    enter,
    leave,
    precomputed_pop,
)
from ._verify import Verifier, replay_owner
from .errors import (
    ChainValidationError,
    HeaderError,
    KeyResolutionFailed,
    TenuoTemporalError,
    WarrantMissing,
    denial,
    unsignable,
)

__all__ = [
    "MINT_ACTIVITY",
    "PLUGIN_ID",
    "SUMMARY_PREFIX",
    "RunState",
    "TenuoInterceptor",
    "activity_fn_override",
    "child_context_override",
    "client_context",
    "current_run_state",
    "denial",
    "replay_owner",
    "unsignable",
]

logger = logging.getLogger("tenuo_temporal")


class KeyNotReady(RuntimeError):
    """The holder key is not in memory yet: the workflow task fails and is retried.

    Not an ``ApplicationError``, so Temporal retries the workflow task instead
    of failing the workflow; by then the background load has landed.
    """


_serials = itertools.count()
KEYS_IN_USE_HELD = 10_000
"""Most key ids kept warm: only ids that resolved to their warrant's holder count."""
KEEP_WARM_SECONDS = 1800.0
"""Keys a workflow task needed within this long are kept loaded: longer than
Temporal's longest workflow-task retry interval (10 min by default)."""
_TOUCH_EVERY = 60.0  # seconds between refreshes of one key's keep-warm entry


# --------------------------------------------------------------------------- worker


class TenuoInterceptor(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    """Client and worker interceptor in one: one instance per plugin.

    Args:
        config: The plugin configuration.
    """

    def __init__(self, config: TenuoPluginConfig) -> None:
        self.config = config
        self.activity_fns: dict[str, Callable[..., Any]] = {}
        self.mint_queues: set[str] = set()
        # key id -> when a workflow task last signed with it (monotonic), so the
        # plugin keeps those keys loaded between sparse workflow-task retries.
        # Only ids that resolved to their warrant's holder go in: a sender's
        # made-up key ids never reach it. Bounded, and entries age out.
        self.keys_in_use: BoundedMap[str, float] = BoundedMap(
            KEYS_IN_USE_HELD, ttl=KEEP_WARM_SECONDS, timer=time.monotonic)
        self._serial = next(_serials)  # names this interceptor in contexts' marks
        self.verifier = Verifier(config)
        self._local_signed_at = self.verifier.local_signed_at
        self.meter: Any = None
        self._counters: dict[str, Any] = {}
        # tool names come from registered activities: a few
        self._per_tool: BoundedMap[str, tuple[Any, Any]] = BoundedMap(1024)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Future[None]] = set()

    def run_policy(self) -> RunPolicy:
        """The read-only facts a workflow run's helpers may see (no keys, no resolver)."""
        config = self.config
        return RunPolicy.of(
            tool_mappings=config.tool_mappings, activity_fns=self.activity_fns,
            remote_backends={key_id: signer.backend for key_id, signer in config.signers.items()
                             if signer.remote},
            activity_summaries=config.activity_summaries,
            mint_queues=frozenset(self.mint_queues))

    def note_key_in_use(self, key_id: str, context: WarrantContext) -> None:
        """Keep a key warm that just signed for ``context``'s holder.

        Noted at most once a minute per context (a mark on the context, read
        without a lock), so the bounded map is not touched per activity.
        """
        now = time.monotonic()
        noted = context.local.noted_at
        if noted.get(self._serial, -_TOUCH_EVERY) > now - _TOUCH_EVERY:
            return
        noted[self._serial] = now
        self.keys_in_use[key_id] = now

    def keys_to_keep_warm(self) -> list[str]:
        """The key ids signed with within :data:`KEEP_WARM_SECONDS`."""
        self.keys_in_use.expire()
        return self.keys_in_use.keys()

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The worker's event loop: workflow-side audit events are emitted on it."""
        self._loop = loop

    # -- wiring ----------------------------------------------------------

    def register_activities(self, fns: list[Callable[..., Any]]) -> None:
        """Learn activity signatures, so PoP names arguments on this worker."""
        for fn in fns:
            try:
                name = temporalio.activity._Definition.must_from_callable(fn).name
            except Exception:  # noqa: S112 - not an activity definition
                continue
            if name:
                self.activity_fns[name] = fn

    def set_meter(self, meter: Any) -> None:
        """Use this Temporal metric meter for the plugin's metrics."""
        if not self.config.metrics or meter is None or self.meter is not None:
            return
        self.meter = meter
        self._counters = {
            "allow": meter.create_counter(
                "tenuo_activity_authorized", "Activities authorized by Tenuo"),
            "deny": meter.create_counter(
                "tenuo_activity_denied", "Activities denied by Tenuo"),
            "latency": meter.create_histogram_float(
                "tenuo_authorization_latency", "Verification latency", "ms"),
            "cache": meter.create_counter(
                "tenuo_key_cache_events", "Key resolver cache events"),
        }

    def cache_counter(self) -> Any:
        """The counter resolver cache events are exported to, if metrics are on."""
        return self._counters.get("cache")

    # -- client side -----------------------------------------------------

    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        """Attach warrant headers to workflows started by the client helpers."""
        return _ClientOutbound(next)

    # -- worker side -----------------------------------------------------

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        """Verify every activity before it runs."""
        return _ActivityInbound(next, self)

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        """Sign PoP for what workflows schedule."""
        return type("TenuoWorkflowInbound", (_WorkflowInbound,), {"tenuo": self})

    def remember_local_pop(self, pop: bytes, signed_at: int) -> None:
        """Record when (workflow clock) this process signed a local activity's PoP."""
        self._local_signed_at[pop] = signed_at

    # -- verification (in _verify.Verifier) -------------------------------

    async def claim(self, pending: tuple[bytes, str], tool: str,
                    context: WarrantContext) -> None:
        """:meth:`Verifier.claim <tenuo_temporal._verify.Verifier.claim>`."""
        await self.verifier.claim(pending, tool, context)

    def check(
        self, input: temporalio.worker.ExecuteActivityInput, info: temporalio.activity.Info,
        tool: str,
    ) -> tuple[WarrantContext | None, dict[str, Any], tuple[bytes, str] | None]:
        """:meth:`Verifier.check <tenuo_temporal._verify.Verifier.check>`."""
        return self.verifier.check(input, info, tool)

    def _windows(self, info: temporalio.activity.Info) -> int:
        return self.verifier.windows(info)

    def _replay_ttl(self, context: WarrantContext) -> float:
        return self.verifier.replay_ttl(context)

    # -- outcomes ----------------------------------------------------------

    def count(self, tool: str, latency_ms: float, error: TenuoTemporalError | None) -> None:
        """Add one decision to the metrics (a no-op when metrics are off).

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
        self._counters["deny"].add(1, {**attrs, "reason": error.type})
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
        context: WarrantContext | None,
        args: Mapping[str, Any],
        error: TenuoTemporalError | None,
    ) -> None:
        """Emit metrics and the audit event for one decision."""
        latency_ms = (time.perf_counter() - started) * 1000.0
        reason = error.type if error else None
        self.count(tool, latency_ms, error)
        if self.config.audit_callback is None:
            if error is not None:
                logger.warning("tenuo: denied %s for workflow %s: %s", tool, info.workflow_id,
                               error)
            return
        await self._emit(AuditEvent(
            decision="deny" if error else "allow",
            tool=tool,
            reason=reason,
            detail=error.reason if error else None,
            warrant_id=str(context.warrant.id) if context else None,
            chain_length=len(context.chain) if context else 0,
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
            activity_id=info.activity_id,
            attempt=info.attempt,
            args=redact(args),
            latency_ms=latency_ms,
        ))

    async def _emit(self, event: AuditEvent) -> None:
        callback = self.config.audit_callback
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
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._emit_soon, event)
        return error

    def _emit_soon(self, event: AuditEvent) -> None:
        task = asyncio.ensure_future(self._emit(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


class _ActivityInbound(temporalio.worker.ActivityInboundInterceptor):
    def __init__(
        self, next: temporalio.worker.ActivityInboundInterceptor, tenuo: TenuoInterceptor
    ) -> None:
        super().__init__(next)
        self._tenuo = tenuo

    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        info = temporalio.activity.info()
        if info.is_local and info.activity_type in (MINT_ACTIVITY, REMOTE_SIGN_ACTIVITY):
            return await super().execute_activity(input)
        tenuo = self._tenuo
        started = time.perf_counter()
        mappings = tenuo.config.tool_mappings
        tool = mappings.get(info.activity_type, info.activity_type) if mappings \
            else info.activity_type
        try:
            context, args, pending = tenuo.check(input, info, tool)
            if pending is not None and context is not None:
                await tenuo.claim(pending, tool, context)
        except TenuoTemporalError as error:
            error.tool = error.tool or tool
            await tenuo.record(info, tool, started, None, {}, error)
            raise denial(error) from None
        if tenuo.config.audit_callback is not None:
            await tenuo.record(info, tool, started, context, args, None)
        elif tenuo._counters:
            tenuo.count(tool, (time.perf_counter() - started) * 1000.0, None)
        return await self.next.execute_activity(input)


# --------------------------------------------------------------------------- workflow


class _WorkflowInbound(temporalio.worker.WorkflowInboundInterceptor):
    tenuo: ClassVar[TenuoInterceptor]

    def init(self, outbound: temporalio.worker.WorkflowOutboundInterceptor) -> None:
        self._state = RunState(self.tenuo.run_policy())
        super().init(_WorkflowOutbound(outbound, self._state, self.tenuo))

    async def execute_workflow(self, input: temporalio.worker.ExecuteWorkflowInput) -> Any:
        try:
            context = H.decode_context(input.headers)
        except HeaderError as error:
            raise self.tenuo.workflow_denial(denial(error), None) from None
        self._state.context = context
        # AuthorizedWorkflow marks itself, so this module need not import workflow.py.
        if context is None and isinstance(input.type, type) and getattr(
            input.type, "__tenuo_authorized__", False
        ) is True:
            raise self.tenuo.workflow_denial(denial(WarrantMissing(
                f"{input.type.__name__} is an AuthorizedWorkflow but was started without "
                "a warrant; start it with start_workflow_authorized()")), None)
        run_id = temporalio.workflow.info().run_id
        enter(run_id, self._state)
        try:
            return await super().execute_workflow(input)
        finally:
            leave(run_id, self._state)


class _WorkflowOutbound(temporalio.worker.WorkflowOutboundInterceptor):
    def __init__(self, next: temporalio.worker.WorkflowOutboundInterceptor,
                 state: RunState, tenuo: TenuoInterceptor) -> None:
        super().__init__(next)
        self._state = state
        self._tenuo = tenuo

    def start_activity(
        self, input: temporalio.worker.StartActivityInput
    ) -> temporalio.workflow.ActivityHandle[Any]:
        self._sign(input)
        return super().start_activity(input)

    def start_local_activity(
        self, input: temporalio.worker.StartLocalActivityInput
    ) -> temporalio.workflow.ActivityHandle[Any]:
        if input.activity not in (MINT_ACTIVITY, REMOTE_SIGN_ACTIVITY):
            pop = self._sign(input)
            if pop is not None:
                # A local activity reports this worker's clock as its scheduling
                # time; its verifier (in this process) reads the workflow's here.
                self._tenuo.remember_local_pop(
                    pop, int(temporalio.workflow.now().timestamp()))
        return super().start_local_activity(input)

    def start_child_workflow(
        self, input: temporalio.worker.StartChildWorkflowInput
    ) -> Any:
        context = child_context_override.get() or self._state.context
        if context is not None:
            input.headers = {**input.headers, **context.payloads}
        return super().start_child_workflow(input)

    def continue_as_new(self, input: temporalio.worker.ContinueAsNewInput) -> Any:
        if self._state.context is not None:
            input.headers = {**input.headers, **self._state.context.payloads}
        return super().continue_as_new(input)

    def _sign(
        self,
        input: temporalio.worker.StartActivityInput | temporalio.worker.StartLocalActivityInput,
    ) -> bytes | None:
        """Sign PoP for one activity into its headers (and label it).

        Returns:
            The PoP, or None when nothing was signed (no warrant; a replayed
            command that needs no key).
        """
        context = self._state.context
        if context is None:
            return None  # no warrant: the activity worker decides (require_warrant)
        tenuo = self._tenuo
        config = tenuo.config
        tool = config.tool_for(input.activity)
        fn = activity_fn_override.get() or tenuo.activity_fns.get(input.activity)
        try:
            names, signed = signed_view(fn, input.args, tool, context)
        except ApplicationError as error:
            raise tenuo.workflow_denial(error, tool) from None
        try:
            # Signers (remote or local) or a PoP a helper precomputed; else the resolver's key.
            pop = (workflow_pop(config, context, tool, signed)
                   if config.signers or precomputed_pop.get() is not None else None)
            if pop is None:
                try:
                    key = self._holder_key(context)
                except KeyNotReady:
                    if not temporalio.workflow.unsafe.is_replaying():
                        raise
                    # Replaying history: this activity was signed when it was first
                    # scheduled, and a replayed command is never sent, so rebuilding
                    # the run's state needs no key (new scheduling still fails closed).
                    input.headers = {**input.headers, **context.payloads}
                    return None
                pop = context.warrant.sign(key, tool, signed,
                                           int(temporalio.workflow.now().timestamp()))
        except ApplicationError as error:
            raise tenuo.workflow_denial(error, tool) from None
        except (tx.TenuoError, ValueError, TypeError, OverflowError) as exc:
            # tenuo_core refuses the values (a float it cannot encode, a lone
            # surrogate): a typed denial of this call, not a workflow task that
            # fails and is retried forever.
            raise tenuo.workflow_denial(denial(unsignable(tool, exc)), tool) from None
        headers: dict[str, Payload] = ({**input.headers, **context.payloads} if input.headers
                                       else dict(context.payloads))
        headers[H.POP] = Payload(data=binascii.b2a_base64(pop, newline=False))
        headers[H.ARG_KEYS] = _arg_keys_payload(names)
        input.headers = headers
        if config.activity_summaries:
            input.summary = (f"{SUMMARY_PREFIX} {tool}: {input.summary}" if input.summary
                             else f"{SUMMARY_PREFIX} {tool}")
        return bytes(pop)

    def _holder_key(self, context: WarrantContext) -> Any:
        tenuo = self._tenuo
        resolver = tenuo.config.key_resolver
        if resolver is None:
            raise denial(ChainValidationError(
                "this worker has no key_resolver, so it cannot sign PoP"))
        key_id = context.key_id
        if key_id is None:
            raise denial(KeyResolutionFailed("the warrant headers carry no x-tenuo-key-id"))
        holder = context.holder
        try:
            key = resolver.resolve_for_holder_sync(key_id, holder)
        except KeyResolutionError as error:
            if error.retryable:
                raise KeyNotReady(
                    f"tenuo: holder key {key_id!r} is not available yet "
                    f"({error.reason}); the workflow task will be retried") from None
            raise denial(KeyResolutionFailed(str(error))) from None
        tenuo.note_key_in_use(key_id, context)
        return key


def _arg_keys_payload(names: tuple[str, ...]) -> Payload:
    # The same few argument lists repeat: build each header payload once. The
    # SDK copies header payloads into its command, so sharing one is safe.
    found = _arg_keys_get(names)
    if found is None:
        found = Payload(data=",".join(names).encode("utf-8"))
        _arg_keys_payloads[names] = found
    return found


_arg_keys_payloads: BoundedMap[tuple[str, ...], Payload] = BoundedMap(1024)
_arg_keys_get = _arg_keys_payloads.get  # a plain dict read


# --------------------------------------------------------------------------- client


class _ClientOutbound(temporalio.client.OutboundInterceptor):
    async def start_workflow(
        self, input: temporalio.client.StartWorkflowInput
    ) -> temporalio.client.WorkflowHandle[Any, Any]:
        context = client_context.get()
        if context is not None:
            input.headers = {**input.headers, **context.payloads}
        return await super().start_workflow(input)
