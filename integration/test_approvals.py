"""Approval-gated warrants and clearance, end to end on a real Temporal dev server.

The warrant gates ``transfer`` behind two approvers (``A1``, ``A2``, both
required). Approvals reach the activity worker in ``x-tenuo-approvals``
(pre-supplied by the workflow with ``set_activity_approvals``) or come from
the activity worker's ``approval_handler``; ``tenuo_core`` judges them there.
Every denial is checked for its wire type, for being non-retryable, and for
the activity body never having run. The interop tests run a workflow worker
with one plugin and an activity worker with the other (stock 0.3.3 and
ours), in both directions.
"""

from __future__ import annotations

import base64
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import tenuo.temporal as stock
import tenuo_core
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.worker import Worker
from tenuo.approval import ApprovalDenied, ApprovalRequest, sign_approval
from tenuo.temporal_plugin import TenuoTemporalPlugin as StockPlugin

import tenuo_temporal as ours
from integration import _approval_workflows as wf
from integration.support.temporal_helpers import uid
from tenuo_keys import StaticKeyResolver
from tenuo_temporal import _headers as H

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.from_bytes(bytes([71]) * 32)
HOLDER = tenuo_core.SigningKey.from_bytes(bytes([72]) * 32)
A1 = tenuo_core.SigningKey.from_bytes(bytes([73]) * 32)  # approver
A2 = tenuo_core.SigningKey.from_bytes(bytes([74]) * 32)  # approver
FORGER = tenuo_core.SigningKey.from_bytes(bytes([75]) * 32)  # not an approver
Clearance = tenuo_core.Clearance

CAPS: dict[str, Any] = {
    "transfer": {"account": tenuo_core.Pattern("acct-*"), "amount": tenuo_core.Range(0, 10_000)},
    "read_balance": {"account": tenuo_core.Pattern("acct-*")},
}
CALL = ["acct-1", 10]


def gated(clearance: Any = Clearance.INTERNAL) -> Any:
    """``transfer`` needs both A1 and A2; ``read_balance`` is not gated."""
    return tenuo_core.Warrant.issue(
        keypair=ROOT, capabilities=CAPS, ttl_seconds=600, holder=HOLDER.public_key,
        required_approvers=[A1.public_key, A2.public_key], min_approvals=2,
        approval_gates={"transfer": None}, clearance=clearance)


def approval(warrant: Any, approver: Any, args: list[Any] = CALL, *, tool: str = "transfer",
             ttl: int = 300) -> Any:
    """A ``SignedApproval`` by ``approver`` of ``tool(*args)`` under ``warrant``."""
    digest = tenuo_core.py_compute_request_hash(
        warrant.id, tool, dict(zip(["account", "amount"], args, strict=False)),
        warrant.authorized_holder)
    now = int(time.time())
    return tenuo_core.SignedApproval.create(
        tenuo_core.ApprovalPayload(request_hash=digest, nonce=os.urandom(16),
                                   external_id="approver@example.com", approved_at=now,
                                   expires_at=now + ttl), approver)


def wire(approvals: list[Any]) -> list[str]:
    """Approvals as workflow arguments (base64 of their bytes)."""
    return [base64.b64encode(bytes(a.to_bytes())).decode("ascii") for a in approvals]


# --------------------------------------------------------------------------- a fleet


@dataclass
class Fleet:
    """A workflow worker signing with ``signer``'s plugin, an activity worker verifying
    with ``verifier``'s, on separate clients and task queues."""

    signer: str
    client: Client
    queue: str
    activity_queue: str

    async def start(self, approvals: list[Any], *, warrant: Any, name: str = "transfer",
                    args: list[Any] = CALL) -> WorkflowHandle[Any, Any]:
        common: dict[str, Any] = {
            "workflow_id": uid(f"{self.signer}-approvals"), "warrant": warrant,
            "key_id": "agent1", "task_queue": self.queue,
            "args": [name, args, wire(approvals), self.signer, self.activity_queue],
            "execution_timeout": timedelta(seconds=30),
        }
        if self.signer == "stock":
            return await stock.start_workflow_authorized(
                client=self.client, workflow_run_fn=wf.Transfer.run, **common)
        return await ours.start_workflow_authorized(self.client, wf.Transfer.run, **common)


