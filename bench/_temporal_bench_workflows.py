"""Workflow, activity and shared names for ``bench/bench_activity.py`` and ``bench/bench_e2e.py``.

Kept apart from the benchmark script because Temporal's workflow sandbox
re-imports the module that defines a workflow: this one imports nothing but
``temporalio``, so the re-import is cheap and has no side effects.

The same workflow and activity serve all three variants (no plugin, ours,
the 0.3.3 reference); only the client/worker plugin differs.

Shape: ``FanOutWorkflow.run(paths)`` schedules one ``read_file(path)`` per
path. With ``concurrent=True`` (the benchmark's default) every activity is
started at once and awaited with ``asyncio.gather``, so a single workflow task
schedules (and, with a plugin, signs PoP for) the whole batch; with
``concurrent=False`` they run one after another. Paths are distinct so that no
two activities carry the same PoP (the reference plugin deduplicates PoPs).
``summary`` is only set by the diagnostic variants (it is what the plugins add
to every activity, measured without a plugin).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

KEY_ID = "agent1"  # the holder key's id in every bench resolver
TOOL = "read_file"  # the activity's name: the tool its warrant grants
NAMESPACE = "default"

ACTIVITY_OPTIONS = {
    "start_to_close_timeout": timedelta(seconds=60),
    # One attempt: a denial or a failure must surface, not be retried into
    # the measurement.
    "retry_policy": RetryPolicy(maximum_attempts=1),
}


@activity.defn
async def read_file(path: str) -> int:
    """The protected tool (``Subpath("/data")`` in the warrant): trivial body."""
    return len(path)


@workflow.defn
class FanOutWorkflow:
    """Runs ``read_file`` once per path; returns the sum of the results."""

    @workflow.run
    async def run(self, paths: list[str], concurrent: bool, summary: str | None = None) -> int:
        if concurrent:
            results = await asyncio.gather(*(
                workflow.execute_activity(read_file, path, summary=summary, **ACTIVITY_OPTIONS)
                for path in paths
            ))
            return sum(results)
        total = 0
        for path in paths:
            total += await workflow.execute_activity(
                read_file, path, summary=summary, **ACTIVITY_OPTIONS)
        return total
