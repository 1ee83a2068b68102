"""Schedules whose runs carry a warrant, on a real Temporal dev server.

Each test creates a real Schedule (one hour apart, first action half an hour
away, so nothing fires on its own during the test), triggers one action with
``handle.trigger()``, reads the run the server started, checks its start
event carries the warrant headers and that its allowed read ran while its
out-of-scope read was denied (the body never ran), then deletes the Schedule.

Interop: a Schedule created by the stock 0.3.3 helper runs on our worker, and
one created by ours on a stock worker: the headers on the action are the same
wire format either way.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import tenuo.temporal as stock
import tenuo_core
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleSpec,
)
from temporalio.service import RPCError
from tenuo.temporal_plugin import TenuoTemporalPlugin as StockPlugin

from integration import _schedule_workflows as wf
from integration.support.temporal_helpers import connect, uid, worker
from tenuo_keys import ResolverConfigError, StaticKeyResolver
from tenuo_temporal import (
    HeaderError,
    TenuoPluginConfig,
    WarrantExpired,
    create_scheduled_workflow_with_warrant,
)
from tenuo_temporal import _headers as H

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.from_bytes(bytes([61]) * 32)
DELEGATOR = tenuo_core.SigningKey.from_bytes(bytes([62]) * 32)
HOLDER = tenuo_core.SigningKey.from_bytes(bytes([63]) * 32)
PATHS = ["/data/report.csv", "/etc/passwd"]
OUR_DENIAL = "denied:TENUO_CONSTRAINT_VIOLATION:True"
STOCK_DENIALS = {f"denied:{kind}:True" for kind in ("constraint_violation", "CONSTRAINT_VIOLATED")}


def mint(ttl: int = 7200, *, holder: Any = HOLDER, issuer: Any = ROOT,
         root: str = "/data") -> Any:
    return tenuo_core.Warrant.issue(keypair=issuer, ttl_seconds=ttl, holder=holder.public_key,
                                    capabilities={"read_file": {"path": tenuo_core.Subpath(root)}})


def hourly() -> ScheduleSpec:
    """Every hour on the hour, from half an hour on: nothing fires during a test."""
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))],
                        start_at=datetime.now(timezone.utc) + timedelta(minutes=30))


def minutely(first_in: timedelta) -> ScheduleSpec:
    """Every minute, the first action within a minute after ``first_in`` from now."""
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=1))],
                        start_at=datetime.now(timezone.utc) + first_in)


def our_config(**overrides: Any) -> TenuoPluginConfig:
    return TenuoPluginConfig(**{"key_resolver": StaticKeyResolver({"agent1": HOLDER}),
                                "trusted_roots": [ROOT.public_key], **overrides})


def stock_plugin() -> StockPlugin:
    return StockPlugin(stock.TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent1": HOLDER}), trusted_roots=[ROOT.public_key]))


async def triggered_run(client: Client, handle: ScheduleHandle) -> Any:
    """Trigger one action and return the handle of the run the server started."""
    await handle.trigger()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        actions = (await handle.describe()).info.recent_actions
        if actions:
            started = actions[-1].action
            return client.get_workflow_handle(started.workflow_id,
                                              run_id=started.first_execution_run_id)
        await asyncio.sleep(0.1)
    raise AssertionError("the triggered action never started a run")


async def start_headers(run: Any) -> dict[str, bytes]:
    async for event in run.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            fields = event.workflow_execution_started_event_attributes.header.fields
            return {name: bytes(value.data) for name, value in fields.items()}
    raise AssertionError("no start event")


async def check_run(client: Client, handle: ScheduleHandle, denials: set[str]) -> None:
    """Trigger, then: headers on the start event, the read allowed, the out-of-scope one denied."""
    mark = len(wf.CALLS)
    run = await triggered_run(client, handle)
    assert run.id.startswith(handle.id + "-run")
    outcome = await run.result()
    assert outcome[0] == f"contents of {PATHS[0]}"
    assert outcome[1] in denials, outcome
    assert wf.CALLS[mark:] == [("read_file", (PATHS[0],))]  # the denied body never ran
    headers = await start_headers(run)
    assert {H.WARRANT, H.COMPRESSED, H.WIRE_FORMAT, H.KEY_ID} <= set(headers)
    assert headers[H.KEY_ID] == b"agent1" and headers[H.WIRE_FORMAT] == b"2"


async def deleted(handle: ScheduleHandle) -> bool:
    await handle.delete()
    try:
        await handle.describe()
    except RPCError:
        return True
    return False


async def test_schedule_runs_authorized_then_deleted(temporal_env):
    client = await connect(temporal_env, our_config())
    queue = uid("sched")
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES):
        handle = await create_scheduled_workflow_with_warrant(
            client, uid("schedule"), wf.ScheduledReads.run, mint(), "agent1", hourly(),
            workflow_args=[PATHS], task_queue=queue,
            action_options={"execution_timeout": timedelta(seconds=60)})
        description = await handle.describe()
        action = description.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.headers is not None and H.WARRANT in action.headers
        await check_run(client, handle, {OUR_DENIAL})
        # A second trigger: the same warrant serves every run.
        await check_run(client, handle, {OUR_DENIAL})
        assert await deleted(handle)


async def test_delegated_schedule_enforces_the_leaf(temporal_env):
    """``warrant_chain=`` (parents only): the chain rides along, the leaf's narrowing holds."""
    client = await connect(temporal_env, our_config())
    queue = uid("sched-chain")
    parent = mint(holder=DELEGATOR)
    # The leaf outlives the first action of hourly() whatever the time of day: that action
    # comes at most 90 minutes from now.
    leaf = parent.attenuate({"read_file": {"path": tenuo_core.Subpath("/data/report.csv")}},
                            signing_key=DELEGATOR, ttl_seconds=7100, holder=HOLDER.public_key)
    with pytest.raises(HeaderError, match="warrant_chain"):
        await create_scheduled_workflow_with_warrant(
            client, uid("schedule"), wf.ScheduledReads.run, leaf, "agent1", hourly(),
            task_queue=queue)
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES):
        handle = await create_scheduled_workflow_with_warrant(
            client, uid("schedule"), wf.ScheduledReads.run, leaf, "agent1", hourly(),
            workflow_args=[["/data/report.csv", "/data/other.csv"]], task_queue=queue,
            warrant_chain=[parent])
        run = await triggered_run(client, handle)
        assert await run.result() == ["contents of /data/report.csv", OUR_DENIAL]
        assert H.CHAIN in await start_headers(run)
        assert await deleted(handle)


