"""Workflows and activities for ``test_approvals.py`` (approval gates and clearance).

Kept in their own module because Temporal's workflow sandbox re-imports the
module that defines a workflow. :class:`Transfer` pre-supplies approvals
through ours (``tenuo_temporal.set_activity_approvals``) or through the stock
0.3.3 plugin's (``tenuo.temporal.set_activity_approvals``), so the same
workflow runs under either plugin. Activity bodies record each run in
``CALLS`` (in the real, non-sandboxed module), so a test can prove that a
denied call never ran.
"""

from __future__ import annotations

import base64
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    import tenuo.temporal as stock
    import tenuo_core

    from integration._interop_workflows import OPTIONS  # retries allowed, denials must not
    from tenuo_temporal.workflow import set_activity_approvals

#: ``(activity type, args)`` of every body that actually ran, in order.
CALLS: list[tuple[str, tuple[Any, ...]]] = []


@activity.defn
async def transfer(account: str, amount: int) -> str:
    """Tool ``transfer``: gated behind approvals by the test warrants."""
    CALLS.append(("transfer", (account, amount)))
    return f"sent {amount} to {account}"


@activity.defn
async def read_balance(account: str) -> str:
    """Tool ``read_balance``: never gated (clearance tests)."""
    CALLS.append(("read_balance", (account,)))
    return f"balance of {account}"


ACTIVITIES = [transfer, read_balance]
BY_NAME = {fn.__name__: fn for fn in ACTIVITIES}


@workflow.defn
class Transfer:
    """Pre-supply ``approvals`` (base64 ``SignedApproval`` bytes), then call ``name(*args)``.

    ``via``: ``"ours"`` or ``"stock"``, whose ``set_activity_approvals`` to
    use. No approvals: nothing is pre-supplied. An empty ``queue`` means the
    workflow's own task queue.
    """

    @workflow.run
    async def run(self, name: str, args: list[Any], approvals: list[str], via: str,
                  queue: str) -> str:
        if approvals:
            signed = [tenuo_core.SignedApproval.from_bytes(base64.b64decode(item))
                      for item in approvals]
            (set_activity_approvals if via == "ours" else stock.set_activity_approvals)(signed)
        result: str = await workflow.execute_activity(
            BY_NAME[name], args=args, task_queue=queue or workflow.info().task_queue,
            **OPTIONS)
        return result


@workflow.defn
class TransferTwice:
    """One ``set_activity_approvals``, then two calls: only the first carries them."""

    @workflow.run
    async def run(self, account: str, amount: int, approvals: list[str], queue: str) -> str:
        set_activity_approvals([tenuo_core.SignedApproval.from_bytes(base64.b64decode(item))
                                for item in approvals])
        first: str = await workflow.execute_activity(transfer, args=[account, amount],
                                                     task_queue=queue, **OPTIONS)
        await workflow.execute_activity(transfer, args=[account, amount], task_queue=queue,
                                        **OPTIONS)
        return first


WORKFLOWS = [Transfer, TransferTwice]
