"""Nexus operations under Tenuo, on a real dev server (experimental, as Nexus is upstream).

Each test creates its own endpoint with ``temporal operator nexus endpoint
create`` pointing at a handler worker's task queue, runs a caller workflow on
another worker and client, and reads what the handler body did (``CALLS``).

* Ours on both sides: the allowed call runs; a tool the warrant does not grant,
  an input field outside its constraint, a PoP with one bit flipped, a missing
  PoP, a warrant from an untrusted root and a call without a warrant are each
  refused with a Nexus ``HandlerError`` of type ``UNAUTHORIZED`` before the
  handler body runs.
* Interop with the stock 0.3.3 plugin, both ways: a stock caller
  (``tenuo_execute_nexus_operation``) reaches our handler, ours reaches a stock
  handler (``TenuoPluginConfig(nexus_endpoint=...)``); allowed and denied.
* Replay: the history of a workflow that called a Nexus operation replays
  under our plugin's ``Replayer`` without signing differently or failing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tenuo.temporal as stock
import tenuo_core
from temporalio.client import Client
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.worker import (
    ExecuteNexusOperationStartInput,
    NexusOperationInboundInterceptor,
    Replayer,
    Worker,
)
from temporalio.worker import Interceptor as WorkerInterceptor
from tenuo.temporal_plugin import TenuoTemporalPlugin as StockPlugin

import tenuo_temporal as ours
from integration import _nexus_workflows as wf
from integration.support.temporal import create_nexus_endpoint
from tenuo_keys import StaticKeyResolver
from tenuo_temporal import nexus_tool_name

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.generate()  # the issuer every handler trusts
STRANGER = tenuo_core.SigningKey.generate()  # an issuer no handler trusts
HOLDER = tenuo_core.SigningKey.generate()  # the warrants' holder, served as "agent1"
DELEGATOR = tenuo_core.SigningKey.generate()  # holds a root warrant and attenuates it
KEYS = {"agent1": HOLDER}


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


def transfer_caps(endpoint: str, most: int) -> dict[str, Any]:
    """``transfer`` on ``endpoint``'s Payments: accounts ``acct-*``, amounts up to ``most``."""
    tool = nexus_tool_name(endpoint, "transfer", service="Payments")
    return {tool: {"account": tenuo_core.Pattern("acct-*"),
                   "amount": tenuo_core.Range(max=most)}}


def mint(endpoint: str, *, issuer: Any = ROOT) -> Any:
    """``transfer_caps(endpoint, 100)``, issued to HOLDER."""
    return tenuo_core.Warrant.issue(keypair=issuer, ttl_seconds=600, holder=HOLDER.public_key,
                                    capabilities=transfer_caps(endpoint, 100))


def delegated(endpoint: str) -> list[Any]:
    """``[root, leaf]``: ROOT -> DELEGATOR (amounts up to 100) -> HOLDER (up to 10)."""
    root = tenuo_core.Warrant.issue(keypair=ROOT, ttl_seconds=600,
                                    holder=DELEGATOR.public_key,
                                    capabilities=transfer_caps(endpoint, 100))
    leaf = root.attenuate(transfer_caps(endpoint, 10), signing_key=DELEGATOR, ttl_seconds=300,
                          holder=HOLDER.public_key)
    return [root, leaf]


class NexusTamper(ClientInterceptor, WorkerInterceptor):
    """Rewrites a Nexus start's Tenuo headers before the verifier sees them.

    ``flip`` flips one bit of the PoP; ``drop`` removes the PoP.
    """

    def __init__(self) -> None:
        self.mode: str | None = None

    def intercept_nexus_operation(
        self, next: NexusOperationInboundInterceptor
    ) -> NexusOperationInboundInterceptor:
        tamper = self

        class Tamper(NexusOperationInboundInterceptor):
            async def execute_nexus_operation_start(
                self, input: ExecuteNexusOperationStartInput
            ) -> Any:
                headers = dict(input.ctx.headers)
                if tamper.mode == "drop":
                    headers.pop("x-tenuo-pop")
                elif tamper.mode == "flip":
                    # The Nexus value is base64 of the activity header's bytes (base64 of the PoP).
                    pop = bytearray(base64.b64decode(base64.b64decode(headers["x-tenuo-pop"])))
                    pop[0] ^= 1
                    headers["x-tenuo-pop"] = base64.b64encode(
                        base64.b64encode(bytes(pop))).decode()
                input.ctx = dataclasses.replace(input.ctx, headers=headers)
                return await super().execute_nexus_operation_start(input)

        return Tamper(next)


