"""Remote signers in Temporal: holder keys that never leave the signing service.

One suite, run once per signer (``signer_backend``: OpenBao Transit's
``VaultTransitSigner`` on real OpenBao dev servers, ``GCPKMSSigner`` on the
project's Cloud KMS gRPC test server, ``AWSKMSSigner`` on the project's AWS
KMS JSON-protocol test server; the adapters live in
``integration/support/remote_signers.py``). A real Temporal dev server
(``temporal_env``). The PoP of a key id configured in
``TenuoPluginConfig.signers`` is signed in the plugin's local activity
``__tenuo_remote_sign``, outside the sandbox, and history records it. The tests
prove, for every signer:

* authorized activities run and denied ones do not, with a key generated
  inside the service that cannot leave it, verified by an unchanged
  verify-only activity worker that shares the task queue (the workflow worker
  does not take its tasks);
* the remote PoP is the local PoP byte for byte (an imported key);
* replay never signs: a worker that replays on every task, a worker that
  takes over after the first one stopped, and the ``Replayer``;
* calls in flight together each carry their own PoP;
* rotation mid-run keeps in-flight warrants working, a new warrant on the new
  version works, and a holder whose version no longer signs (or no longer
  exists) is a non-retryable ``TENUO_KEY_RESOLUTION``;
* an outage is a retryable failure of the local activity: the workflow waits,
  nothing runs unauthorized, and it completes once the service is back, with a
  PoP for the window it was scheduled in;
* plain ``workflow.execute_activity`` on a remote key id fails with the clear
  ``TENUO_REMOTE_SIGNER_NEEDS_HELPER``, while local key ids in the same worker
  keep signing in memory (no local activity);
* the signing activity cannot be scheduled as a regular activity.

Then, signer-independent: the config takes signers and nothing else, and a
precomputed PoP serves only its own call.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import pytest
import tenuo_core
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer, Worker

from integration import _remote_workflows as wf
from integration.support.procs import free_port
from integration.support.remote_signers import BACKENDS, SignerBackend
from integration.support.temporal_helpers import connect, denial_of, events_of, uid, worker
from tenuo_keys import (
    KeyResolutionError,
    LocalSigner,
    ResolverClosed,
    ResolverConfigError,
    Signer,
    StaticKeyResolver,
    sign_pop,
)
from tenuo_keys.backends.vault_transit import VaultTransitSigner
from tenuo_temporal import (
    AuditEvent,
    TenuoPluginConfig,
    TenuoTemporalPlugin,
    execute_workflow_authorized,
    start_workflow_authorized,
)
from tenuo_temporal import _headers as H
from tenuo_temporal._remote import (
    NEEDS_HELPER_TYPE,
    REMOTE_SIGN_ACTIVITY,
    RemotePop,
    precomputed_pop,
    workflow_pop,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.generate()
LOCAL_HOLDER = tenuo_core.SigningKey.generate()
Subpath = tenuo_core.Subpath
MARKER = EventType.EVENT_TYPE_MARKER_RECORDED
SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
STARTED = EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED


@pytest.fixture(params=list(BACKENDS))
def signer_backend(request: pytest.FixtureRequest) -> SignerBackend:
    """Each remote signer in turn (its services are started on first use)."""
    return BACKENDS[request.param](request)


def mint(holder: Any, capabilities: dict[str, Any] | None = None, ttl: int = 600) -> Any:
    caps = capabilities or {"read_file": {"path": Subpath("/data")}}
    return tenuo_core.Warrant.issue(keypair=ROOT, capabilities=caps, ttl_seconds=ttl,
                                    holder=holder)


def calls_since(mark: int) -> list[tuple[str, tuple[object, ...]]]:
    return wf.CALLS[mark:]


def reads(*paths: str) -> list[tuple[str, tuple[object, ...]]]:
    return [("read_file", (p,)) for p in paths]


def config_for(key_id: str, signer: Signer) -> TenuoPluginConfig:
    """A worker that signs with ``signer`` and verifies against ``ROOT``."""
    return TenuoPluginConfig(signers={key_id: signer}, trusted_roots=[ROOT.public_key])


async def replay(history: Any, key_id: str, signer: Signer) -> None:
    """Replay ``history`` with ``signer``; the replay must succeed."""
    result = await Replayer(workflows=wf.WORKFLOWS, plugins=[TenuoTemporalPlugin(
        TenuoPluginConfig(signers={key_id: signer}))]).replay_workflow(history)
    assert result.replay_failure is None


def scheduled_pops(history: Any) -> list[tuple[bytes, float]]:
    """(PoP, scheduled time) of every scheduled activity."""
    out = []
    for event in events_of(history, SCHEDULED):
        fields = event.activity_task_scheduled_event_attributes.header.fields
        out.append((base64.b64decode(fields[H.POP].data),
                    event.event_time.ToDatetime().timestamp()))
    return out


def window_pops(warrant: Any, key: Any, args: dict[str, Any], scheduled: float) -> list[bytes]:
    """The local PoPs for the 30-second window of ``scheduled`` and the one before.

    The PoP signs the window of the workflow task's time: the activity's
    scheduling window or, across an edge, the one before.
    """
    window = int(scheduled) // 30 * 30
    return [bytes(warrant.sign(key, "read_file", args, window - d)) for d in (0, 30)]


# --------------------------------------------------------------------------- allowed and denied


async def test_authorized_runs_and_denied_does_not_with_a_sealed_key(
        temporal_env, signer_backend):
    key_id = signer_backend.new_key("agent")
    signer = signer_backend.signer(key_id)
    signer_backend.assert_sealed(key_id, signer)
    warrant = mint(signer.public_key)
    assert bytes(warrant.authorized_holder.to_bytes()) == bytes(signer.public_key.to_bytes())
    events: list[AuditEvent] = []
    # The workflow worker signs (signers only, no key material, no activities);
    # an unchanged verify-only worker on the same queue runs the activities.
    signing = await connect(temporal_env, TenuoPluginConfig(signers={key_id: signer}))
    verifying = await connect(temporal_env, TenuoPluginConfig(
        trusted_roots=[ROOT.public_key], audit_callback=events.append))
    queue = uid("remote")
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
        # Refused before signing (the signing activity checks the warrant first):
        # a path outside the constraint, a tool not granted.
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
        assert signer.sign_calls == 3  # nothing more was signed
    assert [e.decision for e in events] == ["allow"] * 3  # nothing denied reached the verifier
    history = await helper.fetch_history()
    # One recorded signing per activity, each scheduled activity started once:
    # the workflow worker never took (and failed) an activity task.
    assert len(events_of(history, MARKER)) == 2
    assert [e.activity_task_started_event_attributes.attempt
            for e in events_of(history, STARTED)] == [1, 1]
    headers = events_of(history, SCHEDULED)[0].activity_task_scheduled_event_attributes.header
    assert headers.fields[H.KEY_ID].data == key_id.encode()
    assert headers.fields[H.ARG_KEYS].data == b"path"


async def test_remote_pop_equals_the_local_pop_byte_for_byte(temporal_env, signer_backend):
    """The verifier needs no change: what the service signs is exactly what tenuo_core signs.

    Also under a workflow-scoped warrant (``_workflow_namespace``/``_workflow_id``
    constrained): the scope is signed too, and a workflow outside it is denied.
    """
    key = tenuo_core.SigningKey.generate()
    key_id = signer_backend.import_key("byok", key)
    signer = signer_backend.signer(key_id)
    namespace = temporal_env.client.namespace
    plain = mint(key.public_key)
    scoped = mint(key.public_key, {"read_file": {
        "path": Subpath("/data"), "_workflow_namespace": tenuo_core.Exact(namespace),
        "_workflow_id": tenuo_core.Pattern("scoped-*")}})
    client = await connect(temporal_env, config_for(key_id, signer))
    queue = uid("byte")
    paths = ["/data/1", "/data/ü/2"]
    mark = len(wf.CALLS)
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES):
        handles = []
        for warrant, workflow_id in ((plain, uid("wf")), (scoped, uid("scoped"))):
            handle = await start_workflow_authorized(
                client, wf.HelperReads.run, workflow_id=workflow_id, warrant=warrant,
                key_id=key_id, args=[paths], task_queue=queue)
            await handle.result()
            handles.append((handle, warrant, workflow_id))
        outside = await denial_of(execute_workflow_authorized(
            client, wf.HelperReads.run, workflow_id=uid("other"), warrant=scoped,
            key_id=key_id, args=[["/data/3"]], task_queue=queue))
        assert outside.type == "TENUO_CONSTRAINT_VIOLATION"
    assert len(calls_since(mark)) == 4
    local = LocalSigner(key_id, key)
    for handle, warrant, workflow_id in handles:
        pops = scheduled_pops(await handle.fetch_history())
        assert len(pops) == len(paths)
        scope = ({"_workflow_namespace": namespace, "_workflow_id": workflow_id}
                 if warrant is scoped else {})
        for (pop, scheduled), path in zip(pops, paths, strict=True):
            args = {"path": path, **scope}
            local_pops = window_pops(warrant, key, args, scheduled)
            assert pop in local_pops
            window = int(scheduled) // 30 * 30
            assert pop == sign_pop(local, warrant, "read_file", args,
                                   window - 30 * local_pops.index(pop))


# --------------------------------------------------------------------------- replay


async def test_replay_never_signs_again(temporal_env, signer_backend):
    key_id = signer_backend.new_key("replay")
    signer = signer_backend.signer(key_id)
    warrant = mint(signer.public_key)
    paths = [f"/data/{i}" for i in range(4)]

    # 1. No workflow cache: every workflow task replays the whole history, so
    #    each earlier signing is met again on every task; it is read, not redone.
    client = await connect(temporal_env, config_for(key_id, signer))
    queue = uid("nocache")
    mark = len(wf.CALLS)
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES, max_cached_workflows=0):
        handle = await start_workflow_authorized(
            client, wf.HelperReads.run, workflow_id=uid("wf"), warrant=warrant, key_id=key_id,
            args=[paths], task_queue=queue)
        assert await handle.result() == [f"contents of {p}" for p in paths]
    assert signer.sign_calls == len(paths)
    assert calls_since(mark) == reads(*paths)
    history = await handle.fetch_history()
    assert len(events_of(history, MARKER)) == len(paths)

    # 2. The Replayer, with a fresh signer: no request to the service at all.
    replay_signer = signer_backend.signer(key_id)
    try:
        await replay(history, key_id, replay_signer)
        assert replay_signer.sign_calls == 0
    finally:
        replay_signer.close()
    assert signer.sign_calls == len(paths)

    # 3. A worker stops mid-run (its cache goes with it); another worker, with
    #    a signer of its own, takes over: it replays the first half from history
    #    and signs only what is new.
    first = signer_backend.signer(key_id)
    second = signer_backend.signer(key_id)
    queue = uid("takeover")
    client_a = await connect(temporal_env, config_for(key_id, first))
    mark = len(wf.CALLS)
    async with worker(client_a, queue, wf.WORKFLOWS, wf.ACTIVITIES):
        handle = await start_workflow_authorized(
            client_a, wf.GatedReads.run, workflow_id=uid("gated"), warrant=warrant,
            key_id=key_id, args=[["/data/a", "/data/b", "/data/c"], ["/data/d"]],
            task_queue=queue)
        while await handle.query(wf.GatedReads.done) < 3:
            await asyncio.sleep(0.05)
    assert first.sign_calls == 3
    client_b = await connect(temporal_env, config_for(key_id, second))
    async with worker(client_b, queue, wf.WORKFLOWS, wf.ACTIVITIES):
        await handle.signal(wf.GatedReads.go)
        assert len(await handle.result()) == 4
    assert (first.sign_calls, second.sign_calls) == (3, 1)
    assert calls_since(mark) == reads("/data/a", "/data/b", "/data/c", "/data/d")
    history = await handle.fetch_history()
    assert len(events_of(history, MARKER)) == 4
    await replay(history, key_id, signer_backend.signer(key_id))


async def test_concurrent_calls_each_get_their_own_pop(temporal_env, signer_backend):
    """Calls in flight together sign in parallel; each activity carries its own call's PoP."""
    key_id = signer_backend.new_key("concurrent")
    signer = signer_backend.signer(key_id)
    client = await connect(temporal_env, config_for(key_id, signer))
    queue = uid("concurrent")
    paths = [f"/data/c/{i}" for i in range(8)]
    mark = len(wf.CALLS)
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES, max_cached_workflows=0):
        result = await execute_workflow_authorized(
            client, wf.ConcurrentReads.run, workflow_id=uid("wf"),
            warrant=mint(signer.public_key), key_id=key_id, args=[paths], task_queue=queue)
    assert result == [f"contents of {p}" for p in paths]
    assert sorted(calls_since(mark)) == sorted(reads(*paths))
    assert signer.sign_calls == len(paths)


