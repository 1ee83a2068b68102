"""Workflows for the signal and update allowlist tests.

Kept in their own module because the workflow sandbox re-imports the module
that defines a workflow. Each workflow records what its handlers ran in its
own state, which the ``seen`` query and the run's result report: a refused
signal or update must never appear there.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from tenuo_temporal.workflow import AuthorizedWorkflow


@workflow.defn
class GatedWorkflow:
    """Named signal and update handlers; finishes on the ``finish`` signal.

    ``approve``, ``finish`` and ``set_limit`` are the names the tests list;
    the others are what an outsider would send.
    """

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.done = False

    @workflow.signal
    def approve(self, who: str) -> None:
        self.seen.append(f"approve:{who}")

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.signal
    def redirect(self, where: str) -> None:
        self.seen.append(f"redirect:{where}")

    @workflow.signal
    def explode(self) -> None:
        """Delivered, this would fail the run: the sender must not reach it."""
        self.seen.append("explode")
        raise ApplicationError("a signal handler failed the run", non_retryable=True)

    @workflow.update
    def set_limit(self, limit: int) -> int:
        self.seen.append(f"set_limit:{limit}")
        return limit

    @workflow.update
    def wipe(self) -> str:
        """An unlisted update without a validator of its own."""
        self.seen.append("wipe")
        return "wiped"

    @workflow.update
    def annotate(self, note: str) -> str:
        """An unlisted update with a validator of its own."""
        self.seen.append(f"annotate:{note}")
        return note

    @annotate.validator
    def _check_note(self, note: str) -> None:
        if not note:
            raise ValueError("an empty note")

    @workflow.query
    def state(self) -> list[str]:
        return list(self.seen)

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: self.done)
        return list(self.seen)


@workflow.defn
class DynamicGatedWorkflow:
    """Dynamic signal and update handlers only: names are judged as sent."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.done = False

    @workflow.signal(dynamic=True)
    def any_signal(self, name: str, args: Sequence[RawValue]) -> None:
        if name == "finish":
            self.done = True
        else:
            self.seen.append(f"signal:{name}")

    @workflow.update(dynamic=True)
    def any_update(self, name: str, args: Sequence[RawValue]) -> str:
        self.seen.append(f"update:{name}")
        return name

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: self.done)
        return list(self.seen)


@workflow.defn
class GatedAuthorizedWorkflow(AuthorizedWorkflow):
    """An ``AuthorizedWorkflow``: its refusals' audit events name the run's warrant."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.done = False

    @workflow.signal
    def redirect(self, where: str) -> None:
        self.seen.append(f"redirect:{where}")

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: self.done)
        return list(self.seen)


@workflow.defn
class LateHandlerWorkflow:
    """Registers its ``late`` signal handler only after the ``go`` signal."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.ready = False
        self.done = False

    @workflow.signal
    def go(self) -> None:
        self.ready = True

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    def _late(self, value: str) -> None:
        self.seen.append(f"late:{value}")

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: self.ready)
        workflow.set_signal_handler("late", self._late)
        await workflow.wait_condition(lambda: self.done)
        return list(self.seen)
