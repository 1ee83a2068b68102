"""The CLI commands that need no cloud backend."""

from __future__ import annotations

import base64

import tenuo_core
from click.testing import CliRunner

from tenuo_keys import decode_signing_key, encode_signing_key
from tenuo_keys.cli import main
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