def _stock(**config: Any) -> StockPlugin:
    if "key_resolver" not in config:
        # 0.3.3 refuses a verify-only config: its activity worker gets a throwaway key.
        config["signing_key"] = tenuo_core.SigningKey.generate()
    return StockPlugin(stock.TenuoPluginConfig(trusted_roots=[ROOT.public_key], **config))


async def _connect(env: Any, plugin: Any) -> Client:
    return await Client.connect(env.client.service_client.config.target_host,
                                namespace=env.client.namespace, plugins=[plugin])


@contextlib.asynccontextmanager
async def fleet(env: Any, signer: str = "ours", verifier: str = "ours",
                **verifier_config: Any) -> AsyncIterator[Fleet]:
    """Workflow worker (``signer``'s plugin) and activity worker (``verifier``'s plugin)."""
    queue = uid(f"approvals-{signer}-to-{verifier}")
    resolver = StaticKeyResolver({"agent1": HOLDER})
    if signer == "stock":
        signing_plugin: Any = _stock(key_resolver=resolver, activity_fns=wf.ACTIVITIES)
    else:
        signing_plugin = ours.TenuoTemporalPlugin(ours.TenuoPluginConfig(
            key_resolver=resolver, activity_fns=wf.ACTIVITIES))
    if verifier == "stock":
        verifying_plugin: Any = _stock(**verifier_config)
    else:
        verifying_plugin = ours.TenuoTemporalPlugin(ours.TenuoPluginConfig(
            trusted_roots=[ROOT.public_key], **verifier_config))
    try:
        signing = await _connect(env, signing_plugin)
        verifying = await _connect(env, verifying_plugin)
        async with Worker(signing, task_queue=queue, workflows=wf.WORKFLOWS), \
                Worker(verifying, task_queue=queue + "-activities", activities=wf.ACTIVITIES):
            yield Fleet(signer, signing, queue, queue + "-activities")
    finally:
        resolver.close()


async def denied(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    """The verifier's denial: non-retryable, from the activity worker, never retried."""
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    error = info.value.cause
    assert isinstance(error, ActivityError), repr(error)
    assert error.retry_state == RetryState.NON_RETRYABLE_FAILURE, error.retry_state
    cause = error.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable, repr(cause)
    return cause


async def approvals_header(handle: WorkflowHandle[Any, Any]) -> list[bytes]:
    """``x-tenuo-approvals`` of each scheduled activity (b"" when absent), from history."""
    found = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            fields = event.activity_task_scheduled_event_attributes.header.fields
            found.append(bytes(fields[H.APPROVALS].data) if H.APPROVALS in fields else b"")
    return found


def ran(mark: int) -> list[tuple[str, tuple[Any, ...]]]:
    return wf.CALLS[mark:]


# --------------------------------------------------------------------------- pre-supplied


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("none", "TENUO_APPROVAL_REQUIRED"),
        ("one of two", "TENUO_INSUFFICIENT_APPROVALS"),
        ("forged", "TENUO_APPROVAL_INVALID"),
        ("other arguments", "TENUO_APPROVAL_INVALID"),
        ("expired", "TENUO_APPROVAL_INVALID"),
        ("same approver twice", "TENUO_APPROVAL_INVALID"),
    ],
)
async def test_pre_supplied_approvals_denied(temporal_env, case, expected):
    warrant = gated()
    approvals = {
        "none": [],
        "one of two": [approval(warrant, A1)],
        # FORGER signs a well-formed approval of this exact call: not an approver.
        "forged": [approval(warrant, A1), approval(warrant, FORGER)],
        # Both approvers, but of 11, not 10: bound to other arguments.
        "other arguments": [approval(warrant, A1, ["acct-1", 11]),
                            approval(warrant, A2, ["acct-1", 11])],
        "expired": [approval(warrant, A1, ttl=-120), approval(warrant, A2, ttl=-120)],
        "same approver twice": [approval(warrant, A1), approval(warrant, A1)],
    }[case]
    mark = len(wf.CALLS)
    async with fleet(temporal_env) as f:
        handle = await f.start(approvals, warrant=warrant)
        error = await denied(handle)
        headers = await approvals_header(handle)
    assert error.type == expected, error
    assert ran(mark) == []
    # Pre-supplied approvals ride on the activity, in 0.3.3's encoding.
    assert headers == [H.encode_approvals(approvals) if approvals else b""]


