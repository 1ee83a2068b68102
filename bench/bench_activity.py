"""Per-activity authorization cost of ``tenuo_temporal``, in process, against raw ``tenuo_core``.

No server: each activity's two sides run in this process, driven through the
plugin's public seams, as a worker drives them:

* floor: ``warrant.sign`` + ``Authorizer.check_chain`` (and + ``check_chain_with_pop_args``)
  in a tight loop; and ``floor.per_activity``, the same calls timed per
  activity in ours' loop shape (sign, the same untimed building of the
  worker's header map, then check);
* ``baseline.no_plugin``: driving the activity's own coroutine, which a
  worker pays with or without a plugin (ours is judged net of it);
* ours, signing side: Temporal's workflow interceptor API on the plugin's
  ``TenuoInterceptor``: ``workflow_interceptor_class(...)`` gives the inbound
  class; an instance over a stand-in next inbound is ``init``-ed with a
  stand-in outbound (the stand-in next inbound captures the plugin's signing
  outbound it is handed); ``execute_workflow`` with the warrant's start
  headers sets the run's warrant; then each activity is one
  ``start_activity(StartActivityInput)`` on the captured outbound (the
  stand-in outbound under it returns at once). Argument naming and
  canonicalization, workflow scope, holder-key lookup, PoP, header payloads
  and the summary are the plugin's own code;
* ours, verifying side: ``intercept_activity(noop).execute_activity`` on a
  real ``ExecuteActivityInput`` carrying those headers in a protobuf map
  (``Start.header_fields``, built untimed), a no-op next interceptor. Metrics
  are off and there is no audit callback (config). Two replay-store setups,
  both through ``TenuoPluginConfig.replay_store``: the default
  ``InMemoryReplayStore`` with a unique workflow id per activity (every
  claim inserts; a fresh plugin per batch, built untimed), and a store that
  always accepts (it has no ``claim_now``, so its claim is awaited as a
  shared store's would be). The coroutines are driven with ``send(None)``
  (they never suspend), so no event-loop cost is counted on either side.

Outside a real workflow or activity, ``temporalio.workflow.now``/``info`` and
``temporalio.activity.info`` are faked (:meth:`Micro.workflow_context`):
they are the SDK's context functions, not the plugin's; nothing of the
plugin is replaced. The step ablations (each step of the two sides timed
alone) live in :mod:`bench._activity_steps`: diagnostics that call the
plugin's internal pure functions, never patching them.

Tracing and audit (:mod:`bench._activity_tracing`): the verify side with
no opentelemetry, with ``opentelemetry-api`` but no SDK, with an SDK span
recorded, with an audit callback, and with both; goal: span + audit <= 1.15 x
both off (paired per round), and no measurable cost for the API alone.

What-if (not a goal): ``Authorizer.verify_chain`` alone, the chain's own
signatures, which ``check_chain`` verifies again for every activity of a
warrant; ours less it is what a ``tenuo_core`` check against a chain verified
once per warrant would leave.

Method: a pool of P distinct activities (distinct paths, so distinct PoPs)
is rebuilt every round, away from a 30-second PoP window edge; every variant
walks the whole pool once per round (rotating order, GC off), giving one
per-call sample per round; medians over rounds are reported. The goal (ours
<= 1.15 x floor) is judged on the median of the per-round ratios (ours -
``baseline.no_plugin``) / ``floor.per_activity`` (all ran on the same pool,
next to each other in time, in the same loop shape); the gross ratios and
the ratios to the tight-loop floor are printed next to it.

Usage:
    python -m bench.bench_activity [--quick] [--json PATH] [--rounds N] [--pool N] [--profile]

``--profile`` prints a cProfile of the in-process sign + verify loop. The
process leaves with ``os._exit`` after flushing: temporalio's native runtime
can abort at interpreter exit (sdk-python#300).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import dataclasses
import gc
import io
import pstats
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from bench import _report
from bench._activity_tracing import print_tracing, tracing_analysis, tracing_variants
from bench._temporal_bench_workflows import KEY_ID, NAMESPACE, TOOL
from bench._util import exit_with
from bench._util import parser as bench_parser
from tenuo_keys._pop import POP_WINDOW_SECS

__all__ = ["Micro", "MicroVariant", "Pool", "main", "run_micro"]

perf_counter_ns = time.perf_counter_ns

REVOKED_IN_LIST = 10_000
"""Entries of the revocation list of ``ours.total.revocation_10k`` (none is the warrant)."""


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the coroutine suspended; this benchmark drives it without a loop")


def _away_from_window_edge(margin: float = 4.0) -> None:
    """Sleep past the next PoP window edge if it is less than ``margin`` s away.

    A PoP signed in one 30-second window and checked in the next costs extra
    signature checks; keep every round of the micro-benchmark in one window.
    """
    into = time.time() % POP_WINDOW_SECS
    if into > POP_WINDOW_SECS - margin:
        time.sleep(POP_WINDOW_SECS - into + 0.05)


class AcceptAllReplayStore:
    """A replay store that never refuses (isolates the cost of the default one)."""

    async def claim(self, pop_digest: bytes, owner: str, ttl_seconds: float) -> bool:
        return True


class _NoopActivityInbound:
    """Stands in for the activity itself behind the plugin's inbound interceptor."""

    def init(self, outbound: Any) -> None:
        pass

    async def execute_activity(self, input: Any) -> None:
        return None


