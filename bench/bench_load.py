"""Load: many concurrent authorized workflows through the full plugin, keys from two resolvers.

200 concurrent workflows x 5 activities, signed with 50 distinct holder keys:
25 kept in AWS Secrets Manager (a real ``moto_server``) and 25 in environment
variables, behind one ``CompositeKeyResolver``. A local Temporal dev server,
one worker with the plugin on both sides. Reports throughput, p50/p99
authorization (verification) latency from the audit events, errors, and
the backend calls each resolver made, against the bound
``distinct keys x (1 + refreshes)``: backend traffic must follow keys, not
activities.

Usage:
    python -m bench.bench_load [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import tenuo_core
from temporalio.worker import Worker

from bench._util import exit_with, parser, write_json
from bench._workflows import FiveReads, read_file
from integration.support.aws import MotoServer
from integration.support.temporal import DevServer, quiet_runtime
from tenuo_keys import (
    CachePolicy,
    CacheStats,
    CompositeKeyResolver,
    EnvKeyResolver,
    encode_signing_key,
)
from tenuo_keys.backends.aws import AWSSecretsManagerKeyResolver
from tenuo_temporal import (
    AuditEvent,
    TenuoPluginConfig,
    TenuoTemporalPlugin,
    start_workflow_authorized,
)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def run(workflows: int, activities: int, keys: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="tenuo-load-"))
    moto = MotoServer(tmp).start()
    server = DevServer(tmp / "temporal.log").start()
    try:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", "us-east-1")):
            os.environ.setdefault(name, value)  # moto accepts any credentials
        issuer = tenuo_core.SigningKey.generate()
        holders = {f"load-{i:02d}": tenuo_core.SigningKey.generate() for i in range(keys)}
        env_prefix = f"TENUO_LOAD_{uuid.uuid4().hex[:6]}_"
        policy = CachePolicy(ttl=300.0)
        aws_stats, env_stats = CacheStats(), CacheStats()
        aws = AWSSecretsManagerKeyResolver(
            region_name="us-east-1", endpoint_url=moto.endpoint,
            template="tenuo/load/{key_id}", cache=policy, observers=[aws_stats])
        for index, (key_id, key) in enumerate(holders.items()):
            if index % 2 == 0:
                aws.store_key(key_id, encode_signing_key(key))
            else:
                os.environ[env_prefix + key_id] = encode_signing_key(key)
        resolver = CompositeKeyResolver([
            EnvKeyResolver(env_prefix, cache=policy, observers=[env_stats]), aws])
        warrants = {
            key_id: tenuo_core.Warrant.issue(
                keypair=issuer, ttl_seconds=3600, holder=key.public_key,
                capabilities={"read_file": {"path": tenuo_core.Subpath("/data")}})
            for key_id, key in holders.items()
        }
        events: list[AuditEvent] = []
        plugin = TenuoTemporalPlugin(TenuoPluginConfig(
            key_resolver=resolver, trusted_roots=[issuer.public_key],
            audit_callback=events.append))
        client = await server.connect(plugins=[plugin], runtime=quiet_runtime())
        queue = f"load-{uuid.uuid4().hex[:6]}"
        ids = list(holders)
        async with Worker(client, task_queue=queue, workflows=[FiveReads],
                          activities=[read_file], max_concurrent_activities=200,
                          max_concurrent_workflow_tasks=200):
            started = time.perf_counter()
            handles = await asyncio.gather(*(
                start_workflow_authorized(
                    client, FiveReads.run, workflow_id=f"load-{uuid.uuid4().hex}",
                    warrant=warrants[ids[i % len(ids)]], key_id=ids[i % len(ids)],
                    args=[f"/data/w{i}", activities], task_queue=queue)
                for i in range(workflows)))
            outcomes = await asyncio.gather(*(h.result() for h in handles),
                                            return_exceptions=True)
            elapsed = time.perf_counter() - started
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        latencies = [e.latency_ms for e in events if e.decision == "allow"]
        denials = [e for e in events if e.decision == "deny"]
        refresh_windows = 1 + math.floor(elapsed / (policy.ttl or math.inf))
        calls = {"aws": aws_stats.backend_calls, "env": env_stats.backend_calls}
        # The composite asks env first, so env answers (found or not found) for
        # every id, and AWS for its own half.
        bound = {"aws": (keys + 1) // 2 * refresh_windows, "env": keys * refresh_windows}
        return {
            "workflows": workflows, "activities_per_workflow": activities, "keys": keys,
            "activities": workflows * activities, "seconds": elapsed,
            "activities_per_second": workflows * activities / elapsed,
            "errors": len(errors) + len(denials),
            "first_error": repr(errors[0]) if errors else None,
            "authorizations": len(latencies),
            "auth_latency_ms": {"p50": statistics.median(latencies), "p99": pct(latencies, 0.99),
                                "max": max(latencies)} if latencies else {},
            "backend_calls": calls, "backend_call_bound": bound,
            "backend_calls_within_bound": all(calls[k] <= bound[k] for k in calls),
        }
    finally:
        server.stop()
        moto.stop()


def report(result: dict[str, Any]) -> None:
    print(f"load: {result['workflows']} workflows x {result['activities_per_workflow']} "
          f"activities, {result['keys']} key ids (half AWS Secrets Manager on moto_server, "
          "half env), one worker, full plugin")
    print(f"  {result['activities']} activities in {result['seconds']:.2f} s: "
          f"{result['activities_per_second']:.0f} activities/s")
    lat = result["auth_latency_ms"]
    print(f"  authorization (verify) latency: p50 {lat.get('p50', 0):.3f} ms, "
          f"p99 {lat.get('p99', 0):.3f} ms, max {lat.get('max', 0):.3f} ms")
    print(f"  errors: {result['errors']} (goal 0)" + (
        f"  first: {result['first_error']}" if result["first_error"] else ""))
    print(f"  backend calls: {result['backend_calls']} (bound: keys x refreshes = "
          f"{result['backend_call_bound']}): "
          + ("within bound" if result["backend_calls_within_bound"] else "OVER BOUND"))


def main() -> int:
    args = parser(__doc__, "50 workflows x 5, 20 keys").parse_args()
    shape = (50, 5, 20) if args.quick else (200, 5, 50)
    result = asyncio.run(run(*shape))
    report(result)
    if args.json:
        write_json(args.json, result)
    ok = result["errors"] == 0 and result["backend_calls_within_bound"]
    return 0 if ok else 1


if __name__ == "__main__":
    exit_with(main)
