"""Approvals and clearance in process: the header's bounds, the config, the verifier's order.

End to end on a real Temporal server (pre-supplied approvals, the handler,
clearance, and interop with 0.3.3) in ``integration/test_approvals.py``. Nexus
starts carry pre-supplied approvals only; they are checked here, against
headers built by ours and by the stock 0.3.3 ``tenuo_nexus_headers``.
"""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
import tenuo.temporal as stock
import tenuo_core
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.bridge.proto.activity_task import activity_task_pb2
from temporalio.worker import ExecuteActivityInput

from tenuo_keys import ResolverConfigError
from tenuo_temporal import TenuoPluginConfig, tenuo_nexus_headers
from tenuo_temporal import _headers as H
from tenuo_temporal._interceptors import TenuoInterceptor
from tenuo_temporal._nexus import NexusCheck, decode_nexus_headers
from tenuo_temporal._verify import ApprovalPending
from tenuo_temporal.errors import (
    ERROR_TYPES,
    ApprovalRequired,
    ClearanceInsufficient,
    InsufficientApprovals,
    InvalidApproval,
    PopVerificationError,
    TemporalConstraintViolation,
    ToolNotAuthorized,
)

ROOT = tenuo_core.SigningKey.from_bytes(bytes([81]) * 32)
HOLDER = tenuo_core.SigningKey.from_bytes(bytes([82]) * 32)
A1 = tenuo_core.SigningKey.from_bytes(bytes([83]) * 32)
A2 = tenuo_core.SigningKey.from_bytes(bytes([84]) * 32)
WARRANT = tenuo_core.Warrant.issue(
    keypair=ROOT, capabilities={"transfer": {"amount": tenuo_core.Range(0, 100)}},
    ttl_seconds=600, holder=HOLDER.public_key, required_approvers=[A1.public_key, A2.public_key],
    min_approvals=2, approval_gates={"transfer": None}, clearance=tenuo_core.Clearance.INTERNAL)


@activity.defn
async def transfer(amount: int) -> str:
    return str(amount)


def approval(key: Any, amount: int = 5) -> Any:
    digest = tenuo_core.py_compute_request_hash(WARRANT.id, "transfer", {"amount": amount},
                                                WARRANT.authorized_holder)
    now = int(time.time())
    return tenuo_core.SignedApproval.create(tenuo_core.ApprovalPayload(
        request_hash=digest, nonce=os.urandom(16), external_id="", approved_at=now,
        expires_at=now + 300), key)


def verifier(**config: Any) -> Any:
    tenuo = TenuoInterceptor(TenuoPluginConfig(trusted_roots=[ROOT.public_key], metrics=False,
                                               **config))
    tenuo.register_activities([transfer])
    return tenuo.verifier


def call(amount: int = 5, *, approvals: bytes | None = None, pop_key: Any = HOLDER
         ) -> ExecuteActivityInput:
    pop = WARRANT.sign(pop_key, "transfer", {"amount": amount}, int(time.time()))
    headers = {**H.WarrantContext.build(WARRANT, "agent1").payloads,
               H.POP: Payload(data=base64.b64encode(bytes(pop))),
               H.ARG_KEYS: Payload(data=b"amount")}
    if approvals is not None:
        headers[H.APPROVALS] = Payload(data=approvals)
    start = activity_task_pb2.Start()
    for name, payload in headers.items():
        start.header_fields[name].CopyFrom(payload)
    return ExecuteActivityInput(fn=transfer, args=[amount], executor=None,
                                headers=start.header_fields)


def info() -> Any:
    return SimpleNamespace(activity_type="transfer", workflow_namespace="default",
                           workflow_id="wf", workflow_run_id="run", activity_id="1", attempt=1,
                           is_local=False, scheduled_time=datetime.now(timezone.utc))


# --------------------------------------------------------------------------- the header