async def test_refused_when_the_warrant_expires_before_the_first_action(temporal_env):
    client = temporal_env.client
    schedule_id = uid("too-late")
    with pytest.raises(WarrantExpired, match="before the schedule's first action"):
        await create_scheduled_workflow_with_warrant(
            client, schedule_id, wf.ScheduledReads.run, mint(ttl=600), "agent1",
            minutely(timedelta(minutes=30)), workflow_args=[PATHS], task_queue="none")
    # Nothing is left behind.
    with pytest.raises(RPCError):
        await client.get_schedule_handle(schedule_id).describe()
    # The same warrant is accepted for a first action within its life...
    handle = await create_scheduled_workflow_with_warrant(
        client, schedule_id, wf.ScheduledReads.run, mint(ttl=600), "agent1",
        minutely(timedelta(minutes=5)), workflow_args=[PATHS], task_queue="none")
    assert await deleted(handle)
    # ...unless jitter may delay that action past the expiry.
    jittery = minutely(timedelta(minutes=5))
    jittery.jitter = timedelta(minutes=8)
    with pytest.raises(WarrantExpired):
        await create_scheduled_workflow_with_warrant(
            client, uid("jitter"), wf.ScheduledReads.run, mint(ttl=600), "agent1", jittery,
            task_queue="none")
    # ...and action_options may not override the helper's own fields.
    with pytest.raises(ResolverConfigError, match="headers, id"):
        await create_scheduled_workflow_with_warrant(
            client, uid("clash"), wf.ScheduledReads.run, mint(), "agent1", hourly(),
            action_options={"id": "x", "headers": {}})


async def test_stock_created_schedule_runs_on_our_worker(temporal_env):
    client = await connect(temporal_env, our_config())
    queue = uid("stock-sched-ours")
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES):
        handle = await stock.create_scheduled_workflow_with_warrant(
            temporal_env.client, uid("stock-schedule"), wf.ScheduledReads.run, mint(),
            "agent1", hourly(), workflow_args=[PATHS], task_queue=queue)
        await check_run(client, handle, {OUR_DENIAL})
        assert await deleted(handle)


async def test_our_schedule_runs_on_a_stock_worker(temporal_env):
    target = temporal_env.client.service_client.config.target_host
    stock_client = await Client.connect(target, namespace=temporal_env.client.namespace,
                                        plugins=[stock_plugin()])
    queue = uid("ours-sched-stock")
    async with worker(stock_client, queue, wf.WORKFLOWS, wf.ACTIVITIES):
        handle = await create_scheduled_workflow_with_warrant(
            temporal_env.client, uid("our-schedule"), wf.ScheduledReads.run, mint(),
            "agent1", hourly(), workflow_args=[PATHS], task_queue=queue)
        await check_run(stock_client, handle, STOCK_DENIALS)
        assert await deleted(handle)