async def test_two_of_two_pre_supplied_runs_and_is_one_shot(temporal_env):
    warrant = gated()
    both = [approval(warrant, A1), approval(warrant, A2)]
    mark = len(wf.CALLS)
    async with fleet(temporal_env) as f:
        assert await (await f.start(both, warrant=warrant)).result() == "sent 10 to acct-1"
        assert ran(mark) == [("transfer", ("acct-1", 10))]
        # One set_activity_approvals, two calls: the second carries none, and is denied.
        mark = len(wf.CALLS)
        handle = await ours.start_workflow_authorized(
            f.client, wf.TransferTwice.run, workflow_id=uid("twice"), warrant=warrant,
            key_id="agent1", args=["acct-1", 10, wire(both), f.activity_queue],
            task_queue=f.queue, execution_timeout=timedelta(seconds=30))
        error = await denied(handle)
        headers = await approvals_header(handle)
    assert error.type == "TENUO_APPROVAL_REQUIRED"
    assert ran(mark) == [("transfer", ("acct-1", 10))]
    assert headers == [H.encode_approvals(both), b""]


# --------------------------------------------------------------------------- approval_handler


class Approvers:
    """An ``approval_handler`` that signs with the given keys and logs each request."""

    def __init__(self, *keys: Any, pending_attempts: int = 0, deny: bool = False) -> None:
        self.keys = keys
        self.requests: list[ApprovalRequest] = []
        self.pending_attempts = pending_attempts
        self.deny = deny

    async def __call__(self, request: ApprovalRequest) -> list[Any]:
        self.requests.append(request)
        if self.deny:
            raise ApprovalDenied(request, reason="not today")
        if len(self.requests) <= self.pending_attempts:
            # A human has not answered yet: fail this attempt, retryably.
            raise ApplicationError("approval pending", type="APPROVAL_PENDING")
        return [sign_approval(request, key, external_id="ops") for key in self.keys]


@pytest.mark.parametrize(
    ("handler", "expected", "asked"),
    [
        (Approvers(A1, A2), None, 1),
        (Approvers(A1, A2, pending_attempts=1), None, 2),  # retried until approved
        (Approvers(A1), "TENUO_INSUFFICIENT_APPROVALS", 1),
        (Approvers(A1, FORGER), "TENUO_APPROVAL_INVALID", 1),
        (Approvers(A1, A2, deny=True), "TENUO_APPROVAL_REQUIRED", 1),
    ],
    ids=["two-of-two", "pending-then-approved", "one-of-two", "forged", "denied"],
)
async def test_approval_handler(temporal_env, handler, expected, asked):
    warrant = gated()
    mark = len(wf.CALLS)
    async with fleet(temporal_env, approval_handler=handler) as f:
        handle = await f.start([], warrant=warrant)
        if expected is None:
            assert await handle.result() == "sent 10 to acct-1"
            assert ran(mark) == [("transfer", ("acct-1", 10))]
        else:
            assert (await denied(handle)).type == expected
            assert ran(mark) == []
    assert len(handler.requests) == asked
    request = handler.requests[0]
    assert (request.tool, request.arguments, request.warrant_id) == (
        "transfer", {"account": "acct-1", "amount": 10}, warrant.id)
    assert request.min_approvals == 2


