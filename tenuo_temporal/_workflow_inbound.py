"""The workflow inbound interceptor: a run's warrant, read once from its start headers.

Each run gets a :class:`~tenuo_temporal._state.RunState` holding the warrant
context decoded from its headers and the plugin's read-only policy; workflow
helpers reach it through :func:`~tenuo_temporal._state.current_run_state`.
An ``AuthorizedWorkflow`` (recognised by its ``__tenuo_authorized__`` mark,
so this module need not import ``workflow.py``) started without a warrant
fails at once.

It also enforces the signal and update allowlists (``authorized_signals``,
``authorized_updates``): an unlisted signal is dropped before its handler and
audited, never raised (a raise would fail the run, so any sender could end
it); an unlisted update is rejected in validation, so the caller gets the
error and nothing enters the history. Queries pass unchecked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import temporalio.workflow
from temporalio.worker import (
    ExecuteWorkflowInput,
    HandleSignalInput,
    HandleUpdateInput,
    WorkflowInboundInterceptor,
    WorkflowOutboundInterceptor,
)

from . import _headers as H
from ._audit import Recorder
from ._mint import mint_parked
from ._state import ContinueAsNewAttenuated, RunPolicy, RunState, enter, leave
from ._workflow_outbound import WorkflowOutbound
from ._workflow_signer import WorkflowSigner
from .errors import HeaderError, TemporalConstraintViolation, WarrantMissing, denial

__all__ = ["WorkflowInbound", "WorkflowParts", "inbound_class"]


@dataclass(frozen=True)
class WorkflowParts:
    """What a plugin hands its workflow interceptors.

    Attributes:
        policy: Builds each new run's read-only policy.
        signer: Signs PoP for what the run schedules.
        recorder: Audits denials raised in workflow code.
        remember_local_pop: Records when (workflow clock) a local activity's
            PoP was signed, for its verifier in this process.
    """

    policy: Callable[[], RunPolicy]
    signer: WorkflowSigner
    recorder: Recorder
    remember_local_pop: Callable[[bytes, int], None]


class WorkflowInbound(WorkflowInboundInterceptor):
    """Reads the run's warrant and installs the signing outbound interceptor.

    The plugin's parts are a class attribute: Temporal builds one instance per
    run from the class :func:`inbound_class` returns.
    """

    parts: ClassVar[WorkflowParts]

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        parts = self.parts
        self._state = RunState(parts.policy())
        self._started = False
        if self._state.policy.authorized_updates is not None:
            _validate_every_update()
        signals = self._state.policy.authorized_signals
        if signals is not None:
            _buffer_listed_signals_only(signals, self._drop_unhandled_signal)
        super().init(WorkflowOutbound(outbound, self._state, parts.signer,
                                      parts.remember_local_pop))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            context = H.decode_context(input.headers)
        except HeaderError as error:
            raise self.parts.recorder.workflow_denial(denial(error), None) from None
        self._state.context = context
        self._started = True
        if context is None and isinstance(input.type, type) and getattr(
            input.type, "__tenuo_authorized__", False
        ) is True:
            raise self.parts.recorder.workflow_denial(denial(WarrantMissing(
                f"{input.type.__name__} is an AuthorizedWorkflow but was started without "
                "a warrant; start it with start_workflow_authorized()")), None)
        run_id = temporalio.workflow.info().run_id
        enter(run_id, self._state)
        try:
            return await super().execute_workflow(input)
        except ContinueAsNewAttenuated as request:
            # tenuo_continue_as_new(tenuo_attenuation=...): mint the narrower
            # warrant (a recorded local activity), then continue under it.
            self._state.next_context = await mint_parked(request.token, request.mint_timeout)
            temporalio.workflow.continue_as_new(*request.args, **request.kwargs)
        finally:
            leave(run_id, self._state)

    async def handle_signal(self, input: HandleSignalInput) -> None:
        error = self._refusal("signal", input.signal, self._state.policy.authorized_signals)
        if error is None:
            await super().handle_signal(input)
        # else dropped: the run goes on as if the signal never came

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        error = self._refusal("update", input.update, self._state.policy.authorized_updates)
        if error is not None:
            raise denial(error)
        super().handle_update_validator(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        # Reached unvalidated only by an update whose handler was registered
        # after the run began without a validator: it was accepted, so it
        # fails here (an update failure; the run goes on) before its handler.
        error = self._refusal("update", input.update, self._state.policy.authorized_updates)
        if error is not None:
            raise denial(error)
        return await super().handle_update_handler(input)

    def _drop_unhandled_signal(self, name: str) -> None:
        self._refusal("signal", name, self._state.policy.authorized_signals)

    def _refusal(self, kind: Literal["signal", "update"], name: str,
                 allowed: frozenset[str] | None) -> TemporalConstraintViolation | None:
        """The audited denial of an unlisted signal or update, or None when allowed."""
        if allowed is None or name in allowed:
            return None
        error = _not_listed(kind, name)
        self.parts.recorder.handler_denial(kind, error, self._warrant_id())
        return error

    def _warrant_id(self) -> str | None:
        """The run's warrant id, for audit; also before ``execute_workflow`` has run.

        A signal sent with the start is handled before the run's first step
        reads its headers, so the start headers are read here then (decoded
        contexts are cached by their bytes: a flood costs one decode).
        """
        context = self._state.context
        if context is None and not self._started:
            try:
                context = H.decode_context(temporalio.workflow.info().headers)
            except HeaderError:
                return None
        return context.warrant.id if context is not None else None


def _not_listed(kind: str, name: str) -> TemporalConstraintViolation:
    # The sender picks the name: a long one is shortened in messages and audit.
    shown = name if len(name) <= 200 else f"{name[:200]}..."
    return TemporalConstraintViolation(f"{kind} {shown!r} is not in authorized_{kind}s",
                                       tool=f"{kind}:{shown}")


def _accept_all(*_args: Any) -> None:
    """The validator given to updates that have none, so the allowlist check runs."""


def _validate_every_update() -> None:
    """Give every update handler of this run a validator, so validation sees them all.

    temporalio runs ``handle_update_validator`` only for an update whose
    definition has a validator; without one, an unlisted update would be
    accepted into the history before it could be refused. This run's
    definitions (its own copy of the class's; the class's are left alone) are
    swapped for copies with a validator that accepts, so the interceptor's
    check runs first. Private to temporalio: when its layout differs, this
    does nothing and such updates are refused in the handler instead.
    """
    updates = getattr(temporalio.workflow._Runtime.current(), "_updates", None)
    if not isinstance(updates, dict):
        return
    for name, definition in list(updates.items()):
        if getattr(definition, "validator", True) is None:
            updates[name] = replace(definition, validator=_accept_all)


class _ListedSignalBuffer(dict[str, list[Any]]):
    """temporalio's buffer of signals that have no handler yet, keeping listed names only.

    temporalio keeps a signal that no handler (and no dynamic handler) takes
    until one is registered, for as long as the run lives. An unlisted signal
    would only be dropped on delivery, so it is dropped (and audited) on
    arrival instead: a sender cannot make the worker hold payloads under
    names the workflow never handles.
    """

    def __init__(self, allowed: frozenset[str], drop: Callable[[str], None]) -> None:
        super().__init__()
        self._allowed = allowed
        self._drop = drop

    def setdefault(self, name: str, default: list[Any] | None = None, /) -> list[Any]:
        if name in self._allowed:
            return super().setdefault(name, [] if default is None else default)
        self._drop(name)
        return []  # appended to, then forgotten


def _buffer_listed_signals_only(allowed: frozenset[str], drop: Callable[[str], None]) -> None:
    """Swap this run's signal buffer for a :class:`_ListedSignalBuffer`.

    Private to temporalio, like :func:`_validate_every_update`: when its layout
    differs this does nothing, and unlisted signals are still dropped on
    delivery (only held until then).
    """
    runtime = temporalio.workflow._Runtime.current()
    buffered = getattr(runtime, "_buffered_signals", None)
    if type(buffered) is dict and not buffered and isinstance(runtime, asyncio.AbstractEventLoop):
        # Signals are buffered while an activation is applied, outside the
        # workflow's loop: the audit (which reads the run's info) is queued
        # onto that loop, where it runs before the activation completes.
        loop = runtime

        def queue(name: str) -> None:
            loop.call_soon(drop, name)

        runtime._buffered_signals = _ListedSignalBuffer(  # type: ignore[attr-defined]
            allowed, queue)


def inbound_class(parts: WorkflowParts) -> type[WorkflowInbound]:
    """A :class:`WorkflowInbound` bound to one plugin's parts."""
    return type("TenuoWorkflowInbound", (WorkflowInbound,), {"parts": parts})
