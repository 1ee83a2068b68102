"""Helpers shared by the Temporal integration tests: ids, clients, workers, denials."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import Worker

from tenuo_temporal import TenuoPluginConfig, TenuoTemporalPlugin


def uid(name: str) -> str:
    """A name unique to this test run (task queues, workflow ids, key ids)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def connect(env: Any, config: TenuoPluginConfig, **kwargs: Any) -> Client:
    """A client on the session's dev server with the plugin built from ``config``."""
    target = env.client.service_client.config.target_host
    return await Client.connect(target, namespace=env.client.namespace,
                                plugins=[TenuoTemporalPlugin(config)], **kwargs)


@contextlib.asynccontextmanager
async def worker(client: Client, queue: str, workflows: Sequence[type] = (),
                 activities: Sequence[Any] = (), **kwargs: Any) -> AsyncIterator[Worker]:
    """A running worker for the duration of the block."""
    async with Worker(client, task_queue=queue, workflows=list(workflows),
                      activities=list(activities), **kwargs) as running:
        yield running


async def denial_of(run: Awaitable[Any]) -> ApplicationError:
    """Run a workflow expected to fail; return the ApplicationError at its root."""
    with pytest.raises(WorkflowFailureError) as info:
        await run
    cause: BaseException | None = info.value.cause
    while isinstance(cause, ActivityError) or (
        cause is not None and not isinstance(cause, ApplicationError)
    ):
        cause = cause.cause  # type: ignore[union-attr]
    assert isinstance(cause, ApplicationError), info.value
    return cause


def events_of(history: Any, kind: int) -> list[Any]:
    """The history events of one type."""
    return [e for e in history.events if e.event_type == kind]
