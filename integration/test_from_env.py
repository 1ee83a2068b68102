"""A worker configured only from the environment authorizes and denies, on the dev server."""

from __future__ import annotations

import warnings

import pytest
import tenuo_core

from integration import _schedule_workflows as wf
from integration.support.temporal_helpers import connect, uid, worker
from tenuo_keys import encode_signing_key
from tenuo_temporal import TenuoPluginConfig, execute_workflow_authorized

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.from_bytes(bytes([81]) * 32)
HOLDER = tenuo_core.SigningKey.from_bytes(bytes([82]) * 32)


async def test_worker_configured_only_from_the_environment(temporal_env, monkeypatch):
    monkeypatch.setenv("TENUO_KEY_RESOLVER", "env://?prefix=TENUO_KEY_")
    monkeypatch.setenv("TENUO_KEY_envagent", encode_signing_key(HOLDER))
    monkeypatch.setenv("TENUO_TRUSTED_ROOTS", bytes(ROOT.public_key.to_bytes()).hex())
    monkeypatch.setenv("TENUO_REPLAY_PROTECTION", "run")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing here is unknown
        config = TenuoPluginConfig.from_env()
    assert config.signs and config.verifies
    client = await connect(temporal_env, config)
    queue = uid("from-env")
    warrant = tenuo_core.Warrant.issue(
        keypair=ROOT, ttl_seconds=600, holder=HOLDER.public_key,
        capabilities={"read_file": {"path": tenuo_core.Subpath("/data")}})
    mark = len(wf.CALLS)
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES):
        outcome = await execute_workflow_authorized(
            client, wf.ScheduledReads.run, ["/data/a.csv", "/etc/shadow"], id=uid("wf"),
            warrant=warrant, key_id="envagent", task_queue=queue)
    assert outcome == ["contents of /data/a.csv", "denied:TENUO_CONSTRAINT_VIOLATION:True"]
    assert wf.CALLS[mark:] == [("read_file", ("/data/a.csv",))]