async def test_handler_not_asked_for_a_call_the_warrant_refuses(temporal_env):
    handler = Approvers(A1, A2)
    mark = len(wf.CALLS)
    async with fleet(temporal_env, approval_handler=handler) as f:
        error = await denied(await f.start([], warrant=gated(), args=["acct-1", 50_000]))
    assert error.type == "TENUO_CONSTRAINT_VIOLATION"
    assert handler.requests == [] and ran(mark) == []


async def test_ungated_tool_needs_no_approval(temporal_env):
    mark = len(wf.CALLS)
    async with fleet(temporal_env) as f:
        handle = await f.start([], warrant=gated(), name="read_balance", args=["acct-1"])
        assert await handle.result() == "balance of acct-1"
    assert ran(mark) == [("read_balance", ("acct-1",))]


# --------------------------------------------------------------------------- clearance


@pytest.mark.parametrize(
    ("warrant_clearance", "requirements", "expected"),
    [
        (Clearance.INTERNAL, {"read_*": Clearance.PRIVILEGED}, "TENUO_CLEARANCE_INSUFFICIENT"),
        (None, {"*": Clearance.EXTERNAL}, "TENUO_CLEARANCE_INSUFFICIENT"),
        (Clearance.INTERNAL, {"read_balance": Clearance.INTERNAL}, None),  # at
        (Clearance.PRIVILEGED, {"*": Clearance.INTERNAL}, None),  # above
        (Clearance.INTERNAL, {"transfer": Clearance.SYSTEM}, None),  # another tool's rule
    ],
    ids=["below", "none-below-baseline", "at", "above", "other-tool"],
)
async def test_clearance_requirements(temporal_env, warrant_clearance, requirements, expected):
    warrant = gated(warrant_clearance)
    mark = len(wf.CALLS)
    async with fleet(temporal_env, clearance_requirements=requirements) as f:
        handle = await f.start([], warrant=warrant, name="read_balance", args=["acct-1"])
        if expected is None:
            assert await handle.result() == "balance of acct-1"
            assert ran(mark) == [("read_balance", ("acct-1",))]
        else:
            error = await denied(handle)
            assert error.type == expected, error
            assert "clearance" in str(error.message)
            assert ran(mark) == []


async def test_clearance_is_checked_before_approvals_are_asked(temporal_env):
    handler = Approvers(A1, A2)
    async with fleet(temporal_env, approval_handler=handler,
                     clearance_requirements={"transfer": Clearance.PRIVILEGED}) as f:
        error = await denied(await f.start([], warrant=gated(Clearance.INTERNAL)))
    assert error.type == "TENUO_CLEARANCE_INSUFFICIENT"
    assert handler.requests == []


# --------------------------------------------------------------------------- interop with 0.3.3


@pytest.mark.parametrize(("signer", "verifier"), [("stock", "ours"), ("ours", "stock")])
async def test_interop_pre_supplied_approvals(temporal_env, signer, verifier):
    """``x-tenuo-approvals`` written by one plugin is honoured by the other."""
    warrant = gated()
    mark = len(wf.CALLS)
    async with fleet(temporal_env, signer, verifier) as f:
        both = [approval(warrant, A1), approval(warrant, A2)]
        handle = await f.start(both, warrant=warrant)
        assert await handle.result() == "sent 10 to acct-1"
        assert await approvals_header(handle) == [H.encode_approvals(both)]
        assert ran(mark) == [("transfer", ("acct-1", 10))]
        # One of two: the verifier read the header and counted one valid approval.
        error = await denied(await f.start([approval(warrant, A1)], warrant=warrant))
        assert ran(mark) == [("transfer", ("acct-1", 10))]
    # 0.3.3 sends its own type string for the same denial.
    assert error.type == ("TENUO_INSUFFICIENT_APPROVALS" if verifier == "ours"
                          else "insufficient_approvals"), error
