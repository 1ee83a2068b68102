"""End-to-end throughput of ``tenuo_temporal`` vs no plugin vs ``tenuo.temporal`` 0.3.3.

On a Temporal dev server that this script starts
(``temporal server start-dev --headless``, free loopback port, stopped by
PID). Four variants, each with its own client, task queue and worker
(workflow and activity in one worker, all in this process):

* ``ceiling``: no plugin;
* ``ours``: ``tenuo_temporal.TenuoTemporalPlugin`` (defaults, StaticKeyResolver);
* ``ours.no_summary``: the same with ``activity_summaries=False`` (the
  activity label is a per-activity cost of Temporal's, not of the checks);
* ``reference``: ``tenuo.temporal_plugin.TenuoTemporalPlugin`` from PyPI ``tenuo``.

Shape (identical for every variant): W workflows started at once, each
running A ``read_file(path)`` activities **concurrently** (started together
and awaited with ``asyncio.gather``), distinct paths everywhere; full run
10 x 50 = 500 activities per timed batch, ``--quick`` 4 x 25 = 100. Every
worker runs one untimed warm-up batch, then R rounds rotate the variant
order; each variant is timed once per round. Reported per variant: median
activities/s, and per activity the CPU time of this process (client and
worker, all threads) and of the dev server, the workflow tasks per
activity (from the histories, after timing: concurrent completions share
workflow tasks, which moves CPU per activity), and the CPU other
processes used meanwhile. Per batch, the histories also give when the
server closed the last workflow and what could stall a batch without CPU
(timed-out or failed tasks, retried activities, results that reached the
client only after a history long poll expired); such batches are printed.
Ratios to ``ceiling`` (goal >= 0.95) and to
``reference`` (goal >= 1.0), for both of ours, are ratios of medians; the medians of
the per-round (adjacent in time) ratios and CPU-per-activity ratios are
shown too. Core logging is at ERROR (one ``Runtime`` for every client).

Usage:
    python -m bench.bench_e2e [--quick] [--json PATH] [--diagnose] [--sequential]

``--diagnose`` adds end-to-end variants that split ours' overhead (see
:mod:`bench._e2e_diagnostics`), ours' own CPU per hook among them, timed
between two timing plugins in the real worker chain.

Goals are printed, never fatal: the exit status is non-zero only when a
variant fails (a denial, a wrong result, the server not starting).
The process leaves with ``os._exit`` after flushing: temporalio's native
runtime can abort at interpreter exit (sdk-python#300).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timezone
from pathlib import Path
from typing import Any

from bench import _report
from bench._temporal_bench_workflows import KEY_ID, NAMESPACE, TOOL
from bench._util import cpu_seconds, exit_with
from bench._util import parser as bench_parser
from integration.support.temporal import DevServer

__all__ = ["E2ESample", "E2EVariant", "main", "run_e2e"]


# =========================================================================== e2e


def _machine_busy_seconds() -> float:
    """CPU seconds all processes on this machine have used (from /proc/stat)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    values = [int(x) for x in parts]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class E2ESample:
    round: int
    activities_per_s: float
    seconds: float  # as the client saw it: from the first start to the last result
    worker_cpu_us_per_activity: float
    server_cpu_us_per_activity: float
    other_load_cores: float  # CPU used by everything else on the machine, in cores
    workflow_tasks_per_activity: float  # from the histories, after timing
    plugin_cpu_us_per_activity: dict[str, float] = dataclasses.field(default_factory=dict)
    # What can stall a batch without using CPU, from the histories: timed-out
    # or failed workflow tasks (a sticky queue nobody polled waits 10 s) and
    # activity attempts past the first. Empty in a clean batch.
    anomalies: dict[str, int] = dataclasses.field(default_factory=dict)
    # From the first start to the last workflow's close event, on the server's
    # clock (the same host's): the client's figure less result delivery.
    server_seconds: float = 0.0


