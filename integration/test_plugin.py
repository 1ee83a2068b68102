"""``tenuo_temporal`` end to end on a real Temporal dev server.

Every test runs real workers against the session's dev server; denials are
checked for their wire type, for being non-retryable, and for the activity
body never having run.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import pytest
import tenuo_core
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Replayer,
    Worker,
)

from integration import _plugin_workflows as wf
from integration.support.copy_headers import CopyHeaders
from integration.support.temporal_helpers import connect, denial_of, events_of, uid, worker
from tenuo_keys import EnvKeyResolver, StaticKeyResolver, encode_signing_key
from tenuo_keys.testing import assert_no_secret
from tenuo_temporal import (
    AuditEvent,
    TenuoPluginConfig,
    TenuoTemporalPlugin,
    execute_workflow_authorized,
    start_workflow_authorized,
)
from tenuo_temporal import _headers as H
from tenuo_temporal._interceptors import MINT_ACTIVITY, TenuoInterceptor

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.generate()
STRANGER_ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
CHILD = tenuo_core.SigningKey.generate()
Subpath = tenuo_core.Subpath


def mint(capabilities: dict[str, Any], *, holder: Any = HOLDER, ttl: int = 600,
         issuer: Any = ROOT) -> Any:
    return tenuo_core.Warrant.issue(keypair=issuer, capabilities=capabilities,
                                    ttl_seconds=ttl, holder=holder.public_key)


def read_warrant(root: str = "/data", **kw: Any) -> Any:
    return mint({"read_file": {"path": Subpath(root)}}, **kw)






def default_config(**overrides: Any) -> TenuoPluginConfig:
    options: dict[str, Any] = dict(
        key_resolver=StaticKeyResolver({"agent1": HOLDER, "child1": CHILD}),
        trusted_roots=[ROOT.public_key],
    )
    options.update(overrides)
    return TenuoPluginConfig(**options)




ALL_WORKFLOWS = [wf.ReadWorkflow, wf.ReadTwiceWorkflow, wf.WriteWorkflow, wf.CopyWorkflow,
                 wf.GuardedWorkflow, wf.InteractiveWorkflow, wf.ChildReader, wf.PlainChildParent,
                 wf.DelegatingWorkflow, wf.WideningWorkflow, wf.ContinuingWorkflow,
                 wf.SlowReadsWorkflow, wf.RetryAcrossWindowWorkflow]
ALL_ACTIVITIES = [wf.read_file, wf.write_file, wf.copy_file, wf.flaky_read]




def calls_since(mark: int) -> list[tuple[str, tuple[object, ...]]]:
    return wf.CALLS[mark:]


# --------------------------------------------------------------------------- allowed


async def test_allowed_with_summaries_audit_and_replay(temporal_env):
    events: list[AuditEvent] = []
    config = default_config(audit_callback=events.append)
    client = await connect(temporal_env, config)
    queue = uid("allowed")
    mark = len(wf.CALLS)
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES):
        handle = await start_workflow_authorized(
            client, wf.ReadTwiceWorkflow.run, workflow_id=uid("wf"), warrant=read_warrant(),
            key_id="agent1", args=["/data/a.csv", "/data/b.csv"], task_queue=queue)
        assert await handle.result() == ["contents of /data/a.csv", "contents of /data/b.csv"]
    assert calls_since(mark) == [("read_file", ("/data/a.csv",)), ("read_file", ("/data/b.csv",))]
    assert [e.decision for e in events] == ["allow", "allow"]
    assert events[0].args == {"path": "<str>"}  # redacted: no values
    history = await handle.fetch_history()
    summaries = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            payload = event.user_metadata.summary
            summaries.append((await client.data_converter.decode([payload]))[0]
                             if payload.data else None)
            headers = event.activity_task_scheduled_event_attributes.header.fields
            assert set(headers) >= {H.WARRANT, H.POP, H.ARG_KEYS, H.KEY_ID, H.WIRE_FORMAT}
            assert headers[H.ARG_KEYS].data == b"path"
    assert summaries == ["[tenuo.TenuoTemporalPlugin] read_file: monthly report",
                         "[tenuo.TenuoTemporalPlugin] read_file"]
    # The recorded history replays through the plugin with no nondeterminism.
    replayer = Replayer(workflows=ALL_WORKFLOWS, plugins=[TenuoTemporalPlugin(default_config())])
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
    # No key material anywhere in the history.
    assert_no_secret(history.to_json(), [HOLDER], "workflow history")


async def test_activity_summaries_off_keeps_the_callers_and_replays_either_way(temporal_env):
    """``activity_summaries=False``: the caller's summary (or none) is what history records.

    Switching the knob on a running fleet is safe: a history recorded with
    summaries replays through a plugin without them, and the other way round.
    """
    client = await connect(temporal_env, default_config(activity_summaries=False))
    queue = uid("nosummary")
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES):
        handle = await start_workflow_authorized(
            client, wf.ReadTwiceWorkflow.run, workflow_id=uid("wf"), warrant=read_warrant(),
            key_id="agent1", args=["/data/a.csv", "/data/b.csv"], task_queue=queue)
        assert await handle.result() == ["contents of /data/a.csv", "contents of /data/b.csv"]
    history = await handle.fetch_history()
    summaries = []
    for event in events_of(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED):
        payload = event.user_metadata.summary
        summaries.append((await client.data_converter.decode([payload]))[0]
                         if payload.data else None)
        # Authorization is unchanged: every activity still carries its PoP.
        assert H.POP in event.activity_task_scheduled_event_attributes.header.fields
    assert summaries == ["monthly report", None]
    for summaries_on in (True, False):
        replayer = Replayer(workflows=ALL_WORKFLOWS, plugins=[TenuoTemporalPlugin(
            default_config(activity_summaries=summaries_on))])
        assert (await replayer.replay_workflow(history)).replay_failure is None


# --------------------------------------------------------------------------- denied


class TamperPop(ClientInterceptor, Interceptor):
    """Given to the client before the plugin, so it runs first on activity workers."""

    """Flips a bit of the PoP before verification, as a man in the middle would."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        class Tamper(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                pop = bytearray(base64.b64decode(input.headers[H.POP].data))
                pop[0] ^= 1
                headers = dict(input.headers)
                headers[H.POP] = type(input.headers[H.POP])(data=base64.b64encode(bytes(pop)))
                input.headers = headers
                return await super().execute_activity(input)

        return Tamper(next)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("constraint", "TENUO_CONSTRAINT_VIOLATION"),
        ("traversal", "TENUO_CONSTRAINT_VIOLATION"),
        ("undeclared", "TENUO_CONSTRAINT_VIOLATION"),
        ("tool", "TENUO_TOOL_NOT_AUTHORIZED"),
        ("expired", "TENUO_WARRANT_EXPIRED"),
        ("untrusted", "TENUO_CHAIN_INVALID"),
        ("missing", "TENUO_WARRANT_MISSING"),
        ("tampered", "TENUO_POP_INVALID"),
    ],
)
async def test_denied(temporal_env, case, expected):
    events: list[AuditEvent] = []
    config = default_config(audit_callback=events.append)
    client = await connect(temporal_env, config)
    queue = uid(f"deny-{case}")
    warrant = read_warrant()
    run: Any = wf.ReadWorkflow.run
    args: list[Any] = ["/etc/passwd"]
    extra: dict[str, Any] = {}
    if case == "traversal":
        args = ["/data/../etc/passwd"]
    elif case == "undeclared":
        warrant = mint({"write_file": {"path": Subpath("/data")}})
        run, args = wf.WriteWorkflow.run, ["/data/out.txt", "body"]
    elif case == "tool":
        run, args = wf.WriteWorkflow.run, ["/data/out.txt", "body"]
    elif case == "expired":
        warrant = read_warrant(ttl=1)
        args = ["/data/ok.txt"]
    elif case == "untrusted":
        warrant = read_warrant(issuer=STRANGER_ROOT)
        args = ["/data/ok.txt"]
    elif case == "tampered":
        args = ["/data/ok.txt"]
        client = await connect(temporal_env, config, interceptors=[TamperPop()])
    mark = len(wf.CALLS)
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES, **extra):
        if case == "expired":
            await asyncio.sleep(1.5)
        if case == "missing":
            start = client.execute_workflow(run, args=args, id=uid("wf"), task_queue=queue)
        else:
            start = execute_workflow_authorized(
                client, run, workflow_id=uid("wf"), warrant=warrant, key_id="agent1", args=args,
                task_queue=queue)
        error = await denial_of(start)
    assert error.type == expected, error
    assert error.non_retryable
    assert calls_since(mark) == []  # the activity body never ran
    assert events and events[-1].decision == "deny" and events[-1].reason == expected


