"""Signing PoP on a workflow worker: the workflow side's whole job.

:class:`WorkflowSigner` is what the workflow outbound interceptor calls for
each activity a workflow schedules. It computes the signed view of the call
(``_signing.signed_view``, the same function remote presigning uses), signs
it with the holder key (from the resolver's memory, a configured signer, or a
PoP a workflow helper precomputed in a local activity) at the workflow's
clock, and writes the warrant headers, the PoP, the argument names and any
approvals pre-supplied by ``set_activity_approvals`` into the activity's
headers. It never does I/O: it runs inside the sandbox.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from typing import Any

import temporalio.workflow
import tenuo.exceptions as tx
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError
from temporalio.worker import StartActivityInput, StartLocalActivityInput, StartNexusOperationInput

from tenuo_keys import KeyResolutionError

from . import _headers as H
from ._audit import Recorder
from ._bounded import BoundedMap
from ._config import TenuoPluginConfig
from ._headers import WarrantContext
from ._ids import SUMMARY_PREFIX
from ._keep_warm import KeysInUse
from ._nexus import TOOL_HEADER, nexus_input_args, nexus_tool_name, sign_nexus_headers
from ._remote import workflow_pop
from ._signing import signed_view
from ._state import (
    RunState,
    activity_context_override,
    activity_fn_override,
    nexus_approvals,
    pending_approvals,
    precomputed_pop,
)
from .errors import (
    ChainValidationError,
    KeyResolutionFailed,
    TenuoTemporalError,
    denial,
    unsignable,
)

__all__ = ["KeyNotReady", "WorkflowSigner"]


class KeyNotReady(RuntimeError):
    """The holder key is not in memory yet: the workflow task fails and is retried.

    Not an ``ApplicationError``, so Temporal retries the workflow task instead
    of failing the workflow; by then the background load has landed.
    """


class WorkflowSigner:
    """The workflow side of one plugin: PoP into each scheduled activity's headers.

    Args:
        config: The plugin configuration.
        activity_fns: Activity type to function, as registered on this worker
            (names the arguments PoP binds).
        keys: Where key ids that signed for their holder are noted (kept warm).
        recorder: Audits denials raised while signing.
    """

    def __init__(self, config: TenuoPluginConfig, activity_fns: Mapping[str, Callable[..., Any]],
                 keys: KeysInUse, recorder: Recorder) -> None:
        self.config = config
        self.activity_fns = activity_fns
        self.keys = keys
        self.recorder = recorder

    def sign(self, state: RunState, input: StartActivityInput | StartLocalActivityInput,
             ) -> bytes | None:
        """Sign PoP for one activity into its headers (and label it).

        Returns:
            The PoP, or None when nothing was signed (no warrant; a replayed
            command that needs no key).

        Raises:
            ApplicationError: A typed, non-retryable denial (audited).
            KeyNotReady: The holder key is still loading (the task is retried).
        """
        approvals = _take_approvals()
        context = activity_context_override.get() or state.context
        if context is None:
            return None  # no warrant: the activity worker decides (require_warrant)
        config = self.config
        tool = config.tool_for(input.activity)
        fn = activity_fn_override.get() or self.activity_fns.get(input.activity)
        try:
            names, signed = signed_view(fn, input.args, tool, context)
        except ApplicationError as error:
            raise self.recorder.workflow_denial(error, tool) from None
        try:
            # Signers (remote or local) or a PoP a helper precomputed; else the resolver's key.
            pop = (workflow_pop(config, context, tool, signed)
                   if config.signers or precomputed_pop.get() is not None else None)
            if pop is None:
                try:
                    key = self.holder_key(context)
                except (KeyNotReady, ApplicationError):
                    if not temporalio.workflow.unsafe.is_replaying():
                        raise
                    # Replaying history: this activity was signed when it was first
                    # scheduled, and a replayed command is never sent, so rebuilding
                    # the run's state needs no key (a key loading, rotated away or
                    # closed; new scheduling still fails closed).
                    input.headers = {**input.headers, **context.payloads}
                    return None
                pop = context.warrant.sign(key, tool, signed,
                                           int(temporalio.workflow.now().timestamp()))
        except ApplicationError as error:
            raise self.recorder.workflow_denial(error, tool) from None
        except (tx.TenuoError, ValueError, TypeError, OverflowError) as exc:
            # tenuo_core refuses the values (a float it cannot encode, a lone
            # surrogate): a typed denial of this call, not a workflow task that
            # fails and is retried forever.
            raise self.recorder.workflow_denial(denial(unsignable(tool, exc)), tool) from None
        headers: dict[str, Payload] = ({**input.headers, **context.payloads} if input.headers
                                       else dict(context.payloads))
        headers[H.POP] = Payload(data=binascii.b2a_base64(pop, newline=False))
        headers[H.ARG_KEYS] = _arg_keys_payload(names)
        if approvals:
            headers[H.APPROVALS] = Payload(data=H.encode_approvals(approvals))
        input.headers = headers
        if config.activity_summaries:
            input.summary = (f"{SUMMARY_PREFIX} {tool}: {input.summary}" if input.summary
                             else f"{SUMMARY_PREFIX} {tool}")
        return bytes(pop)

    def sign_nexus(self, state: RunState, input: StartNexusOperationInput[Any, Any]) -> None:
        """Sign PoP for one Nexus operation start into its headers (experimental).

        The tool is ``nexus:<endpoint>:<service>:<operation>`` and the
        arguments are the input's top-level fields. Headers that already carry
        a Tenuo tool name (signed by hand with ``tenuo_nexus_headers``) are
        left as they are. Only the resolver's keys sign here: a key behind a
        remote ``Signer`` is refused (it would need a local activity).

        Raises:
            ApplicationError: A typed, non-retryable denial (audited).
            KeyNotReady: The holder key is still loading (the task is retried).
        """
        context = activity_context_override.get() or state.context
        if context is None or TOOL_HEADER in (input.headers or {}):
            return
        tool = nexus_tool_name(input.endpoint, input.operation_name, service=input.service)
        approvals = nexus_approvals.get()
        try:
            args = nexus_input_args(input.input)
            try:
                key = self.holder_key(context)
            except (KeyNotReady, ApplicationError):
                if temporalio.workflow.unsafe.is_replaying():
                    return  # a replayed command is never sent: it needs no key
                raise
            headers = sign_nexus_headers(context, key, tool, args,
                                         int(temporalio.workflow.now().timestamp()), approvals)
        except ApplicationError as error:
            raise self.recorder.workflow_denial(error, tool) from None
        except (TenuoTemporalError, tx.TenuoError, ValueError, TypeError,
                OverflowError) as exc:
            raise self.recorder.workflow_denial(denial(unsignable(tool, exc)), tool) from None
        input.headers = {**(input.headers or {}), **headers}

    def holder_key(self, context: WarrantContext) -> Any:
        """The holder's signing key, from the resolver's memory (no I/O).

        Raises:
            ApplicationError: No resolver, no key id, or a key that can never
                sign for this holder (non-retryable).
            KeyNotReady: The key is still loading (retryable).
        """
        resolver = self.config.key_resolver
        if resolver is None:
            raise denial(ChainValidationError(
                "this worker has no key_resolver, so it cannot sign PoP"))
        key_id = context.key_id
        if key_id is None:
            raise denial(KeyResolutionFailed("the warrant headers carry no x-tenuo-key-id"))
        try:
            key = resolver.resolve_for_holder_sync(key_id, context.holder)
        except KeyResolutionError as error:
            if error.retryable:
                raise KeyNotReady(
                    f"tenuo: holder key {key_id!r} is not available yet "
                    f"({error.reason}); the workflow task will be retried") from None
            raise denial(KeyResolutionFailed(str(error))) from None
        self.keys.note(key_id, context)
        return key


def _take_approvals() -> list[Any] | None:
    """What ``set_activity_approvals`` left for this dispatch, taken (one-shot).

    Taken whatever happens next (a replayed command, a refusal), so they can
    never ride on a later call.
    """
    pending = pending_approvals.get()
    if not pending:
        return None
    taken = list(pending)
    pending.clear()
    return taken


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
