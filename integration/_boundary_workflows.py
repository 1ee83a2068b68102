"""Workflows and activities for the boundary attacks (``test_boundary.py``).

Kept in their own module because the workflow sandbox re-imports the module
that defines a workflow. Activity bodies record ``(workflow_id, activity,
args)`` in ``CALLS``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    import pydantic

CALLS: list[tuple[str, str, tuple[object, ...]]] = []
ONCE = RetryPolicy(maximum_attempts=1)
TIMEOUT = timedelta(seconds=20)


def _record(name: str, *args: object) -> None:
    CALLS.append((activity.info().workflow_id, name, args))


class ChangeRequest(pydantic.BaseModel):
    """A request with a field the JSON dump leaves out and a secret it masks."""

    path: str
    force: bool = pydantic.Field(default=False, exclude=True)
    token: pydantic.SecretStr

    @pydantic.field_serializer("token", when_used="json")
    def _reveal(self, token: pydantic.SecretStr) -> str:
        return token.get_secret_value()  # so the activity receives the real token


@activity.defn
async def read_file(path: str) -> str:
    _record("read_file", path)
    return f"contents of {path}"


@activity.defn
async def apply_change(request: ChangeRequest) -> str:
    _record("apply_change", request.path, request.force, request.token.get_secret_value())
    return f"applied {request.path}"


@activity.defn(name="read_file")
async def hold_read_file(path: str) -> str:
    """A rogue's stand-in on the victim's queue: takes an attempt and sits on it."""
    import asyncio

    await asyncio.sleep(30)
    return "never"


@workflow.defn
class Call:
    """Runs one activity by name on a task queue, once."""

    @workflow.run
    async def run(self, activity_name: str, args: list[Any], task_queue: str | None) -> Any:
        return await workflow.execute_activity(
            activity_name, args=args, task_queue=task_queue or workflow.info().task_queue,
            start_to_close_timeout=TIMEOUT, retry_policy=ONCE)


@workflow.defn
class ApplyChange:
    """Runs ``apply_change`` with a pydantic request."""

    @workflow.run
    async def run(self, request: ChangeRequest) -> str:
        return await workflow.execute_activity(apply_change, request,
                                               start_to_close_timeout=TIMEOUT, retry_policy=ONCE)


@workflow.defn
class Flood:
    """Schedules ``count`` reads on ``queue``, one after another; counts denials."""

    @workflow.run
    async def run(self, queue: str, count: int) -> int:
        denied = 0
        for i in range(count):
            try:
                await workflow.execute_activity(
                    "read_file", f"/data/{i}", task_queue=queue,
                    start_to_close_timeout=TIMEOUT, retry_policy=ONCE)
            except ActivityError:
                denied += 1
        return denied


@workflow.defn
class RetriedCopy:
    """A rogue's call: attempt 1 times out (its own worker holds it), attempt 2 retries."""

    @workflow.run
    async def run(self, queue: str, path: str) -> str:
        return await workflow.execute_activity(
            "read_file", path, task_queue=queue, start_to_close_timeout=timedelta(seconds=2),
            retry_policy=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=1)))


def _failure_type(error: BaseException) -> str:
    # A local activity's failure reaches workflow code as the ApplicationError itself.
    while not isinstance(error, ApplicationError) and error.__cause__ is not None:
        error = error.__cause__
    return str(error.type) if isinstance(error, ApplicationError) else repr(error)


async def _run_local(name: str, arg: Any, outcome: str) -> str:
    """Run one of the plugin's local activities; ``outcome:<field>`` or ``refused:<type>``."""
    try:
        result = await workflow.execute_local_activity(
            name, arg, start_to_close_timeout=TIMEOUT, retry_policy=ONCE)
    except (ActivityError, ApplicationError) as error:
        return f"refused:{_failure_type(error)}"
    return outcome.format(**result)


@workflow.defn
class SigningOracle:
    """Workflow code calling the plugin's remote-signing local activity itself."""

    @workflow.run
    async def run(self, request: dict[str, Any]) -> str:
        return await _run_local(
            "__tenuo_remote_sign", {**request, "timestamp": int(workflow.now().timestamp())},
            "signed:{pop}")


@workflow.defn
class MintingOracle:
    """Workflow code parking a delegation request for another tenant's warrant."""

    @workflow.run
    async def run(self, warrant_b64: str, key_id: str) -> str:
        with workflow.unsafe.imports_passed_through():
            import tenuo_core

            from tenuo_temporal import _headers, _mint
        parent = _headers.WarrantContext.build(tenuo_core.Warrant.from_base64(warrant_b64),
                                               key_id)
        token = _mint.park(workflow.info().run_id, _mint.MintRequest(
            parent=parent, tools=("delete_file",), constraints={}, ttl_seconds=60,
            child_key_id=None))
        return await _run_local("__tenuo_mint_child_warrant", token, "minted:{key_id}")


@workflow.defn
class RunStateProbe:
    """What workflow code reaches from ``current_run_state()``: type names, 4 levels deep."""

    @workflow.run
    async def run(self) -> list[str]:
        with workflow.unsafe.imports_passed_through():
            from tenuo_temporal.workflow import current_warrant
        from tenuo_temporal._interceptors import current_run_state

        current_warrant()  # the run has its warrant
        seen: list[str] = []
        frontier: list[Any] = [current_run_state()]
        visited: set[int] = set()
        for _ in range(4):
            following: list[Any] = []
            for obj in frontier:
                if id(obj) in visited or obj is None or isinstance(obj, (str, bytes, int,
                                                                          float, bool)):
                    continue
                visited.add(id(obj))
                seen.append(type(obj).__name__)
                if isinstance(obj, dict) or hasattr(obj, "items"):
                    following.extend(obj.values())
                if isinstance(obj, (list, tuple, set, frozenset)):
                    following.extend(obj)
                for name in getattr(type(obj), "__slots__", ()):
                    following.append(getattr(obj, name, None))
                following.extend(getattr(obj, "__dict__", {}).values())
            frontier = following
        return seen


WORKFLOWS = [Call, ApplyChange, Flood, RetriedCopy, SigningOracle, MintingOracle, RunStateProbe]
ACTIVITIES = [read_file, apply_change]
