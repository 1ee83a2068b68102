"""``TenuoPluginConfig.from_env()``: every variable of the table, warnings and errors."""

from __future__ import annotations

import base64
import warnings
from typing import Any

import pytest
import tenuo_core

from tenuo_keys import EnvKeyResolver, ResolverConfigError, encode_signing_key
from tenuo_temporal import InMemoryReplayStore, TenuoEnvWarning, TenuoPluginConfig
from tenuo_temporal._env_config import VARIABLES

ROOT = tenuo_core.SigningKey.from_bytes(bytes([71]) * 32)
OTHER = tenuo_core.SigningKey.from_bytes(bytes([72]) * 32)
HOLDER = tenuo_core.SigningKey.from_bytes(bytes([73]) * 32)


def root_bytes(key: Any) -> bytes:
    return bytes(key.public_key.to_bytes())


def from_env(env: dict[str, str], **overrides: Any) -> TenuoPluginConfig:
    """``from_env`` over exactly ``env``, failing on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return TenuoPluginConfig.from_env(environ=env, **overrides)


def test_defaults_to_the_env_resolver_and_no_roots():
    config = from_env({})
    assert isinstance(config.key_resolver, EnvKeyResolver)
    assert config.key_resolver.prefix == "TENUO_KEY_"
    assert config.signs and not config.verifies
    assert config.replay_mode == "run" and config.require_warrant is True


def test_trusted_roots_hex_and_base64_mixed():
    env = {"TENUO_TRUSTED_ROOTS": f"{root_bytes(ROOT).hex()}, "
                                  f"{base64.b64encode(root_bytes(OTHER)).decode()}"}
    config = from_env(env)
    assert [bytes(pk.to_bytes()) for pk in config.trusted_roots] == [  # type: ignore[union-attr]
        root_bytes(ROOT), root_bytes(OTHER)]
    # base64url without padding is a root too.
    url = base64.urlsafe_b64encode(root_bytes(ROOT)).decode().rstrip("=")
    assert from_env({"TENUO_TRUSTED_ROOTS": url}).verifies


def test_every_knob_of_the_table():
    env = {
        "TENUO_KEY_RESOLVER": "env://?prefix=APP_KEY_",
        "TENUO_TRUSTED_ROOTS": root_bytes(ROOT).hex(),
        "TENUO_REQUIRE_WARRANT": "false",
        "TENUO_POP_MAX_WINDOWS": "7",
        "TENUO_CLOCK_TOLERANCE_SECS": "10",
        "TENUO_MAX_CHAIN_DEPTH": "3",
        "TENUO_REPLAY_PROTECTION": "strict",
        "TENUO_REPLAY_STORE": "memory",
        "TENUO_PRELOAD_KEY_IDS": "agent1, agent2",
        "TENUO_PRELOAD_ALL": "no",
        "TENUO_TOOL_MAPPINGS": "fetch_document=read_file, send=send_email",
        "TENUO_METRICS": "0",
        "TENUO_DELEGATION": "off",
        "TENUO_ACTIVITY_SUMMARIES": "false",
        "TENUO_REQUIRE_WORKFLOW_BINDING": "yes",
        "TENUO_NEXUS_ENDPOINT": " payments-endpoint ",
    }
    assert set(env) == {setting.variable for setting in VARIABLES}  # the table, all of it
    config = from_env(env)
    assert isinstance(config.key_resolver, EnvKeyResolver)
    assert config.key_resolver.prefix == "APP_KEY_"
    assert config.require_warrant is False
    assert (config.pop_max_windows, config.clock_tolerance_secs, config.max_chain_depth) == (
        7, 10, 3)
    assert config.replay_mode == "strict"
    assert isinstance(config.replay_store, InMemoryReplayStore)
    assert list(config.preload_key_ids) == ["agent1", "agent2"]
    assert config.preload_all is False and config.metrics is False
    assert dict(config.tool_mappings) == {"fetch_document": "read_file", "send": "send_email"}
    assert config.delegation is False and config.activity_summaries is False
    assert config.require_workflow_binding is True
    assert config.nexus_endpoint == "payments-endpoint"


def test_replay_protection_off_and_verify_only():
    config = from_env({"TENUO_REPLAY_PROTECTION": "false", "TENUO_KEY_RESOLVER": "none",
                       "TENUO_TRUSTED_ROOTS": root_bytes(ROOT).hex()})
    assert config.replay_mode is None
    assert config.key_resolver is None and config.verifies


def test_overrides_win_and_their_variables_are_not_read():
    config = from_env({"TENUO_POP_MAX_WINDOWS": "not a number", "TENUO_TRUSTED_ROOTS": "junk"},
                      pop_max_windows=9, trusted_roots=[ROOT.public_key])
    assert config.pop_max_windows == 9 and config.verifies


def test_holder_keys_and_tenuos_own_variables_are_not_warned_about():
    env = {
        "TENUO_KEY_agent1": encode_signing_key(HOLDER),
        "TENUO_KEY_agent1__PREVIOUS": encode_signing_key(OTHER),
        "TENUO_ENV": "development",
        "TENUO_CONTROL_PLANE_URL": "https://cp.example",
    }
    config = from_env(env)  # fails on any warning
    assert config.key_resolver is not None
    # A custom prefix's keys are holder keys as well.
    from_env({"TENUO_KEY_RESOLVER": "env://?prefix=TENUO_HOLDER_",
              "TENUO_HOLDER_agent1": encode_signing_key(HOLDER)})


def test_unknown_variable_is_warned_with_a_suggestion():
    with pytest.warns(TenuoEnvWarning, match=r"\$TENUO_TRUSTED_ROOT is not a tenuo_temporal "
                                             r"setting.*did you mean \$TENUO_TRUSTED_ROOTS"):
        config = TenuoPluginConfig.from_env(environ={"TENUO_TRUSTED_ROOT": "x"})
    assert not config.verifies  # ignored, not guessed


def test_the_references_signing_key_is_warned_about_not_read():
    secret = base64.b64encode(bytes(HOLDER.secret_key_bytes())).decode()
    with pytest.warns(TenuoEnvWarning, match="TENUO_KEY_<key id>") as record:
        TenuoPluginConfig.from_env(environ={"TENUO_SIGNING_KEY": secret})
    assert all(secret not in str(w.message) for w in record)


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("TENUO_POP_MAX_WINDOWS", "0", "an integer >= 1"),
    ("TENUO_MAX_CHAIN_DEPTH", "three", "an integer >= 1"),
    ("TENUO_CLOCK_TOLERANCE_SECS", "-1", "an integer >= 0"),
    ("TENUO_REQUIRE_WARRANT", "maybe", "true or false"),
    ("TENUO_REPLAY_PROTECTION", "loose", "run, strict, or false"),
    ("TENUO_TOOL_MAPPINGS", "fetch_document", "activity=tool pairs"),
    ("TENUO_TRUSTED_ROOTS", " , ", "comma-separated Ed25519 public keys"),
])
def test_malformed_values_name_the_variable_and_form(variable, value, expected):
    with pytest.raises(ResolverConfigError) as info:
        from_env({variable: value})
    message = str(info.value)
    assert f"${variable} is malformed" in message and expected in message
    assert repr(value) not in message


@pytest.mark.parametrize("value", [
    "vualt://s3cr3t-token@vault:8200/kv",  # unknown scheme
    "vault://user:s3cr3t-token@vault:8200/kv",  # a password in the URL
    "s3cr3t-token",  # not a URL
])
def test_bad_resolver_url_never_echoes_its_secret(value):
    with pytest.raises(ResolverConfigError) as info:
        from_env({"TENUO_KEY_RESOLVER": value})
    message = str(info.value)
    assert message.startswith("$TENUO_KEY_RESOLVER")
    assert "s3cr3t-token" not in message


def test_bad_replay_store_never_echoes_its_password():
    with pytest.raises(ResolverConfigError) as info:
        from_env({"TENUO_REPLAY_STORE": "http://user:s3cr3t@cache:6379"})
    assert "$TENUO_REPLAY_STORE is malformed" in str(info.value)
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize("value", ["00" * 31, "not-a-key", base64.b64encode(b"x" * 33).decode()])
def test_bad_trusted_root_names_the_variable_and_index(value):
    with pytest.raises(ResolverConfigError, match=r"\$TENUO_TRUSTED_ROOTS\[1\]") as info:
        from_env({"TENUO_TRUSTED_ROOTS": f"{root_bytes(ROOT).hex()},{value}"})
    assert value not in str(info.value)
