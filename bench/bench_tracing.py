"""What the ``tenuo.authorize`` span and the audit callback cost per activity, in one run.

Run from the repository root: ``python -m bench.bench_tracing [--quick] [--json PATH]``.

Two parts. **Decision**: the authorization alone, in process (below).
**End to end**: on a local Temporal dev server, one worker per config (both off;
audit on) running ``FanOutWorkflow`` (``bench._temporal_bench_workflows``),
each workflow 50 sequential ``read_file`` activities, signed and verified by the
plugin; wall time per activity, rounds interleaved, with the SDK provider swapped
in for the ``span+audit`` rounds as below.

The decision part:

Each variant is the plugin's activity hook, driven through its public seam,
``TenuoWorkerInterceptor(config).intercept_activity(noop).execute_activity(input)``,
on a real ``ExecuteActivityInput`` carrying the headers a workflow worker
signs (warrant, PoP, argument names) for one allowed ``read_file(path)``;
``activity.info()`` is faked and the activity itself is a no-op, so only the
authorization is timed. Variants:

* ``absent``: ``opentelemetry`` hidden when the interceptor is built (as if
  ``opentelemetry-api`` were not installed), no audit callback: the floor.
* ``api-only``: ``opentelemetry-api`` installed, no SDK provider configured
  (the global proxy), no audit callback.
* ``span``: an SDK ``TracerProvider`` recording every span to an in-memory
  exporter through a ``SimpleSpanProcessor`` (synchronous export per span, the
  dearest processor), no audit callback.
* ``audit``: no SDK provider, an audit callback receiving every event.
* ``span+audit``: both.

Since the span is opened when the decision is made (back-dated to its
start), ``span`` times the plugin's whole tracing path. The span variants
swap the global provider by replacing
``opentelemetry.trace.get_tracer_provider`` around each batch (the global one
can be set once per process); the plugin looks the provider up on every call,
so it sees the swap. The config is the default one (replay protection in its
default mode, metrics on the default Temporal runtime's meter) but for the
audit callback. ``sdk-floor`` is the SDK alone on the same provider: one span
started with the tool attribute, two more set, ended; what the SDK costs
whoever opens the span. Variants run interleaved in shuffled order, a fresh
pool of signed inputs per batch; medians of per-call times over the rounds.
"""

from __future__ import annotations

import asyncio
import binascii
import gc
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench._util import drive, exit_with, finish, parser, run_meta, spread

TOOL = "read_file"
KEY_ID = "agent"
POP_WINDOW_SECS = 30


class _Noop:
    """Stands in for the activity behind the plugin's inbound interceptor."""

    def init(self, outbound: Any) -> None:
        pass

    async def execute_activity(self, input: Any) -> None:
        return None


@contextmanager
def _hidden(module: str) -> Iterator[None]:
    """``module`` is not importable inside the block (``None`` in ``sys.modules``)."""
    saved = {name: mod for name, mod in sys.modules.items()
             if name == module or name.startswith(module + ".")}
    for name in saved:
        del sys.modules[name]
    sys.modules[module] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        del sys.modules[module]
        sys.modules.update(saved)