# --------------------------------------------------------------------------- rotation


async def test_rotation_mid_run(temporal_env, signer_backend):
    key_id = signer_backend.new_key("rotate")
    signer = signer_backend.signer(key_id)
    v1 = signer.public_key
    old_warrant = mint(v1)
    client = await connect(temporal_env, config_for(key_id, signer))
    queue = uid("rotate")
    mark = len(wf.CALLS)
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES):
        in_flight = await start_workflow_authorized(
            client, wf.GatedReads.run, workflow_id=uid("old"), warrant=old_warrant,
            key_id=key_id, args=[["/data/1"], ["/data/2", "/data/3"]], task_queue=queue)
        while await in_flight.query(wf.GatedReads.done) < 1:
            await asyncio.sleep(0.05)
        v2 = signer_backend.rotate(key_id)  # read by the issuer, not the worker
        assert bytes(v2.to_bytes()) != bytes(v1.to_bytes())
        # The in-flight warrant (version 1's key) keeps signing, pinned to version 1.
        await in_flight.signal(wf.GatedReads.go)
        assert await in_flight.result() == [
            "contents of /data/1", "contents of /data/2", "contents of /data/3"]
        # A new warrant for version 2: the worker's signer learns the rotation itself.
        fresh = await execute_workflow_authorized(
            client, wf.HelperReads.run, workflow_id=uid("new"), warrant=mint(v2),
            key_id=key_id, args=[["/data/new"]], task_queue=queue)
        assert fresh == ["contents of /data/new"]
        assert signer_backend.signing_versions(signer) == [2, 1]
        assert calls_since(mark) == reads("/data/1", "/data/2", "/data/3", "/data/new")
        assert signer.sign_calls == 4
        # Version 1 retired (it no longer signs), then removed: a warrant for it
        # is a definitive, non-retryable failure; nothing runs.
        signer_backend.retire(key_id, 1)
        mark_retired = len(wf.CALLS)
        retired = await denial_of(execute_workflow_authorized(
            client, wf.HelperReads.run, workflow_id=uid("retired"), warrant=old_warrant,
            key_id=key_id, args=[["/data/retired"]], task_queue=queue))
        assert retired.type == "TENUO_KEY_RESOLUTION" and retired.non_retryable
        signer_backend.remove(key_id, 1)
        assert signer_backend.signing_versions(signer, refresh=True) == [2]
        gone = await denial_of(execute_workflow_authorized(
            client, wf.HelperReads.run, workflow_id=uid("gone"), warrant=old_warrant,
            key_id=key_id, args=[["/data/gone"]], task_queue=queue))
        assert gone.type == "TENUO_KEY_RESOLUTION" and gone.non_retryable
        assert signer_backend.removed_version_message in gone.message
        assert calls_since(mark_retired) == []


