"""Attacks on the authorization boundary that our first matrix missed (issue 14).

Each test runs on the session's real Temporal dev server and failed on the
code before the fix:

* junk headers from an unauthenticated sender used to stay in the activity
  worker's memory (3 GiB from 1,024 activities);
* pydantic fields that the signed view left out (``exclude=True``, a masked
  ``SecretStr``) could be changed in transit;
* made-up key ids were kept warm: the backend was read for them forever;
* a copied PoP ran on a retry that came after its replay claim expired;
* the plugin's own local activities signed and minted for any warrant and key
  id workflow code named, and the run state handed workflow code the resolver;
* ``require_workflow_binding`` refuses warrants not bound to one workflow.

Integers past 2**53, arguments tenuo_core cannot sign and trailing header bytes
are cases of the adversarial matrix (``test_adversarial.py``).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import gzip
import time
import uuid
from pathlib import Path
from typing import Any

import pydantic
import pytest
import tenuo_core
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import (
    ExecuteActivityInput,
    StartActivityInput,
    Worker,
)

from integration import _boundary_workflows as bw
from integration import _plugin_workflows as pw
from integration.support.copy_headers import Deliveries, OutboundHeaders
from integration.support.procs import REPO_ROOT, ManagedProcess, module_argv
from integration.support.temporal_helpers import connect, denial_of, uid, worker
from tenuo_keys import CachePolicy, EnvKeyResolver, LocalSigner, StaticKeyResolver
from tenuo_temporal import (
    AuditEvent,
    InMemoryReplayStore,
    TenuoPluginConfig,
    TenuoTemporalPlugin,
    execute_workflow_authorized,
    start_workflow_authorized,
)
from tenuo_temporal import _headers as H

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.from_bytes(bytes([41]) * 32)
HOLDER = tenuo_core.SigningKey.from_bytes(bytes([42]) * 32)  # tenant A, key id "agent"
TENANT_B = tenuo_core.SigningKey.from_bytes(bytes([43]) * 32)
STRANGER = tenuo_core.SigningKey.from_bytes(bytes([44]) * 32)  # trusted by nobody
Subpath, Wildcard, Exact, Pattern = (tenuo_core.Subpath, tenuo_core.Wildcard, tenuo_core.Exact,
                                     tenuo_core.Pattern)
MiB = 1024 * 1024


def mint(caps: dict[str, Any] | None = None, *, holder: Any = HOLDER, issuer: Any = ROOT,
         ttl: int = 600) -> Any:
    return tenuo_core.Warrant.issue(
        keypair=issuer, capabilities=caps or {"read_file": {"path": Subpath("/data")}},
        ttl_seconds=ttl, holder=holder.public_key)


def plain_client(env: Any, **kwargs: Any) -> Any:
    target = env.client.service_client.config.target_host
    return Client.connect(target, namespace=env.client.namespace, **kwargs)


def ran(wid: str) -> list[tuple[str, tuple[object, ...]]]:
    return [(name, args) for w, name, args in bw.CALLS if w == wid]


# --------------------------------------------------------------------------- 1. memory


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


SELF_SIGNED = bytes(mint(issuer=STRANGER, holder=STRANGER).to_bytes())
SELF_SIGNED_STACK = base64.urlsafe_b64decode(tenuo_core.encode_warrant_stack(
    [tenuo_core.Warrant.from_bytes(SELF_SIGNED)]) + "==")  # raw bytes of a one-link chain
JUNK_BYTES = 200 * 1024


def _junk_headers(input: StartActivityInput) -> dict[str, Payload]:
    """What an unauthenticated sender can send: 200 KiB of junk, three ways, all distinct."""
    from temporalio import workflow

    rng = workflow.random()
    junk = rng.randbytes(JUNK_BYTES)
    kind = rng.randrange(3)
    headers = {H.WIRE_FORMAT: Payload(data=b"2"), H.COMPRESSED: Payload(data=b"1"),
               H.KEY_ID: Payload(data=b"agent1"),
               H.WARRANT: Payload(data=gzip.compress(SELF_SIGNED)),
               H.POP: Payload(data=base64.b64encode(bytes(64))),
               H.ARG_KEYS: Payload(data=b"path")}
    if kind == 0:  # a gzip stream with trailing garbage
        headers[H.WARRANT] = Payload(data=gzip.compress(SELF_SIGNED) + junk)
    elif kind == 1:  # a chain with trailing bytes
        headers[H.CHAIN] = Payload(data=base64.urlsafe_b64encode(SELF_SIGNED_STACK + junk))
    else:  # a long x-tenuo-arg-keys
        headers[H.ARG_KEYS] = Payload(data=",".join(
            f"n{i}x{rng.randrange(10**6)}" for i in range(JUNK_BYTES // 12)).encode())
    return headers


async def test_junk_headers_leave_the_activity_worker_memory_bounded(temporal_env, tmp_path):
    """1,024 activities of 200 KiB junk headers: the activity worker keeps < 50 MiB of them.

    The verify-only activity worker runs in its own process; a rogue worker
    without the plugin schedules on its queue with headers of its choosing
    (a self-signed warrant, an all-zero PoP), while legitimate workflows keep
    running through it.
    """
    queue = uid("memory")
    victim_queue = queue + "-activities"
    target = temporal_env.client.service_client.config.target_host
    log = tmp_path / "victim.log"
    victim = ManagedProcess(
        module_argv("integration._activity_worker_proc", target, temporal_env.client.namespace,
                    victim_queue, base64.b64encode(bytes(ROOT.public_key_bytes())).decode()),
        "activity worker", log, cwd=REPO_ROOT)
    victim.start(lambda: "ready" in log.read_text(), timeout=60)
    assert victim.proc is not None
    pid = victim.proc.pid
    signer = await connect(temporal_env, TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent1": HOLDER})))
    rogue = await plain_client(temporal_env)
    rogue_queue = uid("rogue")

    async def legit(count: int) -> list[str]:
        return list(await asyncio.gather(*(execute_workflow_authorized(
            signer, pw.ReadByNameWorkflow.run, workflow_id=uid("legit"), warrant=mint(),
            key_id="agent1", args=[f"/data/{i}.txt"], task_queue=queue)
            for i in range(count))))

    try:
        async with worker(signer, queue, [pw.ReadByNameWorkflow]), \
                Worker(rogue, task_queue=rogue_queue, workflows=[bw.Flood],
                       interceptors=[OutboundHeaders(_junk_headers)]):
            await legit(20)  # warm: the legitimate context is decoded and kept
            await asyncio.sleep(1)
            before = _rss(pid)
            floods = asyncio.gather(*(rogue.execute_workflow(
                bw.Flood.run, args=[victim_queue, 32], id=uid("flood"), task_queue=rogue_queue)
                for _ in range(32)))
            during = [await legit(5) for _ in range(4)]  # served throughout
            denied = await floods
            await asyncio.sleep(1)
            after = _rss(pid)
            assert await legit(5) == [f"contents of /data/{i}.txt" for i in range(5)]
    finally:
        victim.stop()
    assert sum(denied) == 32 * 32  # every junk activity was denied
    assert all(batch == [f"contents of /data/{i}.txt" for i in range(5)] for batch in during)
    assert after - before <= 50 * MiB, f"RSS grew {(after - before) / MiB:.0f} MiB"


# --------------------------------------------------------------------------- 3. pydantic


async def test_pydantic_fields_the_json_dump_leaves_out_are_bound(temporal_env):
    """``exclude=True`` and ``SecretStr`` fields are signed: changed in transit, they are denied.

    The secret is bound by a digest: it appears in no audit event and no denial.
    """
    events: list[AuditEvent] = []
    deliveries = Deliveries()
    client = await connect(temporal_env, TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent": HOLDER}), trusted_roots=[ROOT.public_key],
        audit_callback=events.append), data_converter=pydantic_data_converter,
        interceptors=[deliveries])
    queue = uid("pydantic")
    warrant = mint({"apply_change": {"request": Wildcard()}})
    secret = "s3cr3t-" + uuid.uuid4().hex

    def flip_force(input: ExecuteActivityInput) -> None:
        input.args = [input.args[0].model_copy(update={"force": True})]

    def swap_token(input: ExecuteActivityInput) -> None:
        input.args = [input.args[0].model_copy(
            update={"token": pydantic.SecretStr("attacker-token")})]

    async with worker(client, queue, bw.WORKFLOWS, bw.ACTIVITIES):
        control = uid("control")
        assert await execute_workflow_authorized(
            client, bw.ApplyChange.run, workflow_id=control, warrant=warrant, key_id="agent",
            args=[bw.ChangeRequest(path="/data/a", token=pydantic.SecretStr(secret))],
            task_queue=queue) == "applied /data/a"
        assert ran(control) == [("apply_change", ("/data/a", False, secret))]
        for plan in (flip_force, swap_token):
            wid = uid(plan.__name__)
            deliveries.plans[wid] = plan
            error = await denial_of(execute_workflow_authorized(
                client, bw.ApplyChange.run, workflow_id=wid, warrant=warrant, key_id="agent",
                args=[bw.ChangeRequest(path=f"/data/{wid}", token=pydantic.SecretStr(secret))],
                task_queue=queue))
            assert error.type == "TENUO_POP_INVALID" and error.non_retryable, error
            assert ran(wid) == []
            assert secret not in str(error)
    assert [e.decision for e in events] == ["allow", "deny", "deny"]
    assert all(secret not in repr(e) and "tenuo-secret-sha256" not in repr(e) for e in events)


# --------------------------------------------------------------------------- 5. key ids


class CountingEnviron(dict):  # type: ignore[type-arg]
    """Environment variables that count every read, as a backend's request log would."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.reads: dict[str, int] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        self.reads[str(key)] = self.reads.get(str(key), 0) + 1
        return super().get(key, default)


