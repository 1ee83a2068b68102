"""Client helpers: start workflows with a warrant in their headers.

They take temporalio's own calling convention (``execute_workflow(workflow,
arg, *, id=..., task_queue=...)``) as well as tenuo.temporal 0.3.3's
(``workflow_run_fn=``, ``workflow_id=``, ``args=``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import temporalio.client

from tenuo_keys import ResolverConfigError

from ._headers import WarrantContext
from ._interceptors import TenuoClientInterceptor
from ._state import client_context

__all__ = ["execute_workflow_authorized", "start_workflow_authorized"]

# Tells "no positional argument" from a workflow argument that is None.
_UNSET: Any = object()


def _check_plugin(client: temporalio.client.Client) -> None:
    interceptors = client.config(active_config=True).get("interceptors", [])
    if not any(isinstance(i, TenuoClientInterceptor) for i in interceptors):
        raise ResolverConfigError(
            "this client has no TenuoTemporalPlugin: connect with "
            "Client.connect(..., plugins=[TenuoTemporalPlugin(config)])"
        )


def _workflow_id(id: str | None, workflow_id: str | None) -> str:
    if id is not None and workflow_id is not None:
        raise ResolverConfigError(
            "give the workflow id once: id= (as temporalio) or workflow_id= (as "
            "tenuo.temporal 0.3.3), not both")
    chosen = id if id is not None else workflow_id
    if not isinstance(chosen, str) or not chosen:
        raise ResolverConfigError("a workflow id is required: pass id='...' (or workflow_id=)")
    return chosen


def _workflow_args(arg: Any, args: Sequence[Any]) -> list[Any]:
    if arg is _UNSET:
        return list(args)
    if args:
        raise ResolverConfigError(
            "give the workflow arguments once: one positional argument or args=[...], "
            "not both")
    return [arg]


async def start_workflow_authorized(
    client: temporalio.client.Client,
    workflow_run_fn: Any,
    arg: Any = _UNSET,
    *,
    warrant: Any,
    key_id: str,
    task_queue: str,
    id: str | None = None,
    workflow_id: str | None = None,
    args: Sequence[Any] = (),
    chain: Sequence[Any] | None = None,
    **kwargs: Any,
) -> temporalio.client.WorkflowHandle[Any, Any]:
    """Start a workflow whose activities run under ``warrant``.

    Args:
        client: A client connected with the Tenuo plugin.
        workflow_run_fn: The workflow's run method (or its type name).
        arg: The workflow's single argument, as in ``Client.start_workflow``.
        warrant: The warrant (a ``tenuo_core.Warrant``).
        key_id: Id of the holder key the workflow worker's resolver serves.
        task_queue: The task queue.
        id: The workflow id (temporalio's name).
        workflow_id: The workflow id (tenuo.temporal 0.3.3's name); give one of
            ``id`` and ``workflow_id``.
        args: Workflow arguments, instead of ``arg``.
        chain: Root-first chain ending with ``warrant``, for delegated warrants.
        **kwargs: Passed to ``Client.start_workflow``.

    Returns:
        The handle, for signals, queries and the result.

    Raises:
        ResolverConfigError: No Tenuo plugin on the client; no workflow id, or
            both ``id`` and ``workflow_id``; both ``arg`` and ``args``.
    """
    chosen_id = _workflow_id(id, workflow_id)
    workflow_args = _workflow_args(arg, args)
    _check_plugin(client)
    context = WarrantContext.build(warrant, key_id, chain)
    token = client_context.set(context)
    try:
        return await client.start_workflow(
            workflow_run_fn, args=workflow_args, id=chosen_id, task_queue=task_queue, **kwargs
        )
    finally:
        client_context.reset(token)


async def execute_workflow_authorized(
    client: temporalio.client.Client,
    workflow_run_fn: Any,
    arg: Any = _UNSET,
    **kwargs: Any,
) -> Any:
    """Start a workflow under ``warrant`` and wait for its result.

    Takes the arguments of :func:`start_workflow_authorized`.
    """
    handle = await start_workflow_authorized(client, workflow_run_fn, arg, **kwargs)
    return await handle.result()
