"""Warrants chosen inside the workflow, on a real dev server, and replayed.

* ``workflow_grant`` narrows the run's warrant for one tool; the grant serves
  single dispatches (``tenuo_execute_activity(warrant=..., key_id=...)``)
  while the run's own warrant is unchanged; anything wider is refused.
* ``workflow_issue_execution`` issues an execution warrant from an issuer
  warrant to another key, within the issuer's bounds.
* A root warrant handed to one dispatch is used for that dispatch only.
* ``tenuo_continue_as_new`` carries the warrant to the next run, narrowed by
  ``tenuo_attenuation``.
* The ``Replayer`` replays each history with no divergence and no minting:
  the narrower warrants come from the recorded local activity.
"""

from __future__ import annotations

from typing import Any

import pytest
import tenuo_core
from temporalio.worker import Replayer
from tenuo_core import Subpath

from integration import _workflow_warrants_workflows as wf
from integration.support.temporal_helpers import connect, denial_of, uid, worker
from tenuo_keys import StaticKeyResolver
from tenuo_temporal import (
    TenuoPluginConfig,
    TenuoTemporalPlugin,
    execute_workflow_authorized,
)
from tenuo_temporal import _headers as H

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.generate()
AGENT = tenuo_core.SigningKey.generate()
EXECUTOR = tenuo_core.SigningKey.generate()
KEYS = {"agent1": AGENT, "exec1": EXECUTOR}
CAPS = {"read_file": {"path": Subpath("/data")}}


def config(**overrides: Any) -> TenuoPluginConfig:
    return TenuoPluginConfig(key_resolver=StaticKeyResolver(KEYS),
                             trusted_roots=[ROOT.public_key], **overrides)


def warrant(holder: Any = AGENT, capabilities: dict[str, Any] | None = None) -> Any:
    return tenuo_core.Warrant.issue(keypair=ROOT, capabilities=capabilities or CAPS,
                                    ttl_seconds=600, holder=holder.public_key)


async def run(env: Any, run_fn: Any, args: list[Any], granted: Any = None,
              key_id: str = "agent1") -> tuple[Any, Any]:
    """Run one workflow to its end; its result and its (first run's) handle."""
    client = await connect(env, config())
    queue, workflow_id = uid("in-workflow"), uid("wf")
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES):
        result = await execute_workflow_authorized(
            client, run_fn, workflow_id=workflow_id, warrant=granted or warrant(),
            key_id=key_id, args=args, task_queue=queue)
    return result, client.get_workflow_handle(workflow_id)


async def replays_cleanly(handle: Any) -> None:
    """Every run of the workflow (back through continue-as-new) replays with no divergence.

    A fresh worker's plugin, with the same keys: minting and signing would
    differ (new ids, new times), so only the recorded results can match.
    """
    replayer = Replayer(workflows=wf.WORKFLOWS, plugins=[TenuoTemporalPlugin(config())])
    client, run_id = handle._client, None
    while True:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        result = await replayer.replay_workflow(history)
        assert result.replay_failure is None, result.replay_failure
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id
        if not run_id:
            return


async def test_a_grant_serves_single_dispatches_and_leaves_the_warrant_unchanged(temporal_env):
    mark = len(wf.CALLS)
    result, handle = await run(temporal_env, wf.GrantedReads.run,
                               ["/data/reports", ["/data/reports/q3.csv", "/data/private.csv"]])
    assert result == ["contents of /data/reports/q3.csv", "TENUO_CONSTRAINT_VIOLATION",
                      "contents of /data/private.csv"]
    assert wf.CALLS[mark:] == [("read_file", ("/data/reports/q3.csv",)),
                               ("read_file", ("/data/private.csv",))]
    history = await handle.fetch_history()
    scheduled = [e.activity_task_scheduled_event_attributes for e in history.events
                 if e.HasField("activity_task_scheduled_event_attributes")]
    chains = [H.decode_context(dict(s.header.fields)).chain for s in scheduled]
    # The grant's dispatches carry the run's chain extended with the grant.
    assert [len(chain) for chain in chains] == [2, 2, 1]
    assert chains[0][0].id == chains[2][0].id and chains[0][1].parent_hash is not None
    await replays_cleanly(handle)


@pytest.mark.parametrize(("tool", "path"), [("delete_file", "/data"), ("read_file", "/")],
                         ids=["tool-not-granted", "wider-path"])