async def test_made_up_key_ids_are_never_kept_warm(temporal_env):
    """Workflows naming key ids the backend lacks cost one read each, once, and nothing later.

    The keep-warm task used to re-read every key id any start header named,
    every interval, for 30 minutes.
    """
    environ = CountingEnviron({"BND_AGENT": base64.b64encode(HOLDER.secret_key_bytes()).decode()})
    resolver = EnvKeyResolver("BND_", environ=environ, cache=CachePolicy(
        ttl=1.0, max_staleness=1.0, negative_ttl=0.5))
    plugin = TenuoTemporalPlugin(TenuoPluginConfig(
        key_resolver=resolver, trusted_roots=[ROOT.public_key], preload_all=False))
    client = await plain_client(temporal_env, plugins=[plugin])
    queue = uid("keep-warm")
    made_up = [f"made-up-{uuid.uuid4().hex[:10]}" for _ in range(30)]
    async with worker(client, queue, bw.WORKFLOWS, bw.ACTIVITIES):
        # A real key, used: it is kept warm.
        assert await execute_workflow_authorized(
            client, bw.Call.run, workflow_id=uid("real"), warrant=mint(), key_id="AGENT",
            args=["read_file", ["/data/x"], None], task_queue=queue) == "contents of /data/x"
        errors = await asyncio.gather(*(denial_of(execute_workflow_authorized(
            client, bw.Call.run, workflow_id=uid("made-up"), warrant=mint(issuer=STRANGER),
            key_id=key_id, args=["read_file", ["/data/x"], None], task_queue=queue))
            for key_id in made_up))
        assert {e.type for e in errors} == {"TENUO_KEY_RESOLUTION"}
        reads_then = {k: environ.reads.get("BND_" + k, 0) for k in made_up}
        await asyncio.sleep(3)  # several keep-warm intervals (about 0.1 s each here)
        reads_now = {k: environ.reads.get("BND_" + k, 0) for k in made_up}
        assert reads_now == reads_then, "made-up key ids were read again after their workflows"
        assert all(1 <= n <= 4 for n in reads_now.values()), reads_now  # first task, retries
        assert plugin.interceptor.keys_to_keep_warm() == ["AGENT"]


