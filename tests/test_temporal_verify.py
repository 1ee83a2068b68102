"""The activity-side check, in process: the hot path's shortcuts keep every denial.

``Verifier.check`` (the interceptor's ``verifier``) is what the activity inbound interceptor runs
before an activity body. These tests drive it directly on a protobuf header
map, as a worker hands it over; the end-to-end cases on a real Temporal
server are in ``integration/test_plugin.py`` and ``integration/test_adversarial.py``.
"""

from __future__ import annotations

import base64
import time
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
import tenuo_core
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.bridge.proto.activity_task import activity_task_pb2
from temporalio.worker import ExecuteActivityInput

from tenuo_keys import StaticKeyResolver
from tenuo_temporal import InMemoryReplayStore, TenuoPluginConfig
from tenuo_temporal import _headers as H
from tenuo_temporal._interceptors import TenuoInterceptor
from tenuo_temporal.errors import (
    PopReplayed,
    PopVerificationError,
    TemporalConstraintViolation,
    WarrantExpired,
)
from tests._warrants import WORKFLOW_SCOPE, read_file_warrant

ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
WARRANT = read_file_warrant(ROOT, HOLDER)
SCOPED = read_file_warrant(ROOT, HOLDER, **WORKFLOW_SCOPE)


@activity.defn
async def read_file(path: str) -> str:
    return path


class AsyncOnlyStore:
    """A shared store's shape: ``claim`` only, answered asynchronously."""

    def __init__(self) -> None:
        self.inner = InMemoryReplayStore()
        self.calls = 0

    async def claim(self, pop_digest: bytes, owner: str, ttl_seconds: float) -> bool:
        self.calls += 1
        return await self.inner.claim(pop_digest, owner, ttl_seconds)


def interceptor(store: Any = None, replay_protection: Any = True) -> TenuoInterceptor:
    tenuo = TenuoInterceptor(TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent1": HOLDER}), trusted_roots=[ROOT.public_key],
        metrics=False, replay_store=store, replay_protection=replay_protection))
    tenuo.register_activities([read_file])
    return tenuo


async def authorize(tenuo: TenuoInterceptor, input: ExecuteActivityInput, info: Any
                    ) -> tuple[Any, dict[str, Any]]:
    """The activity worker's path: ``check``, then ``claim`` when the store is asynchronous."""
    tool = tenuo.config.tool_for(info.activity_type)
    context, args, pending = tenuo.verifier.check(input, info, tool)
    if pending is not None and context is not None:
        await tenuo.verifier.claim(pending, tool, context)
    return context, args


def info(workflow_id: str = "wf-1", *, scheduled_at: float | None = None,
         is_local: bool = False, attempt: int = 1, run_id: str = "run") -> Any:
    scheduled = datetime.fromtimestamp(time.time() if scheduled_at is None else scheduled_at,
                                       timezone.utc)
    return SimpleNamespace(
        activity_type="read_file", workflow_namespace="default", workflow_id=workflow_id,
        workflow_run_id=run_id, activity_id="1", attempt=attempt, is_local=is_local,
        scheduled_time=scheduled)


def activity_input(args: list[Any], signed: dict[str, Any], arg_keys: str,
                   warrant: Any = WARRANT, *, signed_at: float | None = None
                   ) -> ExecuteActivityInput:
    pop = warrant.sign(HOLDER, "read_file", signed,
                       int(time.time() if signed_at is None else signed_at))
    headers = {**H.WarrantContext.build(warrant, "agent1").payloads,
               H.POP: Payload(data=base64.b64encode(bytes(pop))),
               H.ARG_KEYS: Payload(data=arg_keys.encode())}
    start = activity_task_pb2.Start()
    for name, payload in headers.items():
        start.header_fields[name].CopyFrom(payload)
    return ExecuteActivityInput(fn=read_file, args=args, executor=None,
                                headers=start.header_fields)


def test_allowed_with_one_view_when_both_sides_name_alike():
    context, named, pending = interceptor().verifier.check(
        activity_input(["/data/a"], {"path": "/data/a"}, "path"), info(), "read_file")
    assert context is not None and named == {"path": "/data/a"} and pending is None


