"""Signal and update allowlists (``authorized_signals``, ``authorized_updates``) on a dev server.

An unlisted signal is dropped before its handler and audited, and the run
goes on; an unlisted update is rejected in validation, so its caller gets the
error, its handler never runs and the history holds no trace of it. Queries
are never checked. Each workflow reports what its handlers ran, so a refused
call is proven never to have reached one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tenuo.temporal as stock
import tenuo_core
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer
from tenuo.temporal_plugin import TenuoTemporalPlugin as StockPlugin

from integration import _signals_updates_workflows as wf
from integration.support.temporal_helpers import connect, events_of, uid, worker
from tenuo_keys import StaticKeyResolver
from tenuo_temporal import (
    AuditEvent,
    TenuoPluginConfig,
    TenuoTemporalPlugin,
    start_workflow_authorized,
)
from tenuo_temporal._audit import HANDLER_EVENTS_IN_FLIGHT

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
WORKFLOWS = [wf.GatedWorkflow, wf.DynamicGatedWorkflow, wf.GatedAuthorizedWorkflow,
             wf.LateHandlerWorkflow]
SIGNALS = ["approve", "finish"]
UPDATES = ["set_limit"]


def config(events: list[AuditEvent] | None = None, **overrides: Any) -> TenuoPluginConfig:
    options: dict[str, Any] = dict(
        key_resolver=StaticKeyResolver({"agent1": HOLDER}), trusted_roots=[ROOT.public_key],
        authorized_signals=SIGNALS, authorized_updates=UPDATES,
        audit_callback=events.append if events is not None else None)
    options.update(overrides)
    return TenuoPluginConfig(**options)


def refused(events: list[AuditEvent]) -> list[tuple[str, str | None]]:
    return [(e.tool, e.reason) for e in events if e.decision == "deny"]


@contextlib.asynccontextmanager
async def started(client: Client, run: Any, name: str) -> AsyncIterator[WorkflowHandle[Any, Any]]:
    """A worker on a fresh task queue, and a run of ``run`` started on it."""
    queue = uid(name)
    async with worker(client, queue, WORKFLOWS):
        yield await client.start_workflow(run, id=uid("wf"), task_queue=queue)


async def until(condition: Any, timeout: float = 10.0) -> None:
    """Wait until ``condition()`` is true (audit events arrive on the worker's loop)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_listed_signal_reaches_its_handler_unlisted_is_dropped_and_audited(temporal_env):
    events: list[AuditEvent] = []
    client = await connect(temporal_env, config(events))
    async with started(client, wf.GatedWorkflow.run, "signals") as handle:
        await handle.signal(wf.GatedWorkflow.approve, "alice")
        await handle.signal(wf.GatedWorkflow.redirect, "attacker.example")
        # Delivered, this handler raises and fails the run; dropped, it cannot.
        await handle.signal(wf.GatedWorkflow.explode)
        await handle.signal(wf.GatedWorkflow.approve, "bob")
        await handle.signal(wf.GatedWorkflow.finish)
        assert await handle.result() == ["approve:alice", "approve:bob"]
        await until(lambda: len(refused(events)) == 2)
    assert refused(events) == [("signal:redirect", "TENUO_CONSTRAINT_VIOLATION"),
                               ("signal:explode", "TENUO_CONSTRAINT_VIOLATION")]
    assert all(e.workflow_id == handle.id and e.warrant_id is None for e in events)
    history = await handle.fetch_history()
    assert len(events_of(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)) == 5
    assert not events_of(history, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    assert events_of(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)


async def test_listed_update_runs_unlisted_is_rejected_and_the_run_is_unaffected(temporal_env):
    events: list[AuditEvent] = []
    client = await connect(temporal_env, config(events))
    async with started(client, wf.GatedWorkflow.run, "updates") as handle:
        assert await handle.execute_update(wf.GatedWorkflow.set_limit, 5) == 5
        # Unlisted, without a validator of its own and with one.
        for update, args in ((wf.GatedWorkflow.wipe, []), (wf.GatedWorkflow.annotate, ["x"])):
            with pytest.raises(WorkflowUpdateFailedError) as info:
                await handle.execute_update(update, args=args)
            cause = info.value.cause
            assert isinstance(cause, ApplicationError)
            assert cause.type == "TENUO_CONSTRAINT_VIOLATION"
            name = update.__name__
            assert f"update {name!r} is not in authorized_updates" in cause.message
        assert await handle.query(wf.GatedWorkflow.state) == ["set_limit:5"]
        assert await handle.execute_update(wf.GatedWorkflow.set_limit, 7) == 7
        await handle.signal(wf.GatedWorkflow.finish)
        assert await handle.result() == ["set_limit:5", "set_limit:7"]
        await until(lambda: len(refused(events)) == 2)
    assert refused(events) == [("update:wipe", "TENUO_CONSTRAINT_VIOLATION"),
                               ("update:annotate", "TENUO_CONSTRAINT_VIOLATION")]
    history = await handle.fetch_history()
    # Rejected in validation: only the two listed updates were ever accepted.
    accepted = events_of(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    assert [e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
            for e in accepted] == ["set_limit", "set_limit"]
    assert not events_of(history, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)


async def test_dynamic_handlers_judge_the_name_sent(temporal_env):
    events: list[AuditEvent] = []
    client = await connect(temporal_env, config(events, authorized_signals=["approve", "finish"],
                                                authorized_updates=["set_limit"]))
    async with started(client, wf.DynamicGatedWorkflow.run, "dynamic") as handle:
        await handle.signal("approve", "alice")
        await handle.signal("steer", "somewhere")
        assert await handle.execute_update("set_limit", 3) == "set_limit"
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await handle.execute_update("drop_tables", 1)
        assert isinstance(info.value.cause, ApplicationError)
        assert "'drop_tables' is not in authorized_updates" in info.value.cause.message
        await handle.signal("finish")
        assert await handle.result() == ["signal:approve", "update:set_limit"]
        await until(lambda: len(refused(events)) == 2)
    assert sorted(refused(events)) == [("signal:steer", "TENUO_CONSTRAINT_VIOLATION"),
                                       ("update:drop_tables", "TENUO_CONSTRAINT_VIOLATION")]


async def test_unlisted_signals_without_a_handler_are_not_held(temporal_env):
    """temporalio holds a signal no handler takes yet; an unlisted one is dropped on arrival.

    A listed signal sent before its handler exists is still held and delivered.
    """
    events: list[AuditEvent] = []
    client = await connect(temporal_env, config(events, authorized_signals=["late", "go",
                                                                             "finish"]))
    async with started(client, wf.LateHandlerWorkflow.run, "late") as handle:
        await handle.signal("late", "x")
        await handle.signal("ghost", "y" * 100_000)
        # Audited while no handler for either name exists: dropped, not held.
        await until(lambda: len(refused(events)) == 1)
        await handle.signal(wf.LateHandlerWorkflow.go)
        await handle.signal(wf.LateHandlerWorkflow.finish)
        assert await handle.result() == ["late:x"]
    assert refused(events) == [("signal:ghost", "TENUO_CONSTRAINT_VIOLATION")]
    history = await handle.fetch_history()
    assert not events_of(history, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    replayer = Replayer(workflows=WORKFLOWS, plugins=[TenuoTemporalPlugin(
        config(authorized_signals=["late", "go", "finish"]))])
    assert (await replayer.replay_workflow(history)).replay_failure is None


async def test_queries_are_never_checked(temporal_env):
    """Neither user queries nor the built-in stack-trace queries are allowlisted."""
    client = await connect(temporal_env, config())
    async with started(client, wf.GatedWorkflow.run, "queries") as handle:
        await handle.signal(wf.GatedWorkflow.approve, "alice")
        assert await handle.query(wf.GatedWorkflow.state) == ["approve:alice"]
        assert "run" in await handle.query("__stack_trace")
        await handle.signal(wf.GatedWorkflow.finish)
        assert await handle.result() == ["approve:alice"]


async def test_no_allowlist_by_default(temporal_env):
    client = await connect(temporal_env, config(authorized_signals=None,
                                                authorized_updates=None))
    async with started(client, wf.GatedWorkflow.run, "open") as handle:
        await handle.signal(wf.GatedWorkflow.redirect, "x")
        assert await handle.execute_update(wf.GatedWorkflow.wipe) == "wiped"
        await handle.signal(wf.GatedWorkflow.finish)
        assert await handle.result() == ["redirect:x", "wipe"]


async def test_audit_names_the_runs_warrant(temporal_env):
    events: list[AuditEvent] = []
    client = await connect(temporal_env, config(events))
    warrant = tenuo_core.Warrant.issue(keypair=ROOT, capabilities={"read_file": {}},
                                       ttl_seconds=600, holder=HOLDER.public_key)
    queue = uid("warranted")
    async with worker(client, queue, WORKFLOWS):
        handle = await start_workflow_authorized(
            client, wf.GatedAuthorizedWorkflow.run, workflow_id=uid("wf"), warrant=warrant,
            key_id="agent1", task_queue=queue)
        await handle.signal(wf.GatedAuthorizedWorkflow.redirect, "x")
        await handle.signal(wf.GatedAuthorizedWorkflow.finish)
        assert await handle.result() == []
        await until(lambda: len(refused(events)) == 1)
    assert events[0].warrant_id == warrant.id
    assert events[0].run_id == handle.result_run_id


async def test_a_flood_of_unlisted_signals_is_bounded_and_harmless(temporal_env):
    """A slow audit callback and 600 unlisted signals: the run completes, audit sheds."""
    release = asyncio.Event()
    seen: list[AuditEvent] = []

    async def slow(event: AuditEvent) -> None:
        await release.wait()
        seen.append(event)

    plugin = TenuoTemporalPlugin(config(audit_callback=slow))
    client = await Client.connect(temporal_env.client.service_client.config.target_host,
                                  namespace=temporal_env.client.namespace, plugins=[plugin])
    async with started(client, wf.GatedWorkflow.run, "flood") as handle:
        await asyncio.gather(*(handle.signal(wf.GatedWorkflow.redirect, f"x{i}")
                               for i in range(600)))
        await handle.signal(wf.GatedWorkflow.approve, "alice")
        await handle.signal(wf.GatedWorkflow.finish)
        assert await handle.result() == ["approve:alice"]
        recorder = plugin.interceptor.recorder
        # At most the bound waits on the callback; the rest are counted, not kept.
        # (At least: a workflow task the server did not take is handled again,
        # and its signals audited again, as every workflow-side audit is.)
        assert len(recorder._pending) <= HANDLER_EVENTS_IN_FLIGHT
        assert recorder.handler_events_shed >= 600 - HANDLER_EVENTS_IN_FLIGHT
        release.set()
        await until(lambda: len(seen) == HANDLER_EVENTS_IN_FLIGHT)
        await asyncio.sleep(0.2)
        assert len(seen) == HANDLER_EVENTS_IN_FLIGHT
        assert {e.tool for e in seen} == {"signal:redirect"}
    # No workflow task failed in the worker. Under a flood the server itself may
    # fail a task whose completion raced new signals; it retries it.
    failed = events_of(await handle.fetch_history(), EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    assert [e.workflow_task_failed_event_attributes.identity for e in failed
            if e.workflow_task_failed_event_attributes.identity != "history-service"] == []


async def test_replay_of_a_dropped_signal_and_a_rejected_update_does_not_diverge(temporal_env):
    client = await connect(temporal_env, config())
    async with started(client, wf.GatedWorkflow.run, "replay") as handle:
        await handle.signal(wf.GatedWorkflow.explode)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(wf.GatedWorkflow.wipe)
        assert await handle.execute_update(wf.GatedWorkflow.set_limit, 1) == 1
        await handle.signal(wf.GatedWorkflow.approve, "alice")
        await handle.signal(wf.GatedWorkflow.finish)
        assert await handle.result() == ["set_limit:1", "approve:alice"]
    history = await handle.fetch_history()
    replayer = Replayer(workflows=WORKFLOWS, plugins=[TenuoTemporalPlugin(config())])
    assert (await replayer.replay_workflow(history)).replay_failure is None
    # The same history under a worker without the allowlists diverges: the
    # dropped signal would now fail the run. Proof the replay above judged it.
    open_replayer = Replayer(workflows=WORKFLOWS, plugins=[TenuoTemporalPlugin(
        config(authorized_signals=None, authorized_updates=None))])
    result = await open_replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None


# ---------------------------------------------------------------- stock 0.3.3


async def record(client: Client) -> tuple[list[str], list[str], Any]:
    """One run's outcome on ``client``'s worker: result, what each update call got, history."""
    async with started(client, wf.GatedWorkflow.run, "stock") as handle:
        await handle.signal(wf.GatedWorkflow.approve, "alice")
        await handle.signal(wf.GatedWorkflow.explode)
        outcomes = [str(await handle.execute_update(wf.GatedWorkflow.set_limit, 2))]
        for update, args in ((wf.GatedWorkflow.wipe, []), (wf.GatedWorkflow.annotate, ["x"])):
            with pytest.raises(WorkflowUpdateFailedError) as info:
                await handle.execute_update(update, args=args)
            assert isinstance(info.value.cause, ApplicationError)
            assert update.__name__ in info.value.cause.message
            outcomes.append("refused")
        await handle.signal(wf.GatedWorkflow.finish)
        return await handle.result(), outcomes, await handle.fetch_history()


async def test_same_names_and_behaviour_as_the_stock_plugin_and_histories_replay_across(
        temporal_env):
    """The reference's options, same outcomes, and a fleet can move either way mid-run.

    Each plugin's history (a dropped signal, rejected updates) replays on a
    worker of the other without divergence. One difference shows in the
    history: 0.3.3 accepts an unlisted update that has no validator of its own
    and fails it in the handler, where ours rejects it in validation.
    """
    def stock_config() -> Any:
        return stock.TenuoPluginConfig(
            key_resolver=StaticKeyResolver({"agent1": HOLDER}),
            trusted_roots=[ROOT.public_key], authorized_signals=SIGNALS,
            authorized_updates=UPDATES)

    with pytest.raises(Exception, match="authorized_signals=None"):
        stock.TenuoPluginConfig(key_resolver=StaticKeyResolver({"agent1": HOLDER}),
                                trusted_roots=[ROOT.public_key], authorized_signals=[])
    target = temporal_env.client.service_client.config.target_host
    stock_client = await Client.connect(target, namespace=temporal_env.client.namespace,
                                        plugins=[StockPlugin(stock_config())])
    ours_client = await connect(temporal_env, config())
    stock_result, stock_outcomes, stock_history = await record(stock_client)
    ours_result, ours_outcomes, ours_history = await record(ours_client)
    assert stock_result == ours_result == ["approve:alice", "set_limit:2"]
    assert stock_outcomes == ours_outcomes == ["2", "refused", "refused"]

    def accepted(history: Any) -> list[str]:
        return [e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
                for e in events_of(
                    history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)]

    assert accepted(stock_history) == ["set_limit", "wipe"]
    assert accepted(ours_history) == ["set_limit"]
    ours_replayer = Replayer(workflows=WORKFLOWS, plugins=[TenuoTemporalPlugin(config())])
    stock_replayer = Replayer(workflows=WORKFLOWS, plugins=[StockPlugin(stock_config())])
    for replayer, history in ((ours_replayer, stock_history), (stock_replayer, ours_history)):
        assert (await replayer.replay_workflow(history)).replay_failure is None


async def refuse_one_signal_and_one_update(client: Client, name: str) -> None:
    """Run a ``GatedWorkflow`` that is sent an unlisted signal and an unlisted update."""
    async with started(client, wf.GatedWorkflow.run, name) as handle:
        await handle.signal(wf.GatedWorkflow.explode)  # delivered, it would fail the run
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await handle.execute_update(wf.GatedWorkflow.wipe)
        assert isinstance(info.value.cause, ApplicationError)
        assert info.value.cause.type == "TENUO_CONSTRAINT_VIOLATION"
        await handle.signal(wf.GatedWorkflow.approve, "alice")
        await handle.signal(wf.GatedWorkflow.finish)
        assert await handle.result() == ["approve:alice"]


async def test_shadow_mode_does_not_shadow_signals_or_updates(temporal_env):
    events: list[AuditEvent] = []
    client = await connect(temporal_env, config(events, dry_run=True))
    await refuse_one_signal_and_one_update(client, "shadow")
    await until(lambda: len(refused(events)) == 2)
    assert refused(events) == [("signal:explode", "TENUO_CONSTRAINT_VIOLATION"),
                               ("update:wipe", "TENUO_CONSTRAINT_VIOLATION")]
    assert not any(e.shadow for e in events)


async def test_audit_deny_false_keeps_refused_signals_and_updates_out_of_the_audit(
        temporal_env):
    events: list[AuditEvent] = []
    client = await connect(temporal_env, config(events, audit_deny=False))
    await refuse_one_signal_and_one_update(client, "no-deny-audit")
    await asyncio.sleep(0.5)  # what would have been emitted has been by now
    assert refused(events) == []
