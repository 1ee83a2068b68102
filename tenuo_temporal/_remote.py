"""Remote signers in workflows: PoPs signed outside the sandbox, recorded in history.

A key id configured in ``TenuoPluginConfig.signers`` to a remote
:class:`~tenuo_keys.Signer` (a key that never leaves its KMS, such as
``VaultTransitSigner``) cannot sign inside the workflow sandbox: signing is
I/O and its result is not deterministic across workers. So the workflow
helpers (:func:`~tenuo_temporal.workflow.tenuo_execute_activity` and
``AuthorizedWorkflow.execute_authorized_activity``) first run the plugin's
local activity ``__tenuo_remote_sign``:

1. In the workflow, the signed view of the call is computed by the function
   the outbound interceptor uses for local keys (``_signing.signed_view``)
   with the timestamp
   ``int(workflow.now().timestamp())``.
2. The local activity (outside the sandbox, in the same worker process)
   calls ``sign_pop(signer, warrant, tool, signed_args, timestamp)`` with the
   signer of the key id, pinned to the warrant's holder, and returns the PoP
   (base64) and the argument names. Temporal records that result in history.
3. The helper schedules the activity with the precomputed PoP (a context
   variable the outbound interceptor consumes instead of signing). The
   headers are the ones a local key produces; a remote PoP equals the local
   one byte for byte, so activity workers verify it unchanged.

On replay the recorded result is used and the signer is never called. When
an attempt runs a PoP window (30 s) or more after the workflow asked for the
signature (Temporal retried through an outage, or a worker restarted), the
local activity signs the worker's current time instead, so the PoP is fresh
when the activity is finally scheduled; the workflow itself never branches on
how long signing took (on replay, a local activity resolves from its marker at
once, so workflow time after it differs from the original run).

The request travels by value as the local activity's input (the warrant in
base64, the canonical arguments), so Temporal may retry it for as long as an
outage lasts. Local activity inputs are not written to history; only the
result (a PoP, already public in the activity's headers) is. The activity
refuses to run as a regular (remote) activity, so nobody can schedule it on a
task queue to obtain signatures.

**It signs only for the calling workflow.** Workflow code can call the local
activity itself, with any request. So the activity takes nothing on trust: the
warrant and key id must be those of the run that scheduled it (its state in
this process, recorded from the run's own start headers), workflow-scope
arguments must name that run's workflow, the timestamp must be near now, and
the call must be one the warrant grants (``Warrant.check_constraints``) before
anything is signed.

**Failures.** A signer that cannot sign right now (``BackendUnavailable``,
timeouts, a holder not yet seen after a rotation) fails the local activity
retryably: Temporal retries it (``SIGN_RETRY``, without a limit on attempts)
and the workflow waits; nothing is scheduled without a PoP. A definitive
failure (a holder no version of the key signs for anymore, a key that was
deleted, access denied) is a non-retryable ``TENUO_KEY_RESOLUTION``
``ApplicationError`` that fails the workflow.

**Plain ``workflow.execute_activity()``.** The SDK's outbound
``start_activity`` interceptor is synchronous: it must return the activity
handle at once and cannot await a local activity, and the SDK has no hook
that runs asynchronous work before an activity is scheduled. A call to a
remote key id through plain ``execute_activity``/``start_activity`` (or a
user local activity) therefore fails with the non-retryable
``TENUO_REMOTE_SIGNER_NEEDS_HELPER``, which says what to use instead. Key ids
served by ``key_resolver`` (or by a :class:`~tenuo_keys.LocalSigner` in
``signers``) keep signing in memory inside the workflow, with no local
activity, through every API.

**Deployment.** Whether a key id signs remotely decides which commands its
workflows issue (a local activity before each activity, or none), so every
worker of a task queue must map a key id the same way, and a key id must not
move between ``key_resolver`` and a remote signer while workflows that use it
are running: their replay would be nondeterministic. Move keys into a KMS
under a new key id (new warrants), and let the runs on the old one finish.

**Registration.** The plugin registers ``__tenuo_remote_sign`` on every
workflow worker when ``signers`` is not empty. Registering any activity makes
a worker poll its activity task queue; on a worker that registers no
activities of its own the plugin therefore also sets
``no_remote_activities=True``, so it runs the local activity without taking
activity tasks meant for other workers on its queue.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

import temporalio.activity
import temporalio.workflow
import tenuo_core
from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from tenuo_keys import KeyResolutionError, ResolverConfigError, Signer, sign_pop
from tenuo_keys._pop import POP_WINDOW_SECS, self_test

from ._args import WORKFLOW_ID_ARG, WORKFLOW_NAMESPACE_ARG
from ._config import TenuoPluginConfig
from ._headers import WarrantContext
from ._ids import REMOTE_SIGN_ACTIVITY, SUMMARY_PREFIX
from ._signing import signed_view
from ._state import RemotePop, RunState, precomputed_pop, run_state_of
from .errors import (
    KEY_RESOLUTION_TYPE,
    NEEDS_HELPER_TYPE,
    KeyResolutionFailed,
    RemoteSignerNeedsHelper,
    TemporalConstraintViolation,
    TenuoTemporalError,
    ToolNotAuthorized,
    denial,
)

logger = logging.getLogger("tenuo_temporal")

__all__ = [
    "NEEDS_HELPER_TYPE",
    "REMOTE_SIGN_ACTIVITY",
    "SIGN_RETRY",
    "SIGN_TIMEOUT",
    "RemotePop",
    "make_remote_sign_activity",
    "precomputed_pop",
    "presign",
    "remote_signer",
    "warm_up",
    "workflow_pop",
]

SIGN_TIMEOUT: Final = timedelta(seconds=30)
"""Start-to-close timeout of one signing attempt (the signer has its own, shorter, timeout)."""
SIGN_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,  # unlimited: an outage delays the workflow, never fails it
)
"""Retry policy of the signing local activity: retryable failures retry until they succeed."""


def remote_signer(config: TenuoPluginConfig, key_id: str | None) -> Signer | None:
    """The remote signer configured for ``key_id``, or None (local keys sign in memory)."""
    if key_id is None or not config.signers:
        return None
    signer = config.signers.get(key_id)
    return signer if signer is not None and signer.remote else None


def needs_helper(key_id: str, tool: str, backend: str) -> ApplicationError:
    """The error for a remote key id reached through plain ``execute_activity``."""
    return denial(RemoteSignerNeedsHelper(
        f"tenuo: key id {key_id!r} signs with a remote signer ({backend}): its key "
        "never leaves the KMS, so the PoP must be signed outside the workflow sandbox, in the "
        "plugin's local activity, whose result history records. Plain "
        "workflow.execute_activity()/start_activity() (and local activities) cannot do that: "
        "Temporal's outbound start_activity interceptor is synchronous and cannot await a "
        f"local activity. Schedule {tool!r} with tenuo_temporal.workflow."
        "tenuo_execute_activity(...) or AuthorizedWorkflow.execute_authorized_activity(...), "
        "or serve this key id from key_resolver"))


# --------------------------------------------------------------------------- workflow side


def workflow_pop(config: TenuoPluginConfig, context: WarrantContext, tool: str,
                 signed: Mapping[str, Any]) -> bytes | None:
    """The PoP for one call when ``signers`` decides it; None for the key resolver's path.

    Called by the outbound interceptor inside the sandbox.

    Returns:
        The PoP the helper precomputed, or one a :class:`~tenuo_keys.LocalSigner`
        signed in memory; None when the key resolver signs.

    Raises:
        ApplicationError: ``TENUO_REMOTE_SIGNER_NEEDS_HELPER`` for a remote key
            id without a precomputed PoP; ``TENUO_KEY_RESOLUTION`` when the
            precomputed PoP is for another call (a bug, never signed over).
    """
    override = precomputed_pop.get()
    if override is not None:
        if (override.warrant_id != str(context.warrant.id) or override.key_id != context.key_id
                or override.tool != tool or dict(override.signed) != dict(signed)):
            raise denial(KeyResolutionFailed(
                f"tenuo: the remotely signed PoP is for another call than {tool!r}; "
                "nothing was scheduled"))
        return override.pop
    if not config.signers or context.key_id is None:
        return None
    signer = config.signers.get(context.key_id)
    if signer is None:
        return None
    if signer.remote:
        raise needs_helper(context.key_id, tool, signer.backend)
    try:
        return sign_pop(signer, context.warrant, tool, signed,
                        int(temporalio.workflow.now().timestamp()))
    except KeyResolutionError as error:
        raise denial(KeyResolutionFailed(str(error))) from None


def _activity_name(fn: Any) -> str:
    if isinstance(fn, str):
        return fn
    return temporalio.activity._Definition.must_from_callable(fn).name or ""


async def presign(state: RunState, fn: Any, args: Sequence[Any]) -> RemotePop | None:
    """Sign one call in the local activity when its key id has a remote signer.

    Called by the workflow helpers before ``start_activity``; returns at once
    (without awaiting anything) for key ids signed in memory.

    Args:
        state: The run's state (warrant context and interceptor).
        fn: The activity function, or its name.
        args: The positional arguments.

    Returns:
        The PoP to schedule the activity with, or None when no remote signer is involved.

    Raises:
        ApplicationError: A non-retryable denial (an argument without a
            canonical form) or ``TENUO_KEY_RESOLUTION`` (the signer failed definitively).
    """
    context = state.context
    policy = state.policy
    if context is None or context.key_id is None \
            or context.key_id not in policy.remote_backends:
        return None
    name = _activity_name(fn)
    tool = policy.tool_for(name)
    names_fn = fn if not isinstance(fn, str) else policy.activity_fns.get(name)
    view_names, signed = signed_view(names_fn, list(args), tool, context)
    names = list(view_names)
    request = {"key_id": context.key_id, "warrant": context.warrant.to_base64(), "tool": tool,
               "args": signed, "names": names,
               "timestamp": int(temporalio.workflow.now().timestamp())}
    try:
        result = await temporalio.workflow.execute_local_activity(
            REMOTE_SIGN_ACTIVITY, request, start_to_close_timeout=SIGN_TIMEOUT,
            retry_policy=SIGN_RETRY,
            summary=f"{SUMMARY_PREFIX} sign {tool}" if policy.activity_summaries else None)
    except ActivityError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == KEY_RESOLUTION_TYPE:
            raise denial(KeyResolutionFailed(cause.message)) from None
        raise
    pop = _decode_result(result, names)
    return RemotePop(warrant_id=str(context.warrant.id), key_id=context.key_id, tool=tool,
                     signed=signed, pop=pop)


def _decode_result(result: Any, names: list[str]) -> bytes:
    try:
        pop = base64.b64decode(result["pop"], validate=True)
        arg_keys = list(result["arg_keys"])
    except (TypeError, KeyError, ValueError, binascii.Error):
        pop, arg_keys = b"", []
    if len(pop) != 64 or arg_keys != names:
        raise denial(KeyResolutionFailed(
            "tenuo: the remote signing activity returned an unexpected result"))
    return pop


# --------------------------------------------------------------------------- activity side


def make_remote_sign_activity(config: TenuoPluginConfig) -> Any:
    """The local activity that signs a PoP with the key id's remote signer."""

    @activity.defn(name=REMOTE_SIGN_ACTIVITY)
    async def remote_sign(request: dict[str, Any]) -> dict[str, Any]:
        if not activity.info().is_local:
            raise denial(KeyResolutionFailed(
                f"{REMOTE_SIGN_ACTIVITY} runs only as the plugin's local activity"))
        try:
            key_id = str(request["key_id"])
            warrant = tenuo_core.Warrant.from_base64(str(request["warrant"]))
            tool = str(request["tool"])
            args = dict(request["args"])
            names = [str(n) for n in request["names"]]
            requested = int(request["timestamp"])
        except Exception as exc:  # tenuo_core raises several types for garbage
            raise denial(KeyResolutionFailed(
                f"malformed remote signing request ({type(exc).__name__})")) from None
        info = activity.info()
        refusal = _refusal(run_state_of(info.workflow_run_id), info, key_id, warrant, tool, args)
        if refusal is not None:
            raise denial(refusal)
        signer = config.signers.get(key_id)
        if signer is None:
            raise denial(KeyResolutionFailed(
                f"no signer is configured for key id {key_id!r} on this worker"))
        now = time.time()
        if requested > now + POP_WINDOW_SECS:
            raise denial(TemporalConstraintViolation(
                "refused to sign: the requested timestamp is in the future", tool=tool))
        # Late (retried through an outage, or re-requested after a restart): a PoP
        # for the workflow time of the request would be stale when scheduled.
        timestamp = int(now) if now - requested >= POP_WINDOW_SECS else requested
        try:
            pop = await asyncio.to_thread(sign_pop, signer, warrant, tool, args, timestamp)
        except KeyResolutionError as error:
            raise denial(KeyResolutionFailed(str(error)),
                         non_retryable=not error.retryable) from None
        except (ResolverConfigError, TypeError) as error:  # PopFormatChanged, bad value
            raise denial(KeyResolutionFailed(str(error))) from None
        return {"pop": base64.b64encode(pop).decode("ascii"), "arg_keys": names,
                "timestamp": timestamp}

    return remote_sign


