"""Workflows and the activity of the fault-injection tests (``test_faults.py``).

Kept in their own module because the workflow sandbox re-imports the module
that defines a workflow; ``_fault_worker_proc.py`` imports it too, so a
workflow worker in another process runs exactly the same code.

The activity body records every run in ``CALLS``, so a test can count bodies
against what it expected: an activity that ran without authorization, or ran
twice, shows up there. ``GATES`` lets a test hold one activity mid-flight.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

CALLS: list[tuple[str, int]] = []
"""``(path, attempt)`` for every activity body that ran in this process."""

GATES: dict[str, tuple[asyncio.Event, asyncio.Event]] = {}
"""path -> (started, release): the body of that path sets ``started`` and waits for
``release`` (set by the test), so the test can act while it is in flight."""

STEP = "fault_step"
ACTIVITY_OPTIONS = {
    "start_to_close_timeout": timedelta(seconds=30),
    # A denial is non-retryable anyway; a second attempt of an allowed step
    # would show in CALLS and in the history's attempt numbers.
    "retry_policy": RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1)),
}


@activity.defn(name=STEP)
async def fault_step(path: str) -> str:
    """The trivial activity every fault workflow schedules."""
    CALLS.append((path, activity.info().attempt))
    gate = GATES.get(path)
    if gate is not None:
        started, release = gate
        started.set()
        await release.wait()
    return f"done {path}"


def step_path(tag: str, phase: str, index: int) -> str:
    """The argument of one step; unique per workflow, phase and index."""
    return f"/jobs/{tag}/{phase}{index}"


@workflow.defn
class StagedWorkflow:
    """Runs ``first`` steps, pauses (timer and/or signal), then ``second`` steps.

    Args (of ``run``):
        tag: Unique per workflow; part of every step's path.
        first: Steps before the pause (paths ``.../a<i>``).
        pause_seconds: A durable timer between the phases (0: none).
        wait_for_signal: Also wait for the ``proceed`` signal between the phases.
        second: Steps after the pause (paths ``.../b<i>``).
        activity_queue: Task queue of the activity worker; None: this workflow's.
    """

    def __init__(self) -> None:
        self._proceed = False

    @workflow.signal
    def proceed(self) -> None:
        self._proceed = True

    @workflow.query
    def paused(self) -> bool:
        return not self._proceed

    @workflow.run
    async def run(self, tag: str, first: int, pause_seconds: float, wait_for_signal: bool,
                  second: int, activity_queue: str | None) -> list[str]:
        queue = activity_queue or workflow.info().task_queue
        out: list[str] = []
        for index in range(first):
            out.append(await workflow.execute_activity(
                STEP, step_path(tag, "a", index), task_queue=queue, **ACTIVITY_OPTIONS))
        if pause_seconds > 0:
            await asyncio.sleep(pause_seconds)
        if wait_for_signal:
            await workflow.wait_condition(lambda: self._proceed)
        for index in range(second):
            out.append(await workflow.execute_activity(
                STEP, step_path(tag, "b", index), task_queue=queue, **ACTIVITY_OPTIONS))
        return out


def expected_result(tag: str, first: int, second: int) -> list[str]:
    """What ``StagedWorkflow.run`` returns when every step ran once."""
    return ([f"done {step_path(tag, 'a', i)}" for i in range(first)]
            + [f"done {step_path(tag, 'b', i)}" for i in range(second)])
