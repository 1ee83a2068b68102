"""The CLI commands that need no cloud backend."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import ClassVar

import click
import pytest
import tenuo_core
from click.testing import CliRunner

from tenuo_keys import (
    BackendKeyResolver,
    KeyAccessDenied,
    KeyNotFound,
    _registry,
    decode_signing_key,
    encode_signing_key,
    register_resolver,
)
from tenuo_keys.cli import EXIT_BACKEND, EXIT_LOCAL, main
from tenuo_keys.testing import assert_no_secret


def test_generate_prints_key_and_public_key():
    result = CliRunner().invoke(main, ["generate", "--format", "hex"])
    assert result.exit_code == 0
    key = decode_signing_key(result.stdout.strip())
    public = base64.b64encode(bytes(key.public_key_bytes())).decode()
    assert public in result.stderr
    assert_no_secret(result.stderr, [key], "stderr")


def test_export_env_line_round_trips():
    result = CliRunner().invoke(main, ["export-env", "agent1"])
    assert result.exit_code == 0
    name, _, value = result.stdout.strip().removeprefix("export ").partition("=")
    assert name == "TENUO_KEY_agent1"
    decode_signing_key(value)
    bad = CliRunner().invoke(main, ["export-env", "bad id"])
    assert bad.exit_code != 0 and "not a valid environment variable name" in bad.output


def test_public_reads_through_a_resolver_url_without_printing_the_secret(monkeypatch):
    key = tenuo_core.SigningKey.generate()
    monkeypatch.setenv("CLI_TEST_agent1", encode_signing_key(key))
    result = CliRunner().invoke(main, ["public", "env://?prefix=CLI_TEST_", "agent1"])
    assert result.exit_code == 0, result.output
    assert base64.b64decode(result.stdout.strip()) == bytes(key.public_key_bytes())
    assert_no_secret(result.output, [key])
    missing = CliRunner().invoke(main, ["public", "env://?prefix=CLI_TEST_", "nobody"])
    assert missing.exit_code == 2 and "not found" in missing.output


# --------------------------------------------------------------------------- issue 18


@pytest.mark.parametrize("command", [
    ["put", "env://?prefix=CLI_TEST_", "agent1", "--import"],
    ["rotate", "env://?prefix=CLI_TEST_", "agent1", "--import"],
    ["transit", "import", "vault-transit://127.0.0.1/transit/{key_id}?tls=0", "agent1"],
])
def test_an_unreadable_import_file_is_a_clear_error_not_a_traceback(command, tmp_path):
    missing = tmp_path / "nonexistent"
    for path, reason in ((missing, "No such file or directory"),
                         (tmp_path, "Is a directory")):
        result = CliRunner().invoke(main, [*command, str(path)])
        assert isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code == EXIT_LOCAL, result.output
        assert str(path) in result.output and reason in result.output
        assert "Traceback" not in result.output


class _Store(BackendKeyResolver):
    """A key store whose policy reads keys but may not list them, like a least-privilege token."""

    backend = "cli-test"
    keys: ClassVar[dict[str, str]] = {}
    events: ClassVar[list[tuple[str, str]]] = []
    gate: ClassVar[threading.Event] = threading.Event()

    @classmethod
    def from_url(cls, url, **kwargs):
        url.finish()
        return cls(**kwargs)

    def fetch(self, key_id):
        self.events.append(("fetch", key_id))
        if key_id == "stuck":
            self.gate.wait(30)
        if key_id not in self.keys:
            raise KeyNotFound(key_id=key_id, backend=self.backend)
        return self.keys[key_id]

    def list_key_ids(self):
        raise KeyAccessDenied("permission denied to list", backend=self.backend)


@pytest.fixture
def store(monkeypatch):
    monkeypatch.setattr(_registry, "_registry", dict(_registry._registry))
    register_resolver("clitest", _Store)
    _Store.keys = {name: encode_signing_key(tenuo_core.SigningKey.generate())
                   for name in ("agent1", "agent2", "stuck")}
    _Store.events = []
    _Store.gate = threading.Event()
    yield _Store
    _Store.gate.set()


def test_doctor_with_key_ids_needs_no_listing(store):
    result = CliRunner().invoke(main, ["doctor", "clitest://", "agent1"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1] for line in result.output.splitlines()}
    assert rows == {"resolver": "ok", "agent1": "ok"}
    unlisted = CliRunner().invoke(main, ["doctor", "clitest://"])
    assert unlisted.exit_code == EXIT_BACKEND
    assert "list" in unlisted.output and "FAIL" in unlisted.output
    assert "permission denied to list" in unlisted.output


def test_doctor_prints_each_check_as_it_completes(store, monkeypatch):
    echo = click.echo

    def recording_echo(message=None, *args, **kwargs):
        store.events.append(("echo", str(message).split()[0]))
        echo(message, *args, **kwargs)

    monkeypatch.setattr(click, "echo", recording_echo)
    result = CliRunner().invoke(main, ["doctor", "clitest://", "agent1", "nobody", "agent2"])
    assert result.exit_code == EXIT_BACKEND, result.output
    assert store.events == [
        ("echo", "resolver"),
        ("fetch", "agent1"), ("echo", "agent1"),
        ("fetch", "nobody"), ("echo", "nobody"),
        ("fetch", "agent2"), ("echo", "agent2"),
    ]


def test_doctor_timeout_reports_a_stalled_check_and_goes_on(store):
    started = time.monotonic()
    try:
        result = CliRunner().invoke(
            main, ["doctor", "--timeout", "0.3", "clitest://", "stuck", "agent1"])
    finally:
        store.gate.set()
    assert time.monotonic() - started < 10
    assert result.exit_code == EXIT_BACKEND, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()}
    assert rows["stuck"].split()[1] == "FAIL" and "timed out" in rows["stuck"]
    assert "0.3 s" in rows["stuck"]
    assert rows["agent1"].split()[1] == "ok"
    bad = CliRunner().invoke(main, ["doctor", "--timeout", "0", "clitest://"])
    assert bad.exit_code == EXIT_LOCAL and "--timeout" in bad.output


def test_doctor_json_is_one_document(store):
    result = CliRunner().invoke(main, ["doctor", "--json", "clitest://", "agent1", "nobody"])
    assert result.exit_code == EXIT_BACKEND
    report = json.loads(result.stdout)
    assert (report["ok"], report["problems"], report["warnings"]) == (False, 1, 0)
    assert [(c["check"], c["status"]) for c in report["checks"]] == [
        ("resolver", "ok"), ("agent1", "ok"), ("nobody", "FAIL")]
    assert "KeyNotFound" in report["checks"][2]["detail"]
    assert_no_secret(result.output, [decode_signing_key(v) for v in store.keys.values()])
    fine = CliRunner().invoke(main, ["doctor", "--json", "clitest://", "agent1"])
    assert fine.exit_code == 0 and json.loads(fine.stdout)["ok"] is True


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    yield path
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


def test_every_command_takes_h_and_its_help_has_no_rst_markup():
    paths = list(_commands(main))
    assert ("gcpkms", "public") in paths and ("transit", "create") in paths
    assert {("kms", "create"), ("kms", "rotate"), ("kms", "public")} <= set(paths)
    for path in paths:
        short = CliRunner().invoke(main, [*path, "-h"])
        assert short.exit_code == 0, (path, short.output)
        assert short.output == CliRunner().invoke(main, [*path, "--help"]).output
        assert "Usage:" in short.output
        assert "``" not in short.output, path


def test_exit_codes_follow_the_vault_cli(monkeypatch):
    runner = CliRunner()
    assert runner.invoke(main, ["public"]).exit_code == EXIT_LOCAL  # missing arguments
    assert runner.invoke(main, ["generate", "--nope"]).exit_code == EXIT_LOCAL
    assert runner.invoke(main, ["no-such-command"]).exit_code == EXIT_LOCAL
    bad_url = runner.invoke(main, ["public", "nourl", "agent1"])
    assert bad_url.exit_code == EXIT_LOCAL and "scheme://" in bad_url.output
    unknown = runner.invoke(main, ["public", "nosuch://x", "agent1"])
    assert unknown.exit_code == EXIT_LOCAL and "no resolver" in unknown.output
    key = tenuo_core.SigningKey.generate()
    monkeypatch.setenv("CLI_TEST_bad", encode_signing_key(key)[:-4])
    corrupt = runner.invoke(main, ["public", "env://?prefix=CLI_TEST_", "bad"])
    assert corrupt.exit_code == EXIT_BACKEND
    assert "key 'bad'" in corrupt.output and "expected 32" in corrupt.output
    assert (EXIT_LOCAL, EXIT_BACKEND) == (1, 2)


@pytest.mark.parametrize(("url", "command"), [
    ("vault-transit://127.0.0.1:8200/transit/{key_id}?tls=0", "transit"),
    ("gcpkms://p/global/ring/{key_id}", "gcpkms"),
    ("awskms://us-east-1/alias/tenuo-{key_id}", "kms"),
])
def test_key_store_commands_on_a_signer_url_point_at_the_cli_group(url, command):
    for args in (["doctor", url, "agent1"], ["public", url, "agent1"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == EXIT_LOCAL
        assert f"tenuo-keys {command} public URL KEY_ID" in result.output
        assert "signer_from_url" not in result.output