async def connect(env: Any, plugin: Any, interceptors: list[Any] | None = None) -> Client:
    """A client of its own: each plugin instance configures exactly one worker."""
    return await Client.connect(env.client.service_client.config.target_host,
                                namespace=env.client.namespace, plugins=[plugin],
                                interceptors=interceptors or [])


def our_handler_plugin(endpoint: str, **config: Any) -> ours.TenuoTemporalPlugin:
    return ours.TenuoTemporalPlugin(ours.TenuoPluginConfig(
        trusted_roots=[ROOT.public_key], nexus_endpoint=endpoint, **config))


def our_caller_plugin() -> ours.TenuoTemporalPlugin:
    return ours.TenuoTemporalPlugin(ours.TenuoPluginConfig(key_resolver=StaticKeyResolver(KEYS)))


def stock_handler_plugin(endpoint: str) -> StockPlugin:
    # 0.3.3 refuses a verify-only config: a handler worker gets a throwaway key.
    return StockPlugin(stock.TenuoPluginConfig(
        signing_key=tenuo_core.SigningKey.generate(), trusted_roots=[ROOT.public_key],
        nexus_endpoint=endpoint))


def stock_caller_plugin() -> StockPlugin:
    return StockPlugin(stock.TenuoPluginConfig(key_resolver=StaticKeyResolver(KEYS),
                                               trusted_roots=[ROOT.public_key]))


@contextlib.asynccontextmanager
async def handler(env: Any, endpoint: str, plugin: Any,
                  interceptors: list[Any] | None = None) -> AsyncIterator[None]:
    """A Nexus handler worker, and ``endpoint`` routed to its task queue."""
    queue = uid("nexus-handler")
    create_nexus_endpoint(env.client.service_client.config.target_host,
                          env.client.namespace, endpoint, queue)
    client = await connect(env, plugin, interceptors)
    async with Worker(client, task_queue=queue, nexus_service_handlers=[wf.PaymentsHandler()]):
        yield


class Caller:
    """A workflow worker calling Payments, signing with one plugin."""

    def __init__(self, client: Client, side: str, queue: str) -> None:
        self.client, self.side, self.queue = client, side, queue
        self.workflow = wf.StockCallPayments if side == "stock" else wf.CallPayments

    async def call(self, endpoint: str, operation: str, account: str, amount: int, *,
                   warrant: Any = None, chain: list[Any] | None = None,
                   workflow_id: str | None = None) -> str:
        """Run one call under ``warrant`` (default: ``mint(endpoint)``; None via ``unsigned``).

        ``chain`` is root-first, ending with the warrant used (its last link).
        """
        args = [endpoint, operation, account, amount]
        if chain is not None:
            warrant = chain[-1]
        common: dict[str, Any] = {
            "workflow_id": workflow_id or uid(f"{self.side}-nexus"),
            "warrant": warrant if warrant is not None else mint(endpoint),
            "key_id": "agent1", "args": args, "task_queue": self.queue}
        if self.side == "stock":
            result: str = await stock.execute_workflow_authorized(
                client=self.client, workflow_run_fn=self.workflow.run, warrant_chain=chain,
                **common)
        else:
            result = await ours.execute_workflow_authorized(
                self.client, self.workflow.run, chain=chain, **common)
        return result

    async def unsigned(self, endpoint: str) -> str:
        """A call from a workflow started without a warrant."""
        result: str = await self.client.execute_workflow(
            self.workflow.run, args=[endpoint, "transfer", "acct-1", 5],
            id=uid("unsigned-nexus"), task_queue=self.queue)
        return result