async def test_authorized_workflow_fails_fast_without_warrant(temporal_env):
    client = await connect(temporal_env, default_config())
    queue = uid("guarded")
    mark = len(wf.CALLS)
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES):
        error = await denial_of(client.execute_workflow(
            wf.GuardedWorkflow.run, "/data/x", id=uid("wf"), task_queue=queue))
        assert error.type == "TENUO_WARRANT_MISSING" and error.non_retryable
        ok = await execute_workflow_authorized(
            client, wf.GuardedWorkflow.run, workflow_id=uid("wf"), warrant=read_warrant(),
            key_id="agent1", args=["/data/x"], task_queue=queue)
    assert ok == "contents of /data/x"
    assert calls_since(mark) == [("read_file", ("/data/x",))]


async def test_dataclass_arguments_sign_and_verify_identically(temporal_env):
    client = await connect(temporal_env, default_config())
    queue = uid("dataclass")
    warrant = mint({"copy_file": {"request": tenuo_core.Wildcard()}})
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES):
        result = await execute_workflow_authorized(
            client, wf.CopyWorkflow.run, workflow_id=uid("wf"), warrant=warrant,
            key_id="agent1", args=["/data/a", "/data/b"], task_queue=queue)
    assert result == "copied /data/a -> /data/b"


