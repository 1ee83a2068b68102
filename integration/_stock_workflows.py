"""Workflow and activity for ``test_stock_tenuo_temporal.py``.

They live in their own small module because Temporal's workflow sandbox
re-imports the module that defines a workflow; keeping pytest and the test
helpers out of that import keeps the sandbox fast and unsurprising.

``CALLS`` records every time the activity body actually runs (in the real,
non-sandboxed module, where activities execute), so a test can prove that a
denied call never reached the body.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

#: Paths the ``read_file`` body was invoked with, in order.
CALLS: list[str] = []


@activity.defn
async def read_file(path: str) -> str:
    """The protected tool: the warrant constrains ``path``."""
    CALLS.append(path)
    return f"contents of {path}"


@workflow.defn
class ReadFileWorkflow:
    """Calls ``read_file`` once with plain ``workflow.execute_activity``.

    Retries are allowed (three attempts, short interval) so that a denial
    which the stock plugin failed to mark non-retryable would show up as
    ``MAXIMUM_ATTEMPTS_REACHED`` instead of ``NON_RETRYABLE_FAILURE``.
    """

    @workflow.run
    async def run(self, path: str) -> str:
        return await workflow.execute_activity(
            read_file,
            path,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(
                maximum_attempts=3,
                initial_interval=timedelta(milliseconds=100),
            ),
        )