class _NoopWorkflowOutbound:
    """Stands in for Temporal under the plugin's signing outbound: schedules nothing."""

    def start_activity(self, input: Any) -> None:
        return None


class _CapturingWorkflowInbound:
    """Stands in for the workflow under the plugin's inbound interceptor.

    ``init`` receives the outbound interceptor the plugin installed (its
    signing one, over :class:`_NoopWorkflowOutbound`); ``execute_workflow``
    returns at once, the run's warrant having been read on the way in.
    """

    outbound: Any = None

    def init(self, outbound: Any) -> None:
        self.outbound = outbound

    async def execute_workflow(self, input: Any) -> None:
        return None


@dataclasses.dataclass
class Item:
    """One activity of the pool, at every stage of its life."""

    path: str
    args: list[Any]  # as Temporal hands them over (positional)
    args_dict: dict[str, Any]  # the named view the floor signs
    pop: bytes
    headers: dict[str, Any]  # what ours puts on the activity
    raw: dict[str, bytes]  # header_bytes(headers)
    proto_headers: Any  # the same as the protobuf map a worker hands over
    exec_input: Any  # temporalio.worker.ExecuteActivityInput on proto_headers
    info_unique: Any  # fake activity.Info, unique workflow id
    info_same: Any  # fake activity.Info, one workflow id for the pool


@dataclasses.dataclass
class Pool:
    ts: int
    items: list[Item]


@dataclasses.dataclass
class MicroVariant:
    name: str
    group: str  # floor / ours / sign-step / verify-step / what-if
    label: str
    run: Callable[[Pool], int]  # walks the pool once, returns elapsed ns
    before: Callable[[], None] | None = None  # untimed, before each batch
    enter: Callable[[], None] | None = None  # untimed, around each batch
    exit: Callable[[], None] | None = None
    samples: list[float] = dataclasses.field(default_factory=list)  # ns per call

    def stats(self) -> dict[str, Any]:
        p10, p90 = _report.p10_p90(self.samples)
        return {"median_ns": _report.median(self.samples), "p10_ns": p10, "p90_ns": p90,
                "rounds": len(self.samples), "samples_ns": list(self.samples)}