async def test_pop_replayed_onto_another_workflow_is_refused(temporal_env):
    victim, thief = uid("victim"), uid("thief")
    copier = CopyHeaders(victim, thief)
    # Strict mode: a PoP belongs to the first workflow that presents it (the
    # default authorizes each activity attempt once: test_replay_modes.py).
    client = await connect(temporal_env, default_config(replay_protection="strict"),
                           interceptors=[copier])
    queue = uid("replay")
    mark = len(wf.CALLS)
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES):
        ok = await execute_workflow_authorized(
            client, wf.ReadWorkflow.run, workflow_id=victim, warrant=read_warrant(),
            key_id="agent1", args=["/data/payroll.csv"], task_queue=queue)
        # The thief's own workflow runs without any warrant; it borrows the
        # victim's warrant, PoP and key id from the copied headers.
        error = await denial_of(client.execute_workflow(
            wf.ReadWorkflow.run, "/data/payroll.csv", id=thief, task_queue=queue))
    assert ok == "contents of /data/payroll.csv"
    assert error.type == "TENUO_POP_REPLAYED" and error.non_retryable
    assert calls_since(mark) == [("read_file", ("/data/payroll.csv",))]


@pytest.mark.parametrize("authorized_child", [False, True], ids=["plain", "authorized"])
async def test_a_plain_child_workflow_starts_without_a_warrant(temporal_env, authorized_child):
    """``workflow.execute_child_workflow()`` does not propagate warrant headers.

    As the seed documentation says: only ``tenuo_execute_child_workflow()``
    gives a child a (narrowed) warrant. A plain child of an authorized parent
    has none: under ``require_warrant`` its activities are denied, and an
    ``AuthorizedWorkflow`` child fails at once.
    """
    client = await connect(temporal_env, default_config())
    queue = uid("plain-child")
    mark = len(wf.CALLS)
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES):
        error = await denial_of(execute_workflow_authorized(
            client, wf.PlainChildParent.run, workflow_id=uid("parent"),
            warrant=read_warrant(), key_id="agent1", args=["/data/x", authorized_child],
            task_queue=queue))
    assert error.type == "TENUO_WARRANT_MISSING" and error.non_retryable, error
    if authorized_child:
        assert "AuthorizedWorkflow but was started without a warrant" in error.message
    else:
        assert error.message == "warrant missing: the activity carries no warrant"
    assert calls_since(mark) == []


async def test_trusted_roots_provider(temporal_env):
    calls = []

    def provider():
        calls.append(1)
        return [ROOT.public_key]

    client = await connect(temporal_env, default_config(trusted_roots=provider))
    queue = uid("provider")
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES):
        ok = await execute_workflow_authorized(
            client, wf.ReadWorkflow.run, workflow_id=uid("wf"), warrant=read_warrant(),
            key_id="agent1", args=["/data/p.txt"], task_queue=queue)
    assert ok == "contents of /data/p.txt" and calls


# --------------------------------------------------------------------------- deployments