class Bench:
    """The interceptors, the signed inputs and the provider swap, built once."""

    def __init__(self) -> None:
        import tenuo_core
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from temporalio.api.common.v1 import Payload
        from temporalio.worker import ExecuteActivityInput

        from bench._temporal_bench_workflows import read_file
        from tenuo_temporal import TenuoPluginConfig, TenuoWorkerInterceptor
        from tenuo_temporal import _headers as H


        self.trace, self.H, self.Payload = trace, H, Payload
        self.ExecuteActivityInput, self.fn = ExecuteActivityInput, read_file
        issuer, self.holder = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
        self.warrant = tenuo_core.Warrant.issue(
            keypair=issuer, capabilities={TOOL: {"path": tenuo_core.Subpath("/data")}},
            ttl_seconds=3600, holder=self.holder.public_key)
        self.context = H.WarrantContext.build(self.warrant, KEY_ID)
        self.roots = [issuer.public_key]
        self.events = 0

        def audit(event: Any) -> None:
            self.events += 1

        def interceptor(audited: bool) -> Any:
            config = TenuoPluginConfig(trusted_roots=[issuer.public_key],
                                       audit_callback=audit if audited else None)
            return TenuoWorkerInterceptor(config).intercept_activity(_Noop())  # type: ignore[arg-type]

        with _hidden("opentelemetry"):
            absent = interceptor(False)
        quiet, audited = interceptor(False), interceptor(True)
        self.exporter = InMemorySpanExporter()
        self.sdk = TracerProvider()
        self.sdk.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.proxy = trace.get_tracer_provider()
        # name -> (interceptor, records spans)
        self.variants: dict[str, tuple[Any, bool]] = {
            "absent": (absent, False), "api-only": (quiet, False), "span": (quiet, True),
            "audit": (audited, False), "span+audit": (audited, True)}
        self.info: Any = None
        self.seq = 0

    def sdk_floor(self, size: int) -> float:
        """Nanoseconds per bare SDK span (start with one attribute, set two, end)."""
        tracer = self.sdk.get_tracer("bench")
        gc.disable()
        try:
            t0 = time.perf_counter_ns()
            for _ in range(size):
                span = tracer.start_span("tenuo.authorize", attributes={"tenuo.tool": TOOL})
                span.set_attribute("tenuo.decision", "allow")
                span.set_attribute("tenuo.warrant_id", "tnu_wrt_0123456789abcdef")
                span.end()
            elapsed = time.perf_counter_ns() - t0
        finally:
            gc.enable()
        self.exporter.clear()
        return elapsed / size

    @contextmanager
    def provider(self, recording: bool) -> Iterator[None]:
        """The global provider the plugin sees: the SDK's, or the unconfigured proxy."""
        trace, real = self.trace, self.trace.get_tracer_provider
        chosen = self.sdk if recording else self.proxy
        trace.get_tracer_provider = lambda: chosen
        try:
            yield
        finally:
            trace.get_tracer_provider = real

    def pool(self, size: int) -> list[tuple[Any, Any]]:
        """``size`` signed inputs and their fake infos, all in the current PoP window."""
        into = time.time() % POP_WINDOW_SECS
        if into > POP_WINDOW_SECS - 4:
            time.sleep(POP_WINDOW_SECS - into + 0.05)
        ts, scheduled = int(time.time()), datetime.now(timezone.utc)
        items = []
        self.seq += 1
        for i in range(size):
            path = f"/data/reports/{random.getrandbits(40):x}-{i}.csv"
            pop = self.warrant.sign(self.holder, TOOL, {"path": path}, ts)
            headers = dict(self.context.payloads)
            headers[self.H.POP] = self.Payload(data=binascii.b2a_base64(pop, newline=False))
            headers[self.H.ARG_KEYS] = self.Payload(data=b"path")
            info = SimpleNamespace(
                scheduled_time=scheduled, current_attempt_scheduled_time=scheduled,
                activity_type=TOOL, workflow_namespace="default",
                workflow_id=f"wf-{self.seq}-{i}", workflow_run_id="run", activity_id="1",
                attempt=1, is_local=False)
            items.append((self.ExecuteActivityInput(fn=self.fn, args=[path], executor=None,
                                                    headers=headers), info))
        return items

    def batch(self, name: str, items: list[tuple[Any, Any]]) -> float:
        """Nanoseconds per call of ``name`` over ``items``."""
        import temporalio.activity

        inbound, recording = self.variants[name]
        real_info = temporalio.activity.info
        temporalio.activity.info = lambda: self.info
        gc.disable()
        try:
            with self.provider(recording):
                t0 = time.perf_counter_ns()
                for exec_input, info in items:
                    self.info = info
                    drive(inbound.execute_activity(exec_input))
                elapsed = time.perf_counter_ns() - t0
        finally:
            gc.enable()
            temporalio.activity.info = real_info
        recorded = len(self.exporter.get_finished_spans())
        if recorded != (len(items) if recording else 0):  # the variant measures what it says
            raise RuntimeError(f"{name}: {recorded} spans recorded for {len(items)} calls")
        self.exporter.clear()
        return elapsed / len(items)