# --------------------------------------------------------------------------- 7. retries


async def test_a_copied_pop_retried_after_the_old_claim_window_is_refused(temporal_env):
    """A rogue copies a PoP, lets attempt 1 time out on its own worker, and retries later.

    Every retry keeps the first attempt's scheduling time, so the copied PoP is
    still fresh at attempt 2. The claim must outlive the 450 s it used to last:
    the replay store's clock is moved 500 s on (configuration, not waiting).
    """
    clock = FakeClock()
    deliveries = Deliveries()
    victim = await connect(temporal_env, TenuoPluginConfig(
        trusted_roots=[ROOT.public_key], replay_store=InMemoryReplayStore(clock=clock),
        replay_protection="strict"), interceptors=[deliveries])
    signer = await connect(temporal_env, TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent": HOLDER})))
    queue, legit_queue, rogue_queue = uid("victim"), uid("legit"), uid("rogue")
    legit_wid, rogue_wid = uid("legit"), uid("rogue")
    async with worker(victim, queue, activities=[bw.read_file]), \
            worker(signer, legit_queue, [bw.Call]):
        assert await execute_workflow_authorized(
            signer, bw.Call.run, workflow_id=legit_wid, warrant=mint(), key_id="agent",
            args=["read_file", ["/data/x"], queue], task_queue=legit_queue) \
            == "contents of /data/x"
    copied = deliveries.headers[legit_wid]
    rogue = await plain_client(temporal_env)
    async with Worker(rogue, task_queue=rogue_queue, workflows=[bw.RetriedCopy],
                      interceptors=[OutboundHeaders(lambda _input: dict(copied))]):
        async with Worker(rogue, task_queue=queue, activities=[bw.hold_read_file]):
            handle = await rogue.start_workflow(bw.RetriedCopy.run, args=[queue, "/data/x"],
                                                id=rogue_wid, task_queue=rogue_queue)
            await _until_attempt_started(handle)
        clock.now += 500  # past the 450 s a claim used to live
        async with worker(victim, queue, activities=[bw.read_file]):
            error = await denial_of(handle.result())
    assert error.type == "TENUO_POP_REPLAYED" and error.non_retryable, error
    assert ran(rogue_wid) == []


class FakeClock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


async def _until_attempt_started(handle: Any) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        description = await handle.describe()
        pending = description.raw_description.pending_activities
        if pending and pending[0].attempt == 1 and pending[0].last_started_time.seconds:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the rogue's first attempt never started")


# --------------------------------------------------------------------------- 8. local activities


@pytest.fixture
def oracle_config() -> TenuoPluginConfig:
    return TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent": HOLDER, "tenant-b": TENANT_B}),
        signers={"agent": LocalSigner("agent", HOLDER), "tenant-b": LocalSigner(
            "tenant-b", TENANT_B)},
        trusted_roots=[ROOT.public_key])


