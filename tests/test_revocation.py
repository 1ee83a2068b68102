"""Revocation lists and root sets: the pure parts (no Temporal, no backend services)."""

from __future__ import annotations

import threading
import time
from typing import ClassVar

import pytest
import tenuo_core
from click.testing import CliRunner
from temporalio.exceptions import ApplicationError

from tenuo_keys import BackendKeyResolver, CachePolicy, ResolverConfigError
from tenuo_keys._documents import BackendDocument, FileDocument, open_document
from tenuo_keys._trust_documents import decode_roots, decode_srl, encode_roots, encode_srl
from tenuo_keys.cli import EXIT_BACKEND, EXIT_LOCAL, main
from tenuo_keys.errors import BackendUnavailable, KeyFormatError, KeyNotFound
from tenuo_temporal import TenuoPluginConfig
from tenuo_temporal._revocation import Revocation, issued_epoch
from tenuo_temporal.errors import RevocationStale, WarrantRevoked, denial

ROOT = tenuo_core.SigningKey.generate()
STRANGER = tenuo_core.SigningKey.generate()


def srl(version: int, *ids: str, key=ROOT):
    builder = tenuo_core.SrlBuilder()
    for warrant_id in ids:
        builder = builder.revoke(warrant_id)
    return builder.version(version).build(key)


def held(version: int, *ids: str) -> Revocation:
    revocation = Revocation(lambda: srl(version, *ids), 60.0, None, 0)
    assert revocation.refresh([ROOT.public_key]) == "loaded"
    return revocation


def test_a_list_signed_by_a_stranger_is_refused_and_nothing_is_held():
    revocation = Revocation(lambda: srl(1, key=STRANGER), 60.0, None, 0)
    assert revocation.refresh([ROOT.public_key]) == "untrusted"
    assert revocation.current is None
    with pytest.raises(RevocationStale, match="holds no valid revocation list"):
        revocation.check((), "tool")


def test_versions_only_move_forward():
    revocation = held(5, "w1")
    assert revocation.offer(srl(4), [ROOT.public_key]) == "rollback"
    assert revocation.offer(srl(5, "w1", "w2"), [ROOT.public_key]) == "rollback"
    assert revocation.version == 5 and set(revocation.current.revoked_ids) == {"w1"}
    assert revocation.offer(srl(5, "w1"), [ROOT.public_key]) == "loaded"  # re-signed alike
    assert revocation.offer(srl(6, "w1", "w2"), [ROOT.public_key]) == "loaded"
    assert revocation.version == 6


def test_a_failed_refresh_keeps_the_last_good_list():
    calls = iter([srl(2, "w1")])

    def provider():
        return next(calls)  # the second call raises StopIteration

    revocation = Revocation(provider, 60.0, None, 0)
    assert revocation.refresh([ROOT.public_key]) == "loaded"
    assert revocation.refresh([ROOT.public_key]) == "failed"
    assert revocation.version == 2


def test_past_the_max_age_the_gate_denies_retryably_and_says_why():
    revocation = Revocation(lambda: srl(1), 60.0, 0.5, 0)
    assert revocation.refresh([ROOT.public_key]) == "loaded"
    revocation.check((), "tool")
    time.sleep(0.7)
    with pytest.raises(RevocationStale) as caught:
        revocation.check((), "tool")
    assert "revocation_max_age_secs=0.5" in caught.value.reason
    error = denial(caught.value)
    assert isinstance(error, ApplicationError)
    assert error.type == "TENUO_REVOCATION_STALE" and not error.non_retryable
    assert denial(WarrantRevoked("x")).non_retryable


def test_issued_at_parses_nanoseconds():
    assert abs(issued_epoch(srl(1)) - time.time()) < 5


def test_config_refuses_a_static_list_from_a_stranger_and_installs_a_trusted_one():
    with pytest.raises(ResolverConfigError, match="not signed by any of trusted_roots"):
        TenuoPluginConfig(trusted_roots=[ROOT.public_key],
                          revocation_list=srl(1, key=STRANGER))
    config = TenuoPluginConfig(trusted_roots=[ROOT.public_key], revocation_list=srl(3, "w"))
    assert config.revocation is not None and config.revocation.version == 3
    with pytest.raises(ResolverConfigError, match="not both"):
        TenuoPluginConfig(trusted_roots=[ROOT.public_key], revocation_list=srl(1),
                          revocation_list_provider=lambda: srl(1))
    with pytest.raises(ResolverConfigError, match="need revocation_list"):
        TenuoPluginConfig(trusted_roots=[ROOT.public_key], revocation_max_age_secs=5)


def test_a_refresh_revokes_every_link_of_a_chain_it_names():
    holder = tenuo_core.SigningKey.generate()
    warrant = tenuo_core.Warrant.issue(keypair=ROOT, capabilities={"t": {}}, ttl_seconds=60,
                                       holder=holder.public_key)
    lists = iter([srl(1), srl(2, str(warrant.id))])
    config = TenuoPluginConfig(trusted_roots=[ROOT.public_key],
                               revocation_list_provider=lambda: next(lists))
    revocation = config.revocation
    assert revocation is not None
    assert config.refresh_revocation_list() == "loaded"
    revocation.check([warrant], "t")
    assert config.refresh_revocation_list() == "loaded"
    with pytest.raises(WarrantRevoked, match=f"warrant {warrant.id} is on .*version 2"):
        revocation.check([warrant], "t")


def test_root_set_documents_round_trip_and_refuse_garbage():
    assert decode_roots(encode_roots([ROOT.public_key])) == [ROOT.public_key]
    for bad, why in ((b"nope", "not JSON"), (b'{"roots": []}', "1 to 256"),
                     (b'{"roots": ["abc"]}', r"roots\[0\]")):
        with pytest.raises(KeyFormatError, match=why):
            decode_roots(bad)
    assert decode_srl(encode_srl(srl(7, "a"))).version == 7
    with pytest.raises(KeyFormatError, match="not a signed revocation list"):
        decode_srl(b"!!")


