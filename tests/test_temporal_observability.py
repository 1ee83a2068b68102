"""Shadow-mode and audit settings, the audit switches and the ``tenuo.authorize`` span.

The dev-server behaviour is in ``integration/test_shadow_tracing.py``; these
check the parts alone: the settings keep the 0.3.3 reference's names and
defaults, the recorder's switches, and the span's attributes and its silence
when no SDK provider is set.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from types import SimpleNamespace
from typing import Any

import pytest
import tenuo_core
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tenuo.temporal import TenuoPluginConfig as ReferenceConfig

from tenuo_keys import ResolverConfigError
from tenuo_temporal import AuditEvent, TenuoPluginConfig
from tenuo_temporal._audit import Recorder
from tenuo_temporal._tracing import SPAN_NAME, Tracing
from tenuo_temporal.errors import TemporalConstraintViolation

ROOT = tenuo_core.SigningKey.generate()
SWITCHES = ("dry_run", "on_denial", "audit_allow", "audit_deny")
INFO = SimpleNamespace(workflow_id="wf", workflow_run_id="run", activity_id="1", attempt=1)


def test_the_settings_keep_the_reference_names_and_defaults() -> None:
    ours = {f.name: f.default for f in dataclasses.fields(TenuoPluginConfig)}
    theirs = {f.name: f.default for f in dataclasses.fields(ReferenceConfig)}
    assert {name: ours[name] for name in SWITCHES} == {name: theirs[name] for name in SWITCHES}
    assert ours["on_denial"] == "raise" and ours["dry_run"] is False


def test_an_unknown_on_denial_is_refused_by_name() -> None:
    with pytest.raises(ResolverConfigError, match=r"on_denial must be .*'ignore'"):
        TenuoPluginConfig(trusted_roots=[ROOT.public_key], on_denial="ignore")  # type: ignore[arg-type]


def record(recorder: Recorder, allowed: bool, *, shadow: bool = False) -> None:
    error = None if allowed else TemporalConstraintViolation("path outside /data",
                                                             tool="read_file")
    asyncio.run(recorder.record(INFO, "read_file", time.perf_counter(), "w1", 1,  # type: ignore[arg-type]
                                {"path": "/etc/passwd"}, error, shadow=shadow))


@pytest.mark.parametrize(("allow", "deny", "expected"), [
    (True, True, [("allow", False), ("deny", False), ("deny", True)]),
    (False, True, [("deny", False), ("deny", True)]),
    (True, False, [("allow", False)]),
    (False, False, []),
])
def test_audit_switches_choose_which_decisions_reach_the_callback(
        allow: bool, deny: bool, expected: list[tuple[str, bool]]) -> None:
    events: list[AuditEvent] = []
    recorder = Recorder(events.append, metrics=False, audit_allow=allow, audit_deny=deny)
    record(recorder, True)
    record(recorder, False)
    record(recorder, False, shadow=True)
    assert [(e.decision, e.shadow) for e in events] == expected
    assert all(e.args == {"path": "<str>"} for e in events)


def test_an_audit_event_built_the_old_way_is_not_a_shadow_denial() -> None:
    event = AuditEvent(decision="deny", tool="t", reason="TENUO_X", detail="d", warrant_id=None,
                       chain_length=0, workflow_id=None, run_id=None, activity_id=None,
                       attempt=1)
    assert event.shadow is False


def test_no_span_without_an_sdk_provider() -> None:
    tracing = Tracing()
    assert tracing.available
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert tracing.start() is None


def test_the_span_carries_the_decision_and_never_the_arguments(monkeypatch: Any) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing()
    assert tracing.start() is None  # the proxy: nothing records yet
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    for decision, denial in (("allow", None), ("deny", "TENUO_CONSTRAINT_VIOLATION"),
                             ("shadow-deny", "TENUO_CONSTRAINT_VIOLATION")):
        started = tracing.start()
        assert started is not None
        tracing.finish(started, "read_file", decision, denial, "tnu_wrt_1")
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == [SPAN_NAME] * 3
    assert all(s.start_time is not None and s.end_time is not None
               and s.start_time <= s.end_time for s in spans)
    assert [dict(s.attributes or {}) for s in spans] == [
        {"tenuo.tool": "read_file", "tenuo.decision": "allow", "tenuo.warrant_id": "tnu_wrt_1"},
        {"tenuo.tool": "read_file", "tenuo.decision": "deny",
         "tenuo.denial_type": "TENUO_CONSTRAINT_VIOLATION", "tenuo.warrant_id": "tnu_wrt_1"},
        {"tenuo.tool": "read_file", "tenuo.decision": "shadow-deny",
         "tenuo.denial_type": "TENUO_CONSTRAINT_VIOLATION", "tenuo.warrant_id": "tnu_wrt_1"},
    ]
    # Only an enforced denial marks the span as an error; a shadow one ran.
    assert [s.status.status_code.name for s in spans] == ["UNSET", "ERROR", "UNSET"]
