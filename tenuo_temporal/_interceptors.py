"""The plugin's interceptors, composed from one small interceptor per hook.

:class:`TenuoWorkerInterceptor` holds one plugin's worker-side parts: the
activity registry (argument names), the :class:`~tenuo_temporal._verify.Verifier`,
the :class:`~tenuo_temporal._workflow_signer.WorkflowSigner`, the
:class:`~tenuo_temporal._audit.Recorder` and the keys in use. It hands them to
the interceptor of each hook:

* ``intercept_activity`` → :class:`~tenuo_temporal._activity_inbound.ActivityInbound`
  (verify before an activity runs);
* ``workflow_interceptor_class`` →
  :class:`~tenuo_temporal._workflow_inbound.WorkflowInbound`, which installs
  :class:`~tenuo_temporal._workflow_outbound.WorkflowOutbound` (sign PoP for
  what the workflow schedules).

:class:`TenuoClientInterceptor` adds the client helpers' warrant headers
(:class:`~tenuo_temporal._client_outbound.ClientOutbound`).
:class:`TenuoInterceptor` is both, the one instance a plugin registers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import temporalio.activity
import temporalio.client
import temporalio.worker

from ._activity_inbound import ActivityInbound
from ._audit import Recorder
from ._client_outbound import ClientOutbound
from ._config import TenuoPluginConfig
from ._ids import MINT_ACTIVITY, PLUGIN_ID, SUMMARY_PREFIX
from ._keep_warm import KEEP_WARM_SECONDS, KeysInUse
from ._state import (
    RunPolicy,
    RunState,
    activity_fn_override,
    child_context_override,
    client_context,
    current_run_state,
)
from ._verify import Verifier, replay_owner
from ._workflow_inbound import WorkflowInbound, WorkflowParts, inbound_class
from ._workflow_signer import KeyNotReady, WorkflowSigner
from .errors import denial, unsignable

__all__ = [
    # Names this module exported before the split; they live where their job is.
    "KEEP_WARM_SECONDS",
    "MINT_ACTIVITY",
    "PLUGIN_ID",
    "SUMMARY_PREFIX",
    "KeyNotReady",
    "RunState",
    "TenuoClientInterceptor",
    "TenuoInterceptor",
    "TenuoWorkerInterceptor",
    "activity_fn_override",
    "child_context_override",
    "client_context",
    "current_run_state",
    "denial",
    "replay_owner",
    "unsignable",
]


class TenuoClientInterceptor(temporalio.client.Interceptor):
    """Adds warrant headers to workflows started by the client helpers."""

    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        """Attach warrant headers to workflows started by the client helpers."""
        return ClientOutbound(next)


class TenuoWorkerInterceptor(temporalio.worker.Interceptor):
    """Signs PoP on workflow workers and verifies it on activity workers.

    Args:
        config: The plugin configuration.
    """

    def __init__(self, config: TenuoPluginConfig) -> None:
        self.config = config
        self.activity_fns: dict[str, Callable[..., Any]] = {}
        self.mint_queues: set[str] = set()
        self.recorder = Recorder(config.audit_callback, config.metrics)
        self.verifier = Verifier(config)
        self.keys_in_use = KeysInUse()
        self.signer = WorkflowSigner(config, self.activity_fns, self.keys_in_use,
                                     self.recorder)
        self._inbound_class: type[WorkflowInbound] = inbound_class(WorkflowParts(
            self.run_policy, self.signer, self.recorder, self.verifier.remember_local_pop))

    def run_policy(self) -> RunPolicy:
        """The read-only facts a workflow run's helpers may see (no keys, no resolver)."""
        config = self.config
        return RunPolicy.of(
            tool_mappings=config.tool_mappings, activity_fns=self.activity_fns,
            remote_backends={key_id: signer.backend for key_id, signer in config.signers.items()
                             if signer.remote},
            activity_summaries=config.activity_summaries,
            mint_queues=frozenset(self.mint_queues))

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
        self.recorder.set_meter(meter)

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The worker's event loop: workflow-side audit events are emitted on it."""
        self.recorder.bind_loop(loop)

    def keys_to_keep_warm(self) -> list[str]:
        """The key ids that signed for their holder recently (kept loaded)."""
        return self.keys_in_use.keys()

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        """Verify every activity before it runs."""
        return ActivityInbound(next, self.verifier, self.recorder)

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        """Sign PoP for what workflows schedule."""
        return self._inbound_class


class TenuoInterceptor(TenuoWorkerInterceptor, TenuoClientInterceptor):
    """Client and worker interceptor in one: what one plugin registers.

    Args:
        config: The plugin configuration.
    """
