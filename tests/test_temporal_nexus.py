"""The pure parts of Nexus support: tool names, input fields, headers, the handler check.

Byte-level interop with the stock 0.3.3 helpers is checked here too: headers
the stock ``tenuo_nexus_headers`` builds pass our check, and ours pass the
stock ``verify_nexus_operation``.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import nexusrpc
import pytest
import tenuo.temporal as stock
import tenuo_core

from tenuo_temporal import (
    TenuoPluginConfig,
    nexus_tool_name,
    tenuo_nexus_headers,
    verify_nexus_operation,
)
from tenuo_temporal._nexus import (
    ENCODING_HEADER,
    TOOL_HEADER,
    NexusCheck,
    decode_nexus_headers,
    nexus_input_args,
    unauthorized,
)
from tenuo_temporal.errors import (
    ChainValidationError,
    HeaderError,
    PopVerificationError,
    TemporalConstraintViolation,
    ToolNotAuthorized,
    WarrantMissing,
)

ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
MALLORY = tenuo_core.SigningKey.generate()
TOOL = "nexus:payments:Payments:transfer"


@dataclass
class Transfer:
    account: str
    amount: int


@dataclass
class Wrapped:
    transfer: Transfer
    tags: tuple[str, ...]


@nexusrpc.service(name="Payments")
class Payments:
    transfer: nexusrpc.Operation[Transfer, str]


def warrant(tool: str = TOOL) -> Any:
    return tenuo_core.Warrant.issue(
        keypair=ROOT, ttl_seconds=600, holder=HOLDER.public_key,
        capabilities={tool: {"account": tenuo_core.Pattern("acct-*"),
                             "amount": tenuo_core.Range(max=100)}})


WARRANT = warrant()


def ours(**extra: Any) -> TenuoPluginConfig:
    return TenuoPluginConfig(trusted_roots=[ROOT.public_key], nexus_endpoint="payments", **extra)


def headers(input: Any, *, key: Any = HOLDER, operation: str = "transfer") -> dict[str, str]:
    return tenuo_nexus_headers(WARRANT, "agent1", key, endpoint="payments",
                               operation=operation, service="Payments", input=input)


def check(config: TenuoPluginConfig, sent: dict[str, str], input: Any,
          operation: str = "transfer") -> Any:
    return NexusCheck(config).check(sent, "Payments", operation, input)


# --------------------------------------------------------------------------- names and fields


def test_tool_name_matches_the_reference() -> None:
    assert nexus_tool_name("payments", "transfer", service="Payments") == TOOL
    assert nexus_tool_name("payments", Payments.transfer, service="Payments") == TOOL
    assert nexus_tool_name("payments", "transfer") == "nexus:payments:transfer"
    for case in (("payments", "transfer"), ("payments", Payments.transfer)):
        assert nexus_tool_name(*case, service="Payments") == stock.nexus_tool_name(
            *case, service="Payments")


def test_input_args_are_top_level_fields() -> None:
    assert nexus_input_args(Transfer("acct-1", 5)) == {"account": "acct-1", "amount": 5}
    assert nexus_input_args({"account": "acct-1", "n": [1, 2]}) == {"account": "acct-1",
                                                                    "n": [1, 2]}
    assert nexus_input_args("acct-1") == {"input": "acct-1"}
    assert nexus_input_args(Wrapped(Transfer("a", 1), ("x",))) == {
        "transfer": {"account": "a", "amount": 1}, "tags": ["x"]}
    with pytest.raises(TemporalConstraintViolation):
        nexus_input_args({"when": object()})


# --------------------------------------------------------------------------- headers


def test_headers_decode_to_the_activity_bytes() -> None:
    sent = headers(Transfer("acct-1", 5))
    assert sent[ENCODING_HEADER] == "base64-v1"
    raw = decode_nexus_headers(sent)
    assert raw[TOOL_HEADER] == TOOL.encode()
    assert raw["x-tenuo-arg-keys"] == b"account,amount"
    assert len(base64.b64decode(raw["x-tenuo-pop"])) == 64
    assert decode_nexus_headers({"traceparent": "x"}) == {}


@pytest.mark.parametrize("change", ["no-marker", "not-base64", "oversized"])
def test_malformed_headers_are_refused(change: str) -> None:
    sent = headers(Transfer("acct-1", 5))
    if change == "no-marker":
        del sent[ENCODING_HEADER]
    elif change == "not-base64":
        sent["x-tenuo-pop"] = "***"
    else:
        sent["x-tenuo-warrant"] = "A" * (400 * 1024)
    with pytest.raises(HeaderError):
        decode_nexus_headers(sent)
    with pytest.raises(HeaderError):
        check(ours(), sent, Transfer("acct-1", 5))


def test_key_id_must_be_a_name() -> None:
    with pytest.raises(TypeError):
        tenuo_nexus_headers(warrant(), HOLDER, HOLDER, endpoint="payments",  # type: ignore[arg-type]
                            operation="transfer", input={})


# --------------------------------------------------------------------------- the handler check


def test_check_allows_the_signed_call() -> None:
    context = check(ours(), headers(Transfer("acct-1", 5)), Transfer("acct-1", 5))
    assert context.key_id == "agent1"


@pytest.mark.parametrize(("sent_input", "received", "operation", "key", "error"), [
    (Transfer("acct-1", 500), Transfer("acct-1", 500), "transfer", HOLDER,
     TemporalConstraintViolation),
    (Transfer("acct-1", 5), Transfer("acct-1", 6), "transfer", HOLDER, PopVerificationError),
    (Transfer("acct-1", 5), {"account": "acct-1"}, "transfer", HOLDER,
     TemporalConstraintViolation),
    (Transfer("acct-1", 5), Transfer("acct-1", 5), "refund", HOLDER, ToolNotAuthorized),
    (Transfer("acct-1", 5), Transfer("acct-1", 5), "transfer", MALLORY, PopVerificationError),
])
def test_check_denies(sent_input: Any, received: Any, operation: str, key: Any,
                      error: type[Exception]) -> None:
    sent = headers(sent_input, key=key, operation=operation)
    with pytest.raises(error) as info:
        check(ours(), sent, received, operation)
    assert info.value.tool == nexus_tool_name("payments", operation, service="Payments")  # type: ignore[attr-defined]


def test_check_refuses_a_tool_header_for_another_operation() -> None:
    sent = headers(Transfer("acct-1", 5))
    # The handler serves ``refund``; the caller signed ``transfer``.
    with pytest.raises(PopVerificationError, match="another endpoint, service or operation"):
        check(ours(), sent, Transfer("acct-1", 5), "refund")
    del sent["x-tenuo-tool-name"]
    with pytest.raises(PopVerificationError, match="x-tenuo-tool-name"):
        check(ours(), sent, Transfer("acct-1", 5))


def test_missing_warrant_and_missing_endpoint() -> None:
    with pytest.raises(WarrantMissing):
        check(ours(), {}, Transfer("acct-1", 5))
    assert check(ours(require_warrant=False), {}, Transfer("acct-1", 5)) is None
    config = TenuoPluginConfig(trusted_roots=[ROOT.public_key])
    with pytest.raises(ChainValidationError, match="nexus_endpoint"):
        check(config, headers(Transfer("acct-1", 5)), Transfer("acct-1", 5))


def test_verify_nexus_operation_raises_handler_error() -> None:
    sent = headers(Transfer("acct-1", 500))
    ctx = SimpleNamespace(headers=sent, service="Payments", operation="transfer")
    with pytest.raises(TemporalConstraintViolation):
        verify_nexus_operation(ctx, Transfer("acct-1", 500), ours())
    with pytest.raises(nexusrpc.HandlerError) as info:
        verify_nexus_operation(ctx, Transfer("acct-1", 500), ours(), raise_nexus_error=True)
    assert info.value.type == nexusrpc.HandlerErrorType.UNAUTHORIZED
    assert info.value.retryable is False
    assert str(info.value).startswith("TENUO_CONSTRAINT_VIOLATION: ")
    ok = SimpleNamespace(headers=headers(Transfer("acct-1", 5)), service="Payments",
                         operation="transfer")
    found = verify_nexus_operation(ok, Transfer("acct-1", 5), ours())
    assert found.id == WARRANT.id
    assert unauthorized(WarrantMissing("x")).type == nexusrpc.HandlerErrorType.UNAUTHORIZED


# --------------------------------------------------------------------------- stock interop


def test_stock_headers_pass_our_check() -> None:
    sent = stock.tenuo_nexus_headers(warrant(), "agent1", HOLDER, endpoint="payments",
                                     operation="transfer", service="Payments",
                                     input=Transfer("acct-1", 5), timestamp=int(time.time()))
    assert check(ours(), sent, Transfer("acct-1", 5)) is not None
    with pytest.raises(TemporalConstraintViolation):
        check(ours(), stock.tenuo_nexus_headers(
            warrant(), "agent1", HOLDER, endpoint="payments", operation="transfer",
            service="Payments", input=Transfer("acct-1", 500)), Transfer("acct-1", 500))


def test_our_headers_pass_the_stock_check() -> None:
    config = stock.TenuoPluginConfig(signing_key=tenuo_core.SigningKey.generate(),
                                     trusted_roots=[ROOT.public_key])
    ctx = SimpleNamespace(headers=headers(Transfer("acct-1", 5)), service="Payments",
                          operation="transfer", request_id="r1")
    found = stock.verify_nexus_operation(ctx, Transfer("acct-1", 5), config,
                                         endpoint="payments")
    assert bytes(found.to_bytes()) == bytes(decode_nexus_context(ctx.headers))
    bad = SimpleNamespace(headers=headers(Transfer("acct-1", 500)), service="Payments",
                          operation="transfer", request_id="r2")
    with pytest.raises(Exception, match="amount"):
        stock.verify_nexus_operation(bad, Transfer("acct-1", 500), config, endpoint="payments")


def decode_nexus_context(sent: dict[str, str]) -> bytes:
    context = check(ours(), sent, Transfer("acct-1", 5))
    return bytes(context.warrant.to_bytes())