# --------------------------------------------------------------------------- outage


class Spy(Signer):
    """Delegates to a real signer and records each outcome (for the outage test)."""

    backend = "spy"
    remote = True

    def __init__(self, inner: Signer) -> None:
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


@pytest.mark.parametrize("outage_seconds", [0, 40], ids=["short", "past-a-pop-window"])
async def test_outage_is_retried_never_run_unauthorized(temporal_env, signer_backend,
                                                        outage_seconds):
    """Retryable while the service is down; completes once it is back.

    The long variant outlasts a 30-second PoP window: a PoP for the workflow
    time of the request would be stale by then, so the local activity signs
    the current time, and the activity is scheduled with a fresh PoP. The
    replay of that history (with the service unreachable) is deterministic.
    """
    key = tenuo_core.SigningKey.generate()  # imported, so the PoPs can be compared
    with signer_backend.outage("outage", key) as outage:
        key_id = outage.key_id
        spy = Spy(outage.signer)
        client = await connect(temporal_env, config_for(key_id, spy))
        queue = uid("outage")
        mark = len(wf.CALLS)
        async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES):
            handle = await start_workflow_authorized(
                client, wf.GatedReads.run, workflow_id=uid("wf"), warrant=mint(key.public_key),
                key_id=key_id, args=[["/data/before"], ["/data/during"]], task_queue=queue)
            while await handle.query(wf.GatedReads.done) < 1:
                await asyncio.sleep(0.05)
            assert spy.outcomes == ["signed"]
            # Outage: the service stops while the workflow is about to sign.
            outage.stop()
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
            await asyncio.sleep(outage_seconds)
            outage.start()  # same address, same key
            assert await asyncio.wait_for(handle.result(), 60) == [
                "contents of /data/before", "contents of /data/during"]
    assert spy.outcomes[-1] == "signed"
    assert calls_since(mark) == reads("/data/before", "/data/during")
    history = await handle.fetch_history()
    assert [e.activity_task_started_event_attributes.attempt
            for e in events_of(history, STARTED)] == [1, 1]
    # The PoP of the delayed call signs the window it was scheduled in (or the
    # one before, across an edge): never the stale window of before the outage.
    warrant = H.decode_context(events_of(history, SCHEDULED)[1]
                               .activity_task_scheduled_event_attributes.header.fields).warrant
    pop, scheduled = scheduled_pops(history)[1]
    assert pop in window_pops(warrant, key, {"path": "/data/during"}, scheduled)
    assert len(events_of(history, MARKER)) == 2
    # The service unreachable: the replay must not need it.
    await replay(history, key_id, Spy(signer_backend.unreachable_signer(key_id)))


