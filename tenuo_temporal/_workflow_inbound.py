"""The workflow inbound interceptor: a run's warrant, read once from its start headers.

Each run gets a :class:`~tenuo_temporal._state.RunState` holding the warrant
context decoded from its headers and the plugin's read-only policy; workflow
helpers reach it through :func:`~tenuo_temporal._state.current_run_state`.
An ``AuthorizedWorkflow`` (recognised by its ``__tenuo_authorized__`` mark,
so this module need not import ``workflow.py``) started without a warrant
fails at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import temporalio.workflow
from temporalio.worker import (
    ExecuteWorkflowInput,
    WorkflowInboundInterceptor,
    WorkflowOutboundInterceptor,
)

from . import _headers as H
from ._audit import Recorder
from ._mint import mint_parked
from ._state import ContinueAsNewAttenuated, RunPolicy, RunState, enter, leave
from ._workflow_outbound import WorkflowOutbound
from ._workflow_signer import WorkflowSigner
from .errors import HeaderError, WarrantMissing, denial

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
        super().init(WorkflowOutbound(outbound, self._state, parts.signer,
                                      parts.remember_local_pop))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            context = H.decode_context(input.headers)
        except HeaderError as error:
            raise self.parts.recorder.workflow_denial(denial(error), None) from None
        self._state.context = context
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


def inbound_class(parts: WorkflowParts) -> type[WorkflowInbound]:
    """A :class:`WorkflowInbound` bound to one plugin's parts."""
    return type("TenuoWorkflowInbound", (WorkflowInbound,), {"parts": parts})
