"""Remote signers in Temporal: holder keys that never leave Cloud KMS.

The Temporal scenarios of ``test_remote_signing.py`` (OpenBao Transit), run
with ``GCPKMSSigner`` against the project's Cloud KMS gRPC test server
(``gcp_kms``, ``gcp_kms_factory``). The tests prove:

* authorized activities run and denied ones do not, with a holder key
  generated inside KMS, verified by a verify-only activity worker;
* replaying a history never signs again (the ``Replayer`` with a fresh signer);
* a KMS rotation mid-run keeps an in-flight warrant for version 1 working, and
  a new warrant for version 2 works;
* a KMS outage is a retryable failure of the signing local activity: nothing
  runs unauthorized, and the workflow completes once the server is back.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import tenuo_core
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Replayer

from integration import _remote_workflows as wf
from integration.support.temporal_helpers import connect, denial_of, events_of, uid, worker
from tenuo_keys import KeyResolutionError, Signer
from tenuo_keys.backends.gcp_kms import GCPKMSSigner
from tenuo_temporal import (
    AuditEvent,
    TenuoPluginConfig,
    TenuoTemporalPlugin,
    execute_workflow_authorized,
    start_workflow_authorized,
)
from tenuo_temporal import _headers as H

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.generate()
Subpath = tenuo_core.Subpath
MARKER = EventType.EVENT_TYPE_MARKER_RECORDED
SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
STARTED = EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED




def mint(holder: Any, capabilities: dict[str, Any] | None = None, ttl: int = 600) -> Any:
    caps = capabilities or {"read_file": {"path": Subpath("/data")}}
    return tenuo_core.Warrant.issue(keypair=ROOT, capabilities=caps, ttl_seconds=ttl,
                                    holder=holder)


def new_key(server: Any, name: str) -> str:
    """Create ``tenuo-<key id>`` (version 1 generated inside KMS); returns the key id."""
    key_id = uid(name)
    server.create_key(f"tenuo-{key_id}")
    return key_id








def calls_since(mark: int) -> list[tuple[str, tuple[object, ...]]]:
    return wf.CALLS[mark:]




def reads(*paths: str) -> list[tuple[str, tuple[object, ...]]]:
    return [("read_file", (p,)) for p in paths]


# --------------------------------------------------------------------------- allowed and denied


async def test_authorized_runs_and_denied_does_not_with_a_kms_generated_key(
        temporal_env, gcp_kms):
    key_id = new_key(gcp_kms, "agent")
    signer = gcp_kms.signer(key_id)
    info = signer.key_info()
    assert [v.number for v in info.signing] == [1]  # generated in KMS, never imported
    warrant = mint(signer.public_key)
    assert bytes(warrant.authorized_holder.to_bytes()) == bytes(signer.public_key.to_bytes())
    events: list[AuditEvent] = []
    signing = await connect(temporal_env, TenuoPluginConfig(signers={key_id: signer}))
    verifying = await connect(temporal_env, TenuoPluginConfig(
        trusted_roots=[ROOT.public_key], audit_callback=events.append))
    queue = uid("kms")
    mark = len(wf.CALLS)
    async with worker(signing, queue, wf.WORKFLOWS) as workflow_worker, \
            worker(verifying, queue, activities=wf.ACTIVITIES):
        assert workflow_worker.config(active_config=True).get("no_remote_activities") is True
        helper = await start_workflow_authorized(
            signing, wf.HelperReads.run, workflow_id=uid("helper"), warrant=warrant,
            key_id=key_id, args=[["/data/a.csv", "/data/b.csv"]], task_queue=queue)
        assert await helper.result() == ["contents of /data/a.csv", "contents of /data/b.csv"]
        guarded = await execute_workflow_authorized(
            signing, wf.GuardedReads.run, workflow_id=uid("guarded"), warrant=warrant,
            key_id=key_id, args=[["/data/c.csv"]], task_queue=queue)
        assert guarded == ["contents of /data/c.csv"]
        assert calls_since(mark) == reads("/data/a.csv", "/data/b.csv", "/data/c.csv")
        assert signer.sign_calls == 3
        mark = len(wf.CALLS)
        outside = await denial_of(execute_workflow_authorized(
            signing, wf.HelperReads.run, workflow_id=uid("outside"), warrant=warrant,
            key_id=key_id, args=[["/etc/passwd"]], task_queue=queue))
        assert outside.type == "TENUO_CONSTRAINT_VIOLATION" and outside.non_retryable
        tool = await denial_of(execute_workflow_authorized(
            signing, wf.GuardedWrite.run, workflow_id=uid("write"), warrant=warrant,
            key_id=key_id, args=["/data/x", "body"], task_queue=queue))
        assert tool.type == "TENUO_TOOL_NOT_AUTHORIZED" and tool.non_retryable
        assert calls_since(mark) == []
        assert signer.sign_calls == 3  # refused before signing: nothing more was signed
    assert [e.decision for e in events] == ["allow"] * 3  # nothing denied reached the verifier
    history = await helper.fetch_history()
    assert len(events_of(history, MARKER)) == 2
    assert [e.activity_task_started_event_attributes.attempt
            for e in events_of(history, STARTED)] == [1, 1]
    headers = events_of(history, SCHEDULED)[0].activity_task_scheduled_event_attributes.header
    assert headers.fields[H.KEY_ID].data == key_id.encode()


# --------------------------------------------------------------------------- replay


async def test_replay_never_signs_again(temporal_env, gcp_kms):
    key_id = new_key(gcp_kms, "replay")
    signer = gcp_kms.signer(key_id)
    warrant = mint(signer.public_key)
    paths = [f"/data/{i}" for i in range(4)]
    client = await connect(temporal_env, TenuoPluginConfig(
        signers={key_id: signer}, trusted_roots=[ROOT.public_key]))
    queue = uid("nocache")
    mark = len(wf.CALLS)
    # No workflow cache: every workflow task replays the history so far.
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES, max_cached_workflows=0):
        handle = await start_workflow_authorized(
            client, wf.HelperReads.run, workflow_id=uid("wf"), warrant=warrant, key_id=key_id,
            args=[paths], task_queue=queue)
        assert await handle.result() == [f"contents of {p}" for p in paths]
    assert signer.sign_calls == len(paths)
    assert calls_since(mark) == reads(*paths)
    history = await handle.fetch_history()
    assert len(events_of(history, MARKER)) == len(paths)
    fresh = gcp_kms.signer(key_id)
    try:
        result = await Replayer(workflows=wf.WORKFLOWS, plugins=[TenuoTemporalPlugin(
            TenuoPluginConfig(signers={key_id: fresh}))]).replay_workflow(history)
        assert result.replay_failure is None
        assert fresh.sign_calls == 0
    finally:
        fresh.close()
    assert signer.sign_calls == len(paths)


# --------------------------------------------------------------------------- rotation


async def test_kms_rotation_mid_run(temporal_env, gcp_kms):
    key_id = new_key(gcp_kms, "rotate")
    crypto_key = f"tenuo-{key_id}"
    signer = gcp_kms.signer(key_id)
    v1 = signer.public_key
    old_warrant = mint(v1)
    client = await connect(temporal_env, TenuoPluginConfig(
        signers={key_id: signer}, trusted_roots=[ROOT.public_key]))
    queue = uid("rotate")
    mark = len(wf.CALLS)
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES):
        in_flight = await start_workflow_authorized(
            client, wf.GatedReads.run, workflow_id=uid("old"), warrant=old_warrant,
            key_id=key_id, args=[["/data/1"], ["/data/2", "/data/3"]], task_queue=queue)
        while await in_flight.query(wf.GatedReads.done) < 1:
            await asyncio.sleep(0.05)
        assert gcp_kms.rotate(crypto_key) == 2
        with gcp_kms.signer(key_id) as issuer_view:  # read by the issuer, not the worker
            v2 = issuer_view.public_key
            assert [v.number for v in issuer_view.key_info().signing] == [2, 1]
        assert bytes(v2.to_bytes()) != bytes(v1.to_bytes())
        # The in-flight warrant (version 1's key) keeps signing with version 1.
        await in_flight.signal(wf.GatedReads.go)
        assert await in_flight.result() == [
            "contents of /data/1", "contents of /data/2", "contents of /data/3"]
        # A new warrant for version 2: the worker's signer learns the rotation itself.
        fresh = await execute_workflow_authorized(
            client, wf.HelperReads.run, workflow_id=uid("new"), warrant=mint(v2),
            key_id=key_id, args=[["/data/new"]], task_queue=queue)
        assert fresh == ["contents of /data/new"]
        assert [v.number for v in signer.key_info().signing] == [2, 1]
    assert calls_since(mark) == reads("/data/1", "/data/2", "/data/3", "/data/new")
    assert signer.sign_calls == 4


# --------------------------------------------------------------------------- outage


class Spy(Signer):
    """Delegates to a real signer and records each outcome."""

    backend = "gcp-kms"
    remote = True

    def __init__(self, inner: GCPKMSSigner) -> None:
        super().__init__(inner.key_id)
        self.inner = inner
        self.outcomes: list[str] = []

    def public_key_for(self, holder: Any | None = None) -> Any:
        return self.inner.public_key_for(holder)

    def sign(self, message: bytes, *, holder: Any | None = None) -> bytes:
        try:
            signature = self.inner.sign(message, holder=holder)
        except KeyResolutionError as error:
            self.outcomes.append(f"{type(error).__name__}:retryable={error.retryable}")
            raise
        self.outcomes.append("signed")
        return signature

    def close(self) -> None:
        self.inner.close()


async def test_kms_outage_is_retried_never_run_unauthorized(temporal_env, gcp_kms_factory):
    server = gcp_kms_factory(state=True)
    key_id = new_key(server, "outage")
    spy = Spy(server.signer(key_id, timeout=1.0))
    warrant = mint(spy.inner.public_key)
    client = await connect(temporal_env, TenuoPluginConfig(
        signers={key_id: spy}, trusted_roots=[ROOT.public_key]))
    queue = uid("outage")
    mark = len(wf.CALLS)
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES):
        handle = await start_workflow_authorized(
            client, wf.GatedReads.run, workflow_id=uid("wf"), warrant=warrant,
            key_id=key_id, args=[["/data/before"], ["/data/during"]], task_queue=queue)
        while await handle.query(wf.GatedReads.done) < 1:
            await asyncio.sleep(0.05)
        assert spy.outcomes == ["signed"]
        server.stop()
        await handle.signal(wf.GatedReads.go)
        deadline = time.monotonic() + 30
        while len(spy.outcomes) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        failures = spy.outcomes[1:]
        assert len(failures) >= 3, spy.outcomes  # retried by Temporal, again and again
        assert set(failures) == {"BackendUnavailable:retryable=True"}
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        assert calls_since(mark) == reads("/data/before")
        history = await handle.fetch_history()
        assert len(events_of(history, SCHEDULED)) == 1  # nothing scheduled without a PoP
        assert not events_of(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED)
        # Same port, same state file: the key (and its private half) survived.
        server.start()
        assert await asyncio.wait_for(handle.result(), 60) == [
            "contents of /data/before", "contents of /data/during"]
    assert spy.outcomes[-1] == "signed"
    assert calls_since(mark) == reads("/data/before", "/data/during")
    history = await handle.fetch_history()
    assert [e.activity_task_started_event_attributes.attempt
            for e in events_of(history, STARTED)] == [1, 1]
    assert len(events_of(history, MARKER)) == 2