# --------------------------------------------------------------------------- plain API


async def test_plain_execute_activity_with_a_remote_key_explains_itself(
        temporal_env, signer_backend):
    key_id = signer_backend.new_key("plain")
    signer = signer_backend.signer(key_id)
    in_memory = tenuo_core.SigningKey.generate()
    client = await connect(temporal_env, TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"local1": LOCAL_HOLDER}),
        signers={key_id: signer, "local2": LocalSigner("local2", in_memory)},
        trusted_roots=[ROOT.public_key]))
    queue = uid("plain")
    mark = len(wf.CALLS)
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES):
        error = await denial_of(execute_workflow_authorized(
            client, wf.PlainRead.run, workflow_id=uid("remote"),
            warrant=mint(signer.public_key), key_id=key_id, args=["/data/x"], task_queue=queue))
        assert error.type == NEEDS_HELPER_TYPE and error.non_retryable
        assert "tenuo_execute_activity" in error.message
        assert "execute_authorized_activity" in error.message
        assert "synchronous" in error.message
        assert calls_since(mark) == [] and signer.sign_calls == 0
        # Local key ids in the same worker: plain API and helpers, in memory.
        handles = []
        for run, key, holder, args in (
                (wf.PlainRead.run, "local1", LOCAL_HOLDER, ["/data/p1"]),
                (wf.PlainRead.run, "local2", in_memory, ["/data/p2"]),
                (wf.HelperReads.run, "local1", LOCAL_HOLDER, [["/data/h1"]])):
            handle = await start_workflow_authorized(
                client, run, workflow_id=uid("local"), warrant=mint(holder.public_key),
                key_id=key, args=args, task_queue=queue)
            await handle.result()
            handles.append(handle)
        # The same remote key id through the helper works in the same worker.
        assert await execute_workflow_authorized(
            client, wf.HelperReads.run, workflow_id=uid("helper"),
            warrant=mint(signer.public_key), key_id=key_id, args=[["/data/r"]],
            task_queue=queue) == ["contents of /data/r"]
    assert calls_since(mark) == reads("/data/p1", "/data/p2", "/data/h1", "/data/r")
    assert signer.sign_calls == 1
    for handle in handles:  # no local activity on the in-memory path
        assert not events_of(await handle.fetch_history(), MARKER)
    with pytest.raises(ResolverClosed):  # closed by the plugin when its worker stopped
        signer.sign(b"x")


