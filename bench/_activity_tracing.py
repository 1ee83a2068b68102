"""The ``tenuo.authorize`` span and the audit callback, per activity (``bench_activity``).

Five plugins, each driven on the verify side exactly as ``ours.verify.accept_all``
(``intercept_activity(noop).execute_activity`` on the pool's inputs, an
always-accept replay store, metrics off), differing only in tracing and audit:

* ``tracing.absent``: ``opentelemetry`` hidden while the plugin is built (as if
  ``opentelemetry-api`` were not installed), no audit callback: both off;
* ``tracing.api_only``: ``opentelemetry-api`` installed, no SDK provider configured;
* ``tracing.span``: an SDK ``TracerProvider`` recording every span through a
  ``SimpleSpanProcessor`` to an ``InMemorySpanExporter`` (synchronous export);
* ``tracing.audit``: an audit callback receiving every event;
* ``tracing.span_audit``: both;
* ``tracing.sdk_floor``: the SDK alone, one bare span per activity (start with
  one attribute, set two, end) on the same provider: what any caller pays.

The global provider can be set once per process, so the variants swap what the
plugin sees by replacing ``opentelemetry.trace.get_tracer_provider`` around
each batch (untimed); the plugin looks the provider up on every decision. A
span variant fails unless it recorded exactly one span per activity.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from statistics import median
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.bench_activity import Micro, MicroVariant, Pool

__all__ = ["tracing_analysis", "tracing_variants"]

GOAL_SPAN_AUDIT_OVER_OFF = 1.15


@contextmanager
def hidden(module: str) -> Iterator[None]:
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


def tracing_variants(micro: Micro) -> list[MicroVariant]:
    """The tracing and audit variants (group ``tracing``)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from bench._temporal_bench_workflows import TOOL
    from bench.bench_activity import (
        AcceptAllReplayStore,
        MicroVariant,
        _drive,
        _NoopActivityInbound,
        perf_counter_ns,
    )
    from tenuo_temporal import TenuoPluginConfig, TenuoWorkerInterceptor

    def audit(event: Any) -> None:
        pass

    def inbound(audited: bool) -> Any:
        tenuo = TenuoWorkerInterceptor(TenuoPluginConfig(
            trusted_roots=[micro.issuer.public_key], metrics=False,
            replay_store=AcceptAllReplayStore(), audit_callback=audit if audited else None))
        return tenuo.intercept_activity(_NoopActivityInbound())  # type: ignore[arg-type]

    with hidden("opentelemetry"):
        absent = inbound(False)
    quiet, audited = inbound(False), inbound(True)
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    proxy, real = trace.get_tracer_provider(), trace.get_tracer_provider

    def swap(recording: bool) -> tuple[Callable[[], None], Callable[[], None]]:
        chosen = sdk if recording else proxy

        def enter() -> None:
            trace.get_tracer_provider = lambda: chosen

        def exit() -> None:
            trace.get_tracer_provider = real

        return enter, exit

    def verify(name: str, interceptor: Any, recording: bool) -> Callable[[Pool], int]:
        def run(p: Pool) -> int:
            t0 = perf_counter_ns()
            for it in p.items:
                micro.activity_info = it.info_same
                _drive(interceptor.execute_activity(it.exec_input))
            spent = perf_counter_ns() - t0
            recorded = len(exporter.get_finished_spans())
            exporter.clear()
            if recorded != (len(p.items) if recording else 0):
                raise RuntimeError(f"{name}: {recorded} spans for {len(p.items)} activities")
            return spent
        return run

    def sdk_floor(p: Pool) -> int:
        tracer = sdk.get_tracer("bench")
        t0 = perf_counter_ns()
        for _ in p.items:
            span = tracer.start_span("tenuo.authorize", attributes={"tenuo.tool": TOOL})
            span.set_attribute("tenuo.decision", "allow")
            span.set_attribute("tenuo.warrant_id", "tnu_wrt_0123456789abcdef")
            span.end()
        spent = perf_counter_ns() - t0
        exporter.clear()
        return spent

    found = []
    for name, interceptor, recording, label in (
            ("tracing.absent", absent, False, "verify side, no opentelemetry, no audit"),
            ("tracing.api_only", quiet, False, "verify side, opentelemetry-api, no SDK"),
            ("tracing.span", quiet, True, "verify side, SDK recording each span"),
            ("tracing.audit", audited, False, "verify side, audit callback"),
            ("tracing.span_audit", audited, True, "verify side, SDK span + audit callback")):
        enter, exit = swap(recording)
        found.append(MicroVariant(name, "tracing", label, verify(name, interceptor, recording),
                                  enter=enter, exit=exit))
    enter, exit = swap(True)
    found.append(MicroVariant("tracing.sdk_floor", "tracing",
                              "a bare SDK span alone (start, 2 attributes, end)", sdk_floor,
                              enter=enter, exit=exit))
    return found


def tracing_analysis(stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Paired per-round ratios to ``tracing.absent`` (both off), and the goal."""
    off = stats["tracing.absent"]["samples_ns"]

    def paired(name: str) -> float:
        return median([x / y for x, y in zip(stats[name]["samples_ns"], off, strict=True)])

    ratios = {f"{name.removeprefix('tracing.')}_over_off": paired(name)
              for name in ("tracing.api_only", "tracing.span", "tracing.audit",
                           "tracing.span_audit")}
    return {"ratios": ratios, "goal": {
        "target_max": GOAL_SPAN_AUDIT_OVER_OFF, "measured": ratios["span_audit_over_off"],
        "met": ratios["span_audit_over_off"] <= GOAL_SPAN_AUDIT_OVER_OFF}}


def print_tracing(res: dict[str, Any]) -> None:
    """The tracing ratios and goal, after the variant table."""
    r, goal = res["ratios"], res["goal"]
    print(f"\n  tracing, paired per round, over both off (tracing.absent): opentelemetry-api "
          f"without an SDK {r['api_only_over_off']:.3f}; span {r['span_over_off']:.3f}; "
          f"audit {r['audit_over_off']:.3f}; span + audit {r['span_audit_over_off']:.3f}")
    print(f"  goal span + audit <= {goal['target_max']}: "
          f"{'MET' if goal['met'] else 'MISSED'} ({goal['measured']:.3f})")