async def test_the_signing_activity_signs_only_for_the_calling_workflow(temporal_env,
                                                                        oracle_config):
    client = await connect(temporal_env, oracle_config)
    queue = uid("oracle")
    tenant_b = mint({"delete_file": {"path": Wildcard()}}, holder=TENANT_B)
    own = mint()

    def request(warrant: Any, key_id: str, tool: str, path: str) -> dict[str, Any]:
        return {"key_id": key_id, "warrant": warrant.to_base64(), "tool": tool,
                "args": {"path": path}, "names": ["path"]}

    async def ask(body: dict[str, Any]) -> str:
        return await execute_workflow_authorized(
            client, bw.SigningOracle.run, workflow_id=uid("oracle"), warrant=own,
            key_id="agent", args=[body], task_queue=queue)

    async with worker(client, queue, bw.WORKFLOWS, bw.ACTIVITIES):
        other_tenant = await ask(request(tenant_b, "tenant-b", "delete_file", "/"))
        not_granted = await ask(request(own, "agent", "delete_file", "/"))
        outside = await ask(request(own, "agent", "read_file", "/etc/passwd"))
        granted = await ask(request(own, "agent", "read_file", "/data/a"))
    assert other_tenant == "refused:TENUO_CONSTRAINT_VIOLATION"
    assert not_granted == "refused:TENUO_TOOL_NOT_AUTHORIZED"
    assert outside == "refused:TENUO_CONSTRAINT_VIOLATION"
    assert granted.startswith("signed:")  # its own warrant, a call it grants