async def test_split_deployment_verify_only_activity_worker(temporal_env):
    """The workflow worker has no activity code; the activity worker has no key resolver."""
    signer = await connect(temporal_env, TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent1": HOLDER})))
    verifier = await connect(temporal_env, TenuoPluginConfig(trusted_roots=[ROOT.public_key]))
    queue = uid("split")
    mark = len(wf.CALLS)
    async with worker(signer, queue, [wf.ReadByNameWorkflow]), \
            worker(verifier, queue + "-activities", activities=[wf.read_file]):
        ok = await execute_workflow_authorized(
            signer, wf.ReadByNameWorkflow.run, workflow_id=uid("wf"), warrant=read_warrant(),
            key_id="agent1", args=["/data/split.txt"], task_queue=queue)
        error = await denial_of(execute_workflow_authorized(
            signer, wf.ReadByNameWorkflow.run, workflow_id=uid("wf"), warrant=read_warrant(),
            key_id="agent1", args=["/etc/shadow"], task_queue=queue))
    assert ok == "contents of /data/split.txt"
    assert error.type == "TENUO_CONSTRAINT_VIOLATION"
    assert calls_since(mark) == [("read_file", ("/data/split.txt",))]


async def test_split_deployment_across_processes(temporal_env, tmp_path):
    """Workflow worker here; a verify-only activity worker in another process."""
    from integration.support.procs import REPO_ROOT, ManagedProcess, module_argv

    signer = await connect(temporal_env, TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent1": HOLDER})))
    queue = uid("procs")
    target = temporal_env.client.service_client.config.target_host
    log = tmp_path / "activity-worker.log"
    proc = ManagedProcess(
        module_argv("integration._activity_worker_proc", target, temporal_env.client.namespace,
                    queue + "-activities",
                    base64.b64encode(bytes(ROOT.public_key_bytes())).decode()),
        "activity worker", log, cwd=REPO_ROOT)
    proc.start(lambda: "ready" in log.read_text(), timeout=60)
    try:
        async with worker(signer, queue, [wf.ReadByNameWorkflow]):
            ok = await execute_workflow_authorized(
                signer, wf.ReadByNameWorkflow.run, workflow_id=uid("wf"),
                warrant=read_warrant(), key_id="agent1", args=["/data/proc.txt"],
                task_queue=queue)
            error = await denial_of(execute_workflow_authorized(
                signer, wf.ReadByNameWorkflow.run, workflow_id=uid("wf"),
                warrant=read_warrant(), key_id="agent1", args=["/root/.ssh/id"],
                task_queue=queue))
    finally:
        proc.stop()
    assert ok == "contents of /data/proc.txt"
    assert error.type == "TENUO_CONSTRAINT_VIOLATION" and error.non_retryable


async def test_multi_tenant_isolation(temporal_env):
    client = await connect(temporal_env, default_config(
        key_resolver=StaticKeyResolver({"tenant-a": HOLDER, "tenant-b": CHILD})))
    queue = uid("tenants")
    warrant_a = read_warrant("/tenants/a")
    warrant_b = read_warrant("/tenants/b", holder=CHILD)
    mark = len(wf.CALLS)
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES):
        a_own, b_own, a_cross = await asyncio.gather(
            execute_workflow_authorized(client, wf.ReadWorkflow.run, workflow_id=uid("a"),
                                        warrant=warrant_a, key_id="tenant-a",
                                        args=["/tenants/a/x"], task_queue=queue),
            execute_workflow_authorized(client, wf.ReadWorkflow.run, workflow_id=uid("b"),
                                        warrant=warrant_b, key_id="tenant-b",
                                        args=["/tenants/b/y"], task_queue=queue),
            denial_of(execute_workflow_authorized(
                client, wf.ReadWorkflow.run, workflow_id=uid("a"), warrant=warrant_a,
                key_id="tenant-a", args=["/tenants/b/y"], task_queue=queue)),
        )
        # A key id whose key is not the warrant's holder cannot sign for it.
        wrong_key = await denial_of(execute_workflow_authorized(
            client, wf.ReadWorkflow.run, workflow_id=uid("x"), warrant=warrant_a,
            key_id="tenant-b", args=["/tenants/a/x"], task_queue=queue))
    assert a_own == "contents of /tenants/a/x" and b_own == "contents of /tenants/b/y"
    assert a_cross.type == "TENUO_CONSTRAINT_VIOLATION"
    assert wrong_key.type == "TENUO_KEY_RESOLUTION" and "holder mismatch" in wrong_key.message
    assert sorted(calls_since(mark)) == [("read_file", ("/tenants/a/x",)),
                                         ("read_file", ("/tenants/b/y",))]


async def test_signal_query_result_through_start_workflow_authorized(temporal_env):
    client = await connect(temporal_env, default_config())
    queue = uid("interactive")
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES):
        handle = await start_workflow_authorized(
            client, wf.InteractiveWorkflow.run, workflow_id=uid("wf"), warrant=read_warrant(),
            key_id="agent1", task_queue=queue)
        assert await handle.query(wf.InteractiveWorkflow.chosen) is None
        await handle.signal(wf.InteractiveWorkflow.choose, "/data/signal.txt")
        assert await handle.result() == "contents of /data/signal.txt"