def _refusal(state: RunState | None, info: temporalio.activity.Info, key_id: str,
             warrant: Any, tool: str, args: Mapping[str, Any]) -> TenuoTemporalError | None:
    """Why the calling run may not have this call signed, or None when it may."""
    context = state.context if state is not None else None
    if context is None:
        return TemporalConstraintViolation(
            "refused to sign: the calling workflow runs under no warrant", tool=tool)
    if key_id != context.key_id or bytes(warrant.to_bytes()) != bytes(
            context.warrant.to_bytes()):
        return TemporalConstraintViolation(
            "refused to sign: the request names another warrant or key id than the calling "
            "workflow's own", tool=tool)
    scope = (args.get(WORKFLOW_NAMESPACE_ARG), args.get(WORKFLOW_ID_ARG))
    if scope != (None, None) and scope != (info.workflow_namespace, info.workflow_id):
        return TemporalConstraintViolation(
            "refused to sign: the workflow scope names another workflow", tool=tool)
    problem = context.warrant.check_constraints(tool, dict(args))
    if problem is None:
        return None
    granted = context.warrant.capabilities
    if tool not in granted and "*" not in granted:
        return ToolNotAuthorized(f"refused to sign: the warrant does not grant {tool!r}",
                                 tool=tool)
    return TemporalConstraintViolation(f"refused to sign: {problem}", tool=tool)


def warm_up(config: TenuoPluginConfig) -> None:
    """Check the PoP format once at worker start when remote signers are configured.

    A failure is logged, not raised: local keys keep working and every remote
    signing then fails with a clear non-retryable error.
    """
    if not any(signer.remote for signer in config.signers.values()):
        return
    try:
        self_test()
    except ResolverConfigError as error:
        logger.error("tenuo_temporal: %s", error)