class Micro:
    """Everything the in-process benchmark needs, built once."""

    def __init__(self) -> None:
        import tenuo_core
        from temporalio.api.common.v1 import Payload
        from temporalio.bridge.proto.activity_task import activity_task_pb2
        from temporalio.worker import (
            ExecuteActivityInput,
            ExecuteWorkflowInput,
            StartActivityInput,
            WorkflowInterceptorClassInput,
        )

        from bench import _temporal_bench_workflows as wf
        from tenuo_keys import StaticKeyResolver
        from tenuo_temporal import InMemoryReplayStore, TenuoPluginConfig, TenuoWorkerInterceptor
        from tenuo_temporal import _headers as H

        self.activity_task_pb2 = activity_task_pb2
        self.tenuo_core = tenuo_core
        self.Payload = Payload
        self.ExecuteActivityInput = ExecuteActivityInput
        self.H = H
        self.InMemoryReplayStore = InMemoryReplayStore
        self.fn = wf.read_file

        self.issuer = tenuo_core.SigningKey.generate()
        self.holder = tenuo_core.SigningKey.generate()
        self.warrant = tenuo_core.Warrant.issue(
            keypair=self.issuer, capabilities={TOOL: {"path": tenuo_core.Subpath("/data")}},
            ttl_seconds=3600, holder=self.holder.public_key)
        self.context = H.WarrantContext.build(self.warrant, KEY_ID)
        self.resolver = StaticKeyResolver({KEY_ID: self.holder})
        self.resolver.preload_all()

        def plugin(store: Any, **extra: Any) -> Any:
            # What a worker registers; the activity registered as a worker
            # would, so the signing side finds its parameter names.
            tenuo = TenuoWorkerInterceptor(TenuoPluginConfig(
                key_resolver=self.resolver, trusted_roots=[self.issuer.public_key],
                metrics=False, audit_callback=None, replay_store=store, **extra))
            tenuo.register_activities([self.fn])
            return tenuo

        self.plugin = plugin
        self.ours_unique = plugin(InMemoryReplayStore())
        self.ours_accept = plugin(AcceptAllReplayStore())
        # The same with a signed revocation list of 10,000 other warrants' ids.
        revoked = [f"tnu_wrt_{i:032x}" for i in range(REVOKED_IN_LIST)]
        self.ours_revocation = plugin(AcceptAllReplayStore(), revocation_list=(
            tenuo_core.SrlBuilder().revoke_all(revoked).version(1).build(self.issuer)))
        # The activity side: the plugin's inbound interceptor over a no-op next.
        self.inbound = {id(t): t.intercept_activity(_NoopActivityInbound())
                        for t in (self.ours_unique, self.ours_accept, self.ours_revocation)}
        self.activity_info: Any = None
        self.floor_auth = tenuo_core.Authorizer(
            trusted_roots=[self.issuer.public_key], clock_tolerance_secs=30,
            pop_window_secs=POP_WINDOW_SECS, pop_max_windows=5)
        self.now_ts = int(time.time())
        self.now = datetime.fromtimestamp(self.now_ts, timezone.utc)
        self.workflow_info = SimpleNamespace(
            namespace=NAMESPACE, workflow_id="bench-wf-signer", run_id="bench-run",
            workflow_type="FanOutWorkflow", task_queue="bench")
        # The workflow side, through Temporal's interceptor API: the plugin's
        # inbound class, init-ed with a stand-in outbound, started with the
        # warrant's headers; the signing outbound it installs is captured.
        inbound_cls = self.ours_unique.workflow_interceptor_class(
            WorkflowInterceptorClassInput(unsafe_extern_functions={}))
        workflow = _CapturingWorkflowInbound()
        inbound = inbound_cls(workflow)  # type: ignore[arg-type]
        inbound.init(_NoopWorkflowOutbound())  # type: ignore[arg-type]
        with self.workflow_context():
            _drive(inbound.execute_workflow(ExecuteWorkflowInput(
                type=object, run_fn=lambda: None, args=[],
                headers=dict(self.context.payloads))))
        self.outbound = workflow.outbound
        self.start_input = StartActivityInput(
            activity=TOOL, args=[], activity_id=None, task_queue=None,
            schedule_to_close_timeout=None, schedule_to_start_timeout=None,
            start_to_close_timeout=None, heartbeat_timeout=None, retry_policy=None,
            cancellation_type=None, headers={}, disable_eager_execution=False,
            versioning_intent=None, summary=None, priority=None, arg_types=None,
            ret_type=None)  # type: ignore[arg-type]
        self.seq = 0

    # -- the code under test ---------------------------------------------------

    def sign_side(self, args: list[Any], input_headers: dict[str, Any], ts: int
                  ) -> tuple[dict[str, Any], str]:
        """The plugin's signing outbound ``start_activity`` on a real ``StartActivityInput``.

        ``workflow.now()`` and ``workflow.info()`` read the fakes set by
        :meth:`workflow_context` (the signing timestamp is ``ts``).

        Returns the activity headers and the summary, as the plugin set them.
        """
        if ts != self.now_ts:
            self.now_ts = ts
            self.now = datetime.fromtimestamp(ts, timezone.utc)
        inp = self.start_input
        inp.args = args
        inp.headers = input_headers
        inp.summary = None
        self.outbound.start_activity(inp)
        return inp.headers, inp.summary

    @contextlib.contextmanager
    def workflow_context(self) -> Iterator[None]:
        """Fake the SDK's ``workflow.now()``, ``workflow.info()``, ``activity.info()``.

        These are temporalio's context functions, which raise outside a real
        workflow or activity; the plugin's own code is never replaced.
        """
        import temporalio.activity
        import temporalio.workflow

        real = (temporalio.workflow.now, temporalio.workflow.info, temporalio.activity.info)
        temporalio.workflow.now = lambda: self.now
        temporalio.workflow.info = lambda: self.workflow_info
        temporalio.activity.info = lambda: self.activity_info
        try:
            yield
        finally:
            (temporalio.workflow.now, temporalio.workflow.info,
             temporalio.activity.info) = real

    def verify_side(self, tenuo: Any, exec_input: Any, info: Any) -> Any:
        """The plugin's activity inbound ``execute_activity`` (authorize, then record).

        ``activity.info()`` returns ``info`` (faked by :meth:`workflow_context`)
        and the next interceptor is a no-op, so only the plugin's work is timed.
        """
        self.activity_info = info
        return _drive(self.inbound[id(tenuo)].execute_activity(exec_input))

    # -- pools -------------------------------------------------------------------

    def make_info(self, workflow_id: str, scheduled: datetime) -> Any:
        return SimpleNamespace(
            scheduled_time=scheduled, activity_type=TOOL, workflow_namespace=NAMESPACE,
            workflow_id=workflow_id, workflow_run_id="run-" + workflow_id, activity_id="1",
            attempt=1, is_local=False)

    def make_pool(self, size: int) -> Pool:
        _away_from_window_edge()
        ts = int(time.time())
        scheduled = datetime.now(timezone.utc)
        same = f"bench-wf-{uuid.uuid4().hex[:8]}"
        items = []
        for _ in range(size):
            self.seq += 1
            path = f"/data/reports/{self.seq:08d}.csv"
            args = [path]
            headers, _ = self.sign_side(args, {}, ts)
            raw = self.H.header_bytes(headers)
            proto = self.proto_map(headers)
            items.append(Item(
                path=path, args=args, args_dict={"path": path},
                pop=base64.b64decode(raw[self.H.POP]), headers=headers, raw=raw,
                proto_headers=proto,
                exec_input=self.ExecuteActivityInput(
                    fn=self.fn, args=args, executor=None, headers=proto),
                info_unique=self.make_info(f"bench-wf-{uuid.uuid4().hex}", scheduled),
                info_same=self.make_info(same, scheduled),
            ))
        return Pool(ts=ts, items=items)

    def proto_map(self, headers: dict[str, Any]) -> Any:
        """``headers`` as the protobuf map (``Start.header_fields``) a worker receives."""
        start = self.activity_task_pb2.Start()
        for k, v in headers.items():
            start.header_fields[k].CopyFrom(v)
        return start.header_fields

    def fresh_store(self) -> None:
        """A new plugin on an empty default store (untimed, before a batch).

        Distinct PoPs are reused by several variants in a round: each batch of
        the unique-workflow-id setup starts from an empty store, set through
        the config as a user would.
        """
        old = self.inbound.pop(id(self.ours_unique))
        del old
        self.ours_unique = self.plugin(self.InMemoryReplayStore())
        self.inbound[id(self.ours_unique)] = self.ours_unique.intercept_activity(
            _NoopActivityInbound())

    # -- variants ------------------------------------------------------------------

    def variants(self) -> list[MicroVariant]:
        """Every timed loop: floor, baseline, ours, then the steps and the what-if."""
        from bench._activity_steps import step_variants

        warrant, holder = self.warrant, self.holder
        floor_auth = self.floor_auth
        sign_side, verify_side = self.sign_side, self.verify_side
        fn = self.fn
        micro = self

        # -- floor -----------------------------------------------------------
        def floor_check_chain(p: Pool) -> int:
            sign, check, ts = warrant.sign, floor_auth.check_chain, p.ts
            t0 = perf_counter_ns()
            for it in p.items:
                pop = sign(holder, TOOL, it.args_dict, ts)
                check([warrant], TOOL, it.args_dict, signature=pop)
            return perf_counter_ns() - t0

        def floor_pop_args(p: Pool) -> int:
            sign, check, ts = warrant.sign, floor_auth.check_chain_with_pop_args, p.ts
            t0 = perf_counter_ns()
            for it in p.items:
                pop = sign(holder, TOOL, it.args_dict, ts)
                check([warrant], TOOL, it.args_dict, it.args_dict, signature=pop)
            return perf_counter_ns() - t0

        # -- ours, end to end -------------------------------------------------
        # Each activity as it happens: the signing side builds its headers as a
        # dict; Temporal turns them into the protobuf map the activity worker
        # receives (not our cost: built here untimed, right before the check,
        # so the verifier reads headers as fresh as a worker's); then the
        # verifying side. Only the two sides are timed, call by call (two
        # timer reads more per activity than the floor's one batch timer, a
        # cost counted against ours).
        proto_map, ExecuteActivityInput = self.proto_map, self.ExecuteActivityInput

        def floor_per_activity(p: Pool) -> int:
            # The floor in ours' loop shape: sign, then the same untimed work
            # ours has between its two sides (the protobuf map a worker
            # receives), then check; each side timed as ours' are.
            sign, check, ts, spent = warrant.sign, floor_auth.check_chain, p.ts, 0
            for it in p.items:
                t0 = perf_counter_ns()
                pop = sign(holder, TOOL, it.args_dict, ts)
                t1 = perf_counter_ns()
                received = ExecuteActivityInput(fn=fn, args=it.args, executor=None,
                                                headers=proto_map(it.headers))
                t2 = perf_counter_ns()
                check([warrant], TOOL, it.args_dict, signature=pop)
                spent += perf_counter_ns() - t2 + (t1 - t0)
                del received
            return spent

        noop = _NoopActivityInbound()

        def no_plugin(p: Pool) -> int:
            # What a worker pays per activity with no plugin at all: driving the
            # activity's own coroutine (ours' verify side drives the plugin's,
            # which awaits it). Timed in ours' loop shape, the floor's calls
            # untimed in between, so the caches are as disturbed as in ours.
            sign, check, ts, spent = warrant.sign, floor_auth.check_chain, p.ts, 0
            for it in p.items:
                pop = sign(holder, TOOL, it.args_dict, ts)
                received = ExecuteActivityInput(fn=fn, args=it.args, executor=None,
                                                headers=proto_map(it.headers))
                check([warrant], TOOL, it.args_dict, signature=pop)
                t0 = perf_counter_ns()
                _drive(noop.execute_activity(received))
                spent += perf_counter_ns() - t0
            return spent

        # ``accept`` picks the always-accept plugin; else the current default
        # one (rebuilt on an empty store before each batch).
        def ours_total(accept: bool, revocation: bool = False) -> Callable[[Pool], int]:
            def run(p: Pool) -> int:
                tenuo = micro.ours_accept if accept else micro.ours_unique
                if revocation:
                    tenuo = micro.ours_revocation
                ts, spent = p.ts, 0
                for it in p.items:
                    t0 = perf_counter_ns()
                    headers, _ = sign_side(it.args, {}, ts)
                    t1 = perf_counter_ns()
                    received = ExecuteActivityInput(fn=fn, args=it.args, executor=None,
                                                    headers=proto_map(headers))
                    info = it.info_same if accept else it.info_unique
                    t2 = perf_counter_ns()
                    verify_side(tenuo, received, info)
                    spent += perf_counter_ns() - t2 + (t1 - t0)
                return spent
            return run

        def ours_sign(p: Pool) -> int:
            ts = p.ts
            t0 = perf_counter_ns()
            for it in p.items:
                sign_side(it.args, {}, ts)
            return perf_counter_ns() - t0

        def ours_verify(accept: bool) -> Callable[[Pool], int]:
            def run(p: Pool) -> int:
                tenuo = micro.ours_accept if accept else micro.ours_unique
                t0 = perf_counter_ns()
                for it in p.items:
                    verify_side(tenuo, it.exec_input, it.info_same if accept else it.info_unique)
                return perf_counter_ns() - t0
            return run

        def w_verify_chain(p: Pool) -> int:
            # The chain's own signatures: the same for every activity of a
            # warrant, yet check_chain verifies them again on each one.
            config = micro.ours_unique.config
            verify = config.authorizer(config.pop_max_windows).verify_chain
            links = list(micro.context.chain)
            t0 = perf_counter_ns()
            for _ in p.items:
                verify(links)
            return perf_counter_ns() - t0

        def loop_only(p: Pool) -> int:
            t0 = perf_counter_ns()
            for _ in p.items:
                pass
            return perf_counter_ns() - t0

        fresh = self.fresh_store
        V = MicroVariant
        return [
            V("floor.check_chain", "floor", "sign + check_chain", floor_check_chain),
            V("floor.check_chain_with_pop_args", "floor", "sign + check_chain_with_pop_args",
              floor_pop_args),
            V("floor.per_activity", "floor",
              "sign + check_chain, timed per activity in ours' loop shape", floor_per_activity),
            V("baseline.no_plugin", "baseline",
              "the activity driven with no plugin (what a worker pays anyway)", no_plugin),
            V("ours.total.unique_wf", "ours",
              "sign side + verify side (InMemoryReplayStore, unique workflow id)",
              ours_total(False), fresh),
            V("ours.total.accept_all", "ours", "sign side + verify side (always-accept store)",
              ours_total(True)),
            V("ours.total.revocation_10k", "ours",
              f"as accept_all, with a {REVOKED_IN_LIST:,}-entry signed revocation list",
              ours_total(True, revocation=True)),
            V("ours.sign", "ours", "sign side (plugin's start_activity, now()/info() faked)",
              ours_sign),
            V("ours.verify.unique_wf", "ours",
              "verify side (plugin's execute_activity; default store, unique wf id)",
              ours_verify(False), fresh),
            V("ours.verify.accept_all", "ours",
              "verify side (plugin's execute_activity; always-accept store)",
              ours_verify(True)),
            *step_variants(self),
            *tracing_variants(self),
            V("whatif.verify_chain", "what-if",
              "Authorizer.verify_chain alone (the chain's signatures; same every activity)",
              w_verify_chain),
            V("loop", "loop", "empty loop over the pool (included in every row)", loop_only),
        ]


