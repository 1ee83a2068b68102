"""Workflows and activities for the adversarial matrix and the secret-hygiene run.

Kept in their own module because the workflow sandbox re-imports the module
that defines a workflow. Every activity body records ``(workflow_id, activity,
args)`` in ``CALLS``, so a test proves a denied activity never ran *for its own
workflow*, whatever else runs in the session.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from tenuo_temporal.workflow import tenuo_execute_activity, tenuo_execute_child_workflow

CALLS: list[tuple[str, str, tuple[object, ...]]] = []

# A denial must not be retried: the policy would allow three quick attempts, so
# a retryable denial shows up as extra attempts in the history.
RETRIES = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=100),
                      backoff_coefficient=1.0)
TIMEOUT = timedelta(seconds=20)


def _record(name: str, *args: object) -> None:
    CALLS.append((activity.info().workflow_id, name, args))


@activity.defn
async def read_file(path: str) -> str:
    _record("read_file", path)
    return f"contents of {path}"


@activity.defn
async def fetch_url(url: str) -> str:
    _record("fetch_url", url)
    return f"fetched {url}"


@activity.defn
async def write_file(path: str, body: str) -> int:
    _record("write_file", path, body)
    return len(body)


@activity.defn
async def write_note(path: str, body: str = "(default body)") -> int:
    """``body`` has a default: a caller that omits it must not dodge its constraint."""
    _record("write_note", path, body)
    return len(body)


@activity.defn
async def delete_object(object_id: int) -> int:
    """An integer argument: tenuo_core compares numbers as 64-bit floats."""
    _record("delete_object", object_id)
    return object_id


@activity.defn
async def store_doc(doc: dict) -> int:  # type: ignore[type-arg]
    """A dict argument whose keys and values the workflow chooses."""
    _record("store_doc", doc)
    return len(doc)


@activity.defn
async def send_parts(*parts: str) -> int:
    """Variadic: the activity worker cannot name its arguments from the signature."""
    _record("send_parts", *parts)
    return len(parts)


@activity.defn(name="send_parts")
async def send_parts_as_declared_by_workflow(arg1: str, arg0: str) -> int:
    """A stub the *workflow* uses to name ``send_parts``' arguments; never registered."""
    raise NotImplementedError


ACTIVITIES = [read_file, fetch_url, write_file, write_note, delete_object, store_doc,
              send_parts]


@workflow.defn
class Call:
    """Runs one activity, by name, with the given positional arguments.

    Also the child of :class:`Delegate`, under the delegated warrant.
    """

    @workflow.run
    async def run(self, activity_name: str, args: list[Any]) -> Any:
        return await workflow.execute_activity(
            activity_name, args=args, start_to_close_timeout=TIMEOUT, retry_policy=RETRIES)


@workflow.defn
class Delegate:
    """Delegates ``read_file`` under a narrower ``Subpath`` to a child on another key."""

    @workflow.run
    async def run(self, path: str, child_key_id: str, narrow_to: str) -> Any:
        with workflow.unsafe.imports_passed_through():
            import tenuo_core
        return await tenuo_execute_child_workflow(
            Call.run,
            tools=["read_file"],
            constraints={"read_file": {"path": tenuo_core.Subpath(narrow_to)}},
            ttl_seconds=120,
            child_key_id=child_key_id,
            args=["read_file", [path]],
            id=f"{workflow.info().workflow_id}-child",
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


@workflow.defn
class Relabel:
    """Signs ``send_parts`` with argument names of the workflow's choosing."""

    @workflow.run
    async def run(self, args: list[str]) -> Any:
        return await tenuo_execute_activity(send_parts_as_declared_by_workflow, args=args,
                                            start_to_close_timeout=TIMEOUT, retry_policy=RETRIES)


WORKFLOWS = [Call, Delegate, Relabel]
