"""What a workflow run's own code may see of the plugin: its warrant and a few policy facts.

Also the per-dispatch context variables the workflow helpers and the client
helpers set around one call, for the interceptors to read.

A leaf module: it imports no sibling but the header types. The state reached
from workflow code (:func:`current_run_state`) holds the run's warrant context
(public: it is in the run's history) and read-only facts the workflow helpers
need. It holds no resolver, no signer and no key, so workflow code cannot use
this worker's keys beyond what the interceptors sign for its own warrant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import temporalio.workflow

from ._headers import WarrantContext

__all__ = [
    "ContinueAsNewAttenuated",
    "RemotePop",
    "RunPolicy",
    "RunState",
    "activity_context_override",
    "activity_fn_override",
    "child_context_override",
    "client_context",
    "current_run_state",
    "nexus_approvals",
    "pending_approvals",
    "precomputed_pop",
    "run_state_of",
]


@dataclass(frozen=True)
class RunPolicy:
    """Read-only facts of this worker's configuration, for the workflow helpers.

    Attributes:
        tool_mappings: Activity type to warrant tool name, where they differ.
        activity_fns: Registered activity functions by name (to name arguments).
        remote_backends: Key id to the backend name of its remote signer.
        activity_summaries: Whether activities are labelled in the UI.
        mint_queues: Task queues whose workers run the delegation minting activity.
        mints_anywhere: Minting is available whatever the task queue (a
            ``Replayer``: it replays histories of any queue, and resolves the
            minting local activity from its recorded marker).
        authorized_signals: Signal names delivered to handlers; None: all.
        authorized_updates: Update names accepted; None: all.
    """

    tool_mappings: Mapping[str, str] = field(default_factory=dict)
    activity_fns: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    remote_backends: Mapping[str, str] = field(default_factory=dict)
    activity_summaries: bool = True
    mint_queues: frozenset[str] = frozenset()
    mints_anywhere: bool = False
    authorized_signals: frozenset[str] | None = None
    authorized_updates: frozenset[str] | None = None

    def mints_on(self, task_queue: str) -> bool:
        """Whether a run on ``task_queue`` can mint narrower warrants here."""
        return self.mints_anywhere or task_queue in self.mint_queues

    def tool_for(self, activity_type: str) -> str:
        """The warrant tool name for an activity type."""
        return self.tool_mappings.get(activity_type, activity_type)

    @classmethod
    def of(cls, *, tool_mappings: Mapping[str, str],
           activity_fns: Mapping[str, Callable[..., Any]], remote_backends: Mapping[str, str],
           activity_summaries: bool, mint_queues: frozenset[str],
           mints_anywhere: bool = False, authorized_signals: frozenset[str] | None = None,
           authorized_updates: frozenset[str] | None = None) -> RunPolicy:
        """A policy with read-only views of the given maps."""
        return cls(MappingProxyType(dict(tool_mappings)), MappingProxyType(activity_fns),
                   MappingProxyType(dict(remote_backends)), activity_summaries, mint_queues,
                   mints_anywhere, authorized_signals, authorized_updates)


class RunState:
    """What one workflow run knows: its warrant context and the worker's policy facts."""

    __slots__ = ("context", "next_context", "policy")

    def __init__(self, policy: RunPolicy) -> None:
        self.policy = policy
        self.context: WarrantContext | None = None
        # The warrant the next run gets on continue-as-new, when narrowed.
        self.next_context: WarrantContext | None = None


@dataclass(frozen=True)
class RemotePop:
    """A PoP signed by the local activity for one call, consumed by the outbound interceptor.

    Attributes:
        warrant_id: The warrant it was signed for.
        key_id: The key id that signed.
        tool: The warrant tool.
        signed: The exact signed view of the arguments (workflow scope included).
        pop: The 64-byte PoP.
    """

    warrant_id: str
    key_id: str
    tool: str
    signed: Mapping[str, Any]
    pop: bytes


# Per-dispatch overrides, set by the workflow helpers around one call.
activity_context_override: ContextVar[WarrantContext | None] = ContextVar(
    "tenuo_activity_context", default=None
)
"""A per-dispatch warrant (``tenuo_execute_activity(warrant=...)``) for one ``start_activity``."""
activity_fn_override: ContextVar[Callable[..., Any] | None] = ContextVar(
    "tenuo_activity_fn", default=None
)
child_context_override: ContextVar[WarrantContext | None] = ContextVar(
    "tenuo_child_context", default=None
)
precomputed_pop: ContextVar[RemotePop | None] = ContextVar("tenuo_remote_pop", default=None)
"""Set by the workflow helpers around one ``start_activity`` call."""
nexus_approvals: ContextVar[list[Any] | None] = ContextVar("tenuo_nexus_approvals",
                                                          default=None)
"""``SignedApproval`` objects a Nexus helper passes for the one start it makes."""
pending_approvals: ContextVar[list[Any] | None] = ContextVar("tenuo_pending_approvals",
                                                            default=None)
"""``SignedApproval`` objects from ``set_activity_approvals`` for the next dispatch.

A list the signer empties when it writes them out, so the first dispatch
takes them, even from a task that copied the context (``asyncio.gather``)."""
# Set by the client helpers around one ``start_workflow`` call.
client_context: ContextVar[WarrantContext | None] = ContextVar(
    "tenuo_client_context", default=None
)


class ContinueAsNewAttenuated(BaseException):
    """Raised by ``tenuo_continue_as_new(tenuo_attenuation=...)`` for the inbound interceptor.

    Minting the narrower warrant needs a local activity (recorded, so replay
    never re-mints), which the synchronous call cannot await. The workflow
    inbound interceptor catches this signal, awaits the mint, then continues
    as new under the narrowed warrant. A ``BaseException``, like Temporal's own
    ``ContinueAsNewError``, so ``except Exception`` in workflow code lets it through.

    Attributes:
        token: The parked mint request.
        mint_timeout: Start-to-close timeout of the minting local activity.
        args: ``workflow.continue_as_new`` positional arguments.
        kwargs: ``workflow.continue_as_new`` keyword arguments.
    """

    def __init__(self, token: str, mint_timeout: Any, args: tuple[Any, ...],
                 kwargs: Mapping[str, Any]) -> None:
        super().__init__("continue-as-new under a narrowed warrant")
        self.token = token
        self.mint_timeout = mint_timeout
        self.args = args
        self.kwargs = dict(kwargs)


# run_id -> state. This module is passed through the sandbox, so the map is
# shared by every workflow of the process; entries live while their run executes.
_runs: dict[str, RunState] = {}


def current_run_state() -> RunState | None:
    """The calling workflow run's state, or None outside a Tenuo-enabled worker."""
    return _runs.get(temporalio.workflow.info().run_id)


def run_state_of(run_id: str | None) -> RunState | None:
    """The state of a run executing in this process (for the plugin's local activities)."""
    return None if run_id is None else _runs.get(run_id)


def enter(run_id: str, state: RunState) -> None:
    """Record a run as executing in this process."""
    _runs[run_id] = state


def leave(run_id: str, state: RunState) -> None:
    """Forget a run (only if ``state`` is still the one recorded)."""
    if _runs.get(run_id) is state:
        del _runs[run_id]