@contextlib.asynccontextmanager
async def caller(env: Any, side: str) -> AsyncIterator[Caller]:
    plugin = stock_caller_plugin() if side == "stock" else our_caller_plugin()
    client = await connect(env, plugin)
    queue = uid(f"{side}-nexus-caller")
    workflow = wf.StockCallPayments if side == "stock" else wf.CallPayments
    async with Worker(client, task_queue=queue, workflows=[workflow]):
        yield Caller(client, side, queue)


def ran() -> list[tuple[str, str, int]]:
    found = list(wf.CALLS)
    wf.CALLS.clear()
    return found


def assert_unauthorized(outcome: str, wire_type: str) -> None:
    """A Nexus ``HandlerError`` of type ``UNAUTHORIZED`` naming our denial's wire type."""
    assert outcome.startswith("denied: "), outcome
    assert "UNAUTHORIZED" in outcome, outcome
    assert wire_type in outcome, outcome


# --------------------------------------------------------------------------- ours, both sides


async def test_ours_allows_and_denies(temporal_env: Any) -> None:
    """The allowed call runs; every refusal is UNAUTHORIZED and the body never runs."""
    endpoint = uid("payments")
    tamper = NexusTamper()
    ran()
    async with handler(temporal_env, endpoint, our_handler_plugin(endpoint),
                       interceptors=[tamper]), caller(temporal_env, "ours") as c:
        assert await c.call(endpoint, "transfer", "acct-1", 40) == "sent 40 to acct-1"
        assert ran() == [("transfer", "acct-1", 40)]

        assert_unauthorized(await c.call(endpoint, "refund", "acct-1", 40),
                            "TENUO_TOOL_NOT_AUTHORIZED")
        assert_unauthorized(await c.call(endpoint, "transfer", "acct-1", 500),
                            "TENUO_CONSTRAINT_VIOLATION")
        assert_unauthorized(await c.call(endpoint, "transfer", "other-1", 40),
                            "TENUO_CONSTRAINT_VIOLATION")
        assert_unauthorized(await c.call(endpoint, "transfer", "acct-1", 40,
                                         warrant=mint(endpoint, issuer=STRANGER)),
                            "TENUO_CHAIN_INVALID")
        # A warrant for another endpoint's tool: the handler checks the tool it serves.
        assert_unauthorized(await c.call(endpoint, "transfer", "acct-1", 40,
                                         warrant=mint(uid("elsewhere"))),
                            "TENUO_TOOL_NOT_AUTHORIZED")
        assert_unauthorized(await c.unsigned(endpoint), "TENUO_WARRANT_MISSING")
        tamper.mode = "flip"
        assert_unauthorized(await c.call(endpoint, "transfer", "acct-1", 40),
                            "TENUO_POP_INVALID")
        tamper.mode = "drop"
        assert_unauthorized(await c.call(endpoint, "transfer", "acct-1", 40),
                            "TENUO_POP_INVALID")
        tamper.mode = None
        assert ran() == []
        assert await c.call(endpoint, "transfer", "acct-2", 100) == "sent 100 to acct-2"
        assert ran() == [("transfer", "acct-2", 100)]


async def test_shadow_mode_does_not_shadow_nexus(temporal_env: Any) -> None:
    """``dry_run=True`` shadows activities only: a Nexus start is still refused."""
    endpoint = uid("payments")
    ran()
    async with handler(temporal_env, endpoint, our_handler_plugin(endpoint, dry_run=True)), \
            caller(temporal_env, "ours") as c:
        assert_unauthorized(await c.call(endpoint, "transfer", "acct-1", 500),
                            "TENUO_CONSTRAINT_VIOLATION")
        assert ran() == []
        assert await c.call(endpoint, "transfer", "acct-1", 40) == "sent 40 to acct-1"
        assert ran() == [("transfer", "acct-1", 40)]


