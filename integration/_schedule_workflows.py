"""Workflows and activities for ``test_schedules.py`` and the async-completion test.

Kept in their own module because the workflow sandbox re-imports the module
that defines a workflow. They import nothing from either plugin, so the same
classes run on our workers and on the stock 0.3.3 plugin's.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

#: ``(activity type, args)`` of every body that actually ran, in order.
CALLS: list[tuple[str, tuple[object, ...]]] = []
#: Task tokens of async activities waiting to be completed, by workflow id.
TOKENS: dict[str, asyncio.Future[bytes]] = {}

OPTIONS = {"start_to_close_timeout": timedelta(seconds=20),
           "retry_policy": RetryPolicy(maximum_attempts=2)}


@activity.defn
async def read_file(path: str) -> str:
    CALLS.append(("read_file", (path,)))
    return f"contents of {path}"


@activity.defn
async def approve(request: str) -> str:
    """Hands its task token to the test and completes later, from outside the worker."""
    CALLS.append(("approve", (request,)))
    info = activity.info()
    TOKENS.setdefault(info.workflow_id, asyncio.get_running_loop().create_future()
                      ).set_result(info.task_token)
    activity.raise_complete_async()


@workflow.defn
class ScheduledReads:
    """Reads each path; a denied read is reported as ``denied:<type>``, not raised."""

    @workflow.run
    async def run(self, paths: list[str]) -> list[str]:
        outcomes = []
        for path in paths:
            try:
                outcomes.append(await workflow.execute_activity(read_file, path, **OPTIONS))
            except ActivityError as error:
                cause = error.cause
                assert isinstance(cause, ApplicationError), repr(cause)
                outcomes.append(f"denied:{cause.type}:{cause.non_retryable}")
        return outcomes


@workflow.defn
class AwaitApproval:
    """One async activity, completed by ``tenuo_complete_async_activity``."""

    @workflow.run
    async def run(self, request: str) -> str:
        return await workflow.execute_activity(
            approve, request, start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=1))


WORKFLOWS = [ScheduledReads, AwaitApproval]
ACTIVITIES = [read_file, approve]
