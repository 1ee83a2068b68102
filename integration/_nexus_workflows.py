"""A Nexus service, its handler and the workflows that call it, for ``test_nexus.py``.

Kept in their own module because Temporal's workflow sandbox re-imports the
module that defines a workflow. :class:`CallPayments` calls through a plain
``workflow.create_nexus_client`` (our plugin signs it);
:class:`StockCallPayments` calls through the stock 0.3.3 helper
``tenuo.temporal.tenuo_execute_nexus_operation``, as the reference requires.

Each handler body records its run in ``CALLS`` (in the real, non-sandboxed
module, where handlers execute), so a test can prove that a denied call never
reached it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import nexusrpc
import nexusrpc.handler
from temporalio import workflow
from temporalio.exceptions import NexusOperationError

with workflow.unsafe.imports_passed_through():
    import tenuo.temporal as stock
    import tenuo_core

    from tenuo_temporal.workflow import tenuo_execute_nexus_operation

#: ``(operation, account, amount)`` of every handler body that actually ran, in order.
CALLS: list[tuple[str, str, int]] = []

TIMEOUT = timedelta(seconds=20)


@dataclass
class Transfer:
    """The operations' input: its two fields are the PoP's arguments."""

    account: str
    amount: int


@nexusrpc.service(name="Payments")
class Payments:
    """Tools ``nexus:<endpoint>:Payments:transfer`` and ``...:refund``."""

    transfer: nexusrpc.Operation[Transfer, str]
    refund: nexusrpc.Operation[Transfer, str]


@nexusrpc.handler.service_handler(service=Payments)
class PaymentsHandler:
    """Synchronous operations: each returns at once and records its run."""

    @nexusrpc.handler.sync_operation
    async def transfer(self, ctx: nexusrpc.handler.StartOperationContext, input: Transfer) -> str:
        CALLS.append(("transfer", input.account, input.amount))
        return f"sent {input.amount} to {input.account}"

    @nexusrpc.handler.sync_operation
    async def refund(self, ctx: nexusrpc.handler.StartOperationContext, input: Transfer) -> str:
        CALLS.append(("refund", input.account, input.amount))
        return f"refunded {input.amount} to {input.account}"


def _outcome(error: NexusOperationError) -> str:
    """``denied:`` and each cause's type and message, outermost first."""
    parts: list[str] = []
    cause: BaseException | None = error
    while cause is not None:
        kind = getattr(cause, "type", None)
        parts.append(f"{type(cause).__name__}[{kind}]: {cause}" if kind
                     else f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__
    return "denied: " + " <- ".join(parts)


def _operation(name: str) -> Any:
    return Payments.transfer if name == "transfer" else Payments.refund


async def _call(endpoint: str, operation: str, account: str, amount: int, *,
                through_stock: bool) -> str:
    client = workflow.create_nexus_client(service=Payments, endpoint=endpoint)
    op, input = _operation(operation), Transfer(account, amount)
    try:
        if through_stock:
            result: str = await stock.tenuo_execute_nexus_operation(
                client, op, input, endpoint=endpoint, schedule_to_close_timeout=TIMEOUT)
        else:
            result = await client.execute_operation(op, input, schedule_to_close_timeout=TIMEOUT)
    except NexusOperationError as error:
        return _outcome(error)
    return result


@workflow.defn
class CallPayments:
    """Calls one operation with a plain Nexus client; returns its result or ``denied: ...``."""

    @workflow.run
    async def run(self, endpoint: str, operation: str, account: str, amount: int) -> str:
        return await _call(endpoint, operation, account, amount, through_stock=False)


@workflow.defn
class StockCallPayments:
    """The same call through the stock plugin's ``tenuo_execute_nexus_operation``."""

    @workflow.run
    async def run(self, endpoint: str, operation: str, account: str, amount: int) -> str:
        return await _call(endpoint, operation, account, amount, through_stock=True)


@workflow.defn
class HelperCallPayments:
    """Our ``tenuo_execute_nexus_operation`` (the reference's name), with an optional
    warrant for this one call (base64) instead of the workflow's."""

    @workflow.run
    async def run(self, endpoint: str, operation: str, account: str, amount: int,
                  per_call: str | None) -> str:
        client = workflow.create_nexus_client(service=Payments, endpoint=endpoint)
        warrant = tenuo_core.Warrant.from_base64(per_call) if per_call else None
        try:
            result: str = await tenuo_execute_nexus_operation(
                client, _operation(operation), Transfer(account, amount), endpoint=endpoint,
                warrant=warrant, key_id="agent1" if warrant is not None else None,
                schedule_to_close_timeout=TIMEOUT)
        except NexusOperationError as error:
            return _outcome(error)
        return result