async def end_to_end(bench: Bench, rounds: int, per_workflow: int) -> dict[str, list[float]]:
    """Microseconds per activity on the dev server: both off vs span + audit, interleaved."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    from bench._temporal_bench_workflows import FanOutWorkflow, read_file
    from integration.support.temporal import DevServer
    from tenuo_keys import StaticKeyResolver
    from tenuo_temporal import TenuoPluginConfig, TenuoTemporalPlugin, execute_workflow_authorized
    from tenuo_temporal.testing import quiet_runtime

    def audit(event: Any) -> None:
        bench.events += 1

    server = DevServer(Path(tempfile.mkdtemp(prefix="bench-tracing-")) / "temporal.log").start()
    runtime = quiet_runtime()
    samples: dict[str, list[float]] = {"off": [], "span+audit": []}
    try:
        clients, queues = {}, {}
        for name in samples:
            config = TenuoPluginConfig(
                key_resolver=StaticKeyResolver({KEY_ID: bench.holder}),
                trusted_roots=bench.roots, audit_callback=audit if name != "off" else None)
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
                paths = [f"/data/e2e/{uuid.uuid4().hex[:8]}-{i}.csv" for i in range(per_workflow)]
                with bench.provider(name != "off"):
                    t0 = time.perf_counter_ns()
                    await execute_workflow_authorized(
                        clients[name], FanOutWorkflow.run, workflow_id=f"e2e-{uuid.uuid4().hex}",
                        warrant=bench.warrant, key_id=KEY_ID, args=[paths, False],
                        task_queue=queues[name])
                    elapsed = time.perf_counter_ns() - t0
                recorded = len([s for s in bench.exporter.get_finished_spans()
                                if s.name == "tenuo.authorize"])
                if recorded != (per_workflow if name != "off" else 0):
                    raise RuntimeError(f"end to end {name}: {recorded} spans for "
                                       f"{per_workflow} activities")
                bench.exporter.clear()
                return elapsed / per_workflow

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
    args = parser(__doc__, "5 rounds of 200 calls per variant (default 21 of 400)").parse_args()
    started = time.perf_counter()
    rounds, size = (5, 200) if args.quick else (21, 400)
    bench = Bench()
    names = list(bench.variants)
    samples: dict[str, list[float]] = {name: [] for name in [*names, "sdk-floor"]}
    for name in names:  # warm-up: decoders, tracers, per-tool handles
        bench.batch(name, bench.pool(50))
    for _ in range(rounds):
        order = names[:]
        random.shuffle(order)
        for name in order:
            samples[name].append(bench.batch(name, bench.pool(size)))
        samples["sdk-floor"].append(bench.sdk_floor(size))
    floor = spread(samples["absent"])[0]
    api_only = spread(samples["api-only"])[0]
    results: dict[str, Any] = {}
    print(f"per allowed activity, median of {rounds} rounds x {size} calls "
          f"(p10..p90); ratio to 'absent'")
    for name in [*names, "sdk-floor"]:
        median, p10, p90 = spread(samples[name])
        results[name] = {"median_us": round(median / 1e3, 2), "p10_us": round(p10 / 1e3, 2),
                         "p90_us": round(p90 / 1e3, 2), "ratio": round(median / floor, 3)}
        print(f"  {name:<11} {median / 1e3:8.1f} µs  ({p10 / 1e3:.1f}..{p90 / 1e3:.1f})"
              f"  x{median / floor:.3f}")
    goal = spread(samples["span+audit"])[0] / floor
    print(f"\nspan (SDK recording) + audit over both off: x{goal:.3f} (goal <= 1.15)"
          f"\nopentelemetry-api without an SDK over no opentelemetry: x{api_only / floor:.3f}"
          f" (goal: no measurable cost)")
    e2e = asyncio.run(end_to_end(bench, 5 if args.quick else 11, 50))
    e2e_off, e2e_on = spread(e2e["off"])[0], spread(e2e["span+audit"])[0]
    print(f"\nend to end on the dev server, per activity (median of {len(e2e['off'])} "
          f"workflows x 50 sequential activities):")
    for name, values in e2e.items():
        median, p10, p90 = spread(values)
        results[f"e2e {name}"] = {"median_us": round(median / 1e3, 1),
                                  "p10_us": round(p10 / 1e3, 1), "p90_us": round(p90 / 1e3, 1)}
        print(f"  {name:<11} {median / 1e3:8.0f} µs  ({p10 / 1e3:.0f}..{p90 / 1e3:.0f})")
    print(f"span (SDK recording) + audit over both off, end to end: x{e2e_on / e2e_off:.3f}")
    results["summary"] = {"e2e_span_audit_over_off": round(e2e_on / e2e_off, 3),
"span_audit_over_off": round(goal, 3),
                          "api_only_over_absent": round(api_only / floor, 3),
                          "audit_events": bench.events}
    return finish(args.json, run_meta(started, "temporalio", "tenuo", "opentelemetry-sdk",
                                      rounds=rounds, calls=size), results)


if __name__ == "__main__":
    exit_with(main)
