"""Workflows and activities for ``test_revocation.py``.

Kept in their own module because Temporal's workflow sandbox re-imports the
module that defines a workflow.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from tenuo_temporal.workflow import tenuo_execute_activity

#: Workflow id of every activity body that ran, in order.
RAN: list[str] = []

#: Retried every 200 ms for as long as the workflow runs: a retryable denial
#: (TENUO_REVOCATION_STALE) is retried until a current list is back.
RETRIED: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(maximum_attempts=0, initial_interval=timedelta(milliseconds=200),
                                backoff_coefficient=1.0),
}


@activity.defn
async def read_file(path: str) -> str:
    """Tool ``read_file``; warrants constrain ``path``."""
    RAN.append(activity.info().workflow_id)
    return f"contents of {path}"


@workflow.defn
class Repeat:
    """Calls ``read_file`` ``times`` times, ``pause`` seconds apart; returns how many ran."""

    @workflow.run
    async def run(self, times: int, pause: float) -> int:
        for index in range(times):
            if index:
                await workflow.sleep(pause)
            await tenuo_execute_activity(read_file, args=["/data/x"], **RETRIED)
        return times