def test_file_documents_and_trusted_roots_by_url(tmp_path):
    roots = tmp_path / "roots.json"
    source = open_document(roots.as_uri())
    assert isinstance(source, FileDocument)
    with pytest.raises(KeyNotFound):
        source.read()
    source.write(encode_roots([ROOT.public_key]))
    lists = tmp_path / "srl"
    FileDocument(lists).write(encode_srl(srl(2, "w")))
    config = TenuoPluginConfig(trusted_roots=roots.as_uri(), revocation_list=lists.as_uri())
    assert config.refresh_trusted_roots()
    assert config.refresh_revocation_list() == "loaded"
    assert config.revocation is not None and config.revocation.version == 2
    for bad in ("file://host/x", "file:///dir/", "vault://127.0.0.1:8200/"):
        with pytest.raises(ResolverConfigError):
            open_document(bad)


class _Docs(BackendKeyResolver):
    backend = "docs-test"
    stored: ClassVar[dict[str, str]] = {}
    failing = threading.Event()
    calls: ClassVar[list[str]] = []

    def fetch(self, key_id):
        self.calls.append(key_id)
        if self.failing.is_set():
            raise BackendUnavailable("down", backend=self.backend)
        if key_id not in self.stored:
            raise KeyNotFound(key_id=key_id, backend=self.backend)
        return self.stored[key_id]

    def store_key(self, key_id, material):
        self.stored[key_id] = material
        return "v"


def test_backend_documents_share_the_cache_policy_stale_if_error_and_typed_errors():
    _Docs.stored = {"srl": encode_srl(srl(1)).decode()}
    _Docs.calls = []
    _Docs.failing.clear()
    resolver = _Docs(cache=CachePolicy(ttl=60, max_staleness=60))
    source = BackendDocument(resolver, "srl", "docs-test://srl")
    assert decode_srl(source.read()).version == 1
    assert decode_srl(source.read()).version == 1
    assert _Docs.calls == ["srl"]  # cached
    assert source.write(encode_srl(srl(2))) == "v"
    assert decode_srl(source.read(fresh=True)).version == 2
    _Docs.failing.set()
    assert decode_srl(source.read(fresh=True)).version == 2  # stale-if-error
    with pytest.raises(KeyNotFound):
        _Docs.failing.clear()
        resolver.read_document("absent")
    source.close()


def test_cli_publishes_revokes_and_shows(tmp_path):
    key_file = tmp_path / "root.key"
    runner = CliRunner()
    key_file.write_text(runner.invoke(main, ["generate"]).stdout.splitlines()[0])
    srl_url, roots_url = (tmp_path / "srl").as_uri(), (tmp_path / "roots.json").as_uri()
    result = runner.invoke(main, ["srl", "revoke", srl_url, "w1", "--key-file", str(key_file)])
    assert result.exit_code == 0, result.output
    assert "version 1 with 1 revoked" in result.output
    root = decode_srl((tmp_path / "srl").read_bytes()).issuer
    assert runner.invoke(main, ["roots", "publish", roots_url,
                                bytes(root.to_bytes()).hex()]).exit_code == 0
    shown = runner.invoke(main, ["srl", "show", srl_url, "--roots", roots_url])
    assert shown.exit_code == 0, shown.output
    assert "w1" in shown.output and "trusted root: yes" in shown.output
    other = tenuo_core.SigningKey.generate()
    kept = runner.invoke(main, ["roots", "publish", roots_url, "--keep",
                                bytes(other.public_key.to_bytes()).hex()])
    assert "published 2 root(s)" in kept.output
    listed = runner.invoke(main, ["roots", "show", roots_url, "--format", "hex"])
    assert listed.output.split() == [bytes(root.to_bytes()).hex(),
                                     bytes(other.public_key.to_bytes()).hex()]
    back = runner.invoke(main, ["srl", "publish", srl_url, "--version", "1",
                                "--key-file", str(key_file)])
    assert back.exit_code == EXIT_LOCAL and "rollback" in back.output
    missing = runner.invoke(main, ["srl", "show", (tmp_path / "none").as_uri()])
    assert missing.exit_code == EXIT_BACKEND
    no_key = runner.invoke(main, ["srl", "publish", srl_url])
    assert no_key.exit_code == EXIT_LOCAL and "--key-file" in no_key.output


def test_refresh_outcomes_are_counted_through_the_recorder():
    from tenuo_temporal._audit import Recorder

    added: list[tuple[str, int, dict[str, str]]] = []

    class Meter:
        def create_counter(self, name, *_):
            return type("C", (), {"add": lambda _s, n, attrs=None: added.append(
                (name, n, attrs or {})), "with_additional_attributes": lambda s, _a: s})()

        def create_histogram_float(self, name, *_):
            return self.create_counter(name)

    recorder = Recorder(None, metrics=True)
    recorder.set_meter(Meter())
    recorder.revocation_refresh("rollback")
    assert added == [("tenuo_revocation_refresh", 1, {"outcome": "rollback"})]


def test_from_env_takes_a_root_set_url(tmp_path):
    roots = tmp_path / "roots.json"
    FileDocument(roots).write(encode_roots([ROOT.public_key]))
    config = TenuoPluginConfig.from_env(environ={"TENUO_TRUSTED_ROOTS": roots.as_uri(),
                                                 "TENUO_KEY_RESOLVER": "none"})
    assert callable(config.trusted_roots) and config.refresh_trusted_roots()
    assert config.verifies