def test_split_views_positional_signing_still_checks_constraints_by_name():
    tenuo = interceptor()
    # A workflow worker without the activity code signs arg0; constraints see "path".
    _, named, _ = tenuo.verifier.check(activity_input(["/data/a"], {"arg0": "/data/a"}, "arg0"),
                              info(), "read_file")
    assert named == {"path": "/data/a"}
    with pytest.raises(TemporalConstraintViolation):
        tenuo.verifier.check(activity_input(["/etc/passwd"], {"arg0": "/etc/passwd"}, "arg0"),
                    info(), "read_file")


def test_signed_names_never_steer_constraints():
    # The PoP is valid for {"other": ...}, but the activity's parameter is "path".
    with pytest.raises((TemporalConstraintViolation, PopVerificationError)):
        interceptor().verifier.check(
            activity_input(["/etc/passwd"], {"other": "/etc/passwd"}, "other"), info(),
            "read_file")


def test_workflow_scope_is_added_to_both_views_and_enforced():
    tenuo = interceptor()
    signed = {"path": "/data/a", "_workflow_namespace": "default", "_workflow_id": "wf-1"}
    _, named, _ = tenuo.verifier.check(activity_input(["/data/a"], signed, "path", SCOPED),
                              info("wf-1"), "read_file")
    assert named == signed
    with pytest.raises((TemporalConstraintViolation, PopVerificationError)):
        tenuo.verifier.check(activity_input(["/data/a"], signed, "path", SCOPED), info("other-1"),
                    "read_file")


def test_in_memory_store_is_claimed_inline_and_refuses_a_second_workflow():
    tenuo = interceptor(replay_protection="strict")
    first = activity_input(["/data/a"], {"path": "/data/a"}, "path")
    assert tenuo.verifier.check(first, info("wf-1"), "read_file")[2] is None
    # same workflow: a retry
    assert tenuo.verifier.check(first, info("wf-1"), "read_file")[2] is None
    with pytest.raises(PopReplayed):
        tenuo.verifier.check(first, info("wf-2"), "read_file")


async def test_a_store_without_claim_now_is_awaited():
    store = AsyncOnlyStore()
    tenuo = interceptor(store, "strict")
    first = activity_input(["/data/a"], {"path": "/data/a"}, "path")
    assert (await authorize(tenuo, first, info("wf-1")))[0] is not None
    assert store.calls == 1
    context, _, pending = tenuo.verifier.check(first, info("wf-2"), "read_file")
    assert pending is not None and pending[1] == "7:default/wf-2" and context is not None
    with pytest.raises(PopReplayed):
        await tenuo.verifier.claim(pending, "read_file", context)
    with pytest.raises(PopReplayed):
        await authorize(tenuo, first, info("wf-2"))


def test_by_default_every_workflow_may_make_the_same_call_and_an_attempt_runs_once():
    # Ed25519 is deterministic: two workflows making the same call under one
    # warrant in one PoP window present the same bytes. Both run by default.
    tenuo = interceptor()
    assert tenuo.config.replay_mode == "run"
    same = activity_input(["/data/a"], {"path": "/data/a"}, "path")
    assert tenuo.verifier.check(same, info("wf-1"), "read_file")[0] is not None
    assert tenuo.verifier.check(same, info("wf-2"), "read_file")[0] is not None
    assert tenuo.verifier.check(same, info("wf-1", attempt=2), "read_file")[0] is not None
    assert tenuo.verifier.check(same, info("wf-1", run_id="run-2"), "read_file")[0] is not None
    # The same attempt of the same activity presented again is refused.
    with pytest.raises(PopReplayed, match="activity attempt was already authorized once"):
        tenuo.verifier.check(same, info("wf-2"), "read_file")


async def test_by_default_a_shared_store_gets_one_claim_per_attempt_and_presentation():
    store = AsyncOnlyStore()
    tenuo = interceptor(store)
    same = activity_input(["/data/a"], {"path": "/data/a"}, "path")
    _, _, first = tenuo.verifier.check(same, info("wf-1"), "read_file")
    _, _, again = tenuo.verifier.check(same, info("wf-1"), "read_file")
    _, _, other = tenuo.verifier.check(same, info("wf-2"), "read_file")
    assert first is not None and again is not None and other is not None
    assert first[0] == again[0] != other[0]  # keyed by the attempt's identity
    assert len({first[1], again[1], other[1]}) == 3  # an owner per presentation
    assert (await authorize(tenuo, same, info("wf-1")))[0] is not None
    assert (await authorize(tenuo, same, info("wf-2")))[0] is not None
    assert (await authorize(tenuo, same, info("wf-1", attempt=2)))[0] is not None
    with pytest.raises(PopReplayed, match="activity attempt was already authorized once"):
        await authorize(tenuo, same, info("wf-1"))