# --------------------------------------------------------------------------- delegation


async def test_delegation_to_a_child_on_another_key(temporal_env):
    client = await connect(temporal_env, default_config())
    queue = uid("delegate")
    mark = len(wf.CALLS)
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES):
        parent_id = uid("parent")
        ok = await execute_workflow_authorized(
            client, wf.DelegatingWorkflow.run, workflow_id=parent_id, warrant=read_warrant(),
            key_id="agent1", args=["/data/reports/q3.csv", "child1", "/data/reports"],
            task_queue=queue)
        narrowed = await denial_of(execute_workflow_authorized(
            client, wf.DelegatingWorkflow.run, workflow_id=uid("parent"), warrant=read_warrant(),
            key_id="agent1", args=["/data/private/x", "child1", "/data/reports"],
            task_queue=queue))
        widened = await denial_of(execute_workflow_authorized(
            client, wf.WideningWorkflow.run, workflow_id=uid("parent"), warrant=read_warrant(),
            key_id="agent1", task_queue=queue))
        child_history = await client.get_workflow_handle(parent_id + "-child").fetch_history()
    assert ok == "contents of /data/reports/q3.csv"
    assert narrowed.type == "TENUO_CONSTRAINT_VIOLATION"
    assert widened.type == "TENUO_CONSTRAINT_VIOLATION" and "delegation refused" in widened.message
    assert calls_since(mark) == [("read_file", ("/data/reports/q3.csv",))]
    # The child runs under an attenuated warrant held by the child's key, with
    # the chain back to the root in its headers.
    start = child_history.events[0].workflow_execution_started_event_attributes
    context = H.decode_context(start.header.fields)
    assert context is not None and len(context.chain) == 2
    assert context.key_id == "child1"
    assert bytes(context.warrant.authorized_holder.to_bytes()) == bytes(CHILD.public_key_bytes())
    assert context.warrant.tools == ["read_file"]


async def test_delegation_from_a_workflow_only_worker(temporal_env):
    """The workflow worker has no activities; a separate worker on the same queue runs them."""
    client = await connect(temporal_env, default_config())
    queue = uid("wf-only")
    mark = len(wf.CALLS)
    async with worker(client, queue, ALL_WORKFLOWS), worker(client, queue,
                                                           activities=ALL_ACTIVITIES):
        ok = await execute_workflow_authorized(
            client, wf.DelegatingWorkflow.run, workflow_id=uid("parent"), warrant=read_warrant(),
            key_id="agent1", args=["/data/reports/x", "child1", "/data/reports"],
            task_queue=queue)
    assert ok == "contents of /data/reports/x"
    assert calls_since(mark) == [("read_file", ("/data/reports/x",))]
    # With delegation switched off, the helper explains itself.
    off = await connect(temporal_env, default_config(delegation=False))
    queue = uid("no-mint")
    async with worker(off, queue, ALL_WORKFLOWS), worker(off, queue, activities=ALL_ACTIVITIES):
        error = await denial_of(execute_workflow_authorized(
            off, wf.DelegatingWorkflow.run, workflow_id=uid("parent"), warrant=read_warrant(),
            key_id="agent1", args=["/data/reports/x", "child1", "/data/reports"],
            task_queue=queue))
    assert error.type == "TENUO_DELEGATION_UNAVAILABLE" and "delegation=False" in error.message