async def test_the_minting_activity_mints_only_for_the_calling_workflow(temporal_env,
                                                                        oracle_config):
    client = await connect(temporal_env, oracle_config)
    queue = uid("mint-oracle")
    tenant_b = mint({"delete_file": {"path": Wildcard()}}, holder=TENANT_B)
    async with worker(client, queue, bw.WORKFLOWS, bw.ACTIVITIES):
        result = await execute_workflow_authorized(
            client, bw.MintingOracle.run, workflow_id=uid("mint-oracle"), warrant=mint(),
            key_id="agent", args=[tenant_b.to_base64(), "tenant-b"], task_queue=queue)
    assert result == "refused:TENUO_CONSTRAINT_VIOLATION"


async def test_the_run_state_workflow_code_reaches_holds_no_resolver_and_no_key(
        temporal_env, oracle_config):
    client = await connect(temporal_env, oracle_config)
    queue = uid("probe")
    async with worker(client, queue, bw.WORKFLOWS, bw.ACTIVITIES):
        seen = await asyncio.wait_for(execute_workflow_authorized(
            client, bw.RunStateProbe.run, workflow_id=uid("probe"), warrant=mint(),
            key_id="agent", task_queue=queue), 30)
    assert "RunState" in seen and "WarrantContext" in seen
    leaked = {"TenuoInterceptor", "TenuoPluginConfig", "StaticKeyResolver", "KeyCache",
              "LocalSigner", "SigningKey"}.intersection(seen)
    assert not leaked, f"workflow code reaches {sorted(leaked)}"


# --------------------------------------------------------------------------- 9. binding


@dataclasses.dataclass(frozen=True)
class Binding:
    scope: dict[str, Any] | None  # _workflow_namespace / _workflow_id constraints
    started_as: str | None = None  # another workflow id than the warrant names
    expected: str | None = None  # None: allowed


async def test_require_workflow_binding_refuses_warrants_not_bound_by_exact_id(temporal_env):
    namespace = temporal_env.client.namespace
    wid = uid("bound")
    cases = {
        "unscoped": Binding(None, expected="TENUO_WORKFLOW_UNBOUND"),
        "pattern-scoped": Binding({"_workflow_namespace": Exact(namespace),
                                   "_workflow_id": Pattern("bound-*")},
                                  expected="TENUO_WORKFLOW_UNBOUND"),
        "exact-scoped": Binding({"_workflow_namespace": Exact(namespace),
                                 "_workflow_id": Exact(wid)}),
        "exact-scoped-copied-to-another-workflow": Binding(
            {"_workflow_namespace": Exact(namespace), "_workflow_id": Exact(wid)},
            started_as=uid("thief"), expected="TENUO_CONSTRAINT_VIOLATION"),
    }
    client = await connect(temporal_env, TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent": HOLDER}), trusted_roots=[ROOT.public_key],
        require_workflow_binding=True))
    queue = uid("binding")
    outcomes: dict[str, str | None] = {}
    async with worker(client, queue, bw.WORKFLOWS, bw.ACTIVITIES):
        for name, case in cases.items():
            caps = {"read_file": {"path": Subpath("/data"), **(case.scope or {})}}
            run = execute_workflow_authorized(
                client, bw.Call.run, workflow_id=case.started_as or (
                    wid if case.scope else uid(name)), warrant=mint(caps), key_id="agent",
                args=["read_file", ["/data/x"], None], task_queue=queue)
            if case.expected is None:
                assert await run == "contents of /data/x"
                outcomes[name] = None
            else:
                error = await denial_of(run)
                assert error.non_retryable
                outcomes[name] = error.type
    assert outcomes == {name: case.expected for name, case in cases.items()}


async def test_without_the_option_a_pattern_scope_only_narrows(temporal_env):
    """The default keeps 0.3.3's behaviour: any workflow id the pattern matches may use it."""
    namespace = temporal_env.client.namespace
    client = await connect(temporal_env, TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent": HOLDER}), trusted_roots=[ROOT.public_key]))
    queue = uid("pattern")
    warrant = mint({"read_file": {"path": Subpath("/data"),
                                  "_workflow_namespace": Exact(namespace),
                                  "_workflow_id": Pattern("pattern-*")}})
    async with worker(client, queue, bw.WORKFLOWS, bw.ACTIVITIES):
        handle = await start_workflow_authorized(
            client, bw.Call.run, workflow_id=uid("pattern"), warrant=warrant, key_id="agent",
            args=["read_file", ["/data/x"], None], task_queue=queue)
        assert await handle.result() == "contents of /data/x"
