"""Workflows that wait hours, on Temporal's time-skipping test server.

The test server's clock jumps ahead over every timer and retry backoff, so
after a skipped wait ``workflow.now()`` (the PoP's timestamp) and Temporal's
``scheduled_time`` run hours ahead of this machine's wall clock. PoP freshness
is judged on Temporal's clock (``check_chain(as_of=scheduled_time)``), expiry on
both clocks: what a user's own time-skipping tests of their workflows need.
The 0.3.3 reference judges by the wall clock alone and denies these activities.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import tenuo.temporal as stock
import tenuo_core
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from tenuo.temporal._dedup import InMemoryPopDedupStore
from tenuo.temporal_plugin import TenuoTemporalPlugin as StockPlugin

from integration import _time_skipping_workflows as wf
from integration.support.temporal_helpers import denial_of, events_of, uid, worker
from tenuo_keys import StaticKeyResolver
from tenuo_temporal import TenuoPluginConfig, TenuoTemporalPlugin, start_workflow_authorized

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
HOUR = 3600
WORKFLOWS = [wf.SleepThenRead, wf.RetryAfterLongBackoff]
# A local activity reports the worker's clock as its scheduling time; the
# verifier uses the workflow's clock this process recorded when it signed.
KINDS = pytest.mark.parametrize("local", [False, True], ids=["activity", "local_activity"])


def mint(ttl_seconds: int, tool: str = "read_file") -> Any:
    return tenuo_core.Warrant.issue(
        keypair=ROOT, capabilities={tool: {"path": tenuo_core.Subpath("/data")}},
        ttl_seconds=ttl_seconds, holder=HOLDER.public_key)


def client_of(env: Any, plugin: Any) -> Client:
    """A client that skips time while it waits on results, with ``plugin``."""
    return Client(**{**env.client.config(), "plugins": [plugin]})


def ours(**config: Any) -> TenuoTemporalPlugin:
    config.setdefault("trusted_roots", [ROOT.public_key])
    return TenuoTemporalPlugin(TenuoPluginConfig(**config))


def signer_and_verifier() -> TenuoTemporalPlugin:
    return ours(key_resolver=StaticKeyResolver({"agent1": HOLDER}))


def calls_since(mark: int) -> list[tuple[str, tuple[str, ...], int]]:
    return wf.CALLS[mark:]


async def run_ours(env: Any, workflow: Any, args: list[Any], warrant: Any) -> Any:
    """Start ``workflow`` under ``warrant`` on one worker of ours; return its handle."""
    client = client_of(env, signer_and_verifier())
    queue = uid("skip")
    async with worker(client, queue, WORKFLOWS, [wf.read_file, wf.flaky_read]):
        handle = await start_workflow_authorized(
            client, workflow, workflow_id=uid("wf"), warrant=warrant, key_id="agent1",
            args=args, task_queue=queue)
        with contextlib.suppress(Exception):  # the caller asserts on the outcome
            await handle.result()
    return handle


async def skipped_seconds(handle: Any) -> float:
    """How far Temporal's clock moved between the workflow's start and its end."""
    events = [e async for e in handle.fetch_history_events()]
    return events[-1].event_time.seconds - events[0].event_time.seconds


@KINDS
async def test_activity_after_a_six_hour_timer_is_authorized(temporal_time_skipping_env, local):
    mark = len(wf.CALLS)
    handle = await run_ours(temporal_time_skipping_env, wf.SleepThenRead.run,
                            ["/data/after-timer.txt", 6 * HOUR, local], mint(24 * HOUR))
    assert await handle.result() == "contents of /data/after-timer.txt"
    assert calls_since(mark) == [("read_file", ("/data/after-timer.txt",), 1)]
    assert await skipped_seconds(handle) >= 6 * HOUR  # Temporal's clock really jumped


@KINDS
async def test_warrant_expiring_during_a_timer_is_denied_as_expired(temporal_time_skipping_env,
                                                                    local):
    mark = len(wf.CALLS)
    handle = await run_ours(temporal_time_skipping_env, wf.SleepThenRead.run,
                            ["/data/late.txt", 2 * HOUR, local], mint(HOUR))
    error = await denial_of(handle.result())
    assert error.type == "TENUO_WARRANT_EXPIRED" and error.non_retryable
    assert calls_since(mark) == []  # the body never ran
    # Still valid by this machine's clock: only Temporal's clock saw it expire.
    assert not mint(HOUR).is_expired()


async def test_retry_after_a_three_hour_backoff_is_authorized(temporal_time_skipping_env):
    mark = len(wf.CALLS)
    handle = await run_ours(temporal_time_skipping_env, wf.RetryAfterLongBackoff.run,
                            ["/data/retry.txt", 3 * HOUR], mint(24 * HOUR, "flaky_read"))
    assert await handle.result() == "contents of /data/retry.txt"
    assert calls_since(mark) == [("flaky_read", ("/data/retry.txt",), 1),
                                 ("flaky_read", ("/data/retry.txt",), 2)]
    history = await handle.fetch_history()
    scheduled = events_of(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)[0]
    started = events_of(history, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)[-1]
    assert started.activity_task_started_event_attributes.attempt == 2
    assert started.event_time.seconds - scheduled.event_time.seconds >= 3 * HOUR


@pytest.mark.parametrize(("sleep", "outcome"), [(0, "allowed"), (6 * HOUR, "TENUO_POP_INVALID")])
async def test_split_view_is_judged_on_the_workers_clock(temporal_time_skipping_env, sleep,
                                                         outcome):
    """A known limit: with two argument views there is no ``as_of`` in tenuo_core.

    A workflow worker without the activity code signs ``arg0``; the activity
    worker names the argument ``path``; ``check_chain_with_pop_args`` binds the
    two views but judges PoP freshness at this worker's now only. Without a
    skipped wait (production) it passes; after one, it is denied.
    """
    env = temporal_time_skipping_env
    signer = client_of(env, signer_and_verifier())
    verifier = client_of(env, ours())  # trusted_roots alone
    queue = uid("split")
    mark = len(wf.CALLS)
    async with worker(signer, queue, [wf.SleepThenReadByName]), \
            worker(verifier, queue + "-activities", activities=[wf.read_file]):
        handle = await start_workflow_authorized(
            signer, wf.SleepThenReadByName.run, workflow_id=uid("wf"), warrant=mint(24 * HOUR),
            key_id="agent1", args=["/data/split.txt", sleep], task_queue=queue)
        if outcome == "allowed":
            assert await handle.result() == "contents of /data/split.txt"
            assert calls_since(mark) == [("read_file", ("/data/split.txt",), 1)]
        else:
            assert (await denial_of(handle.result())).type == outcome
            assert calls_since(mark) == []


async def test_reference_denies_the_activity_after_a_six_hour_timer(temporal_time_skipping_env):
    """tenuo.temporal 0.3.3 judges PoP by the wall clock: under time skipping it denies."""
    plugin = StockPlugin(stock.TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent1": HOLDER}), trusted_roots=[ROOT.public_key],
        pop_dedup_store=InMemoryPopDedupStore()))
    client = client_of(temporal_time_skipping_env, plugin)
    queue = uid("stock")
    mark = len(wf.CALLS)
    async with worker(client, queue, [wf.SleepThenRead], [wf.read_file]):
        handle = await stock.start_workflow_authorized(
            client=client, workflow_run_fn=wf.SleepThenRead.run, workflow_id=uid("wf"),
            warrant=mint(24 * HOUR), key_id="agent1", args=["/data/stock.txt", 6 * HOUR],
            task_queue=queue)
        error = await denial_of(handle.result())
    assert error.type == "POP_VERIFICATION_FAILED"
    assert calls_since(mark) == []
