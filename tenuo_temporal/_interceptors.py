"""The plugin's interceptors, composed from one small interceptor per hook.

:class:`TenuoWorkerInterceptor` holds one plugin's worker-side parts: the
activity registry (argument names), the :class:`~tenuo_temporal._verify.Verifier`,
the :class:`~tenuo_temporal._workflow_signer.WorkflowSigner`, the
:class:`~tenuo_temporal._audit.Recorder` and the keys in use. It hands them to
the interceptor of each hook:

* ``intercept_activity`` → :class:`~tenuo_temporal._activity_inbound.ActivityInbound`
  (verify before an activity runs);
* ``intercept_nexus_operation`` → :class:`~tenuo_temporal._nexus_inbound.NexusInbound`
  (verify before a Nexus handler runs);
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
import contextlib
import logging
from collections.abc import Callable, Collection
from typing import Any

import temporalio.activity
import temporalio.client
import temporalio.runtime
import temporalio.worker

from tenuo_keys import ResolverConfigError

from ._activity_inbound import ActivityInbound
from ._audit import Recorder
from ._client_outbound import ClientOutbound
from ._config import TenuoPluginConfig
from ._ids import MINT_ACTIVITY, PLUGIN_ID, SUMMARY_PREFIX
from ._keep_warm import KEEP_WARM_SECONDS, KeysInUse
from ._mint import make_mint_activity
from ._nexus import NexusCheck
from ._nexus_inbound import NexusInbound
from ._remote import make_remote_sign_activity
from ._state import (
    RunPolicy,
    RunState,
    activity_fn_override,
    child_context_override,
    client_context,
    current_run_state,
)
from ._tracing import Tracing
from ._verify import Verifier, replay_owner
from ._worker_configs import register as register_worker_config
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

logger = logging.getLogger("tenuo_temporal")


SHADOW_WARNING = (
    "tenuo_temporal: SHADOW MODE (dry_run=True): activity denials are NOT enforced on "
    "this worker. Activities Tenuo would deny run anyway and are only audited and "
    "counted (tenuo_activity_shadow_denied). Only activities are shadowed: Nexus "
    "starts and workflow-side checks (signing, AuthorizedWorkflow, signal and update "
    "allowlists) still enforce. Remove dry_run=True to enforce.")


class TenuoClientInterceptor(temporalio.client.Interceptor):
    """Adds warrant headers to workflows started by the client helpers.

    For hand-composed wiring: ``Client.connect(..., interceptors=[TenuoClientInterceptor()])``
    (or inside your own ``SimplePlugin``). ``TenuoTemporalPlugin`` registers
    one for you.

    Args:
        config: Accepted for the 0.3.3 reference's signature; the client side
            needs nothing from it.
    """

    def __init__(self, config: TenuoPluginConfig | None = None) -> None:
        super().__init__()

    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        """Attach warrant headers to workflows started by the client helpers."""
        return ClientOutbound(next)


class TenuoWorkerInterceptor(temporalio.worker.Interceptor):
    """Signs PoP on workflow workers and verifies it on activity workers.

    ``TenuoTemporalPlugin`` registers one for you. To compose it by hand
    (your own ``Plugin``/``SimplePlugin``, or a bare ``Worker``), give the
    worker three things the plugin would have given it::

        tenuo = TenuoWorkerInterceptor(config, task_queue="agents")
        Worker(client, task_queue="agents", workflows=[...],
               activities=[*my_activities, *tenuo.local_activities()],
               interceptors=[tenuo], workflow_runner=workflow_runner())

    What the plugin does besides, and hand wiring does not: it preloads keys
    before polling (here keys load on first use: the first workflow task that
    needs one fails and is retried), refreshes a ``trusted_roots`` provider
    periodically (here it is read once, at construction), keeps keys in use
    warm, closes resolvers and signers after the last worker, and learns
    argument names from the worker's activities (here from
    ``config.activity_fns``, else ``arg0``, ``arg1``...; activity workers name
    them by their own functions either way).

    Args:
        config: The plugin configuration.
        task_queue: The worker's task queue, so delegation
            (``tenuo_execute_child_workflow``) knows this worker runs the
            minting local activity (the plugin reads it from the worker).
    """

    def __init__(self, config: TenuoPluginConfig, *, task_queue: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.activity_fns: dict[str, Callable[..., Any]] = {}
        self.mint_queues: set[str] = set()
        if task_queue is not None:
            self.mint_queues.add(task_queue)
            register_worker_config(task_queue, config)
        self.register_activities(list(config.activity_fns))
        self._mint = (make_mint_activity(config)
                      if config.signs and config.delegation is not False else None)
        self._remote_sign = make_remote_sign_activity(config) if config.signers else None
        # False once a TenuoTemporalPlugin owns this interceptor: the plugin
        # then loads roots, meter and loop itself, at the right moments.
        self.hand_wired = True
        # True under a Replayer (histories of any task queue replay here).
        self.replaying = False
        self._roots_read = False
        self._announced = False
        self.recorder = Recorder(config.audit_callback, config.metrics,
                                 audit_allow=config.audit_allow, audit_deny=config.audit_deny)
        self.tracing = Tracing()
        self.verifier = Verifier(config)
        self.keys_in_use = KeysInUse()
        self.signer = WorkflowSigner(config, self.activity_fns, self.keys_in_use,
                                     self.recorder)
        self._inbound_class: type[WorkflowInbound] = inbound_class(WorkflowParts(
            self.run_policy, self.signer, self.recorder, self.verifier.remember_local_pop))

    @property
    def mints(self) -> bool:
        """Whether this worker runs delegation's minting local activity."""
        return self._mint is not None

    def local_activities(self) -> list[Callable[..., Any]]:
        """The plugin's local activities a workflow worker registers.

        Delegation's minting activity (``__tenuo_mint_child_warrant``, when
        this config signs and ``delegation`` is not False) and remote
        signing's (``__tenuo_remote_sign``, when ``signers`` is set). They run
        only as local activities of the calling run.
        """
        return [fn for fn in (self._mint, self._remote_sign) if fn is not None]

    def run_policy(self) -> RunPolicy:
        """The read-only facts a workflow run's helpers may see (no keys, no resolver)."""
        config = self.config
        return RunPolicy.of(
            tool_mappings=config.tool_mappings, activity_fns=self.activity_fns,
            remote_backends={key_id: signer.backend for key_id, signer in config.signers.items()
                             if signer.remote},
            activity_summaries=config.activity_summaries,
            mint_queues=frozenset(self.mint_queues),
            mints_anywhere=self.replaying and self.mints,
            authorized_signals=_names(config.authorized_signals),
            authorized_updates=_names(config.authorized_updates))

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

    def announce(self) -> None:
        """Log the warnings a worker gives when it starts (shadow mode)."""
        if self.config.dry_run:
            logger.warning(SHADOW_WARNING)

    def keys_to_keep_warm(self) -> list[str]:
        """The key ids that signed for their holder recently (kept loaded)."""
        return self.keys_in_use.keys()

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        """Verify every activity before it runs."""
        self._wire_defaults()
        return ActivityInbound(next, self.verifier, self.recorder, self.tracing)

    def intercept_nexus_operation(
        self, next: temporalio.worker.NexusOperationInboundInterceptor
    ) -> temporalio.worker.NexusOperationInboundInterceptor:
        """Check every Nexus start before its handler runs (experimental)."""
        self._wire_defaults()
        return NexusInbound(next, NexusCheck(self.config, self.verifier), self.recorder)

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        """Sign PoP for what workflows schedule."""
        self._wire_defaults()
        return self._inbound_class

    def _wire_defaults(self) -> None:
        """What the plugin sets, when nothing did: the default runtime's meter, this loop.

        Temporal asks for the interceptors while it builds the worker, on the
        worker's event loop, after every plugin configured it.
        """
        if not self.hand_wired:
            return
        if not self._announced:
            self._announced = True
            self.announce()
        if callable(self.config.trusted_roots) and not self._roots_read:
            self._roots_read = True
            if not self.config.refresh_trusted_roots():
                raise ResolverConfigError("the trusted_roots provider failed at start-up")
        if self.recorder.meter is None:
            self.recorder.set_meter(temporalio.runtime.Runtime.default().metric_meter)
        if not self.recorder.has_loop:
            with contextlib.suppress(RuntimeError):  # no running loop: audits log only
                self.recorder.bind_loop(asyncio.get_running_loop())


class TenuoInterceptor(TenuoWorkerInterceptor, TenuoClientInterceptor):
    """Client and worker interceptor in one: what one plugin registers.

    Args:
        config: The plugin configuration.
    """


def _names(allowlist: Collection[str] | None) -> frozenset[str] | None:
    """A config allowlist (a frozenset once checked) for the run policy; None stays None."""
    return None if allowlist is None else frozenset(allowlist)