async def test_headers_are_the_reference_wire_format(temporal_env: Any) -> None:
    """What our caller sends, read back from the handler's request."""
    endpoint = uid("payments")
    seen: list[dict[str, str]] = []

    class Record(ClientInterceptor, WorkerInterceptor):
        def intercept_nexus_operation(
            self, next: NexusOperationInboundInterceptor
        ) -> NexusOperationInboundInterceptor:
            class Inbound(NexusOperationInboundInterceptor):
                async def execute_nexus_operation_start(
                    self, input: ExecuteNexusOperationStartInput
                ) -> Any:
                    seen.append(dict(input.ctx.headers))
                    return await super().execute_nexus_operation_start(input)
            return Inbound(next)

    async with handler(temporal_env, endpoint, our_handler_plugin(endpoint),
                       interceptors=[Record()]), caller(temporal_env, "ours") as c:
        assert await c.call(endpoint, "transfer", "acct-1", 7) == "sent 7 to acct-1"
    ran()
    (headers,) = seen
    tenuo = {k: v for k, v in headers.items() if k.startswith("x-tenuo-")}
    assert tenuo["x-tenuo-nexus-header-encoding"] == "base64-v1"
    assert set(tenuo) == {"x-tenuo-nexus-header-encoding", "x-tenuo-warrant",
                          "x-tenuo-compressed", "x-tenuo-wire-format", "x-tenuo-key-id",
                          "x-tenuo-tool-name", "x-tenuo-arg-keys", "x-tenuo-pop"}
    raw = {k: binascii.a2b_base64(v) for k, v in tenuo.items()
           if k != "x-tenuo-nexus-header-encoding"}
    assert raw["x-tenuo-tool-name"] == f"nexus:{endpoint}:Payments:transfer".encode()
    assert raw["x-tenuo-arg-keys"] == b"account,amount"
    assert raw["x-tenuo-key-id"] == b"agent1"
    assert len(base64.b64decode(raw["x-tenuo-pop"])) == 64


@pytest.mark.parametrize("configured", [None, "elsewhere"])
async def test_handler_endpoint_misconfigured_refuses(temporal_env: Any,
                                                      configured: str | None) -> None:
    """A handler worker with no endpoint, or another endpoint's name, fails closed."""
    endpoint = uid("payments")
    plugin = ours.TenuoTemporalPlugin(ours.TenuoPluginConfig(
        trusted_roots=[ROOT.public_key], nexus_endpoint=configured))
    async with handler(temporal_env, endpoint, plugin), caller(temporal_env, "ours") as c:
        outcome = await c.call(endpoint, "transfer", "acct-1", 5)
    assert_unauthorized(outcome, "TENUO_CHAIN_INVALID")
    if configured is None:
        assert "nexus_endpoint" in outcome
    else:  # Temporal reports the endpoint the request came through
        assert f"came through endpoint {endpoint!r}" in outcome, outcome
    assert ran() == []


# --------------------------------------------------------------------------- interop


@pytest.mark.parametrize(("caller_side", "handler_side"), [("stock", "ours"), ("ours", "stock")])
async def test_interop_with_stock(temporal_env: Any, caller_side: str, handler_side: str) -> None:
    """Stock caller → our handler and our caller → stock handler: allowed and denied."""
    endpoint = uid("payments")
    plugin = (our_handler_plugin(endpoint) if handler_side == "ours"
              else stock_handler_plugin(endpoint))
    ran()
    async with handler(temporal_env, endpoint, plugin), caller(temporal_env, caller_side) as c:
        assert await c.call(endpoint, "transfer", "acct-1", 40) == "sent 40 to acct-1"
        assert ran() == [("transfer", "acct-1", 40)]
        over = await c.call(endpoint, "transfer", "acct-1", 500)
        not_granted = await c.call(endpoint, "refund", "acct-1", 5)
        untrusted = await c.call(endpoint, "transfer", "acct-1", 5,
                                 warrant=mint(endpoint, issuer=STRANGER))
        assert ran() == []
    for outcome in (over, not_granted, untrusted):
        assert outcome.startswith("denied: "), outcome
        assert "UNAUTHORIZED" in outcome, outcome
    if handler_side == "ours":
        assert "TENUO_CONSTRAINT_VIOLATION" in over
        assert "TENUO_TOOL_NOT_AUTHORIZED" in not_granted
        assert "TENUO_CHAIN_INVALID" in untrusted
    else:  # the stock handler's own words for the same three refusals
        assert "ConstraintViolation" in over
        assert "ToolNotAuthorized" in not_granted
        assert "UntrustedRoot" in untrusted


