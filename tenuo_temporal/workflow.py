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
from typing import Any, ClassVar, NoReturn

import temporalio.workflow as wf
import tenuo_core

from ._headers import WarrantContext
from ._mint import MintRequest, park, request_mint
from ._remote import presign
from ._state import (
    ContinueAsNewAttenuated,
    activity_context_override,
    activity_fn_override,
    child_context_override,
    current_run_state,
    nexus_approvals,
    pending_approvals,
    precomputed_pop,
)
from .errors import (
    DelegationUnavailable,
    InvalidApproval,
    KeyResolutionFailed,
    TemporalConstraintViolation,
    WarrantMissing,
    denial,
)

__all__ = [
    "AuthorizedWorkflow",
    "current_key_id",
    "current_warrant",
    "set_activity_approvals",
    "tenuo_continue_as_new",
    "tenuo_execute_activity",
    "tenuo_execute_child_workflow",
    "tenuo_execute_nexus_operation",
    "tenuo_start_nexus_operation",
    "workflow_grant",
    "workflow_issue_execution",
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


def set_activity_approvals(approvals: Sequence[Any]) -> None:
    """Pre-supply signed approvals for the next activity this workflow dispatches.

    The next ``execute_activity`` / ``start_activity`` (or local activity) of
    this workflow carries them in ``x-tenuo-approvals`` (0.3.3's encoding),
    and the activity worker's ``tenuo_core`` judges them against the
    warrant's approval gates. One-shot: the first dispatch after the call
    takes them all, so give each gated call its own call (in
    ``asyncio.gather`` only one of the calls would get them). Calling again
    before a dispatch replaces them; an empty list clears them.

    Approvals bind to the exact call (warrant id, tool, arguments, holder:
    ``tenuo_core.py_compute_request_hash``); get them into the workflow
    deterministically (a signal, an update, an activity's result).

    Args:
        approvals: ``tenuo_core.SignedApproval`` objects.

    Raises:
        InvalidApproval: An item is not a ``SignedApproval``.
    """
    items = list(approvals)
    for item in items:
        if not isinstance(item, tenuo_core.SignedApproval):
            raise InvalidApproval(
                f"set_activity_approvals takes tenuo_core.SignedApproval objects, got "
                f"{type(item).__name__}")
    pending_approvals.set(items or None)


def current_key_id() -> str:
    """The key id this workflow's warrant is held by.

    Raises:
        ApplicationError: ``TENUO_WARRANT_MISSING`` when there is no warrant,
            ``TENUO_KEY_RESOLUTION`` when its headers named no key id.
    """
    key_id = _context().key_id
    if key_id is None:
        raise denial(KeyResolutionFailed("the warrant headers carry no x-tenuo-key-id"))
    return key_id


def _dispatch_context(warrant: Any, key_id: str | None,
                      warrant_chain: Sequence[Any] | None) -> WarrantContext:
    """The context of a per-dispatch warrant: its chain, root first, ending with it."""
    if key_id is None:
        raise denial(TemporalConstraintViolation(
            "tenuo_execute_activity: warrant= needs key_id= (the key holding it)"))
    if warrant_chain is not None:
        chain = list(warrant_chain)
        if not chain or bytes(chain[-1].to_bytes()) != bytes(warrant.to_bytes()):
            chain.append(warrant)
    elif warrant.parent_hash is None:
        chain = [warrant]
    else:  # narrowed from this run's warrant (workflow_grant): extend the run's chain
        chain = [*_context().chain, warrant]
    return WarrantContext.build(warrant, key_id, chain)


async def tenuo_execute_activity(
    fn: Callable[..., Any],
    *,
    args: Sequence[Any] = (),
    summary: str | None = None,
    warrant: Any = None,
    key_id: str | None = None,
    warrant_chain: Sequence[Any] | None = None,
    **temporal_kwargs: Any,
) -> Any:
    """Execute an activity under the workflow's warrant (or one for this dispatch only).

    Args:
        fn: The activity function (its signature names the signed arguments,
            even when this worker does not register it).
        args: Positional arguments.
        summary: A summary for the Temporal UI, shown after the tool name.
        warrant: A warrant for this one dispatch instead of the workflow's
            (for example one from :func:`workflow_grant`); the workflow's own
            warrant is unchanged.
        key_id: The key holding ``warrant``; required with it.
        warrant_chain: ``warrant``'s chain, root first (its parents, or the
            whole chain ending with it). Default: ``warrant`` alone when it is a
            root, else this run's chain extended with it.
        **temporal_kwargs: Passed to ``workflow.execute_activity``
            (timeouts, retry policy, task queue...).

    Returns:
        The activity's result.

    When the warrant's key id has a remote signer (``TenuoPluginConfig.signers``),
    the PoP is first signed in the plugin's local activity and recorded in
    history; replay reuses it and never signs again. A per-dispatch warrant
    signs with ``key_resolver`` or a ``LocalSigner``: a remote signer signs only
    for the run's own warrant.
    """
    _context()  # fail fast without a warrant
    if warrant is None and (key_id is not None or warrant_chain is not None):
        raise denial(TemporalConstraintViolation(
            "tenuo_execute_activity: key_id= and warrant_chain= go with warrant="))
    dispatch = _dispatch_context(warrant, key_id, warrant_chain) if warrant is not None \
        else None
    state = current_run_state()
    if dispatch is not None and state is not None \
            and dispatch.key_id in state.policy.remote_backends:
        raise denial(KeyResolutionFailed(
            f"tenuo_execute_activity: key id {dispatch.key_id!r} signs with a remote signer, "
            "which signs only the run's own warrant; serve a per-dispatch warrant's key from "
            "key_resolver"))
    remote = await presign(state, fn, args) if state is not None and dispatch is None \
        else None
    token = activity_fn_override.set(fn)
    pop_token = precomputed_pop.set(remote)
    context_token = activity_context_override.set(dispatch) if dispatch is not None else None
    try:
        handle = wf.start_activity(fn, args=list(args), summary=summary, **temporal_kwargs)
    finally:
        if context_token is not None:
            activity_context_override.reset(context_token)
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
    _require_minting()
    child = await request_mint(MintRequest(
        parent=parent, tools=tuple(tools), constraints=dict(constraints or {}),
        ttl_seconds=ttl_seconds, child_key_id=child_key_id), mint_timeout)
    context_token = child_context_override.set(child)
    try:
        handle = await wf.start_child_workflow(run_fn, args=list(args), **temporal_kwargs)
    finally:
        child_context_override.reset(context_token)
    return await handle


def _require_minting() -> None:
    state = current_run_state()
    if state is not None and not state.policy.mints_on(wf.info().task_queue):
        raise denial(DelegationUnavailable(
            "delegation needs the plugin's minting local activity on this worker; it is "
            "left out because TenuoPluginConfig(delegation=False) (or, wired by hand, "
            "TenuoWorkerInterceptor was given no task_queue=)"))


def _narrowed(parent: WarrantContext, tool: str,
              constraints: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parent's constraints for ``tool`` with ``constraints`` laid over them."""
    if tool not in (parent.warrant.capabilities or {}):
        raise denial(TemporalConstraintViolation(
            f"delegation refused: tool {tool!r} is not granted to this workflow's warrant"))
    return {**dict(parent.warrant.capabilities[tool]), **dict(constraints or {})}


async def workflow_grant(
    tool: str,
    constraints: Mapping[str, Any] | None = None,
    *,
    ttl_seconds: int = 300,
    mint_timeout: timedelta = timedelta(seconds=30),
) -> Any:
    """A narrower warrant for one tool, issued inside the workflow from its own warrant.

    The new warrant is held by the same key; use it for one dispatch with
    ``tenuo_execute_activity(fn, args=..., warrant=grant, key_id=current_key_id())``.
    It is minted in the plugin's local activity (recorded: replay never
    mints again) and tenuo_core refuses anything wider than the parent.

    Args:
        tool: The one tool it grants (must be granted to this workflow).
        constraints: Constraints laid over the parent's for ``tool`` (narrower only).
        ttl_seconds: Its life, never past the parent's.
        mint_timeout: Start-to-close timeout of the minting local activity.

    Returns:
        The ``tenuo_core.Warrant``.

    Raises:
        ApplicationError: ``TENUO_CONSTRAINT_VIOLATION`` for anything wider than
            this workflow's warrant; ``TENUO_WARRANT_MISSING`` without one.
    """
    parent = _context()
    _require_minting()
    minted = await request_mint(MintRequest(
        parent=parent, tools=(tool,), constraints={tool: _narrowed(parent, tool, constraints)},
        ttl_seconds=ttl_seconds, child_key_id=None), mint_timeout)
    return minted.warrant


async def workflow_issue_execution(
    tool: str,
    constraints: Mapping[str, Any] | None = None,
    *,
    ttl_seconds: int = 300,
    key_id: str | None = None,
    mint_timeout: timedelta = timedelta(seconds=30),
) -> Any:
    """An execution warrant issued inside the workflow from its issuer warrant.

    An issuer warrant (``Warrant.issue_issuer``) grants no tool itself: it
    issues execution warrants within its bounds, to another key (tenuo_core
    refuses self-issuance). Use the result for one dispatch with
    ``tenuo_execute_activity(fn, args=..., warrant=issued, key_id=key_id)``.

    Args:
        tool: The tool it grants (one of the issuer's ``issuable_tools``).
        constraints: Its constraints, within the issuer's bounds.
        ttl_seconds: Its life, never past the issuer warrant's.
        key_id: The key id of the execution warrant's holder (not this
            workflow's own key: an issuer cannot issue to itself).
        mint_timeout: Start-to-close timeout of the minting local activity.

    Returns:
        The ``tenuo_core.Warrant``.
    """
    parent = _context()
    if key_id is None or key_id == parent.key_id:
        raise denial(TemporalConstraintViolation(
            "workflow_issue_execution: pass key_id= of the execution warrant's holder; an "
            "issuer warrant cannot issue to its own holder (tenuo_core refuses self-issuance)"))
    _require_minting()
    minted = await request_mint(MintRequest(
        parent=parent, tools=(tool,), constraints={tool: dict(constraints or {})},
        ttl_seconds=ttl_seconds, child_key_id=key_id, kind="issue_execution"), mint_timeout)
    return minted.warrant


async def _nexus_call(start: Callable[..., Any], operation: Any, input: Any, *,
                      warrant: Any, key_id: str | None, warrant_chain: Sequence[Any] | None,
                      approvals: Sequence[Any] | None, **kwargs: Any) -> Any:
    _context()  # fail fast without a warrant
    dispatch = _dispatch_context(warrant, key_id, warrant_chain) if warrant is not None \
        else None
    context_token = activity_context_override.set(dispatch) if dispatch is not None else None
    approvals_token = nexus_approvals.set(list(approvals)) if approvals else None
    try:
        return await start(operation, input, **{k: v for k, v in kwargs.items()
                                                if v is not None})
    finally:
        if approvals_token is not None:
            nexus_approvals.reset(approvals_token)
        if context_token is not None:
            activity_context_override.reset(context_token)


async def tenuo_execute_nexus_operation(
    nexus_client: Any, operation: Any, input: Any, *, endpoint: str | None = None,
    service: str | None = None, warrant: Any = None, key_id: str | None = None,
    warrant_chain: Sequence[Any] | None = None, compress: bool = True,
    approvals: Sequence[Any] | None = None, output_type: Any = None,
    schedule_to_close_timeout: timedelta | None = None, cancellation_type: Any = None,
    headers: Mapping[str, str] | None = None, summary: str | None = None,
) -> Any:
    """Execute a Nexus operation under this workflow's warrant, or one for this call.

    The reference's helper, for code written for it: the plugin signs every
    Nexus start from an authorized workflow anyway (``nexus_client`` from
    ``workflow.create_nexus_client``), so this adds only the per-call
    ``warrant=``/``key_id=``/``warrant_chain=`` and ``approvals=`` (experimental,
    as Nexus is).

    Args:
        nexus_client: From ``workflow.create_nexus_client(service=..., endpoint=...)``.
        operation: The operation (method reference or name).
        input: Its input.
        endpoint: Accepted for the reference's signature; the client's endpoint is used.
        service: Accepted for the reference's signature; the client's service is used.
        warrant: A warrant for this call instead of the workflow's.
        key_id: The key holding ``warrant``; required with it.
        warrant_chain: ``warrant``'s chain, root first (as for ``tenuo_execute_activity``).
        compress: Accepted for the reference's signature (headers are always gzip'd).
        approvals: ``SignedApproval`` objects for an approval-gated operation.
        output_type: Passed to ``execute_operation``.
        schedule_to_close_timeout: Passed to ``execute_operation``.
        cancellation_type: Passed to ``execute_operation``.
        headers: Passed to ``execute_operation`` (the Tenuo headers are added).
        summary: Passed to ``execute_operation``.

    Returns:
        The operation's result.
    """
    return await _nexus_call(
        nexus_client.execute_operation, operation, input, warrant=warrant, key_id=key_id,
        warrant_chain=warrant_chain, approvals=approvals, output_type=output_type,
        schedule_to_close_timeout=schedule_to_close_timeout,
        cancellation_type=cancellation_type, headers=headers, summary=summary)


async def tenuo_start_nexus_operation(
    nexus_client: Any, operation: Any, input: Any, *, endpoint: str | None = None,
    service: str | None = None, warrant: Any = None, key_id: str | None = None,
    warrant_chain: Sequence[Any] | None = None, compress: bool = True,
    approvals: Sequence[Any] | None = None, output_type: Any = None,
    schedule_to_close_timeout: timedelta | None = None, cancellation_type: Any = None,
    headers: Mapping[str, str] | None = None, summary: str | None = None,
) -> Any:
    """Start a Nexus operation (its handle): as :func:`tenuo_execute_nexus_operation`."""
    return await _nexus_call(
        nexus_client.start_operation, operation, input, warrant=warrant, key_id=key_id,
        warrant_chain=warrant_chain, approvals=approvals, output_type=output_type,
        schedule_to_close_timeout=schedule_to_close_timeout,
        cancellation_type=cancellation_type, headers=headers, summary=summary)


_ATTENUATION_KEYS = frozenset({"tools", "constraints", "ttl_seconds", "key_id"})


def tenuo_continue_as_new(
    *args: Any,
    tenuo_attenuation: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> NoReturn:
    """Continue as new; the next run keeps this run's warrant, or a narrower one.

    Plain ``workflow.continue_as_new`` carries the warrant on as well; this
    helper adds narrowing. With ``tenuo_attenuation`` the next run gets a
    warrant attenuated from this run's, minted in the plugin's local activity
    (recorded, so replay never mints again) before the run continues as new.

    Args:
        *args: Passed to ``workflow.continue_as_new``.
        tenuo_attenuation: ``{"tools": [...], "constraints": {tool: {...}},
            "ttl_seconds": N, "key_id": "..."}``, every key optional: the tools
            kept (default all), narrower constraints per tool, a shorter life,
            and the next holder's key id (default this run's).
        **kwargs: Passed to ``workflow.continue_as_new``.

    Raises:
        ApplicationError: ``TENUO_CONSTRAINT_VIOLATION`` for an unknown
            attenuation key or anything wider than this run's warrant.
    """
    if tenuo_attenuation is None:
        wf.continue_as_new(*args, **kwargs)
    parent = _context()
    unknown = set(tenuo_attenuation) - _ATTENUATION_KEYS
    if unknown:
        raise denial(TemporalConstraintViolation(
            f"tenuo_continue_as_new: unknown tenuo_attenuation keys {sorted(unknown)}; "
            f"use {sorted(_ATTENUATION_KEYS)}"))
    _require_minting()
    tools = tuple(tenuo_attenuation.get("tools") or parent.warrant.tools or ())
    constraints = dict(tenuo_attenuation.get("constraints") or {})
    request = MintRequest(
        parent=parent, tools=tools,
        constraints={tool: _narrowed(parent, tool, constraints.get(tool)) for tool in tools},
        ttl_seconds=tenuo_attenuation.get("ttl_seconds"),
        child_key_id=tenuo_attenuation.get("key_id"))
    extra = set(constraints) - set(tools)
    if extra:
        raise denial(TemporalConstraintViolation(
            f"delegation refused: constraints for tools not kept: {sorted(extra)}"))
    raise ContinueAsNewAttenuated(park(wf.info().run_id, request), timedelta(seconds=30),
                                  args, kwargs)