@dataclasses.dataclass
class E2EVariant:
    name: str
    label: str
    plugins: Callable[[], list[Any]]
    start: Callable[[Any, str, list[str], str], Awaitable[Any]]  # client, queue, paths, id
    interceptors: Callable[[], list[Any]] = list
    diagnostic: bool = False
    enter: Callable[[], None] | None = None  # applied around each of this variant's runs
    exit: Callable[[], None] | None = None
    probe: Callable[[], dict[str, int]] | None = None  # CPU ns per component since enter
    client: Any = None
    queue: str = ""
    warmup: E2ESample | None = None
    samples: list[E2ESample] = dataclasses.field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        rates = [s.activities_per_s for s in self.samples]
        p10, p90 = _report.p10_p90(rates)
        return {
            "label": self.label,
            "diagnostic": self.diagnostic,
            "median_activities_per_s": _report.median(rates),
            "p10_activities_per_s": p10,
            "p90_activities_per_s": p90,
            "median_worker_cpu_us_per_activity": _report.median(
                [s.worker_cpu_us_per_activity for s in self.samples]),
            "median_server_cpu_us_per_activity": _report.median(
                [s.server_cpu_us_per_activity for s in self.samples]),
            "median_workflow_tasks_per_activity": _report.median(
                [s.workflow_tasks_per_activity for s in self.samples]),
            "median_plugin_cpu_us_per_activity": {
                key: _report.median([s.plugin_cpu_us_per_activity[key] for s in self.samples])
                for key in (self.samples[0].plugin_cpu_us_per_activity if self.samples else {})
            },
            "samples": [dataclasses.asdict(s) for s in self.samples],
            "warmup": dataclasses.asdict(self.warmup) if self.warmup else None,
        }


def _build_e2e_variants(issuer: Any, holder: Any, warrant: Any, summary: str,
                        diagnose: bool, concurrent: bool) -> list[E2EVariant]:
    import tenuo.temporal as ref
    import tenuo.temporal_plugin as ref_plugin
    from tenuo.temporal._dedup import InMemoryPopDedupStore

    import tenuo_temporal
    from bench import _temporal_bench_workflows as wf
    from tenuo_keys import StaticKeyResolver

    run = wf.FanOutWorkflow.run

    def ours_plugins(summaries: bool = True) -> list[Any]:
        return [tenuo_temporal.TenuoTemporalPlugin(tenuo_temporal.TenuoPluginConfig(
            key_resolver=StaticKeyResolver({KEY_ID: holder}),
            trusted_roots=[issuer.public_key], activity_summaries=summaries))]

    def ref_plugins() -> list[Any]:
        # pop_dedup_store: the same class as 0.3.3's default store, passed
        # explicitly only to acknowledge single-process mode (which silences
        # the warning the default logs at each construction).
        return [ref_plugin.TenuoTemporalPlugin(ref.TenuoPluginConfig(
            key_resolver=StaticKeyResolver({KEY_ID: holder}),
            trusted_roots=[issuer.public_key], pop_dedup_store=InMemoryPopDedupStore()))]

    async def start_plain(client: Any, queue: str, paths: list[str], wid: str) -> Any:
        return await client.start_workflow(run, args=[paths, concurrent], id=wid,
                                           task_queue=queue)

    async def start_summary(client: Any, queue: str, paths: list[str], wid: str) -> Any:
        return await client.start_workflow(run, args=[paths, concurrent, summary], id=wid,
                                           task_queue=queue)

    async def start_ours(client: Any, queue: str, paths: list[str], wid: str) -> Any:
        return await tenuo_temporal.start_workflow_authorized(
            client, run, workflow_id=wid, warrant=warrant, key_id=KEY_ID,
            args=[paths, concurrent], task_queue=queue)

    async def start_ref(client: Any, queue: str, paths: list[str], wid: str) -> Any:
        return await ref.start_workflow_authorized(
            client=client, workflow_run_fn=run, workflow_id=wid, warrant=warrant,
            key_id=KEY_ID, args=[paths, concurrent], task_queue=queue)

    variants = [
        E2EVariant("ceiling", "no plugin", list, start_plain),
        E2EVariant("ours", "tenuo_temporal (defaults: activity summaries on)", ours_plugins,
                   start_ours),
        E2EVariant("ours.no_summary", "tenuo_temporal, activity_summaries=False",
                   lambda: ours_plugins(summaries=False), start_ours),
        E2EVariant("reference", "tenuo.temporal 0.3.3", ref_plugins, start_ref),
    ]
    if diagnose:
        from bench._e2e_diagnostics import diagnostic_variants

        variants += diagnostic_variants(issuer, holder, warrant, summary, ours_plugins,
                                        start_plain, start_summary, start_ours)
    return variants


