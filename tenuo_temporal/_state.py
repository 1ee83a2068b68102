"""What a workflow run's own code may see of the plugin: its warrant and a few policy facts.

A leaf module: it imports no sibling but the header types. The state reached
from workflow code (:func:`current_run_state`) holds the run's warrant context
(public: it is in the run's history) and read-only facts the workflow helpers
need. It holds no resolver, no signer and no key, so workflow code cannot use
this worker's keys beyond what the interceptors sign for its own warrant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import temporalio.workflow

from ._headers import WarrantContext

__all__ = ["RunPolicy", "RunState", "current_run_state", "run_state_of"]


@dataclass(frozen=True)
class RunPolicy:
    """Read-only facts of this worker's configuration, for the workflow helpers.

    Attributes:
        tool_mappings: Activity type to warrant tool name, where they differ.
        activity_fns: Registered activity functions by name (to name arguments).
        remote_backends: Key id to the backend name of its remote signer.
        activity_summaries: Whether activities are labelled in the UI.
        mint_queues: Task queues whose workers run the delegation minting activity.
    """

    tool_mappings: Mapping[str, str] = field(default_factory=dict)
    activity_fns: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    remote_backends: Mapping[str, str] = field(default_factory=dict)
    activity_summaries: bool = True
    mint_queues: frozenset[str] = frozenset()

    def tool_for(self, activity_type: str) -> str:
        """The warrant tool name for an activity type."""
        return self.tool_mappings.get(activity_type, activity_type)

    @classmethod
    def of(cls, *, tool_mappings: Mapping[str, str],
           activity_fns: Mapping[str, Callable[..., Any]], remote_backends: Mapping[str, str],
           activity_summaries: bool, mint_queues: frozenset[str]) -> RunPolicy:
        """A policy with read-only views of the given maps."""
        return cls(MappingProxyType(dict(tool_mappings)), MappingProxyType(activity_fns),
                   MappingProxyType(dict(remote_backends)), activity_summaries, mint_queues)


class RunState:
    """What one workflow run knows: its warrant context and the worker's policy facts."""

    __slots__ = ("context", "policy")

    def __init__(self, policy: RunPolicy) -> None:
        self.policy = policy
        self.context: WarrantContext | None = None


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
