"""Denials and failures of ``tenuo_temporal``, with stable wire types.

Every denial reaches the workflow as a non-retryable
``temporalio.exceptions.ApplicationError`` whose ``type`` is the class's
:attr:`~TenuoTemporalError.type` string. The strings are part of the public
API and never change:

=============================  ===========================================
``TENUO_CONSTRAINT_VIOLATION``   an argument is outside its constraint, undeclared or missing
``TENUO_TOOL_NOT_AUTHORIZED``    the warrant does not grant the tool
``TENUO_WARRANT_EXPIRED``        the warrant (or a link of its chain) has expired
``TENUO_POP_INVALID``            PoP missing, malformed, stale, or signed by another key
``TENUO_POP_REPLAYED``           a PoP already used by another workflow
``TENUO_CHAIN_INVALID``          untrusted issuer, broken or too deep chain
``TENUO_WARRANT_MISSING``        no warrant where one is required
``TENUO_WORKFLOW_UNBOUND``       the warrant is not bound to the running workflow by ``Exact``
                                 (only with ``require_workflow_binding=True``)
``TENUO_HEADER_INVALID``         malformed, oversized or unknown-format headers
``TENUO_KEY_RESOLUTION``         the holder key could not be resolved (definitive)
``TENUO_WARRANT_REVOKED``        a warrant of the chain is on the signed revocation list
``TENUO_REVOCATION_STALE``       revocation is configured but no current list is held
                                 (**retryable**: Temporal retries once a list is back)
``TENUO_APPROVAL_REQUIRED``      an approval gate fired and no approvals were supplied
``TENUO_INSUFFICIENT_APPROVALS`` valid approvals, but fewer than the warrant's threshold
``TENUO_APPROVAL_INVALID``       a malformed, forged, expired, duplicated or mis-bound approval
``TENUO_CLEARANCE_INSUFFICIENT`` the warrant's clearance is below ``clearance_requirements``
=============================  ===========================================

Two more wire types are failures of the plugin's setup, not of the call:
``TENUO_REMOTE_SIGNER_NEEDS_HELPER`` (:class:`RemoteSignerNeedsHelper`) and
``TENUO_DELEGATION_UNAVAILABLE`` (:class:`DelegationUnavailable`).

:func:`denial` turns any of these into the ``ApplicationError`` it is raised as.
"""

from __future__ import annotations

from typing import ClassVar

from temporalio.exceptions import ApplicationError

from tenuo_keys.errors import KeyResolutionError

__all__ = [
    "ERROR_TYPES",
    "KEY_RESOLUTION_TYPE",
    "NEEDS_HELPER_TYPE",
    "ApprovalRequired",
    "ChainValidationError",
    "ClearanceInsufficient",
    "DelegationUnavailable",
    "HeaderError",
    "InsufficientApprovals",
    "InvalidApproval",
    "KeyResolutionError",
    "KeyResolutionFailed",
    "PopReplayed",
    "PopVerificationError",
    "RemoteSignerNeedsHelper",
    "ReplayStoreUnavailable",
    "RevocationStale",
    "TemporalConstraintViolation",
    "TenuoTemporalError",
    "ToolNotAuthorized",
    "WarrantExpired",
    "WarrantMissing",
    "WarrantRevoked",
    "WorkflowUnbound",
    "denial",
    "unsignable",
]


class TenuoTemporalError(Exception):
    """Root of the plugin's denials.

    Attributes:
        type: The stable ``ApplicationError.type`` string.
        reason: What was wrong, without secrets or argument values.
        tool: The tool (activity type) concerned, when known.
    """

    type: ClassVar[str] = "TENUO_DENIED"
    reason_prefix: ClassVar[str] = "denied"
    retryable: ClassVar[bool] = False
    """Whether the attempt may be retried (only failures that pass, never denials)."""

    def __init__(self, reason: str, *, tool: str | None = None) -> None:
        self.reason = reason
        self.tool = tool
        prefix = self.reason_prefix
        # A class without a prefix (the failures below) carries its reason alone.
        super().__init__(f"{prefix}: {reason}" if reason and prefix else reason or prefix)


class TemporalConstraintViolation(TenuoTemporalError):
    """An argument is outside its constraint, undeclared, or missing."""

    type = "TENUO_CONSTRAINT_VIOLATION"
    reason_prefix = "constraint violation"


class ToolNotAuthorized(TemporalConstraintViolation):
    """The warrant does not grant this tool."""

    type = "TENUO_TOOL_NOT_AUTHORIZED"
    reason_prefix = "tool not authorized"


class WarrantExpired(TenuoTemporalError):
    """The warrant, or a warrant of its chain, has expired."""

    type = "TENUO_WARRANT_EXPIRED"
    reason_prefix = "warrant expired"


class PopVerificationError(TenuoTemporalError):
    """The Proof-of-Possession is missing, malformed, stale or by another key."""

    type = "TENUO_POP_INVALID"
    reason_prefix = "proof-of-possession invalid"


class PopReplayed(PopVerificationError):
    """The PoP was already presented by another workflow."""

    type = "TENUO_POP_REPLAYED"
    reason_prefix = "proof-of-possession replayed"


class ChainValidationError(TenuoTemporalError):
    """The warrant chain does not lead to a trusted root, or is malformed."""

    type = "TENUO_CHAIN_INVALID"
    reason_prefix = "warrant chain invalid"


