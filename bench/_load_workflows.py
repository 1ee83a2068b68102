"""Workflow and activity for bench_load.py (own module: the sandbox re-imports it)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def read_file(path: str) -> str:
    return path


@workflow.defn
class FiveReads:
    @workflow.run
    async def run(self, prefix: str, count: int) -> int:
        for i in range(count):
            await workflow.execute_activity(read_file, f"{prefix}/{i}",
                                            start_to_close_timeout=timedelta(seconds=60))
        return count