def test_the_attempt_identity_is_length_prefixed():
    from tenuo_temporal._verify import run_claim_digest

    pop = bytes(64)
    one = SimpleNamespace(workflow_namespace="a", workflow_id="b/c", workflow_run_id="r",
                          activity_id="1", attempt=1)
    two = SimpleNamespace(workflow_namespace="a/b", workflow_id="c", workflow_run_id="r",
                          activity_id="1", attempt=1)
    assert run_claim_digest(pop, one) != run_claim_digest(pop, two)  # type: ignore[arg-type]


def test_replay_protection_off_claims_nothing():
    tenuo = interceptor(replay_protection=False)
    assert tenuo.config.replay_mode is None
    same = activity_input(["/data/a"], {"path": "/data/a"}, "path")
    for _ in range(2):
        assert tenuo.verifier.check(same, info("wf-1"), "read_file")[0] is not None
    assert tenuo.config.replay_store.size == 0  # type: ignore[union-attr]


def test_an_unknown_replay_mode_is_a_configuration_error():
    from tenuo_keys import ResolverConfigError

    with pytest.raises(ResolverConfigError, match="replay_protection must be True"):
        TenuoPluginConfig(trusted_roots=[ROOT.public_key], replay_protection="fleet")  # type: ignore[arg-type]


class RecordingStore(AsyncOnlyStore):
    def __init__(self) -> None:
        super().__init__()
        self.ttls: list[float] = []

    async def claim(self, pop_digest: bytes, owner: str, ttl_seconds: float) -> bool:
        self.ttls.append(ttl_seconds)
        return await super().claim(pop_digest, owner, ttl_seconds)


async def test_a_claim_lives_until_the_warrant_expires():
    # Every retry keeps the first attempt's scheduling time, by which the PoP
    # is fresh: the claim must outlive the PoP windows, up to the warrant's expiry.
    store = RecordingStore()
    tenuo = interceptor(store)
    hour_long = read_file_warrant(ROOT, HOLDER, ttl_seconds=3600)
    await authorize(tenuo, activity_input(["/data/a"], {"path": "/data/a"}, "path", hour_long),
                    info("wf-1"))
    remaining = datetime.fromisoformat(str(hour_long.expires_at())).timestamp() - time.time()
    assert store.ttls and abs(store.ttls[0] - (remaining + 30)) < 5  # + clock tolerance
    # A warrant about to expire still gets the PoP windows (450 s by default).
    minute_long = read_file_warrant(ROOT, HOLDER, ttl_seconds=60)
    await authorize(tenuo, activity_input(["/data/b"], {"path": "/data/b"}, "path", minute_long),
                    info("wf-1"))
    assert store.ttls[1] == 450


def test_owners_are_unambiguous_whatever_the_names_hold():
    from tenuo_temporal._interceptors import replay_owner

    assert replay_owner("a/b", "c") != replay_owner("a", "b/c")
    assert replay_owner("ns", "wf") == "2:ns/wf"


# -- PoP freshness on Temporal's clock ---------------------------------------------

HOURS = 3600.0
DAY_LONG = read_file_warrant(ROOT, HOLDER, ttl_seconds=86_400)


def pop_of(received: ExecuteActivityInput) -> bytes:
    return base64.b64decode(received.headers[H.POP].data)


def test_a_pop_fresh_at_its_scheduling_time_passes_however_far_that_is_from_now():
    # A time-skipping test server: Temporal's clock (workflow.now(), scheduled_time)
    # runs two hours ahead of this worker's.
    ahead = time.time() + 2 * HOURS
    received = activity_input(["/data/a"], {"path": "/data/a"}, "path", DAY_LONG,
                              signed_at=ahead)
    assert interceptor().verifier.check(received, info(scheduled_at=ahead),
                                        "read_file")[0] is not None


