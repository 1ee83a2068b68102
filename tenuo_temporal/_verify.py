"""Verification before an activity runs: the activity worker's whole decision.

:class:`Verifier` holds what one plugin's verification needs: the config, the
workflow clock of each local activity's PoP this process signed, and the
shortest life of a replay claim. The activity inbound interceptor calls
:meth:`Verifier.check`, then :meth:`Verifier.claim` when a shared replay store
answers asynchronously; every failure is a typed :class:`TenuoTemporalError`.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timezone
from typing import Any

import temporalio.activity
import temporalio.worker
import tenuo.exceptions as tx
import tenuo_core
from temporalio.api.common.v1 import Payload
from tenuo.approval import ApprovalDenied, ApprovalRequest

from tenuo_keys._pop import POP_WINDOW_SECS

from . import _headers as H
from ._args import add_workflow_scope, canonical_args, check_reserved, names_for, positional
from ._bounded import BoundedMap
from ._config import TenuoPluginConfig
from ._headers import WarrantContext
from ._replay import pop_digest
from .errors import (
    ApprovalRequired,
    ChainValidationError,
    ClearanceInsufficient,
    HeaderError,
    InsufficientApprovals,
    InvalidApproval,
    PopReplayed,
    PopVerificationError,
    TemporalConstraintViolation,
    TenuoTemporalError,
    ToolNotAuthorized,
    WarrantExpired,
    WarrantMissing,
    WarrantRevoked,
    WorkflowUnbound,
)

__all__ = ["LOCAL_POPS_HELD", "ApprovalPending", "GatedCall", "Verifier", "replay_owner",
           "request_hash", "run_claim_digest"]

LOCAL_POPS_HELD = 4096
"""Local-activity PoPs whose signing time (workflow clock) this process keeps."""


def _scheduled_at(info: temporalio.activity.Info) -> float:
    """When Temporal first scheduled the activity, in epoch seconds (naive means UTC)."""
    scheduled = info.scheduled_time
    if scheduled.tzinfo is None:
        scheduled = scheduled.replace(tzinfo=timezone.utc)
    return scheduled.timestamp()


POP_REPLAYED = "this PoP was already presented by another workflow"
ATTEMPT_REPLAYED = "this activity attempt was already authorized once"
_presentations = itertools.count()  # in-process owners: one per presentation


def run_claim_digest(pop: bytes, info: temporalio.activity.Info) -> bytes:
    """What a shared store keeps for one activity attempt (``replay_protection="run"``).

    SHA-256 of the PoP and the attempt's identity (namespace, workflow id, run
    id, activity id, attempt), each length-prefixed so no two identities
    encode alike.
    """
    digest = hashlib.sha256(pop)
    for part in (info.workflow_namespace, info.workflow_id, info.workflow_run_id,
                 info.activity_id, str(info.attempt)):
        data = (part or "").encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(4, "big"))
        digest.update(data)
    return digest.digest()


def replay_owner(namespace: str | None, workflow_id: str | None) -> str:
    """The replay-store owner of a workflow: unambiguous whatever the names hold."""
    namespace = namespace or ""
    return f"{len(namespace)}:{namespace}/{workflow_id or ''}"


@dataclass(frozen=True)
class GatedCall:
    """A call that passed everything but an approval gate, as :meth:`Verifier.check` saw it."""

    context: WarrantContext
    tool: str
    signed: dict[str, Any]
    constraint_args: dict[str, Any]
    pop: bytes
    info: temporalio.activity.Info | None
    """None for a call that is not an activity (a Nexus start), checked at now."""


class ApprovalPending(Exception):
    """Raised by :meth:`Verifier.check` when ``approval_handler`` must be awaited.

    Not a denial: the activity inbound interceptor awaits
    :meth:`Verifier.approve` with it (``check`` itself never suspends).
    """

    def __init__(self, call: GatedCall) -> None:
        super().__init__(f"approval gate on {call.tool!r}: asking approval_handler")
        self.call = call


def request_hash(call: GatedCall) -> bytes:
    """The 32 bytes an approval of ``call`` must sign (``tenuo_core``'s binding).

    Over the warrant id, the tool, the PoP-signed view of the arguments (the
    workflow scope included when the tool is workflow-scoped) and the holder.
    """
    return bytes(tenuo_core.py_compute_request_hash(
        str(call.context.warrant.id), call.tool, call.signed, call.context.holder))


def _header(headers: Mapping[str, Payload] | None, name: str) -> bytes | None:
    payload = headers.get(name) if headers else None
    return None if payload is None else bytes(payload.data)


class Verifier:
    """The activity-side check of one plugin, as functions of its config.

    Args:
        config: The plugin configuration.
    """

    def __init__(self, config: TenuoPluginConfig) -> None:
        self.config = config
        # PoP -> the workflow's clock when a local activity was signed (in-process
        # only: never read from the wire), bounded.
        self.local_signed_at: BoundedMap[bytes, int] = BoundedMap(LOCAL_POPS_HELD)
        self._mode = config.replay_mode
        # The in-memory store answers without a coroutine (shared stores: claim()).
        self._claim_now = getattr(config.replay_store, "claim_now", None)
        # A claim's shortest life: the PoP windows, both ways, plus clock tolerance.
        self.window_ttl = (POP_WINDOW_SECS * (config.pop_max_windows + 2) * 2
                           + config.clock_tolerance_secs)

    def remember_local_pop(self, pop: bytes, signed_at: int) -> None:
        """Record when (workflow clock) this process signed a local activity's PoP."""
        self.local_signed_at[pop] = signed_at

    async def claim(self, pending: tuple[bytes, str], tool: str,
                    context: WarrantContext) -> None:
        """Claim a PoP in a replay store that answers asynchronously (a shared one).

        Raises:
            PopReplayed: Another workflow presented this PoP first.
        """
        store = self.config.replay_store
        assert store is not None
        if not await store.claim(pending[0], pending[1], self.replay_ttl(context)):
            raise PopReplayed(ATTEMPT_REPLAYED if self._mode == "run" else POP_REPLAYED,
                              tool=tool)

    def check(
        self, input: temporalio.worker.ExecuteActivityInput, info: temporalio.activity.Info,
        tool: str,
    ) -> tuple[WarrantContext | None, dict[str, Any], tuple[bytes, str] | None]:
        """Check one activity, up to an asynchronous replay-store claim, without a coroutine.

        The activity worker's path: ``check``, then :meth:`claim` when a claim is left.

        Returns:
            The context, the constraint arguments, and ``(pop digest, owner)``
            still to :meth:`claim` when the replay store only answers
            asynchronously (None when nothing is left to do).

        Raises:
            TenuoTemporalError: The denial.
        """
        config = self.config
        context, raw_pop, raw_arg_keys = H.activity_headers(input.headers)
        args = input.args
        if context is None:
            if config.require_warrant:
                raise WarrantMissing("the activity carries no warrant", tool=tool)
            return None, {}, None
        if not config.verifies:
            raise ChainValidationError("this worker has no trusted_roots to verify with",
                                       tool=tool)
        chain = context.chain
        if config.revocation is not None:
            config.revocation.check(chain, tool)
        if config.require_workflow_binding and not context.bound_to_workflow(tool):
            raise WorkflowUnbound(
                f"the warrant does not bind {tool!r} to one workflow: this worker requires "
                "both _workflow_namespace and _workflow_id constrained with Exact",
                tool=tool)
        self._check_depth(chain, tool)
        try:
            pop = H.pop_of(raw_pop)
        except HeaderError as error:  # malformed PoP: TENUO_POP_INVALID, as documented
            raise PopVerificationError(error.reason, tool=tool) from None
        if pop is None:
            raise PopVerificationError("the activity carries no PoP", tool=tool)
        count = len(args)
        signed_names = H.arg_keys_of(raw_arg_keys) or positional(count)
        if len(signed_names) != count:
            raise TemporalConstraintViolation(
                f"{count} argument(s) arrived but {len(signed_names)} were signed", tool=tool)
        # Constraints bind to what the activity receives: its own parameter names,
        # else positions; never the signed names (x-tenuo-arg-keys), which the
        # workflow chooses and could point a lax constraint at the value a strict
        # one should have checked.
        names = names_for(input.fn, count) or positional(count)
        constraint_args = canonical_args(names, args)
        check_reserved(constraint_args)
        # Usually both sides name the arguments alike: one view serves both.
        if signed_names == names:
            signed = constraint_args
        else:
            signed = canonical_args(signed_names, args)
            check_reserved(signed)
        if context.workflow_scoped(tool):
            namespace, workflow_id = info.workflow_namespace, info.workflow_id
            one_view = signed is constraint_args
            constraint_args = add_workflow_scope(constraint_args, namespace, workflow_id)
            signed = (constraint_args if one_view
                      else add_workflow_scope(signed, namespace, workflow_id))
        try:
            if signed is constraint_args:
                self.check_at_schedule_time(chain, tool, signed, pop, info)
            else:
                # Two views: tenuo_core takes no as_of for them, so freshness is
                # judged at this worker's now, the windows widened back to
                # Temporal's scheduled_time (expiry is checked at now).
                config.authorizer(self.windows(info)).check_chain_with_pop_args(
                    chain, tool, signed, constraint_args, signature=pop)
        except (tx.ApprovalGateTriggered, tx.InsufficientApprovals) as gate:
            # tenuo_core judges approval gates last: the chain, PoP, tool,
            # constraints and clearance have passed, so only now are approvals
            # read, and only now may the approval handler be asked.
            call = GatedCall(context, tool, signed, constraint_args, pop, info)
            supplied = H.approvals_of(_header(input.headers, H.APPROVALS))
            if supplied is None:
                if config.approval_handler is None:
                    raise ApprovalRequired(
                        f"{gate}; pre-supply approvals with set_activity_approvals() or set "
                        "approval_handler on the activity worker", tool=tool) from None
                raise ApprovalPending(call) from None
            self.check_approvals(call, supplied)
        except tx.TenuoError as exc:
            raise self.classify(exc, context, tool) from None
        except RuntimeError as exc:
            raise ChainValidationError(str(exc), tool=tool) from None
        return self.admit(context, constraint_args, pop, info, tool)

    async def approve(self, pending: ApprovalPending) -> tuple[
            WarrantContext, dict[str, Any], tuple[bytes, str] | None]:
        """Ask ``approval_handler`` for a gated call's approvals, then finish :meth:`check`.

        Raises:
            ApprovalRequired: The handler denied (``ApprovalDenied``).
            InvalidApproval: It returned something other than ``SignedApproval`` objects.
            TenuoTemporalError: ``tenuo_core``'s denial of what it returned.
            temporalio.exceptions.ApplicationError: The handler's own (a
                retryable one fails the attempt for Temporal to retry).
        """
        call = pending.call
        handler = self.config.approval_handler
        assert handler is not None and call.info is not None  # raised for activities only
        warrant = call.context.warrant
        request = ApprovalRequest.for_warrant_gate(
            call.tool, dict(call.signed), warrant, request_hash(call),
            holder_key=call.context.holder)
        try:
            result = handler(request)
            if inspect.isawaitable(result):
                result = await result
        except ApprovalDenied as denied:
            raise ApprovalRequired(f"approval_handler refused: {denied.reason}",
                                   tool=call.tool) from None
        approvals = list(result) if isinstance(result, (list, tuple)) else [result]
        if not approvals or not all(isinstance(approval, tenuo_core.SignedApproval)
                                    for approval in approvals):
            raise InvalidApproval(
                "approval_handler must return a SignedApproval or a non-empty list of them, "
                f"got {type(result).__name__}", tool=call.tool)
        self.check_approvals(call, approvals)
        return self.admit(call.context, call.constraint_args, call.pop, call.info, call.tool)

    def check_approvals(self, call: GatedCall, approvals: list[Any]) -> None:
        """``check_chain`` again, with approvals, at this worker's now.

        Approvals are signed after the call was scheduled (a human may take
        minutes), so the check runs at now, not at Temporal's scheduling time;
        the PoP windows reach back to that time (:meth:`windows`).

        Raises:
            TenuoTemporalError: The denial.
        """
        context, tool = call.context, call.tool
        try:
            config = self.config
            authorizer = config.authorizer(
                config.pop_max_windows if call.info is None else self.windows(call.info))
            if call.signed is call.constraint_args:
                authorizer.check_chain(list(context.chain), tool, call.signed,
                                       signature=call.pop, approvals=approvals)
            else:
                authorizer.check_chain_with_pop_args(
                    list(context.chain), tool, call.signed, call.constraint_args,
                    signature=call.pop, approvals=approvals)
        except tx.ApprovalGateTriggered as exc:
            raise ApprovalRequired(str(exc), tool=tool) from None
        except tx.ApprovalError as exc:
            raise self.approval_denial(exc, call, approvals) from None
        except tx.TenuoError as exc:
            raise self.classify(exc, context, tool) from None
        except RuntimeError as exc:
            raise ChainValidationError(str(exc), tool=tool) from None

    def approval_denial(self, exc: Exception, call: GatedCall,
                        approvals: list[Any]) -> ApprovalRequired:
        """Invalid or insufficient: ``tenuo_core`` judges each approval on its own.

        Off the hot path (only after a denial): an approval that fails
        ``verify_approvals`` alone, or an approver counted twice, makes the
        denial ``TENUO_APPROVAL_INVALID``; otherwise too few were valid.
        """
        warrant, tool = call.context.warrant, call.tool
        digest = request_hash(call)
        approvers = list(warrant.required_approvers() or [])
        seen: set[bytes] = set()
        for index, approval in enumerate(approvals):
            try:
                tenuo_core.verify_approvals(digest, [approval], approvers, 1,
                                            self.config.clock_tolerance_secs)
            except Exception as reason:
                return InvalidApproval(f"approval {index} refused: {reason}", tool=tool)
            approver = bytes(approval.approver_key.to_bytes())
            if approver in seen:
                return InvalidApproval(f"approval {index} repeats an approver", tool=tool)
            seen.add(approver)
        if isinstance(exc, tx.InsufficientApprovals):
            return InsufficientApprovals(str(exc), tool=tool)
        return InvalidApproval(str(exc), tool=tool)

    def admit(self, context: WarrantContext, constraint_args: dict[str, Any], pop: bytes,
              info: temporalio.activity.Info, tool: str,
              ) -> tuple[WarrantContext, dict[str, Any], tuple[bytes, str] | None]:
        """The end of :meth:`check` once tenuo_core allowed the call: keep, then claim."""
        if not context.local.held and context.digest is not None:
            H.remember(context)  # trusted now: worth keeping decoded
        mode = self._mode
        if mode is None:
            return context, constraint_args, None
        claim_now = self._claim_now
        if mode == "run":
            # Each attempt of each activity is authorized once. Retries (a new
            # attempt) and every other workflow run; a presentation of the same
            # attempt again is not (each presentation is its own owner).
            if claim_now is None:
                return context, constraint_args, (
                    run_claim_digest(pop, info), secrets.token_hex(16))
            if not claim_now((pop, info.workflow_namespace, info.workflow_id,
                              info.workflow_run_id, info.activity_id, info.attempt),
                             next(_presentations), self.replay_ttl(context)):
                raise PopReplayed(ATTEMPT_REPLAYED, tool=tool)
            return context, constraint_args, None
        # Strict: a PoP belongs to the workflow that first presented it. Runs of
        # one workflow (retries, continue-as-new, resets) share it: the same call
        # under the same warrant in the same window signs to the same bytes.
        owner = replay_owner(info.workflow_namespace, info.workflow_id)
        if claim_now is None:
            return context, constraint_args, (pop_digest(pop), owner)
        # The in-memory store answers without suspending, keyed by the PoP
        # itself (in process memory a digest buys nothing).
        if not claim_now(pop, owner, self.replay_ttl(context)):
            raise PopReplayed(POP_REPLAYED, tool=tool)
        return context, constraint_args, None

    def check_call(self, context: WarrantContext, tool: str, args: dict[str, Any],
                   pop: bytes, approvals: bytes | None = None) -> None:
        """Check a call that is not an activity (a Nexus start) at this worker's now.

        Chain depth, trust, expiry, the tool grant, constraints on ``args`` and
        the PoP over ``args`` within ``pop_max_windows``; no replay claim. At
        an approval gate, the approvals the caller sent (``approvals``, the raw
        ``x-tenuo-approvals`` value); ``approval_handler`` is for activities.

        Raises:
            TenuoTemporalError: The denial.
        """
        chain = context.chain
        self._check_depth(chain, tool)
        try:
            self.config.authorizer(self.config.pop_max_windows).check_chain(
                chain, tool, args, signature=pop)
        except (tx.ApprovalGateTriggered, tx.InsufficientApprovals) as gate:
            supplied = H.approvals_of(approvals)  # only once the gate is reached
            if supplied is None:
                raise ApprovalRequired(f"{gate}; send approvals with the request "
                                       "(x-tenuo-approvals)", tool=tool) from None
            self.check_approvals(GatedCall(context, tool, args, args, pop, None), supplied)
        except tx.TenuoError as exc:
            raise self.classify(exc, context, tool) from None
        except RuntimeError as exc:
            raise ChainValidationError(str(exc), tool=tool) from None

    def _check_depth(self, chain: tuple[Any, ...], tool: str) -> None:
        limit = self.config.max_chain_depth
        if len(chain) > limit:
            raise ChainValidationError(
                f"chain of {len(chain)} warrants exceeds the maximum {limit}", tool=tool)

    def check_at_schedule_time(self, chain: tuple[Any, ...], tool: str, args: dict[str, Any],
                                pop: bytes, info: temporalio.activity.Info) -> None:
        """``check_chain`` with PoP freshness judged on Temporal's clock.

        The PoP was signed at ``workflow.now()`` of the workflow task that
        scheduled this activity, and Temporal recorded that scheduling as
        ``scheduled_time`` (the first attempt's: retries and backlogs keep it).
        ``as_of`` moves the whole check to that time, so a PoP is fresh when it
        matches its own scheduling, however long the activity then waited, and
        under a time-skipping test server, whose clock runs hours ahead of this
        worker's. Expiry is checked at both times: a warrant past its expiry at
        this worker's now, or at Temporal's scheduling time, is refused.

        A local activity reports this worker's clock as its scheduling time, so
        for one the workflow's clock at signing is used, which this process
        recorded then (:meth:`remember_local_pop`; never read from the wire).
        A PoP stale at the scheduling time gets one more chance at this
        worker's now, with the windows widened back to ``scheduled_time``, as a
        plugin without ``as_of`` would judge it.

        Raises:
            WarrantExpired: A link is expired at this worker's now.
            tenuo.exceptions.TenuoError: tenuo_core's denial.
        """
        for link in chain:
            if link.is_expired():
                raise WarrantExpired(f"warrant {link.id} expired at {link.expires_at()}",
                                     tool=tool)
        as_of = self.local_signed_at.get(pop) if info.is_local else None
        if as_of is None:
            as_of = int(_scheduled_at(info))
        config = self.config
        try:
            config.authorizer(config.pop_max_windows).check_chain(
                chain, tool, args, signature=pop, as_of=as_of)
        except (tx.SignatureInvalid, tx.PopError, tx.ValidationError):
            config.authorizer(self.windows(info)).check_chain(chain, tool, args, signature=pop)

    def windows(self, info: temporalio.activity.Info) -> int:
        # Freshness is bound to when Temporal recorded the scheduling, not to
        # this worker's clock alone: a backlogged activity widens the accepted
        # range back to its schedule time, and no further.
        backlog = time.time() - _scheduled_at(info)
        # The authorizer centres its windows on now, so cover the backlog on
        # both sides of it. The configured windows already reach about half
        # their span back; widen only for a backlog beyond that.
        windows = self.config.pop_max_windows
        covered = (windows // 2) * POP_WINDOW_SECS
        if backlog <= covered:
            return windows
        return windows + 2 * math.ceil((backlog - covered) / POP_WINDOW_SECS)

    def replay_ttl(self, context: WarrantContext) -> float:
        """How long a claim must live: as long as its PoP can still be accepted.

        Freshness is judged at the first attempt's scheduling time, which every
        retry keeps, so a copy of a PoP scheduled within its window could
        still be presented by a retry until the warrant expires. A claim lives
        at least the PoP windows, and until the chain's earliest expiry (plus
        clock tolerance) when that is later.
        """
        until_expiry = context.expires_at - time.time() + self.config.clock_tolerance_secs
        windows = self.window_ttl
        return until_expiry if until_expiry > windows else windows

    def classify(
        self, exc: Exception, context: WarrantContext, tool: str
    ) -> TenuoTemporalError:
        text = str(exc)
        if isinstance(exc, tx.RevokedError):
            return WarrantRevoked(text, tool=tool)
        if isinstance(exc, tx.ExpiredError):
            return WarrantExpired(text, tool=tool)
        if isinstance(exc, (tx.ConstraintViolation, tx.SignatureInvalid, tx.MissingSignature,
                            tx.PopError)):
            # tenuo_core raises these for a broken chain too (a forged warrant
            # signature; a delegated constraint wider than its parent's): tell
            # them apart only on this failure path, off the hot path.
            try:
                self.config.authorizer(self.config.pop_max_windows).verify_chain(
                    list(context.chain))
            except tx.TenuoError as chain_exc:
                return ChainValidationError(f"{type(chain_exc).__name__}: {chain_exc}",
                                            tool=tool)
        if isinstance(exc, tx.ToolNotAuthorized):
            return ToolNotAuthorized(text, tool=tool)
        if isinstance(exc, tx.Unauthorized) and self.config.clearance_requirements:
            # The only Unauthorized check_chain raises: require_clearance's.
            return ClearanceInsufficient(text, tool=tool)
        if isinstance(exc, tx.ConstraintViolation):
            return TemporalConstraintViolation(text, tool=tool)
        if isinstance(exc, (tx.SignatureInvalid, tx.MissingSignature, tx.PopError)):
            return PopVerificationError(text, tool=tool)
        return ChainValidationError(f"{type(exc).__name__}: {text}", tool=tool)