def test_approvals_header_round_trips_in_the_reference_encoding():
    approvals = [approval(A1), approval(A2)]
    raw = H.encode_approvals(approvals)
    # 0.3.3: a UTF-8 JSON list of standard base64 of SignedApproval.to_bytes().
    assert json.loads(raw) == [base64.b64encode(bytes(a.to_bytes())).decode() for a in approvals]
    decoded = H.approvals_of(raw)
    assert decoded is not None
    assert [bytes(a.to_bytes()) for a in decoded] == [bytes(a.to_bytes()) for a in approvals]
    assert H.approvals_of(None) is None and H.approvals_of(b"") is None
    assert H.approvals_of(b"[]") is None


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"x" * (H.MAX_APPROVALS_BYTES + 1), "limit"),
        (b"\xff", "not a JSON list"),
        (b"[" * 5000 + b"]" * 5000, "not a JSON list"),
        (b'{"a": 1}', "list of base64"),
        (b"[1, 2]", "list of base64"),
        (json.dumps(["AAAA"] * (H.MAX_APPROVALS + 1)).encode(), "limit"),
        (json.dumps(["A" * (H.MAX_APPROVAL_BYTES + 4)]).encode(), "limit"),
        (b'["not base64!"]', "does not decode"),
        (json.dumps([base64.b64encode(b"garbage").decode()]).encode(), "does not decode"),
    ],
    ids=["oversized", "not-utf8", "deep-nesting", "object", "numbers", "too-many",
         "item-oversized", "not-base64", "not-an-approval"],
)
def test_malformed_or_oversized_approvals_header_is_refused_before_decoding(raw, fragment):
    with pytest.raises(InvalidApproval) as info:
        H.approvals_of(raw)
    assert fragment in str(info.value)
    assert info.value.type == "TENUO_APPROVAL_INVALID"


# --------------------------------------------------------------------------- the verifier


def test_an_unauthenticated_sender_never_gets_the_header_decoded():
    # A PoP by the wrong key with an oversized approvals header: the PoP denial,
    # because approvals are read only once tenuo_core reached the gate.
    with pytest.raises(PopVerificationError):
        verifier().check(call(approvals=b"[" * H.MAX_APPROVALS_BYTES, pop_key=A1), info(),
                         "transfer")


def test_a_call_the_warrant_refuses_is_refused_before_the_gate():
    # amount 500 is outside Range(0, 100): denied as such, the handler never asked.
    with pytest.raises(TemporalConstraintViolation):
        verifier(approval_handler=lambda request: None).check(call(500), info(), "transfer")


@pytest.mark.parametrize(
    ("approvals", "expected"),
    [
        (None, ApprovalRequired),
        ([A1], InsufficientApprovals),
        ([A1, A1], InvalidApproval),
        ([A1, HOLDER], InvalidApproval),
    ],
)
def test_verifier_classifies_approval_denials(approvals, expected):
    raw = None if approvals is None else H.encode_approvals([approval(k) for k in approvals])
    with pytest.raises(expected) as error:
        verifier().check(call(approvals=raw), info(), "transfer")
    assert type(error.value) is expected


def test_two_of_two_allowed_and_a_handler_is_left_to_the_async_path():
    raw = H.encode_approvals([approval(A1), approval(A2)])
    context, args, _ = verifier().check(call(approvals=raw), info(), "transfer")
    assert context is not None and args == {"amount": 5}
    with pytest.raises(ApprovalPending) as pending:
        verifier(approval_handler=lambda request: None).check(call(), info(), "transfer")
    assert pending.value.call.tool == "transfer"


async def test_handler_results_are_judged_by_tenuo_core():
    def handler(request: Any) -> Any:
        assert request.request_hash == bytes(tenuo_core.py_compute_request_hash(
            WARRANT.id, "transfer", {"amount": 5}, WARRANT.authorized_holder))
        return [approval(A1), approval(A2)]

    checker = verifier(approval_handler=handler)
    with pytest.raises(ApprovalPending) as pending:
        checker.check(call(), info(), "transfer")
    context, args, _ = await checker.approve(pending.value)
    assert context is not None and args == {"amount": 5}

    wrong = verifier(approval_handler=lambda request: "yes")
    with pytest.raises(ApprovalPending) as pending:
        wrong.check(call(), info(), "transfer")
    with pytest.raises(InvalidApproval, match="must return a SignedApproval"):
        await wrong.approve(pending.value)