async def test_the_signing_activity_is_local_only(temporal_env, signer_backend):
    key_id = signer_backend.new_key("oracle")
    signer = signer_backend.signer(key_id)
    warrant = mint(signer.public_key)
    # A worker that runs activities and has the signer: a workflow without a
    # warrant schedules the signing activity as a regular activity.
    client = await connect(temporal_env, config_for(key_id, signer))
    queue = uid("oracle")
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES) as running:
        names = {getattr(a, "__temporal_activity_definition").name
                 for a in running.config(active_config=True)["activities"]}
        assert REMOTE_SIGN_ACTIVITY in names
        assert not running.config(active_config=True).get("no_remote_activities")
        request = {"key_id": key_id, "warrant": warrant.to_base64(), "tool": "read_file",
                   "args": {"path": "/data/x"}, "names": ["path"],
                   "timestamp": int(time.time())}
        error = await denial_of(client.execute_workflow(
            wf.ScheduleSignerAsActivity.run, request, id=uid("oracle"), task_queue=queue))
    assert error.type == "TENUO_WARRANT_MISSING"
    assert signer.sign_calls == 0
    # No signers: no signing activity; a workflow-only worker keeps to local
    # activities (the delegation mint) and never polls its activity queue.
    plain = await connect(temporal_env, TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"local1": LOCAL_HOLDER})))
    only = Worker(plain, task_queue=uid("none"), workflows=wf.WORKFLOWS)
    names = {getattr(a, "__temporal_activity_definition").name
             for a in only.config(active_config=True)["activities"]}
    assert REMOTE_SIGN_ACTIVITY not in names
    assert only.config(active_config=True).get("no_remote_activities") is True


