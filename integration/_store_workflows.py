"""Workflows for the shared replay store's tests (``test_redis_store.py``).

Kept in their own module because the workflow sandbox re-imports the module
that defines a workflow.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

CALLS: list[tuple[str, str]] = []  # (workflow id, path) of every read that ran

PATIENT = RetryPolicy(initial_interval=timedelta(milliseconds=200), backoff_coefficient=1.5,
                      maximum_interval=timedelta(seconds=1), maximum_attempts=0)


@activity.defn
async def read_file(path: str) -> str:
    CALLS.append((activity.info().workflow_id, path))
    return f"contents of {path}"


@workflow.defn
class Reads:
    """Reads each path in turn, retrying each read until it runs (an outage waits)."""

    @workflow.run
    async def run(self, paths: list[str], task_queue: str | None) -> list[str]:
        return [await workflow.execute_activity(
            read_file, path, task_queue=task_queue or workflow.info().task_queue,
            start_to_close_timeout=timedelta(seconds=10), retry_policy=PATIENT)
            for path in paths]


WORKFLOWS = [Reads]
ACTIVITIES = [read_file]
