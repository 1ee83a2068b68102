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
=============================  ===========================================
"""

from __future__ import annotations

from typing import ClassVar

from tenuo_keys.errors import KeyResolutionError

__all__ = [
    "ERROR_TYPES",
    "ChainValidationError",
    "HeaderError",
    "KeyResolutionError",
    "PopReplayed",
    "PopVerificationError",
    "TemporalConstraintViolation",
    "TenuoTemporalError",
    "ToolNotAuthorized",
    "WarrantExpired",
    "WarrantMissing",
    "WorkflowUnbound",
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

    def __init__(self, reason: str, *, tool: str | None = None) -> None:
        self.reason = reason
        self.tool = tool
        super().__init__(f"{self.reason_prefix}: {reason}" if reason else self.reason_prefix)


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


KEY_RESOLUTION_TYPE = "TENUO_KEY_RESOLUTION"

ERROR_TYPES: dict[str, type[TenuoTemporalError]] = {
    cls.type: cls
    for cls in (
        TemporalConstraintViolation, ToolNotAuthorized, WarrantExpired, PopVerificationError,
        PopReplayed, ChainValidationError, WarrantMissing, HeaderError, WorkflowUnbound,
    )
}
"""Wire type string to class, for callers that branch on ``ApplicationError.type``."""