# --------------------------------------------------------------------------- config and guards


async def test_config_takes_signers_and_refuses_anything_else():
    signer = LocalSigner("a", LOCAL_HOLDER)
    config = TenuoPluginConfig(signers={"a": signer})  # signing only: no resolver needed
    assert config.signers == {"a": signer} and not config.verifies
    with pytest.raises(ResolverConfigError, match=r"tenuo_keys\.Signer"):
        TenuoPluginConfig(signers={"a": LOCAL_HOLDER})
    with pytest.raises(ResolverConfigError, match="signers="):
        TenuoPluginConfig()


async def test_a_precomputed_pop_serves_only_its_own_call():
    remote = VaultTransitSigner("agent", f"http://127.0.0.1:{free_port()}", token="t",
                                environ={}, lazy=True)
    config = TenuoPluginConfig(signers={"agent": remote},
                               key_resolver=StaticKeyResolver({"local1": LOCAL_HOLDER}))
    warrant = mint(LOCAL_HOLDER.public_key)
    context = H.WarrantContext.build(warrant, "agent")
    signed = {"path": "/data/a"}
    pop = RemotePop(warrant_id=str(warrant.id), key_id="agent", tool="read_file",
                    signed=dict(signed), pop=bytes(range(64)))
    token = precomputed_pop.set(pop)
    try:
        assert workflow_pop(config, context, "read_file", signed) == bytes(range(64))
        for tool, other in (("read_file", {"path": "/data/b"}), ("write_file", signed),
                            ("read_file", {**signed, "_workflow_id": "w"})):
            with pytest.raises(ApplicationError) as refused:
                workflow_pop(config, context, tool, other)
            assert refused.value.type == "TENUO_KEY_RESOLUTION" and refused.value.non_retryable
        with pytest.raises(ApplicationError):
            workflow_pop(config, H.WarrantContext.build(warrant, "local1"), "read_file", signed)
    finally:
        precomputed_pop.reset(token)
    # Without one: a remote key id asks for the helper; a resolver key id is not ours.
    with pytest.raises(ApplicationError) as needs:
        workflow_pop(config, context, "read_file", signed)
    assert needs.value.type == NEEDS_HELPER_TYPE and "vault-transit" in needs.value.message
    assert workflow_pop(config, H.WarrantContext.build(warrant, "local1"), "read_file",
                        signed) is None
    assert remote.sign_calls == 0
    remote.close()