async def _connect(target: str, runtime: Any, plugins: list[Any],
                   interceptors: list[Any], timeout: float = 30.0) -> Any:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    deadline = time.monotonic() + timeout
    while True:
        try:
            client = await Client.connect(target, namespace=NAMESPACE, runtime=runtime,
                                          plugins=plugins, interceptors=interceptors)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=NAMESPACE))
            return client
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _run_batch(v: E2EVariant, server: DevServer, workflows: int, per_workflow: int,
                     tag: str, round_no: int) -> E2ESample:
    paths = [[f"/data/{tag}/{v.name}/{w}/{a}.txt" for a in range(per_workflow)]
             for w in range(workflows)]
    expected = sum(len(p) for group in paths for p in group)
    ids = [f"bench-{v.name}-{tag}-{w}" for w in range(workflows)]
    if v.enter is not None:
        v.enter()
    try:
        busy0, server0 = _machine_busy_seconds(), cpu_seconds(server.pid)
        cpu0, t0, wall0 = time.process_time(), time.perf_counter(), time.time()
        handles = await asyncio.gather(*(
            v.start(v.client, v.queue, group, wid) for group, wid in zip(paths, ids, strict=True)))
        results = await asyncio.gather(*(h.result() for h in handles))
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        server_cpu = cpu_seconds(server.pid) - server0
        busy = _machine_busy_seconds() - busy0
        attributed = v.probe() if v.probe is not None else {}
    finally:
        if v.exit is not None:
            v.exit()
    if sum(results) != expected:
        raise RuntimeError(f"{v.name}: activities returned {sum(results)}, expected {expected}")
    n = workflows * per_workflow
    # How many workflow tasks the batch took (fetched after timing): with
    # concurrent activities, completions that arrive together share one
    # workflow task, so this varies with timing and drives the CPU per activity.
    from temporalio.api.enums.v1 import EventType

    histories = await asyncio.gather(*(h.fetch_history() for h in handles))
    tasks = sum(1 for hist in histories for e in hist.events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    anomalies = _anomalies(histories)
    closed = max(e.event_time.ToDatetime(timezone.utc).timestamp()
                 for hist in histories for e in hist.events[-1:])
    if seconds - (closed - wall0) > 1.0:
        # Every workflow had closed, but a result reached the client only when
        # its history long poll expired (the server's 20 s): no worker waited.
        anomalies["results reached the client > 1 s after the last close"] = 1
    return E2ESample(
        round=round_no, activities_per_s=n / seconds, seconds=seconds,
        worker_cpu_us_per_activity=cpu / n * 1e6,
        server_cpu_us_per_activity=server_cpu / n * 1e6,
        other_load_cores=max(0.0, busy - cpu - server_cpu) / seconds,
        workflow_tasks_per_activity=tasks / n,
        plugin_cpu_us_per_activity={k: ns / n / 1e3 for k, ns in attributed.items()},
        anomalies=anomalies, server_seconds=closed - wall0)


def _anomalies(histories: list[Any]) -> dict[str, int]:
    """Events that slow a batch without CPU: timed-out or failed tasks, activity retries."""
    from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause

    found: dict[str, int] = {}
    for hist in histories:
        for e in hist.events:
            kind = e.event_type
            if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                why = TimeoutType.Name(e.workflow_task_timed_out_event_attributes.timeout_type)
                key = f"workflow task timed out ({why})"
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                why = WorkflowTaskFailedCause.Name(e.workflow_task_failed_event_attributes.cause)
                key = f"workflow task failed ({why})"
            elif kind in (EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
                          EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED):
                key = EventType.Name(kind)
            elif (kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                  and e.activity_task_started_event_attributes.attempt > 1):
                key = "activity attempt > 1"
            else:
                continue
            found[key] = found.get(key, 0) + 1
    return found


async def run_e2e(workflows: int, per_workflow: int, rounds: int, concurrent: bool,
                  diagnose: bool, log: Callable[[str], None]) -> dict[str, Any]:
    import tenuo_core
    from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
    from temporalio.worker import Worker

    from bench import _temporal_bench_workflows as wf
    from tenuo_temporal._ids import SUMMARY_PREFIX

    runtime = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
        filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))))
    issuer = tenuo_core.SigningKey.generate()
    holder = tenuo_core.SigningKey.generate()
    warrant = tenuo_core.Warrant.issue(
        keypair=issuer, capabilities={TOOL: {"path": tenuo_core.Subpath("/data")}},
        ttl_seconds=3600, holder=holder.public_key)
    variants = _build_e2e_variants(issuer, holder, warrant, f"{SUMMARY_PREFIX} {TOOL}",
                                   diagnose, concurrent)
    started = time.perf_counter()
    server = DevServer(Path(tempfile.mkdtemp(prefix="bench-temporal-")) / "temporal.log").start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            for v in variants:
                v.client = await _connect(server.target, runtime, v.plugins(), v.interceptors())
                v.queue = f"bench-{v.name}-{uuid.uuid4().hex[:8]}"
                await stack.enter_async_context(Worker(
                    v.client, task_queue=v.queue, workflows=[wf.FanOutWorkflow],
                    activities=[wf.read_file]))
            for v in variants:
                v.warmup = await _run_batch(v, server, workflows, per_workflow,
                                            f"w{uuid.uuid4().hex[:6]}", -1)
                log(f"  warm-up {v.name:<18} {v.warmup.activities_per_s:7.0f} act/s")
            count = len(variants)
            for r in range(rounds):
                order = variants[r % count:] + variants[: r % count]
                line = []
                for v in order:
                    sample = await _run_batch(v, server, workflows, per_workflow,
                                              f"r{r}{uuid.uuid4().hex[:6]}", r)
                    v.samples.append(sample)
                    line.append(f"{v.name} {sample.activities_per_s:.0f}")
                log(f"  round {r + 1}/{rounds}: " + ", ".join(line) + " act/s")
    finally:
        server.stop()
    stats = {v.name: v.stats() for v in variants}
    return {
        "shape": {"workflows": workflows, "activities_per_workflow": per_workflow,
                  "activities_per_batch": workflows * per_workflow,
                  "concurrent_within_workflow": concurrent},
        "rounds": rounds,
        "seconds": time.perf_counter() - started,
        "variants": stats,
        **_report.e2e_analysis(variants),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = bench_parser(__doc__, "CI smoke run: fewer activities and rounds (< 30 s)")
    parser.add_argument("--rounds", type=int, help="rounds (default 15, quick 2)")
    parser.add_argument("--workflows", type=int, help="workflows per batch (default 10, quick 4)")
    parser.add_argument("--per-workflow", type=int,
                        help="activities per workflow (default 50, quick 25)")
    parser.add_argument("--sequential", action="store_true",
                        help="run each workflow's activities one after another")
    parser.add_argument("--diagnose", action="store_true",
                        help="add end-to-end variants that split ours' overhead")
    args = parser.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or (2 if quick else 15)
    args.workflows = args.workflows or (4 if quick else 10)
    args.per_workflow = args.per_workflow or (25 if quick else 50)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return _report.run_jobs("bench_e2e", args, [(
        "e2e", "end-to-end throughput (starting a Temporal dev server)",
        lambda: asyncio.run(run_e2e(args.workflows, args.per_workflow, args.rounds,
                                    not args.sequential, args.diagnose,
                                    lambda line: print(line, flush=True))),
        _report.print_e2e)])


if __name__ == "__main__":
    exit_with(lambda: main(sys.argv[1:]))