async def test_a_grant_wider_than_the_warrant_is_refused(temporal_env, tool, path):
    mark = len(wf.CALLS)
    result, _ = await run(temporal_env, wf.WideGrant.run, [tool, path])
    assert result == "TENUO_CONSTRAINT_VIOLATION"
    assert wf.CALLS[mark:] == []


async def test_an_issuer_warrant_issues_execution_warrants_to_another_key(temporal_env):
    issuer = tenuo_core.Warrant.issue_issuer(
        ["read_file"], ROOT, constraint_bounds={"path": Subpath("/data")}, ttl_seconds=600,
        holder=AGENT.public_key)
    mark = len(wf.CALLS)
    result, handle = await run(
        temporal_env, wf.IssuedReads.run,
        ["exec1", "/data/reports", ["/data/reports/q3.csv", "/data/private.csv"]],
        granted=issuer)
    assert result == ["contents of /data/reports/q3.csv", "TENUO_CONSTRAINT_VIOLATION"]
    assert wf.CALLS[mark:] == [("read_file", ("/data/reports/q3.csv",))]
    await replays_cleanly(handle)


async def test_an_issuer_cannot_issue_to_its_own_key_or_beyond_its_bounds(temporal_env):
    issuer = tenuo_core.Warrant.issue_issuer(
        ["read_file"], ROOT, constraint_bounds={"path": Subpath("/data")}, ttl_seconds=600,
        holder=AGENT.public_key)
    mark = len(wf.CALLS)
    own = await denial_of(run(temporal_env, wf.IssuedReads.run,
                              ["agent1", "/data", ["/data/x"]], granted=issuer))
    wider = await denial_of(run(temporal_env, wf.IssuedReads.run,
                                ["exec1", "/", ["/etc/passwd"]], granted=issuer))
    assert own.type == wider.type == "TENUO_CONSTRAINT_VIOLATION"
    assert "cannot issue to its own holder" in own.message
    assert "delegation refused" in wider.message
    assert wf.CALLS[mark:] == []


async def test_a_root_warrant_serves_one_dispatch_only(temporal_env):
    other = warrant(EXECUTOR, {"read_file": {"path": Subpath("/exports")}})
    mark = len(wf.CALLS)
    result, handle = await run(temporal_env, wf.DispatchedRoot.run,
                               [other.to_base64(), "exec1", "/exports/a.csv"])
    # The dispatch's warrant allows /exports; the run's own (/data) does not.
    assert result == ["contents of /exports/a.csv", "TENUO_CONSTRAINT_VIOLATION"]
    assert wf.CALLS[mark:] == [("read_file", ("/exports/a.csv",))]
    await replays_cleanly(handle)


@pytest.mark.parametrize("narrow_to", [None, "/data/reports"], ids=["carried", "narrowed"])
async def test_continue_as_new_carries_the_warrant_and_attenuation_narrows_it(
        temporal_env, narrow_to):
    mark = len(wf.CALLS)
    result, handle = await run(
        temporal_env, wf.Continuing.run,
        [["/data/reports/q3.csv", "/data/private.csv"], 2, narrow_to])
    assert result == ["contents of /data/reports/q3.csv",
                      "contents of /data/private.csv" if narrow_to is None
                      else "TENUO_CONSTRAINT_VIOLATION"]
    assert wf.CALLS[mark:] == [("read_file", ("/data/reports/q3.csv",)),
                               ("read_file", ("/data/private.csv",)),
                               ("read_file", ("/data/reports/q3.csv",))] + (
        [("read_file", ("/data/private.csv",))] if narrow_to is None else [])
    await replays_cleanly(handle)


async def test_replay_needs_no_key(temporal_env):
    """A replayed command is never sent: a Replayer holding no key at all replays cleanly.

    (A key rotated away, deleted, or a resolver already closed must not make
    old histories unreplayable.)
    """
    _, handle = await run(temporal_env, wf.GrantedReads.run,
                          ["/data/reports", ["/data/reports/q3.csv"]])
    keyless = TenuoPluginConfig(key_resolver=StaticKeyResolver({}),
                                trusted_roots=[ROOT.public_key])
    replayer = Replayer(workflows=wf.WORKFLOWS, plugins=[TenuoTemporalPlugin(keyless)])
    result = await replayer.replay_workflow(await handle.fetch_history(),
                                            raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
