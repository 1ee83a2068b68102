"""The workflow outbound interceptor: PoP on what a workflow schedules.

Activities, local activities and Nexus operations get their PoP from
:class:`~tenuo_temporal._workflow_signer.WorkflowSigner`. Continue-as-new
carries the run's warrant on; a child carries one only when
``tenuo_execute_child_workflow`` started it (an attenuated warrant, set for
that one start): a plain ``workflow.execute_child_workflow()`` child starts
without a warrant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import temporalio.workflow
from temporalio.worker import (
    ContinueAsNewInput,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    StartNexusOperationInput,
    WorkflowOutboundInterceptor,
)

from ._ids import MINT_ACTIVITY, REMOTE_SIGN_ACTIVITY
from ._state import RunState, child_context_override
from ._workflow_signer import WorkflowSigner

__all__ = ["WorkflowOutbound"]


class WorkflowOutbound(WorkflowOutboundInterceptor):
    """Signs each scheduled activity; carries the warrant to children and new runs.

    Args:
        next: The next outbound interceptor.
        state: The run's state (its warrant context).
        signer: The plugin's workflow-side signer.
        remember_local_pop: Records the workflow clock at which a local
            activity's PoP was signed (its verifier runs in this process).
    """

    def __init__(self, next: WorkflowOutboundInterceptor, state: RunState,
                 signer: WorkflowSigner, remember_local_pop: Callable[[bytes, int], None],
                 ) -> None:
        super().__init__(next)
        self._state = state
        self._signer = signer
        self._remember_local_pop = remember_local_pop

    def start_activity(self, input: StartActivityInput) -> temporalio.workflow.ActivityHandle[Any]:
        self._signer.sign(self._state, input)
        return super().start_activity(input)

    def start_local_activity(
        self, input: StartLocalActivityInput
    ) -> temporalio.workflow.ActivityHandle[Any]:
        if input.activity not in (MINT_ACTIVITY, REMOTE_SIGN_ACTIVITY):
            pop = self._signer.sign(self._state, input)
            if pop is not None:
                # A local activity reports this worker's clock as its scheduling
                # time; its verifier (in this process) reads the workflow's here.
                self._remember_local_pop(pop, int(temporalio.workflow.now().timestamp()))
        return super().start_local_activity(input)

    async def start_nexus_operation(
        self, input: StartNexusOperationInput[Any, Any]
    ) -> temporalio.workflow.NexusOperationHandle[Any]:
        self._signer.sign_nexus(self._state, input)
        return await super().start_nexus_operation(input)

    def start_child_workflow(self, input: StartChildWorkflowInput) -> Any:
        # Only a child started through tenuo_execute_child_workflow (an attenuated
        # warrant, set for that one start) carries a warrant. A plain
        # workflow.execute_child_workflow() starts with none, as documented: a
        # child never inherits its parent's full authority by surprise.
        context = child_context_override.get()
        if context is not None:
            input.headers = {**input.headers, **context.payloads}
        return super().start_child_workflow(input)

    def continue_as_new(self, input: ContinueAsNewInput) -> Any:
        # The run's warrant, or the narrower one tenuo_continue_as_new minted.
        context = self._state.next_context or self._state.context
        if context is not None:
            input.headers = {**input.headers, **context.payloads}
        return super().continue_as_new(input)
