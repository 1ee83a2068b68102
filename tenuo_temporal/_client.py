"""Client helpers: start workflows with a warrant in their headers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import temporalio.client

from tenuo_keys import ResolverConfigError

from ._headers import WarrantContext
from ._interceptors import TenuoClientInterceptor
from ._state import client_context

__all__ = ["execute_workflow_authorized", "start_workflow_authorized"]


def _check_plugin(client: temporalio.client.Client) -> None:
    interceptors = client.config(active_config=True).get("interceptors", [])
    if not any(isinstance(i, TenuoClientInterceptor) for i in interceptors):
        raise ResolverConfigError(
            "this client has no TenuoTemporalPlugin: connect with "
            "Client.connect(..., plugins=[TenuoTemporalPlugin(config)])"
        )


async def start_workflow_authorized(
    client: temporalio.client.Client,
    workflow_run_fn: Any,
    *,
    workflow_id: str,
    warrant: Any,
    key_id: str,
    args: Sequence[Any] = (),
    task_queue: str,
    chain: Sequence[Any] | None = None,
    **kwargs: Any,
) -> temporalio.client.WorkflowHandle[Any, Any]:
    """Start a workflow whose activities run under ``warrant``.

    Args:
        client: A client connected with the Tenuo plugin.
        workflow_run_fn: The workflow's run method (or its type name).
        workflow_id: The workflow id.
        warrant: The warrant (a ``tenuo_core.Warrant``).
        key_id: Id of the holder key the workflow worker's resolver serves.
        args: Workflow arguments.
        task_queue: The task queue.
        chain: Root-first chain ending with ``warrant``, for delegated warrants.
        **kwargs: Passed to ``Client.start_workflow``.

    Returns:
        The handle, for signals, queries and the result.
    """
    _check_plugin(client)
    context = WarrantContext.build(warrant, key_id, chain)
    token = client_context.set(context)
    try:
        return await client.start_workflow(
            workflow_run_fn, args=list(args), id=workflow_id, task_queue=task_queue, **kwargs
        )
    finally:
        client_context.reset(token)


async def execute_workflow_authorized(
    client: temporalio.client.Client,
    workflow_run_fn: Any,
    *,
    workflow_id: str,
    warrant: Any,
    key_id: str,
    args: Sequence[Any] = (),
    task_queue: str,
    chain: Sequence[Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Start a workflow under ``warrant`` and wait for its result.

    See :func:`start_workflow_authorized` for the arguments.
    """
    handle = await start_workflow_authorized(
        client, workflow_run_fn, workflow_id=workflow_id, warrant=warrant, key_id=key_id,
        args=args, task_queue=task_queue, chain=chain, **kwargs,
    )
    return await handle.result()