class WarrantMissing(ChainValidationError):
    """No warrant was presented where one is required."""

    type = "TENUO_WARRANT_MISSING"
    reason_prefix = "warrant missing"


class WorkflowUnbound(ChainValidationError):
    """The warrant does not bind the tool to the running workflow by an ``Exact`` id.

    Raised only on workers configured with ``require_workflow_binding=True``.
    """

    type = "TENUO_WORKFLOW_UNBOUND"
    reason_prefix = "warrant not bound to this workflow"


class HeaderError(ChainValidationError):
    """Tenuo headers are malformed, oversized, or of an unknown wire format."""

    type = "TENUO_HEADER_INVALID"
    reason_prefix = "invalid tenuo headers"


class WarrantRevoked(ChainValidationError):
    """A warrant of the chain is on the worker's signed revocation list."""

    type = "TENUO_WARRANT_REVOKED"
    reason_prefix = "warrant revoked"


class RevocationStale(TenuoTemporalError):
    """Revocation is configured, and the worker holds no list it may trust now.

    None was loaded yet, or the held list is older than
    ``revocation_max_age_secs``. Retryable: the activity runs once a current
    list is back.
    """

    type = "TENUO_REVOCATION_STALE"
    reason_prefix = "no current revocation list"
    retryable = True


class ClearanceInsufficient(ToolNotAuthorized):
    """The warrant's clearance is below what ``clearance_requirements`` asks for the tool."""

    type = "TENUO_CLEARANCE_INSUFFICIENT"
    reason_prefix = "clearance insufficient"


class ApprovalRequired(TenuoTemporalError):
    """The warrant gates this call behind approvals, and none were supplied.

    Also the root of the other approval denials: in each, a valid approval is
    still required before the call may run.
    """

    type = "TENUO_APPROVAL_REQUIRED"
    reason_prefix = "approval required"


class InsufficientApprovals(ApprovalRequired):
    """Every approval supplied is valid, but there are fewer than the warrant's threshold."""

    type = "TENUO_INSUFFICIENT_APPROVALS"
    reason_prefix = "insufficient approvals"


class InvalidApproval(ApprovalRequired):
    """An approval is malformed, forged, or not acceptable for this call.

    Forged, by an approver the warrant does not name, bound to another call,
    expired or repeated: ``tenuo_core`` judges each.
    """

    type = "TENUO_APPROVAL_INVALID"
    reason_prefix = "invalid approval"


class KeyResolutionFailed(TenuoTemporalError):
    """The holder key could not be resolved, or its signer could not sign (definitive).

    Its message is the reason alone, without a prefix.
    """

    type = "TENUO_KEY_RESOLUTION"
    reason_prefix = ""


class RemoteSignerNeedsHelper(TenuoTemporalError):
    """A key id with a remote signer was reached through plain ``execute_activity``.

    Its message is the reason alone, without a prefix.
    """

    type = "TENUO_REMOTE_SIGNER_NEEDS_HELPER"
    reason_prefix = ""


class DelegationUnavailable(TenuoTemporalError):
    """Delegation was asked for on a worker without the minting local activity.

    Its message is the reason alone, without a prefix.
    """

    type = "TENUO_DELEGATION_UNAVAILABLE"
    reason_prefix = ""


class ReplayStoreUnavailable(TenuoTemporalError):
    """The shared replay store could not be reached: the attempt fails and is retried.

    The activity never runs unclaimed; Temporal retries it by its retry policy.
    """

    type = "TENUO_REPLAY_STORE_UNAVAILABLE"
    reason_prefix = "replay store unavailable"
    retryable = True


KEY_RESOLUTION_TYPE = KeyResolutionFailed.type
NEEDS_HELPER_TYPE = RemoteSignerNeedsHelper.type

ERROR_TYPES: dict[str, type[TenuoTemporalError]] = {
    cls.type: cls
    for cls in (
        TemporalConstraintViolation, ToolNotAuthorized, WarrantExpired, PopVerificationError,
        PopReplayed, ChainValidationError, WarrantMissing, HeaderError, WorkflowUnbound,
        KeyResolutionFailed, RemoteSignerNeedsHelper, DelegationUnavailable,
        ReplayStoreUnavailable, WarrantRevoked, RevocationStale, ClearanceInsufficient,
        ApprovalRequired, InsufficientApprovals, InvalidApproval,
    )
}
"""Wire type string to class, for callers that branch on ``ApplicationError.type``."""


def denial(error: TenuoTemporalError, *, non_retryable: bool | None = None) -> ApplicationError:
    """The ``ApplicationError`` a denial or failure is raised as.

    Non-retryable unless told otherwise, or unless the error's class is
    ``retryable`` (a store that cannot be reached right now).
    """
    if non_retryable is None:
        non_retryable = not error.retryable
    return ApplicationError(str(error), type=error.type, non_retryable=non_retryable)


def unsignable(tool: str, exc: BaseException) -> TemporalConstraintViolation:
    """The denial of a call whose arguments cannot be signed (no values echoed)."""
    return TemporalConstraintViolation(
        f"the arguments of {tool!r} cannot be signed ({type(exc).__name__}): use str, int "
        "within ±2**53, finite float, bool, None, lists and str-keyed dicts of those, or "
        "types the plugin reduces to them", tool=tool)
