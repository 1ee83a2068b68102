"""Workflows and activities for the plugin's integration tests.

Kept in their own module because the workflow sandbox re-imports the module
that defines a workflow. Activity bodies record each run in ``CALLS`` so a
test can prove a denied activity never ran.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from tenuo_temporal.workflow import (
        AuthorizedWorkflow,
        tenuo_execute_activity,
        tenuo_execute_child_workflow,
    )

CALLS: list[tuple[str, tuple[object, ...]]] = []
FAST = {"start_to_close_timeout": timedelta(seconds=20),
        "retry_policy": RetryPolicy(maximum_attempts=2)}


@dataclass
class CopyRequest:
    source: str
    destination: str
    overwrite: bool = False


@activity.defn
async def read_file(path: str) -> str:
    CALLS.append(("read_file", (path,)))
    return f"contents of {path}"


@activity.defn
async def write_file(path: str, body: str) -> int:
    CALLS.append(("write_file", (path, body)))
    return len(body)


@activity.defn
async def copy_file(request: CopyRequest) -> str:
    CALLS.append(("copy_file", (request.source, request.destination)))
    return f"copied {request.source} -> {request.destination}"


@workflow.defn
class ReadWorkflow:
    """Plain ``workflow.execute_activity``: authorized transparently."""

    @workflow.run
    async def run(self, path: str) -> str:
        return await workflow.execute_activity(read_file, path, **FAST)


@workflow.defn
class ReadByNameWorkflow:
    """Schedules by activity *name*, as a workflow worker without the code does."""

    @workflow.run
    async def run(self, path: str) -> str:
        return await workflow.execute_activity("read_file", path, task_queue=workflow.info(
        ).task_queue + "-activities", **FAST)


@workflow.defn
class ReadTwiceWorkflow:
    """Two reads with a summary, through the helper."""

    @workflow.run
    async def run(self, first: str, second: str) -> list[str]:
        a = await tenuo_execute_activity(read_file, args=[first], summary="monthly report",
                                         **FAST)
        b = await workflow.execute_activity(read_file, second, **FAST)
        return [a, b]


@workflow.defn
class WriteWorkflow:
    @workflow.run
    async def run(self, path: str, body: str) -> int:
        return await workflow.execute_activity(write_file, args=[path, body], **FAST)


@workflow.defn
class CopyWorkflow:
    @workflow.run
    async def run(self, source: str, destination: str) -> str:
        return await workflow.execute_activity(
            copy_file, CopyRequest(source, destination), **FAST)


@workflow.defn
class GuardedWorkflow(AuthorizedWorkflow):
    @workflow.run
    async def run(self, path: str) -> str:
        return await self.execute_authorized_activity(read_file, path, **FAST)


@workflow.defn
class InteractiveWorkflow(AuthorizedWorkflow):
    """Waits for a signal, answers queries, then reads what the signal named."""

    def __init__(self) -> None:
        self._path: str | None = None

    @workflow.signal
    def choose(self, path: str) -> None:
        self._path = path

    @workflow.query
    def chosen(self) -> str | None:
        return self._path

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._path is not None)
        assert self._path is not None
        return await self.execute_authorized_activity(read_file, self._path, **FAST)


@workflow.defn
class ChildReader:
    @workflow.run
    async def run(self, path: str) -> str:
        return await workflow.execute_activity(read_file, path, **FAST)


@workflow.defn
class PlainChildParent:
    """Starts a child with plain ``workflow.execute_child_workflow``: no warrant crosses."""

    @workflow.run
    async def run(self, path: str, authorized_child: bool) -> str:
        child = GuardedWorkflow.run if authorized_child else ChildReader.run
        return await workflow.execute_child_workflow(
            child, path, id=f"{workflow.info().workflow_id}-plain-child",
            retry_policy=RetryPolicy(maximum_attempts=1))


@workflow.defn
class DelegatingWorkflow:
    """Delegates ``read_file`` under a narrower path to a child on another key."""

    @workflow.run
    async def run(self, path: str, child_key_id: str | None, narrow_to: str) -> str:
        with workflow.unsafe.imports_passed_through():
            import tenuo_core
        return await tenuo_execute_child_workflow(
            ChildReader.run,
            tools=["read_file"],
            constraints={"read_file": {"path": tenuo_core.Subpath(narrow_to)}},
            ttl_seconds=120,
            child_key_id=child_key_id,
            args=[path],
            id=f"{workflow.info().workflow_id}-child",
        )


@workflow.defn
class WideningWorkflow:
    """Tries to delegate a tool the parent does not hold."""

    @workflow.run
    async def run(self) -> str:
        return await tenuo_execute_child_workflow(
            ChildReader.run, tools=["read_file", "delete_everything"], args=["/data/x"],
            id=f"{workflow.info().workflow_id}-child",
        )


@workflow.defn
class ContinuingWorkflow:
    """Reads, continues as new, reads again under the same warrant."""

    @workflow.run
    async def run(self, path: str, rounds: int) -> str:
        result = await workflow.execute_activity(read_file, path, **FAST)
        if rounds > 1:
            workflow.continue_as_new(args=[path, rounds - 1])
        return result


@workflow.defn
class SlowReadsWorkflow:
    """Reads several files with pauses, so a test can act in between."""

    @workflow.run
    async def run(self, paths: list[str], pause_seconds: float) -> list[str]:
        out = []
        for path in paths:
            out.append(await workflow.execute_activity(read_file, path, **FAST))
            await asyncio.sleep(pause_seconds)
        return out


@activity.defn
async def flaky_read(path: str) -> str:
    """Fails its first attempt, as a transient outage would."""
    if activity.info().attempt == 1:
        raise RuntimeError("transient failure, retry me")
    CALLS.append(("flaky_read", (path,)))
    return f"contents of {path}"


@workflow.defn
class RetryAcrossWindowWorkflow:
    """Retries after a backoff that crosses into the next 30-second PoP window."""

    @workflow.run
    async def run(self, path: str) -> str:
        now = workflow.now().timestamp()
        backoff = 30 - (now % 30) + 2
        return await workflow.execute_activity(
            flaky_read, path, start_to_close_timeout=timedelta(seconds=20),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=backoff),
                                     maximum_attempts=3))
