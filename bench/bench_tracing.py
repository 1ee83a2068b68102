"""The ``tenuo.authorize`` span and the audit callback per activity, end to end.

Run from the repository root: ``python -m bench.bench_tracing [--quick] [--json PATH]``.

The authorization alone is measured in process by ``bench_activity`` (its
``tracing.*`` variants, :mod:`bench._activity_tracing`). This is the same
question on a local Temporal dev server: one plugin worker per config (both
off; audit on), rounds interleaved in shuffled order, each a
``FanOutWorkflow`` (``bench._temporal_bench_workflows``) of 50 sequential
``read_file`` activities signed and verified by the plugin; wall time per
activity. For the ``span+audit`` rounds an SDK ``TracerProvider`` (a
``SimpleSpanProcessor`` to an ``InMemorySpanExporter``) is what the plugin
sees: ``opentelemetry.trace.get_tracer_provider`` is replaced for the round
(the global provider can be set once per process); each such round must
record one ``tenuo.authorize`` span per activity, and the ``off`` rounds none.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench._util import exit_with, finish, parser, run_meta, spread

KEY_ID = "agent"
PER_WORKFLOW = 50


async def end_to_end(rounds: int) -> dict[str, list[float]]:
    """Nanoseconds per activity for each variant, one sample per round."""
    import tenuo_core
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from temporalio.client import Client
    from temporalio.worker import Worker

    from bench._temporal_bench_workflows import FanOutWorkflow, read_file
    from integration.support.temporal import DevServer
    from tenuo_keys import StaticKeyResolver
    from tenuo_temporal import TenuoPluginConfig, TenuoTemporalPlugin, execute_workflow_authorized
    from tenuo_temporal.testing import quiet_runtime

    issuer, holder = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    warrant = tenuo_core.Warrant.issue(
        keypair=issuer, capabilities={"read_file": {"path": tenuo_core.Subpath("/data")}},
        ttl_seconds=3600, holder=holder.public_key)
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    real = trace.get_tracer_provider

    @contextmanager
    def provider(recording: bool) -> Iterator[None]:
        chosen = sdk if recording else real()
        trace.get_tracer_provider = lambda: chosen
        try:
            yield
        finally:
            trace.get_tracer_provider = real

    def audit(event: Any) -> None:
        pass

    server = DevServer(Path(tempfile.mkdtemp(prefix="bench-tracing-")) / "temporal.log").start()
    runtime = quiet_runtime()
    samples: dict[str, list[float]] = {"off": [], "span+audit": []}
    try:
        clients, queues = {}, {}
        for name in samples:
            config = TenuoPluginConfig(
                key_resolver=StaticKeyResolver({KEY_ID: holder}),
                trusted_roots=[issuer.public_key], audit_callback=audit if name != "off" else None)
            clients[name] = await Client.connect(server.target, namespace=server.namespace,
                                                 runtime=runtime,
                                                 plugins=[TenuoTemporalPlugin(config)])
            queues[name] = f"bench-tracing-{name}-{uuid.uuid4().hex[:6]}"
        workers = [Worker(clients[name], task_queue=queues[name],
                          workflows=[FanOutWorkflow], activities=[read_file])
                   for name in samples]
        for worker in workers:
            await worker.__aenter__()
        try:
            async def one(name: str) -> float:
                paths = [f"/data/e2e/{uuid.uuid4().hex[:8]}-{i}.csv" for i in range(PER_WORKFLOW)]
                with provider(name != "off"):
                    t0 = time.perf_counter_ns()
                    await execute_workflow_authorized(
                        clients[name], FanOutWorkflow.run, workflow_id=f"e2e-{uuid.uuid4().hex}",
                        warrant=warrant, key_id=KEY_ID, args=[paths, False],
                        task_queue=queues[name])
                    elapsed = time.perf_counter_ns() - t0
                recorded = len([s for s in exporter.get_finished_spans()
                                if s.name == "tenuo.authorize"])
                exporter.clear()
                if recorded != (PER_WORKFLOW if name != "off" else 0):
                    raise RuntimeError(f"{name}: {recorded} spans for {PER_WORKFLOW} activities")
                return elapsed / PER_WORKFLOW

            for name in samples:  # warm-up
                await one(name)
            for _ in range(rounds):
                order = list(samples)
                random.shuffle(order)
                for name in order:
                    samples[name].append(await one(name))
        finally:
            for worker in reversed(workers):
                await worker.__aexit__(None, None, None)
    finally:
        server.stop()
    return samples


def main() -> int:
    args = parser(__doc__, "5 rounds (default 11)").parse_args()
    started = time.perf_counter()
    rounds = 5 if args.quick else 11
    samples = asyncio.run(end_to_end(rounds))
    results: dict[str, Any] = {}
    print(f"end to end on the dev server, per activity (median of {rounds} workflows x "
          f"{PER_WORKFLOW} sequential activities, p10..p90):")
    for name, values in samples.items():
        median, p10, p90 = spread(values)
        results[name] = {"median_us": round(median / 1e3, 1), "p10_us": round(p10 / 1e3, 1),
                         "p90_us": round(p90 / 1e3, 1), "samples_ns": values}
        print(f"  {name:<11} {median / 1e3:8.0f} µs  ({p10 / 1e3:.0f}..{p90 / 1e3:.0f})")
    ratio = spread(samples["span+audit"])[0] / spread(samples["off"])[0]
    print(f"span (SDK recording) + audit over both off, end to end: x{ratio:.3f}")
    results["span_audit_over_off"] = round(ratio, 3)
    return finish(args.json, run_meta(started, "temporalio", "tenuo", "opentelemetry-sdk",
                                      rounds=rounds, activities=PER_WORKFLOW), results)


if __name__ == "__main__":
    exit_with(main)