async def test_continue_as_new_keeps_the_warrant(temporal_env):
    client = await connect(temporal_env, default_config())
    queue = uid("can")
    mark = len(wf.CALLS)
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES):
        result = await execute_workflow_authorized(
            client, wf.ContinuingWorkflow.run, workflow_id=uid("wf"), warrant=read_warrant(),
            key_id="agent1", args=["/data/loop.txt", 3], task_queue=queue)
    assert result == "contents of /data/loop.txt"
    assert calls_since(mark) == [("read_file", ("/data/loop.txt",))] * 3


# --------------------------------------------------------------------------- keys


async def test_key_not_loaded_fails_the_task_then_succeeds_on_retry(temporal_env, monkeypatch):
    prefix = uid("LATE").replace("-", "_") + "_"
    resolver = EnvKeyResolver(prefix)
    client = await connect(temporal_env, default_config(key_resolver=resolver, preload_all=False))
    monkeypatch.setenv(prefix + "agent1", encode_signing_key(HOLDER))
    queue = uid("late-key")
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES):
        handle = await start_workflow_authorized(
            client, wf.ReadWorkflow.run, workflow_id=uid("wf"), warrant=read_warrant(),
            key_id="agent1", args=["/data/late.txt"], task_queue=queue)
        assert await handle.result() == "contents of /data/late.txt"
    history = await handle.fetch_history()
    failures = [e.workflow_task_failed_event_attributes.failure.message for e in history.events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert failures and "not available yet" in failures[0]
    assert "the workflow task will be retried" in failures[0]


async def test_rotation_mid_run_in_flight_workflows_complete(temporal_env):
    resolver = StaticKeyResolver({"agent1": HOLDER})
    client = await connect(temporal_env, default_config(key_resolver=resolver))
    queue = uid("rotate")
    new_key = tenuo_core.SigningKey.generate()
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES):
        in_flight = await start_workflow_authorized(
            client, wf.SlowReadsWorkflow.run, workflow_id=uid("old"), warrant=read_warrant(),
            key_id="agent1", args=[["/data/1", "/data/2", "/data/3"], 0.5], task_queue=queue)
        await asyncio.sleep(0.3)
        resolver.rotate("agent1", new_key)  # new current; the old stays as previous
        fresh = await execute_workflow_authorized(
            client, wf.ReadWorkflow.run, workflow_id=uid("new"),
            warrant=read_warrant(holder=new_key), key_id="agent1", args=["/data/new"],
            task_queue=queue)
        assert await in_flight.result() == [f"contents of /data/{i}" for i in (1, 2, 3)]
    assert fresh == "contents of /data/new"


# --------------------------------------------------------------------------- time


