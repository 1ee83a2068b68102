"""Operator controls on the dev server: shadow mode, on_denial, audit switches, tracing.

* ``dry_run=True`` (shadow mode): an activity the warrant does not allow runs,
  and is audited and counted as a shadow denial carrying the denial type it
  would have had; with shadow mode off the same call is denied. Workflow-side
  checks still enforce. The worker warns when it starts.
* ``on_denial="log"|"skip"``: the activity does not run and the workflow gets None.
* ``audit_allow`` / ``audit_deny``: each silences its half of the audit stream,
  never the metrics.
* The ``tenuo.authorize`` span, recorded by the OpenTelemetry SDK's in-memory
  exporter, nested under temporalio's ``RunActivity`` span, with the tool,
  decision, denial type and warrant id and nothing of the arguments; and a
  worker in a process where ``opentelemetry`` cannot be imported still works.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import tenuo_core
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin, create_tracer_provider
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from tenuo_core import Subpath

from integration import _plugin_workflows as wf
from integration.support.procs import REPO_ROOT, module_argv
from integration.support.temporal_helpers import connect, denial_of, uid, worker
from tenuo_keys import StaticKeyResolver
from tenuo_temporal import (
    AuditEvent,
    TenuoPluginConfig,
    TenuoTemporalPlugin,
    execute_workflow_authorized,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
WORKFLOWS = [wf.ReadWorkflow, wf.GuardedWorkflow]
ACTIVITIES = [wf.read_file]


def read_warrant() -> Any:
    return tenuo_core.Warrant.issue(
        keypair=ROOT, capabilities={"read_file": {"path": Subpath("/data")}},
        ttl_seconds=600, holder=HOLDER.public_key)


def config(events: list[AuditEvent] | None = None, **overrides: Any) -> TenuoPluginConfig:
    return TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent1": HOLDER}), trusted_roots=[ROOT.public_key],
        audit_callback=None if events is None else events.append, **overrides)


def read(client: Client, queue: str, path: str, warrant: Any = None) -> Any:
    return execute_workflow_authorized(
        client, wf.ReadWorkflow.run, workflow_id=uid("read"), warrant=warrant or read_warrant(),
        key_id="agent1", args=[path], task_queue=queue)


def metrics_of(buffer: MetricBuffer) -> dict[str, list[dict[str, Any]]]:
    seen: dict[str, list[dict[str, Any]]] = {}
    for update in buffer.retrieve_updates():
        seen.setdefault(update.metric.name, []).append(dict(update.attributes))
    return seen


async def test_shadow_mode_runs_a_would_be_denial_and_audits_its_type(temporal_env, caplog):
    events: list[AuditEvent] = []
    buffer = MetricBuffer(10_000)
    client = await connect(temporal_env, config(events, dry_run=True),
                           runtime=Runtime(telemetry=TelemetryConfig(metrics=buffer)))
    queue, mark = uid("shadow"), len(wf.CALLS)
    with caplog.at_level(logging.WARNING, logger="tenuo_temporal"):
        async with worker(client, queue, WORKFLOWS, ACTIVITIES):
            assert await read(client, queue, "/etc/passwd") == "contents of /etc/passwd"
            assert await client.execute_workflow(  # no warrant at all: runs too
                wf.ReadWorkflow.run, "/data/bare.csv", id=uid("bare"),
                task_queue=queue) == "contents of /data/bare.csv"
            assert await read(client, queue, "/data/a.csv") == "contents of /data/a.csv"
            # Workflow-side checks are not shadowed: an AuthorizedWorkflow
            # started without a warrant still fails.
            refused = await denial_of(client.execute_workflow(
                wf.GuardedWorkflow.run, "/data/a.csv", id=uid("guarded"), task_queue=queue))
            assert refused.type == "TENUO_WARRANT_MISSING"
    assert wf.CALLS[mark:] == [("read_file", ("/etc/passwd",)),
                               ("read_file", ("/data/bare.csv",)),
                               ("read_file", ("/data/a.csv",))]
    activity_events = [e for e in events if e.activity_id is not None]
    assert [(e.decision, e.reason, e.shadow) for e in activity_events] == [
        ("deny", "TENUO_CONSTRAINT_VIOLATION", True),
        ("deny", "TENUO_WARRANT_MISSING", True),
        ("allow", None, False)]
    assert activity_events[0].warrant_id is not None  # the presented warrant, named
    assert activity_events[1].warrant_id is None
    assert any("SHADOW MODE" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    seen = metrics_of(buffer)
    assert sorted(a["reason"] for a in seen["tenuo_activity_shadow_denied"]) == [
        "TENUO_CONSTRAINT_VIOLATION", "TENUO_WARRANT_MISSING"]
    assert all(a["tool"] == "read_file" for a in seen["tenuo_activity_shadow_denied"])
    # The one enforced denial is the workflow side's (at start, no tool), no activity's.
    assert [(a["tool"], a["reason"]) for a in seen["tenuo_activity_denied"]] == [
        ("", "TENUO_WARRANT_MISSING")]


async def test_without_shadow_mode_the_same_calls_are_denied(temporal_env, caplog):
    events: list[AuditEvent] = []
    client = await connect(temporal_env, config(events))
    queue, mark = uid("enforce"), len(wf.CALLS)
    with caplog.at_level(logging.WARNING, logger="tenuo_temporal"):
        async with worker(client, queue, WORKFLOWS, ACTIVITIES):
            assert (await denial_of(read(client, queue, "/etc/passwd"))).type == \
                "TENUO_CONSTRAINT_VIOLATION"
            assert (await denial_of(client.execute_workflow(
                wf.ReadWorkflow.run, "/data/bare.csv", id=uid("bare"),
                task_queue=queue))).type == "TENUO_WARRANT_MISSING"
    assert wf.CALLS[mark:] == []
    assert [(e.decision, e.reason, e.shadow) for e in events if e.activity_id] == [
        ("deny", "TENUO_CONSTRAINT_VIOLATION", False),
        ("deny", "TENUO_WARRANT_MISSING", False)]
    assert not any("SHADOW MODE" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("on_denial", ["log", "skip"])
async def test_on_denial_log_and_skip_answer_none_without_running(temporal_env, caplog,
                                                                  on_denial):
    events: list[AuditEvent] = []
    client = await connect(temporal_env, config(events, on_denial=on_denial))
    queue, mark = uid(f"on-denial-{on_denial}"), len(wf.CALLS)
    with caplog.at_level(logging.WARNING, logger="tenuo_temporal"):
        async with worker(client, queue, WORKFLOWS, ACTIVITIES):
            assert await read(client, queue, "/etc/passwd") is None
            assert await read(client, queue, "/data/ok.csv") == "contents of /data/ok.csv"
    assert wf.CALLS[mark:] == [("read_file", ("/data/ok.csv",))]
    assert [(e.decision, e.reason, e.shadow) for e in events if e.activity_id] == [
        ("deny", "TENUO_CONSTRAINT_VIOLATION", False), ("allow", None, False)]
    logged = [r for r in caplog.records if "denied read_file" in r.getMessage()]
    assert len(logged) == (1 if on_denial == "log" else 0)


@pytest.mark.parametrize(("audit_allow", "audit_deny"), [(False, True), (True, False)])
async def test_audit_switches_silence_their_half_and_never_the_metrics(
        temporal_env, audit_allow, audit_deny):
    events: list[AuditEvent] = []
    buffer = MetricBuffer(10_000)
    client = await connect(temporal_env, config(events, audit_allow=audit_allow,
                                                audit_deny=audit_deny),
                           runtime=Runtime(telemetry=TelemetryConfig(metrics=buffer)))
    queue = uid("switches")
    async with worker(client, queue, WORKFLOWS, ACTIVITIES):
        assert await read(client, queue, "/data/a.csv") == "contents of /data/a.csv"
        await denial_of(read(client, queue, "/etc/passwd"))
        await denial_of(client.execute_workflow(  # a workflow-side denial
            wf.GuardedWorkflow.run, "/data/a.csv", id=uid("guarded"), task_queue=queue))
    expected = ([("deny", "TENUO_CONSTRAINT_VIOLATION"), ("deny", "TENUO_WARRANT_MISSING")]
                if audit_deny else [("allow", None)])
    assert sorted(((e.decision, e.reason) for e in events), key=str) == sorted(expected,
                                                                              key=str)
    seen = metrics_of(buffer)
    assert len(seen["tenuo_activity_authorized"]) >= 1
    assert sorted(a["reason"] for a in seen["tenuo_activity_denied"]) == [
        "TENUO_CONSTRAINT_VIOLATION", "TENUO_WARRANT_MISSING"]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """An in-memory exporter on the process's SDK tracer provider (set once)."""
    provider: Any = trace.get_tracer_provider()
    if not hasattr(provider, "add_span_processor"):
        provider = create_tracer_provider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # later tests' spans are not kept


