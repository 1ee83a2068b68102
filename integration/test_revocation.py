"""Signed revocation lists and trusted-root sets, delivered through our backends, on a dev server.

- A warrant revoked mid-run (``tenuo-keys srl revoke``) is denied on its next
  activity within the refresh interval while another keeps running, with the
  list and the roots served by a file, OpenBao, moto and the GCP test server;
  the time from publishing to the first denial is printed (``-s``).
- A rollback and a list signed by a stranger are refused, logged and counted;
  the last good list stays.
- With ``revocation_max_age_secs``, a stale list denies retryably
  (``TENUO_REVOCATION_STALE``) and the activity runs once a new list is published.
- A worker whose list cannot be loaded does not start.
- Against the stock 0.3.3 plugin, both directions: a revoked warrant is refused by
  either verifier whichever side signed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tenuo_core
from click.testing import CliRunner
from temporalio.worker import Worker

import tenuo_temporal as ours
from integration import _revocation_workflows as wf
from integration.support.temporal_helpers import denial_of, uid
from integration.test_interop import activity_denial, fleet
from integration.test_interop import mint as interop_mint
from tenuo_keys import ResolverConfigError, StaticKeyResolver, encode_signing_key
from tenuo_keys._documents import open_document
from tenuo_keys._trust_documents import encode_roots, encode_srl
from tenuo_keys.cli import main as cli
from tenuo_temporal import AuditEvent, TenuoPluginConfig, TenuoTemporalPlugin

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.generate()
STRANGER = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
REFRESH = 1.0


def mint() -> Any:
    return tenuo_core.Warrant.issue(
        keypair=ROOT, capabilities={"read_file": {"path": tenuo_core.Subpath("/data")}},
        ttl_seconds=600, holder=HOLDER.public_key)


def srl(version: int, *revoked: str, key: Any = ROOT) -> Any:
    builder = tenuo_core.SrlBuilder()
    for warrant_id in revoked:
        builder = builder.revoke(warrant_id)
    return builder.version(version).build(key)


# --------------------------------------------------------------------------- backends


@dataclass
class Place:
    """Where one test keeps its revocation list and root set."""

    srl_url: str
    roots_url: str

    def publish(self, content: bytes, url: str | None = None) -> None:
        source = open_document(url or self.srl_url)
        try:
            source.write(content)
        finally:
            source.close()


def _file(request: Any, tag: str) -> Place:
    folder: Path = request.getfixturevalue("tmp_path")
    return Place((folder / "srl").as_uri(), (folder / "roots.json").as_uri())


def _vault(request: Any, tag: str) -> Place:
    server = request.getfixturevalue("vault_server")
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("VAULT_TOKEN", server.token)
    base = f"vault://127.0.0.1:{server.port}/secret/tenuo/{tag}"
    return Place(f"{base}/srl?tls=0", f"{base}/roots?tls=0")


def _aws(request: Any, tag: str) -> Place:
    moto = request.getfixturevalue("moto_server")
    monkeypatch = request.getfixturevalue("monkeypatch")
    folder: Path = request.getfixturevalue("tmp_path")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", f"dummy-{uuid.uuid4().hex}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(folder / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "no-credentials"))
    base = f"awssm://us-east-1/tenuo/{tag}"
    query = f"?endpoint_url={moto.endpoint}"
    return Place(f"{base}/srl{query}", f"{base}/roots{query}")


def _gcp(request: Any, tag: str) -> Place:
    server = request.getfixturevalue("gcp_sm")
    return Place(server.url(f"{tag}-srl"), server.url(f"{tag}-roots"))


BACKENDS: dict[str, Callable[[Any, str], Place]] = {
    "file": _file, "vault": _vault, "aws": _aws, "gcp": _gcp}


@pytest.fixture
def place(request: Any) -> Place:
    return BACKENDS[getattr(request, "param", "file")](request, uid("rev"))


# --------------------------------------------------------------------------- a worker


@dataclass
class Running:
    client: Any
    queue: str
    plugin: TenuoTemporalPlugin
    events: list[tuple[float, AuditEvent]]
    outcomes: list[str]

    async def start(self, warrant: Any, times: int, pause: float) -> Any:
        return await ours.start_workflow_authorized(
            self.client, wf.Repeat.run, args=[times, pause], warrant=warrant, key_id="agent1",
            task_queue=self.queue, id=uid("repeat"))

    def denials(self, workflow_id: str) -> list[tuple[float, AuditEvent]]:
        return [(at, e) for at, e in self.events
                if e.decision == "deny" and e.workflow_id == workflow_id]


@pytest.fixture
def running(temporal_env: Any) -> Iterator[Callable[..., Any]]:
    resolver = StaticKeyResolver({"agent1": HOLDER})

    def start(**revocation: Any) -> Any:
        events: list[tuple[float, AuditEvent]] = []
        outcomes: list[str] = []
        config = TenuoPluginConfig(
            key_resolver=resolver, audit_callback=lambda e: events.append((time.time(), e)),
            **{"revocation_refresh_secs": REFRESH, **revocation})
        return config, events, outcomes

    yield start
    resolver.close()


async def _worker(env: Any, config: TenuoPluginConfig, events: list[Any],
                  outcomes: list[str]) -> tuple[Running, Worker]:
    plugin = TenuoTemporalPlugin(config)
    counted = plugin.interceptor.recorder.revocation_refresh

    def count(outcome: str) -> None:
        outcomes.append(outcome)
        counted(outcome)

    plugin.interceptor.recorder.revocation_refresh = count  # type: ignore[method-assign]
    client = await _client(env, plugin)
    queue = uid("revocation")
    built = Worker(client, task_queue=queue, workflows=[wf.Repeat], activities=[wf.read_file])
    return Running(client, queue, plugin, events, outcomes), built


async def _client(env: Any, plugin: TenuoTemporalPlugin) -> Any:
    from temporalio.client import Client

    return await Client.connect(env.client.service_client.config.target_host,
                                namespace=env.client.namespace, plugins=[plugin])


async def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("place", list(BACKENDS), indirect=True)
async def test_a_warrant_revoked_mid_run_is_denied_within_the_refresh_interval(
        temporal_env, running, place, tmp_path, request):
    key_file = tmp_path / "control-plane.key"
    key_file.write_text(encode_signing_key(ROOT))  # the control-plane (issuer) key
    runner = CliRunner()
    published = runner.invoke(cli, ["roots", "publish", place.roots_url,
                                    bytes(ROOT.public_key.to_bytes()).hex()])
    assert published.exit_code == 0, published.output
    first = runner.invoke(cli, ["srl", "publish", place.srl_url, "--key-file", str(key_file)])
    assert first.exit_code == 0, first.output
    config, events, outcomes = running(trusted_roots=place.roots_url,
                                       revocation_list=place.srl_url)
    run, built = await _worker(temporal_env, config, events, outcomes)
    doomed, other = mint(), mint()
    async with built:
        a = await run.start(doomed, 60, 0.25)
        b = await run.start(other, 24, 0.25)
        await _wait_for(lambda: wf.RAN.count(a.id) >= 2, 20, "two activities of the doomed run")
        published_at = time.time()
        revoked = runner.invoke(cli, ["srl", "revoke", place.srl_url, str(doomed.id),
                                      "--key-file", str(key_file)])
        assert revoked.exit_code == 0, revoked.output
        error = await denial_of(a.result())
        assert error.type == "TENUO_WARRANT_REVOKED" and error.non_retryable
        assert await b.result() == 24  # the other warrant kept running throughout
    first_denial = min(at for at, _ in run.denials(a.id))
    took = first_denial - published_at
    # Denied on the first activity after a refresh, whatever the backend.
    assert took < REFRESH + 0.25 + 3.0, took
    ran_after = [w for w in wf.RAN if w == a.id]
    assert len(ran_after) < 60
    print(f"\n[revocation] {request.node.callspec.id}: publish-to-first-denial "
          f"{took * 1000:.0f} ms (refresh {REFRESH:g} s, activities every 0.25 s)")
    assert "loaded" in outcomes


async def test_a_rollback_and_a_strangers_list_are_refused_and_counted(
        temporal_env, running, place, caplog):
    place.publish(encode_roots([ROOT.public_key]), place.roots_url)
    warrant = mint()
    place.publish(encode_srl(srl(5, str(warrant.id))))
    config, events, outcomes = running(trusted_roots=place.roots_url,
                                       revocation_list=place.srl_url,
                                       revocation_refresh_secs=0.2)
    run, built = await _worker(temporal_env, config, events, outcomes)
    caplog.set_level(logging.ERROR, logger="tenuo_temporal")
    async with built:
        error = await denial_of((await run.start(warrant, 1, 0)).result())
        assert error.type == "TENUO_WARRANT_REVOKED"
        place.publish(encode_srl(srl(4)))  # an older, empty list: a rollback
        await _wait_for(lambda: "rollback" in outcomes, 10, "a refused rollback")
        assert "refused a revocation list rollback" in caplog.text
        error = await denial_of((await run.start(warrant, 1, 0)).result())
        assert error.type == "TENUO_WARRANT_REVOKED"
        place.publish(encode_srl(srl(9, key=STRANGER)))  # newer, empty, signed by a stranger
        await _wait_for(lambda: "untrusted" in outcomes, 10, "a refused stranger's list")
        assert "not a trusted root" in caplog.text
        error = await denial_of((await run.start(warrant, 1, 0)).result())
        assert error.type == "TENUO_WARRANT_REVOKED"
        assert config.revocation is not None and config.revocation.version == 5
        place.publish(encode_srl(srl(6)))  # the root lifts the revocation, moving forward
        await _wait_for(lambda: config.revocation is not None
                        and config.revocation.version == 6, 10, "version 6")
        assert await (await run.start(warrant, 1, 0)).result() == 1


async def test_a_stale_list_fails_closed_until_a_new_one_is_published(
        temporal_env, running, place):
    place.publish(encode_roots([ROOT.public_key]), place.roots_url)
    place.publish(encode_srl(srl(1)))
    config, events, outcomes = running(trusted_roots=place.roots_url,
                                       revocation_list=place.srl_url,
                                       revocation_refresh_secs=0.2,
                                       revocation_max_age_secs=2, clock_tolerance_secs=0)
    run, built = await _worker(temporal_env, config, events, outcomes)
    warrant = mint()
    async with built:
        assert await (await run.start(warrant, 1, 0)).result() == 1
        await asyncio.sleep(2.5)
        handle = await run.start(warrant, 1, 0)
        await _wait_for(lambda: len(run.denials(handle.id)) >= 2, 15, "stale denials")
        stale = [e for _, e in run.denials(handle.id)]
        assert {e.reason for e in stale} == {"TENUO_REVOCATION_STALE"}
        assert stale[1].attempt > stale[0].attempt  # retried: the denial is retryable
        assert "revocation_max_age_secs=2" in (stale[0].detail or "")
        assert handle.id not in wf.RAN
        place.publish(encode_srl(srl(2)))
        assert await asyncio.wait_for(handle.result(), 15) == 1
        assert handle.id in wf.RAN


async def test_a_worker_without_a_valid_list_does_not_start(temporal_env, running, place):
    place.publish(encode_roots([ROOT.public_key]), place.roots_url)
    place.publish(encode_srl(srl(1, key=STRANGER)))
    config, events, outcomes = running(trusted_roots=place.roots_url,
                                       revocation_list=place.srl_url)
    _, built = await _worker(temporal_env, config, events, outcomes)
    with pytest.raises(ResolverConfigError, match="no valid revocation list at start-up"):
        await asyncio.wait_for(built.run(), 20)
    assert outcomes == ["untrusted"]


# --------------------------------------------------------------------------- the stock plugin


STOCK_REVOKED = "revoked"


@pytest.mark.parametrize(("signer", "verifier"), [
    ("stock", "ours"), ("ours", "stock"), ("ours", "ours"), ("stock", "stock")])
async def test_a_revoked_warrant_is_refused_by_either_verifier(temporal_env, signer, verifier):
    import integration.test_interop as interop

    revoked, kept = interop_mint(), interop_mint()
    listed = interop.ROOT
    lists = (tenuo_core.SrlBuilder().revoke(str(revoked.id)).version(1).build(listed))
    async with fleet(temporal_env, signer, verifier,
                     verifier_config={"revocation_list": lists}) as running_fleet:
        error = await activity_denial(running_fleet.run("read_file", ["/data/a"],
                                                        chain=[revoked]))
        assert error.type == ("TENUO_WARRANT_REVOKED" if verifier == "ours"
                              else STOCK_REVOKED), error.type
        assert await running_fleet.run("read_file", ["/data/a"], chain=[kept])
