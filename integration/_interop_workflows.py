"""Workflows and activities for ``test_interop.py`` (ours and the stock 0.3.3 plugin mixed).

Kept in their own module because Temporal's workflow sandbox re-imports the
module that defines a workflow. The same workflow classes run under either
plugin; only :class:`HelperCall` needs ours (it uses
``tenuo_temporal.workflow.tenuo_execute_activity``).

Every activity takes primitive arguments only (str, int, bool). Each body
records its run in ``CALLS`` (in the real, non-sandboxed module, where
activities execute), so a test can prove that a denied call never reached it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import tenuo.temporal as stock
    import tenuo_core
    from tenuo.temporal import tool

    from tenuo_temporal.workflow import tenuo_execute_activity

#: ``(activity type, args)`` of every body that actually ran, in order.
CALLS: list[tuple[str, tuple[Any, ...]]] = []

#: Three attempts with a short interval: a denial that were *not* marked
#: non-retryable would end as MAXIMUM_ATTEMPTS_REACHED, not NON_RETRYABLE_FAILURE.
OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=100),
                                maximum_interval=timedelta(milliseconds=200)),
}


@activity.defn
async def read_file(path: str) -> str:
    """Tool ``read_file``; warrants constrain ``path``."""
    CALLS.append(("read_file", (path,)))
    return f"contents of {path}"


@activity.defn
async def pay(account: str, amount: int, urgent: bool) -> str:
    """Tool ``pay``; three primitive arguments of three types, signed by name and in order."""
    CALLS.append(("pay", (account, amount, urgent)))
    return f"paid {amount} to {account}{' (urgent)' if urgent else ''}"


@activity.defn
@tool("read_file")
async def fetch_document(path: str) -> str:
    """Activity type ``fetch_document``, authorized as the warrant's tool ``read_file``.

    The stock plugin learns that from its ``@tool`` decorator; ours from
    ``tool_mappings={"fetch_document": "read_file"}``.
    """
    CALLS.append(("fetch_document", (path,)))
    return f"document {path}"


@activity.defn
async def flaky_read(path: str) -> str:
    """Fails its first attempt (a transient fault), so the retry re-presents the PoP."""
    attempt = activity.info().attempt
    if attempt == 1:
        raise RuntimeError("transient failure, retry me")
    CALLS.append(("flaky_read", (path, attempt)))
    return f"contents of {path}"


ACTIVITIES = [read_file, pay, fetch_document, flaky_read]
BY_NAME = {fn.__name__: fn for fn in ACTIVITIES}


def _queue(queue: str) -> str:
    return queue or workflow.info().task_queue


@workflow.defn
class PlainCall:
    """``workflow.execute_activity(fn, args=..., task_queue=queue)``: the transparent path.

    An empty ``queue`` means the workflow's own task queue.
    """

    @workflow.run
    async def run(self, name: str, args: list[Any], queue: str) -> str:
        return await workflow.execute_activity(
            BY_NAME[name], args=args, task_queue=_queue(queue), **OPTIONS)


@workflow.defn
class HelperCall:
    """``tenuo_temporal.workflow.tenuo_execute_activity``: ours only.

    The helper hands the activity function to our signer, so arguments are
    signed under their parameter names even though this worker does not run
    the activity.
    """

    @workflow.run
    async def run(self, name: str, args: list[Any], queue: str) -> str:
        return await tenuo_execute_activity(
            BY_NAME[name], args=args, task_queue=_queue(queue), **OPTIONS)


@workflow.defn
class OursDispatch:
    """A per-dispatch warrant through ours: ``tenuo_execute_activity(warrant=, key_id=)``."""

    @workflow.run
    async def run(self, warrant_b64: str, key_id: str, path: str, queue: str) -> str:
        return await tenuo_execute_activity(
            read_file, args=[path], warrant=tenuo_core.Warrant.from_base64(warrant_b64),
            key_id=key_id, task_queue=_queue(queue), **OPTIONS)


@workflow.defn
class StockDispatch:
    """The same through the stock 0.3.3 helper (``tenuo.temporal.tenuo_execute_activity``)."""

    @workflow.run
    async def run(self, warrant_b64: str, key_id: str, path: str, queue: str) -> str:
        result: str = await stock.tenuo_execute_activity(
            read_file, args=[path], warrant=tenuo_core.Warrant.from_base64(warrant_b64),
            key_id=key_id, task_queue=_queue(queue), **OPTIONS)
        return result


WORKFLOWS = [PlainCall, HelperCall, OursDispatch, StockDispatch]