def _timed(v: MicroVariant, pool: Pool, switch_gc: bool = True) -> float:
    """One walk of ``pool`` by ``v``, in ns per activity (GC off during it, if ``switch_gc``)."""
    if v.before is not None:
        v.before()
    if v.enter is not None:
        v.enter()
    if switch_gc:
        gc.disable()
    try:
        return v.run(pool) / len(pool.items)
    finally:
        if switch_gc:
            gc.enable()
        if v.exit is not None:
            v.exit()


def run_micro(pool_size: int, rounds: int, profile: bool) -> dict[str, Any]:
    micro = Micro()
    variants = micro.variants()
    with micro.workflow_context():
        # Warm-up (and a check that every variant succeeds) on a small pool.
        warm = micro.make_pool(min(pool_size, 50))
        for v in variants:
            _timed(v, warm)
        started = time.perf_counter()
        count = len(variants)
        for r in range(rounds):
            pool = micro.make_pool(pool_size)
            order = variants[r % count:] + variants[: r % count]
            for v in order:
                v.samples.append(_timed(v, pool))
            gc.collect()
        elapsed = time.perf_counter() - started
        profile_text = _profile_micro(micro, pool_size) if profile else None
    stats = {v.name: {"group": v.group, "label": v.label, **v.stats()} for v in variants}
    sample_windows = micro.ours_unique.verifier.windows(warm.items[0].info_unique)
    out: dict[str, Any] = {
        "pool_size": pool_size, "rounds": rounds, "seconds": elapsed,
        "authorizer_windows_used_by_ours": sample_windows,
        "variants": stats, **_report.micro_analysis(stats),
        "tracing": tracing_analysis(stats),
    }
    if profile_text is not None:
        out["profile"] = profile_text
    return out


