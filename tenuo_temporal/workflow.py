"""Sandbox-safe helpers for workflow code.

Plain ``workflow.execute_activity()`` is authorized transparently once the
plugin is installed; these helpers add fail-fast checks, user summaries,
exact argument names for activities this worker does not register, and
delegation to child workflows. Key ids configured to a remote signer
(``TenuoPluginConfig.signers``) need the helpers: they sign in a local
activity first, which plain ``execute_activity()`` cannot await.

Example:
    >>> from tenuo_temporal.workflow import AuthorizedWorkflow    # doctest: +SKIP
    >>> @workflow.defn
    ... class Report(AuthorizedWorkflow):
    ...     @workflow.run
    ...     async def run(self, path: str) -> str:
    ...         return await self.execute_authorized_activity(
    ...             read_file, path, start_to_close_timeout=timedelta(seconds=30))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar

import temporalio.workflow as wf

from ._headers import WarrantContext
from ._ids import MINT_ACTIVITY
from ._mint import MintRequest, park
from ._remote import presign
from ._state import (
    activity_fn_override,
    child_context_override,
    current_run_state,
    precomputed_pop,
)
from .errors import DelegationUnavailable, WarrantMissing, denial

__all__ = [
    "AuthorizedWorkflow",
    "current_warrant",
    "tenuo_execute_activity",
    "tenuo_execute_child_workflow",
]


def _context() -> WarrantContext:
    state = current_run_state()
    if state is None:
        raise denial(WarrantMissing(
            "the Tenuo plugin is not installed on this worker (add TenuoTemporalPlugin "
            "to Client.connect(plugins=[...]))"))
    if state.context is None:
        raise denial(WarrantMissing(
            "this workflow was started without a warrant; use start_workflow_authorized()"))
    return state.context


def current_warrant() -> Any:
    """The warrant this workflow runs under.

    Raises:
        ApplicationError: ``TENUO_WARRANT_MISSING`` when there is none.
    """
    return _context().warrant


async def tenuo_execute_activity(
    fn: Callable[..., Any],
    *,
    args: Sequence[Any] = (),
    summary: str | None = None,
    **temporal_kwargs: Any,
) -> Any:
    """Execute an activity under the workflow's warrant, failing fast without one.

    Args:
        fn: The activity function (its signature names the signed arguments,
            even when this worker does not register it).
        args: Positional arguments.
        summary: A summary for the Temporal UI, shown after the tool name.
        **temporal_kwargs: Passed to ``workflow.execute_activity``
            (timeouts, retry policy, task queue...).

    Returns:
        The activity's result.

    When the warrant's key id has a remote signer (``TenuoPluginConfig.signers``),
    the PoP is first signed in the plugin's local activity and recorded in
    history; replay reuses it and never signs again.
    """
    _context()
    state = current_run_state()
    remote = await presign(state, fn, args) if state is not None else None
    token = activity_fn_override.set(fn)
    pop_token = precomputed_pop.set(remote)
    try:
        handle = wf.start_activity(fn, args=list(args), summary=summary, **temporal_kwargs)
    finally:
        precomputed_pop.reset(pop_token)
        activity_fn_override.reset(token)
    return await handle


class AuthorizedWorkflow:
    """Base class for workflows that must run under a warrant.

    Starting one without warrant headers fails at once with a non-retryable
    ``TENUO_WARRANT_MISSING``, before any workflow code runs.
    """

    __tenuo_authorized__: ClassVar[bool] = True
    """The mark the plugin's interceptor recognises (it does not import this module)."""

    async def execute_authorized_activity(
        self, fn: Callable[..., Any], *args: Any, summary: str | None = None,
        **temporal_kwargs: Any,
    ) -> Any:
        """Execute ``fn(*args)`` under this workflow's warrant.

        See :func:`tenuo_execute_activity`.
        """
        return await tenuo_execute_activity(fn, args=args, summary=summary, **temporal_kwargs)


async def tenuo_execute_child_workflow(
    run_fn: Any,
    *,
    tools: Sequence[str],
    ttl_seconds: int | None = None,
    constraints: Mapping[str, Mapping[str, Any]] | None = None,
    child_key_id: str | None = None,
    args: Sequence[Any] = (),
    mint_timeout: timedelta = timedelta(seconds=30),
    **temporal_kwargs: Any,
) -> Any:
    """Run a child workflow under an attenuated copy of this workflow's warrant.

    The child warrant grants a subset of ``tools``, optionally narrower
    ``constraints`` and a shorter ``ttl_seconds``, and is held by
    ``child_key_id``'s key when given. It is minted in a local activity, so the
    result is recorded in history and replay never re-mints. Anything wider
    than the parent is refused with ``TENUO_CONSTRAINT_VIOLATION``.

    Args:
        run_fn: The child workflow's run method.
        tools: Tools the child may use (each granted to the parent).
        ttl_seconds: Child lifetime; at most the parent's remaining lifetime.
        constraints: Per tool, narrower constraints (``{tool: {arg: Constraint}}``).
        child_key_id: Key id of the child's holder key (default: the parent's).
        args: The child's arguments.
        mint_timeout: Start-to-close timeout of the minting local activity.
        **temporal_kwargs: Passed to ``workflow.execute_child_workflow``
            (``id``, ``task_queue``...).

    Returns:
        The child workflow's result.
    """
    parent = _context()
    state = current_run_state()
    info = wf.info()
    if state is not None and info.task_queue not in state.policy.mint_queues:
        raise denial(DelegationUnavailable(
            "delegation needs the plugin's minting local activity on this worker; it is "
            "left out because TenuoPluginConfig(delegation=False)"))
    request = MintRequest(parent=parent, tools=tuple(tools), constraints=dict(constraints or {}),
                          ttl_seconds=ttl_seconds, child_key_id=child_key_id)
    token = park(f"{info.run_id}", request)
    minted: dict[str, Any] = await wf.execute_local_activity(
        MINT_ACTIVITY, token, start_to_close_timeout=mint_timeout,
    )
    import tenuo_core

    chain = tenuo_core.decode_warrant_stack_base64(minted["chain"])
    child = WarrantContext.build(chain[-1], minted["key_id"], chain)
    context_token = child_context_override.set(child)
    try:
        handle = await wf.start_child_workflow(run_fn, args=list(args), **temporal_kwargs)
    finally:
        child_context_override.reset(context_token)
    return await handle