def test_clearance_below_the_requirement_is_its_own_denial():
    raw = H.encode_approvals([approval(A1), approval(A2)])
    strict = verifier(clearance_requirements={"trans*": tenuo_core.Clearance.PRIVILEGED})
    with pytest.raises(ClearanceInsufficient) as error:
        strict.check(call(approvals=raw), info(), "transfer")
    assert isinstance(error.value, ToolNotAuthorized)
    at = verifier(clearance_requirements={"transfer": tenuo_core.Clearance.INTERNAL})
    assert at.check(call(approvals=raw), info(), "transfer")[0] is not None


# --------------------------------------------------------------------------- config and types


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"approval_handler": "not callable"}, "approval_handler must be callable"),
        ({"clearance_requirements": {"*a*": tenuo_core.Clearance.INTERNAL}},
         "clearance_requirements['*a*']"),
        ({"clearance_requirements": {"read": 3}}, "tenuo_core.Clearance"),
        ({"clearance_requirements": ["read"]}, "must map"),
    ],
)
def test_bad_approval_and_clearance_config_is_refused(options, fragment):
    with pytest.raises(ResolverConfigError) as error:
        TenuoPluginConfig(trusted_roots=[ROOT.public_key], **options)
    assert fragment in str(error.value)


def test_approval_denials_have_stable_wire_types():
    assert {ApprovalRequired.type, InsufficientApprovals.type, InvalidApproval.type,
            ClearanceInsufficient.type} == {
        "TENUO_APPROVAL_REQUIRED", "TENUO_INSUFFICIENT_APPROVALS", "TENUO_APPROVAL_INVALID",
        "TENUO_CLEARANCE_INSUFFICIENT"}
    for cls in (ApprovalRequired, InsufficientApprovals, InvalidApproval, ClearanceInsufficient):
        assert ERROR_TYPES[cls.type] is cls
    assert issubclass(InsufficientApprovals, ApprovalRequired)
    assert issubclass(InvalidApproval, ApprovalRequired)


# --------------------------------------------------------------------------- Nexus


NEXUS_TOOL = "nexus:payments:Payments:transfer"
NEXUS_WARRANT = tenuo_core.Warrant.issue(
    keypair=ROOT, capabilities={NEXUS_TOOL: {"amount": tenuo_core.Range(0, 100)}},
    ttl_seconds=600, holder=HOLDER.public_key, required_approvers=[A1.public_key, A2.public_key],
    min_approvals=2, approval_gates={NEXUS_TOOL: None})


def nexus_approval(key: Any) -> Any:
    digest = tenuo_core.py_compute_request_hash(NEXUS_WARRANT.id, NEXUS_TOOL, {"amount": 5},
                                                NEXUS_WARRANT.authorized_holder)
    now = int(time.time())
    return tenuo_core.SignedApproval.create(tenuo_core.ApprovalPayload(
        request_hash=digest, nonce=os.urandom(16), external_id="", approved_at=now,
        expires_at=now + 300), key)


@pytest.mark.parametrize("signer", ["ours", "stock"])
@pytest.mark.parametrize(
    ("keys", "expected"),
    [((), ApprovalRequired), ((A1,), InsufficientApprovals), ((A1, A2), None)],
)
def test_nexus_start_carries_approvals_in_the_reference_encoding(signer, keys, expected):
    approvals = [nexus_approval(k) for k in keys] or None
    make = stock.tenuo_nexus_headers if signer == "stock" else tenuo_nexus_headers
    sent = make(NEXUS_WARRANT, "agent1", HOLDER, endpoint="payments", operation="transfer",
                service="Payments", input={"amount": 5}, approvals=approvals)
    if approvals:
        assert decode_nexus_headers(sent)[H.APPROVALS] == H.encode_approvals(approvals)
    check = NexusCheck(TenuoPluginConfig(trusted_roots=[ROOT.public_key],
                                         nexus_endpoint="payments"))
    if expected is None:
        assert check.check(sent, "Payments", "transfer", {"amount": 5}) is not None
    else:
        with pytest.raises(expected) as error:
            check.check(sent, "Payments", "transfer", {"amount": 5})
        assert type(error.value) is expected