def test_a_warrant_expired_on_either_clock_is_refused():
    later = time.time() + 2 * HOURS  # WARRANT lives ten minutes
    with pytest.raises(WarrantExpired):  # expired on Temporal's clock only
        interceptor().verifier.check(activity_input(["/data/a"], {"path": "/data/a"}, "path",
                                           signed_at=later),
                            info(scheduled_at=later), "read_file")
    short = read_file_warrant(ROOT, HOLDER, ttl_seconds=1)
    received = activity_input(["/data/a"], {"path": "/data/a"}, "path", short)
    scheduled = time.time()
    time.sleep(1.5)
    with pytest.raises(WarrantExpired, match="expired"):  # expired at this worker's now only
        interceptor().verifier.check(received, info(scheduled_at=scheduled), "read_file")


def test_a_pop_stale_at_its_scheduling_time_gets_one_more_chance_at_now():
    # scheduled_time far in the past (a long backlog), the PoP signed now: judged at now,
    # the windows widened back to the scheduling time.
    received = activity_input(["/data/a"], {"path": "/data/a"}, "path")
    assert interceptor().verifier.check(received, info(scheduled_at=time.time() - 2 * HOURS),
                               "read_file")[0] is not None


def test_a_pop_stale_on_both_clocks_is_refused():
    received = activity_input(["/data/a"], {"path": "/data/a"}, "path",
                              signed_at=time.time() - 2 * HOURS)
    with pytest.raises(PopVerificationError):
        interceptor().verifier.check(received, info(), "read_file")


def test_a_local_activity_is_judged_by_the_workflow_clock_recorded_at_signing():
    ahead = time.time() + 2 * HOURS
    received = activity_input(["/data/a"], {"path": "/data/a"}, "path", DAY_LONG,
                              signed_at=ahead)
    tenuo = interceptor()
    # A local activity reports this worker's clock as its scheduling time.
    with pytest.raises(PopVerificationError):
        tenuo.verifier.check(received, info(is_local=True), "read_file")
    tenuo.verifier.remember_local_pop(pop_of(received), int(ahead))
    assert tenuo.verifier.check(received, info("wf-2", is_local=True), "read_file")[0] is not None


def test_the_local_record_never_serves_an_activity_from_the_wire():
    ahead = time.time() + 2 * HOURS
    received = activity_input(["/data/a"], {"path": "/data/a"}, "path", DAY_LONG,
                              signed_at=ahead)
    tenuo = interceptor()
    tenuo.verifier.remember_local_pop(pop_of(received), int(ahead))
    with pytest.raises(PopVerificationError):  # not local: scheduled_time (now) decides
        tenuo.verifier.check(received, info(is_local=False), "read_file")


def test_local_records_are_bounded():
    tenuo = interceptor()
    for i in range(5000):
        tenuo.verifier.remember_local_pop(i.to_bytes(64, "big"), i)
    assert len(tenuo.verifier.local_signed_at) <= 4096
    assert tenuo.verifier.local_signed_at[(4999).to_bytes(64, "big")] == 4999


def test_the_verifier_is_a_function_of_the_config_the_interceptor_runs():
    from tenuo_temporal._verify import Verifier

    received = activity_input(["/data/a"], {"path": "/data/a"}, "path", DAY_LONG)
    tenuo = interceptor(replay_protection="strict")
    assert isinstance(tenuo.verifier, Verifier) and tenuo.verifier.config is tenuo.config
    # The workflow side records local PoPs' signing times into this verifier's map.
    assert tenuo._inbound_class.parts.remember_local_pop == tenuo.verifier.remember_local_pop
    # Standalone, on the same config: the same decision as the interceptor's.
    alone = Verifier(tenuo.config)
    context, args, pending = alone.check(received, info("wf-alone"), "read_file")
    assert context is not None and args == {"path": "/data/a"} and pending is None
    with pytest.raises(PopReplayed):  # one replay store, shared through the config
        tenuo.verifier.check(received, info("wf-other"), "read_file")


def test_each_worker_keeps_its_own_keys_warm_from_a_shared_context():
    # Decoded contexts are shared by every worker of the process: a key noted
    # by one plugin must still be noted by the next (a worker replaced in place).
    context = H.WarrantContext.build(WARRANT, "agent1")
    first, second = interceptor(), interceptor()
    first.keys_in_use.note("agent1", context)
    second.keys_in_use.note("agent1", context)
    assert first.keys_to_keep_warm() == ["agent1"] == second.keys_to_keep_warm()