async def test_each_decision_opens_a_tenuo_authorize_span_under_run_activity(
        temporal_env, spans):
    target = temporal_env.client.service_client.config.target_host
    queue = uid("traced")

    async def traced(tenuo: TenuoPluginConfig) -> Client:
        return await Client.connect(target, namespace=temporal_env.client.namespace, plugins=[
            OpenTelemetryPlugin(add_temporal_spans=True), TenuoTemporalPlugin(tenuo)])

    allowed, denied = read_warrant(), read_warrant()
    client = await traced(config())
    async with worker(client, queue, WORKFLOWS, ACTIVITIES):
        await read(client, queue, "/data/secret-name.csv", allowed)
        await denial_of(read(client, queue, "/etc/passwd", denied))
    shadow_client = await traced(config(dry_run=True))
    shadow_queue = uid("traced-shadow")
    async with worker(shadow_client, shadow_queue, WORKFLOWS, ACTIVITIES):
        await read(shadow_client, shadow_queue, "/etc/shadow-name", denied)
    finished = spans.get_finished_spans()
    authorize = [s for s in finished if s.name == "tenuo.authorize"]
    runs = {s.context.span_id: s for s in finished if s.name == "RunActivity:read_file"}
    assert [dict(s.attributes or {}) for s in authorize] == [
        {"tenuo.tool": "read_file", "tenuo.decision": "allow",
         "tenuo.warrant_id": str(allowed.id)},
        {"tenuo.tool": "read_file", "tenuo.decision": "deny",
         "tenuo.denial_type": "TENUO_CONSTRAINT_VIOLATION", "tenuo.warrant_id": str(denied.id)},
        {"tenuo.tool": "read_file", "tenuo.decision": "shadow-deny",
         "tenuo.denial_type": "TENUO_CONSTRAINT_VIOLATION", "tenuo.warrant_id": str(denied.id)},
    ]
    for span in authorize:  # each nested under its own activity run
        assert span.parent is not None and span.parent.span_id in runs
        assert runs[span.parent.span_id].context.trace_id == span.context.trace_id
        assert not span.events  # no exception recorded: its message may quote arguments
    assert len({s.parent.span_id for s in authorize if s.parent}) == 3
    assert authorize[1].status.status_code.name == "ERROR"
    text = repr([(s.attributes, s.status.description) for s in authorize])
    for secret in ("secret-name", "/etc/passwd", "shadow-name", "agent1"):
        assert secret not in text


async def test_a_worker_without_opentelemetry_installed_still_authorizes(temporal_env):
    target = temporal_env.client.service_client.config.target_host
    done = subprocess.run(
        module_argv("integration._no_otel_proc", target, temporal_env.client.namespace),
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"opentelemetry_importable": False, "tracing_available": False,
                      "allowed": "contents of /data/a.csv",
                      "denied": "TENUO_CONSTRAINT_VIOLATION",
                      "opentelemetry_loaded": False}