@pytest.mark.parametrize(("caller_side", "handler_side"),
                         [("ours", "ours"), ("stock", "ours"), ("ours", "stock")])
async def test_delegated_chain(temporal_env: Any, caller_side: str, handler_side: str) -> None:
    """A root -> leaf chain crosses in ``x-tenuo-warrant-chain``; the leaf's range holds."""
    endpoint = uid("payments")
    plugin = (our_handler_plugin(endpoint) if handler_side == "ours"
              else stock_handler_plugin(endpoint))
    ran()
    async with handler(temporal_env, endpoint, plugin), caller(temporal_env, caller_side) as c:
        assert await c.call(endpoint, "transfer", "acct-1", 5,
                            chain=delegated(endpoint)) == "sent 5 to acct-1"
        assert ran() == [("transfer", "acct-1", 5)]
        # Within the root's 100, beyond the leaf's 10.
        outcome = await c.call(endpoint, "transfer", "acct-1", 50, chain=delegated(endpoint))
        assert ran() == []
    assert outcome.startswith("denied: ") and "UNAUTHORIZED" in outcome, outcome
    assert ("TENUO_CONSTRAINT_VIOLATION" if handler_side == "ours"
            else "ConstraintViolation") in outcome, outcome


# --------------------------------------------------------------------------- replay


async def test_replay_of_a_nexus_call(temporal_env: Any) -> None:
    """A history that started a Nexus operation replays under our plugin, signing nothing new."""
    endpoint = uid("payments")
    workflow_id = uid("replay-nexus")
    async with handler(temporal_env, endpoint, our_handler_plugin(endpoint)), \
            caller(temporal_env, "ours") as c:
        assert await c.call(endpoint, "transfer", "acct-1", 9,
                            workflow_id=workflow_id) == "sent 9 to acct-1"
        history = await c.client.get_workflow_handle(workflow_id).fetch_history()
    ran()
    scheduled = [e.nexus_operation_scheduled_event_attributes for e in history.events
                 if e.HasField("nexus_operation_scheduled_event_attributes")]
    assert len(scheduled) == 1
    assert "x-tenuo-pop" in scheduled[0].nexus_header
    for key_resolver in (StaticKeyResolver(KEYS), StaticKeyResolver({})):
        # With the key, and with none: a replayed command is never sent, so needs no key.
        replayer = Replayer(workflows=[wf.CallPayments], plugins=[ours.TenuoTemporalPlugin(
            ours.TenuoPluginConfig(key_resolver=key_resolver))])
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, result.replay_failure


async def test_the_reference_helpers_and_a_warrant_for_one_call(temporal_env: Any) -> None:
    """``tenuo_execute_nexus_operation`` as code written for 0.3.3 calls it.

    The workflow runs under a warrant for another endpoint: through the helper
    alone the call is refused, and with ``warrant=`` (this endpoint's) for the
    one call it runs; the workflow's own warrant is unchanged.
    """
    endpoint = uid("payments")
    ran()
    async with handler(temporal_env, endpoint, our_handler_plugin(endpoint)):
        client = await connect(temporal_env, our_caller_plugin())
        queue = uid("helper-nexus-caller")
        async with Worker(client, task_queue=queue, workflows=[wf.HelperCallPayments]):
            async def call(per_call: str | None) -> str:
                result: str = await ours.execute_workflow_authorized(
                    client, wf.HelperCallPayments.run, workflow_id=uid("helper-nexus"),
                    warrant=mint(uid("elsewhere")), key_id="agent1",
                    args=[endpoint, "transfer", "acct-1", 40, per_call], task_queue=queue)
                return result

            assert_unauthorized(await call(None), "TENUO_TOOL_NOT_AUTHORIZED")
            assert await call(mint(endpoint).to_base64()) == "sent 40 to acct-1"
    assert ran() == [("transfer", "acct-1", 40)]
