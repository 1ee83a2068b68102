"""Workflows and activities for the time-skipping tests (timers of hours, skipped)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

#: (activity, args, attempt) of every body that ran in this process.
CALLS: list[tuple[str, tuple[str, ...], int]] = []

ONCE = {"start_to_close_timeout": timedelta(seconds=20),
        "retry_policy": RetryPolicy(maximum_attempts=1)}


@activity.defn
async def read_file(path: str) -> str:
    CALLS.append(("read_file", (path,), activity.info().attempt))
    return f"contents of {path}"


@activity.defn
async def flaky_read(path: str) -> str:
    """Fails its first attempt (a retryable error), then reads."""
    attempt = activity.info().attempt
    CALLS.append(("flaky_read", (path,), attempt))
    if attempt == 1:
        raise ApplicationError("transient", type="Transient")
    return f"contents of {path}"


@workflow.defn
class SleepThenRead:
    """Sleeps (skipped by the test server), then reads, as a local activity if ``local``."""

    @workflow.run
    async def run(self, path: str, sleep_seconds: float, local: bool = False) -> str:
        await workflow.sleep(timedelta(seconds=sleep_seconds))
        if local:
            return await workflow.execute_local_activity(read_file, path, **ONCE)
        return await workflow.execute_activity(read_file, path, **ONCE)


@workflow.defn
class RetryAfterLongBackoff:
    """The first attempt fails; the retry waits ``backoff_seconds`` (skipped)."""

    @workflow.run
    async def run(self, path: str, backoff_seconds: float) -> str:
        return await workflow.execute_activity(
            flaky_read, path, start_to_close_timeout=timedelta(seconds=20),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=backoff_seconds),
                                     maximum_attempts=2))


@workflow.defn
class SleepThenReadByName:
    """Schedules by name, as a workflow worker without the activity code does."""

    @workflow.run
    async def run(self, path: str, sleep_seconds: float) -> str:
        await workflow.sleep(timedelta(seconds=sleep_seconds))
        return await workflow.execute_activity(
            "read_file", path, task_queue=workflow.info().task_queue + "-activities", **ONCE)
