"""Audit events and metrics for authorization decisions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["AuditCallback", "AuditEvent", "redact"]


@dataclass(frozen=True)
class AuditEvent:
    """One authorization decision on an activity worker.

    Arguments are redacted: names and value types only, never values.

    Attributes:
        decision: ``"allow"`` or ``"deny"``.
        tool: The activity type checked against the warrant.
        reason: The denial's wire type (``TENUO_...``), None when allowed.
        detail: The denial's human reason, None when allowed.
        warrant_id: The leaf warrant's id, when one was presented.
        chain_length: Links in the presented chain.
        workflow_id: The workflow that scheduled the activity.
        run_id: Its run.
        activity_id: The activity.
        attempt: The activity attempt.
        args: Argument name to ``<type>`` (redacted).
        latency_ms: Time spent verifying.
    """

    decision: Literal["allow", "deny"]
    tool: str
    reason: str | None
    detail: str | None
    warrant_id: str | None
    chain_length: int
    workflow_id: str | None
    run_id: str | None
    activity_id: str | None
    attempt: int
    args: Mapping[str, str] = field(default_factory=dict)
    latency_ms: float = 0.0


AuditCallback = Callable[[AuditEvent], Any]
"""Receives every :class:`AuditEvent`; may be sync or async. Exceptions are logged, not raised."""


def redact(args: Mapping[str, Any]) -> dict[str, str]:
    """Argument names with value types only."""
    return {name: f"<{type(value).__name__}>" for name, value in args.items()}
