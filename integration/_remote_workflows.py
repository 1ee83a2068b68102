"""Workflows and activities for the remote-signing integration tests.

Kept in their own module because the workflow sandbox re-imports the module
that defines a workflow. The activities (``read_file``, ``write_file``) and
their ``CALLS`` record are those of ``_plugin_workflows``, so a test can prove
that a denied (or not yet signed) activity never ran.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from integration._plugin_workflows import CALLS as CALLS  # the record the tests read
from integration._plugin_workflows import FAST, read_file, write_file

with workflow.unsafe.imports_passed_through():
    from tenuo_temporal.workflow import AuthorizedWorkflow, tenuo_execute_activity


@workflow.defn
class HelperReads:
    """Reads each path through ``tenuo_execute_activity``."""

    @workflow.run
    async def run(self, paths: list[str]) -> list[str]:
        return [await tenuo_execute_activity(read_file, args=[p], **FAST) for p in paths]


@workflow.defn
class ConcurrentReads:
    """Reads every path at once: one signing local activity per call, all in flight together."""

    @workflow.run
    async def run(self, paths: list[str]) -> list[str]:
        return list(await asyncio.gather(
            *(tenuo_execute_activity(read_file, args=[p], **FAST) for p in paths)))


@workflow.defn
class GuardedReads(AuthorizedWorkflow):
    """Reads each path through ``execute_authorized_activity``."""

    @workflow.run
    async def run(self, paths: list[str]) -> list[str]:
        return [await self.execute_authorized_activity(read_file, p, **FAST) for p in paths]


@workflow.defn
class GuardedWrite(AuthorizedWorkflow):
    @workflow.run
    async def run(self, path: str, body: str) -> int:
        return int(await self.execute_authorized_activity(write_file, path, body, **FAST))


@workflow.defn
class GatedReads(AuthorizedWorkflow):
    """Reads ``first``, waits for the ``go`` signal, then reads ``second``."""

    def __init__(self) -> None:
        self._go = False
        self._done = 0

    @workflow.signal
    def go(self) -> None:
        self._go = True

    @workflow.query
    def done(self) -> int:
        return self._done

    @workflow.run
    async def run(self, first: list[str], second: list[str]) -> list[str]:
        out: list[str] = []
        for path in first:
            out.append(await self.execute_authorized_activity(read_file, path, **FAST))
            self._done += 1
        await workflow.wait_condition(lambda: self._go)
        for path in second:
            out.append(await self.execute_authorized_activity(read_file, path, **FAST))
            self._done += 1
        return out


@workflow.defn
class PlainRead:
    """Plain ``workflow.execute_activity``: fine for local keys, refused for remote ones."""

    @workflow.run
    async def run(self, path: str) -> str:
        return str(await workflow.execute_activity(read_file, path, **FAST))


@workflow.defn
class ScheduleSignerAsActivity:
    """Tries to obtain a signature by scheduling the signing activity as a regular one."""

    @workflow.run
    async def run(self, request: dict[str, Any]) -> Any:
        return await workflow.execute_activity(
            "__tenuo_remote_sign", request, start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=1))


WORKFLOWS = [HelperReads, ConcurrentReads, GuardedReads, GuardedWrite, GatedReads, PlainRead,
             ScheduleSignerAsActivity]
ACTIVITIES = [read_file, write_file]