def _profile_micro(micro: Micro, pool_size: int) -> str:
    pool = micro.make_pool(pool_size)
    micro.fresh_store()
    profiler = cProfile.Profile()
    profiler.enable()
    for it in pool.items:
        headers, _ = micro.sign_side(it.args, {}, pool.ts)
        micro.verify_side(micro.ours_unique,
                          micro.ExecuteActivityInput(micro.fn, it.args, None, headers),
                          it.info_unique)
    profiler.disable()
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(18)
    return buf.getvalue()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = bench_parser(__doc__, "CI smoke run: fewer activities and rounds")
    parser.add_argument("--rounds", type=int, help="rounds (default 21, quick 5)")
    parser.add_argument("--pool", type=int, help="pool size (default 300, quick 100)")
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of the in-process sign + verify loop")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (5 if args.quick else 21)
    args.pool = args.pool or (100 if args.quick else 300)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return _report.run_jobs("bench_activity", args, [(
        "micro", "in-process authorization cost",
        lambda: run_micro(args.pool, args.rounds, args.profile), print_micro)])


def print_micro(res: dict[str, Any]) -> None:
    """The report's table and verdicts, then the tracing ratios."""
    _report.print_micro(res)
    print_tracing(res["tracing"])


if __name__ == "__main__":
    exit_with(lambda: main(sys.argv[1:]))
