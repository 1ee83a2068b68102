"""Workflows and activities for ``bench_load.py`` and ``bench_remote.py``.

Their own module: the workflow sandbox re-imports it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from tenuo_temporal.workflow import tenuo_execute_activity

TIMEOUT = timedelta(seconds=60)


@activity.defn
async def read_file(path: str) -> str:
    return path


@workflow.defn
class FiveReads:
    """``count`` reads of ``prefix/i``, one after another, by plain ``execute_activity``."""

    @workflow.run
    async def run(self, prefix: str, count: int) -> int:
        for i in range(count):
            await workflow.execute_activity(read_file, f"{prefix}/{i}",
                                            start_to_close_timeout=TIMEOUT)
        return count


@workflow.defn
class SequentialReads:
    """One ``read_file`` after another, through the helper (the same API for both key kinds)."""

    @workflow.run
    async def run(self, paths: list[str]) -> int:
        for path in paths:
            await tenuo_execute_activity(read_file, args=[path], start_to_close_timeout=TIMEOUT)
        return len(paths)


@activity.defn
async def noop(token: str) -> str:
    return token


@workflow.defn
class SequentialReadsAfterLocalActivity:
    """Diagnostic: the local key path plus a no-op local activity before each activity.

    Sizes the local-activity machinery alone (an extra workflow activation per
    activity), without any signing in it.
    """

    @workflow.run
    async def run(self, paths: list[str]) -> int:
        for path in paths:
            await workflow.execute_local_activity(noop, path, start_to_close_timeout=TIMEOUT)
            await tenuo_execute_activity(read_file, args=[path], start_to_close_timeout=TIMEOUT)
        return len(paths)