async def test_backlog_longer_than_the_pop_window_is_authorized(temporal_env):
    """Activities queued past the PoP window still pass: freshness follows schedule time.

    With ``pop_max_windows=1`` only the current 30-second window is accepted
    around a reference time, so once the wall clock has crossed into the next
    window, a verifier judging by its own clock alone would deny this PoP.
    """
    signer = await connect(temporal_env, TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent1": HOLDER})))
    verifier = await connect(temporal_env, TenuoPluginConfig(
        trusted_roots=[ROOT.public_key], pop_max_windows=1))
    queue = uid("backlog")
    async with worker(signer, queue, [wf.ReadByNameWorkflow]):
        handle = await start_workflow_authorized(
            signer, wf.ReadByNameWorkflow.run, workflow_id=uid("wf"), warrant=read_warrant(),
            key_id="agent1", args=["/data/backlog.txt"], task_queue=queue)
        scheduled = None
        while scheduled is None:  # no activity worker yet: the task waits in the queue
            async for event in handle.fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                    scheduled = event.event_time.ToDatetime().timestamp()
            await asyncio.sleep(0.1)
        window_end = (int(scheduled) // 30 + 1) * 30
        await asyncio.sleep(max(0.0, window_end - time.time()) + 1.5)
        async with worker(verifier, queue + "-activities", activities=[wf.read_file]):
            assert await handle.result() == "contents of /data/backlog.txt"
    history = await handle.fetch_history()
    attempts = [e.activity_task_started_event_attributes.attempt for e in history.events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]
    assert attempts == [1]  # authorized on its first attempt


async def test_retry_after_a_long_backoff_is_authorized(temporal_env):
    """The retry runs in a later PoP window than the one signed; it still passes."""
    client = await connect(temporal_env, default_config(pop_max_windows=1))
    queue = uid("retry")
    mark = len(wf.CALLS)
    async with worker(client, queue, [wf.RetryAcrossWindowWorkflow], [wf.flaky_read]):
        handle = await start_workflow_authorized(
            client, wf.RetryAcrossWindowWorkflow.run, workflow_id=uid("wf"),
            warrant=mint({"flaky_read": {"path": Subpath("/data")}}), key_id="agent1",
            args=["/data/retry.txt"], task_queue=queue)
        assert await handle.result() == "contents of /data/retry.txt"
    assert calls_since(mark) == [("flaky_read", ("/data/retry.txt",))]
    history = await handle.fetch_history()
    started = [e for e in history.events
               if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]
    assert started[-1].activity_task_started_event_attributes.attempt == 2


# --------------------------------------------------------------------------- wiring


async def test_worker_config_wiring_and_double_registration(temporal_env):
    plugin = TenuoTemporalPlugin(default_config())
    target = temporal_env.client.service_client.config.target_host
    client = await Client.connect(target, namespace=temporal_env.client.namespace,
                                  plugins=[plugin])
    w = Worker(client, task_queue=uid("wiring"), workflows=[wf.ReadWorkflow],
               activities=[wf.read_file])
    config = w.config(active_config=True)
    # Workers take the plugin's interceptor from the client, exactly once.
    client_interceptors = client.config(active_config=True)["interceptors"]
    assert [type(i) for i in client_interceptors].count(TenuoInterceptor) == 1
    assert not any(isinstance(i, TenuoInterceptor) for i in config["interceptors"])
    names = {getattr(a, "__temporal_activity_definition").name for a in config["activities"]}
    assert {"read_file", MINT_ACTIVITY} <= names
    # A workflow-only worker gets the plugin's local activities but keeps to
    # local activities: it never polls (and steals) its queue's activity tasks.
    workflow_only = Worker(client, task_queue=uid("wf-only"), workflows=[wf.ReadWorkflow])
    only = workflow_only.config(active_config=True)
    assert [getattr(a, "__temporal_activity_definition").name
            for a in only["activities"]] == [MINT_ACTIVITY]
    assert only.get("no_remote_activities") is True
    opted_out = await connect(temporal_env, default_config(delegation=False))
    without = Worker(opted_out, task_queue=uid("wf-none"), workflows=[wf.ReadWorkflow])
    assert not without.config(active_config=True).get("activities")
    passthrough = config["workflow_runner"].restrictions.passthrough_modules
    assert {"tenuo_core", "tenuo_keys", "tenuo_temporal"} <= set(passthrough)
    with pytest.raises(ValueError, match="registered twice"), \
            pytest.warns(UserWarning, match="present from both client and worker"):
        Worker(client, task_queue=uid("twice"), workflows=[wf.ReadWorkflow],
               activities=[wf.read_file], plugins=[plugin])
    # A verify-only config is valid (the 0.3.3 reference refuses it).
    verify_only = TenuoPluginConfig(trusted_roots=[ROOT.public_key])
    assert verify_only.verifies and not verify_only.signs


async def test_metrics_go_through_temporals_meter(temporal_env):
    buffer = MetricBuffer(10_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    client = await connect(temporal_env, default_config(), runtime=runtime)
    queue = uid("metrics")
    async with worker(client, queue, ALL_WORKFLOWS, ALL_ACTIVITIES):
        await execute_workflow_authorized(
            client, wf.ReadWorkflow.run, workflow_id=uid("wf"), warrant=read_warrant(),
            key_id="agent1", args=["/data/m.txt"], task_queue=queue)
        await denial_of(execute_workflow_authorized(
            client, wf.ReadWorkflow.run, workflow_id=uid("wf"), warrant=read_warrant(),
            key_id="agent1", args=["/etc/m.txt"], task_queue=queue))
    updates = buffer.retrieve_updates()
    seen: dict[str, list[dict[str, Any]]] = {}
    for update in updates:
        seen.setdefault(update.metric.name, []).append(dict(update.attributes))
    assert {"tool": "read_file"}.items() <= seen["tenuo_activity_authorized"][0].items()
    denied = seen["tenuo_activity_denied"][0]
    assert denied["reason"] == "TENUO_CONSTRAINT_VIOLATION" and denied["tool"] == "read_file"
    assert "tenuo_authorization_latency" in seen
    assert "tenuo_key_cache_events" in seen
    for attrs in (a for values in seen.values() for a in values):
        assert "agent1" not in attrs.values() and "/etc/m.txt" not in attrs.values()
