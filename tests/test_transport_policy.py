"""The transport policy of every backend and URL redaction, without any connection.

Every refusal here happens at construction: the addresses that are not
loopback are never contacted (no test sends traffic off loopback).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import tenuo_core

from tenuo_keys import ResolverConfigError, encode_signing_key, resolver_from_url
from tenuo_keys._url import ResolverURL
from tenuo_keys.backends.aws import AWSSecretsManagerKeyResolver
from tenuo_keys.backends.vault import VaultKeyResolver
from tenuo_keys.backends.vault_transit import VaultTransitSigner

TOKEN = "hvs.TRANSPORTTESTTOKEN"
ENV = {"VAULT_TOKEN": TOKEN}
AWS = {"region_name": "us-east-1"}
INSECURE_OPT_IN = "dangerously_allow_insecure_transport"  # spelled out: a public option name


def _refused(make: Any) -> str:
    with pytest.raises(ResolverConfigError) as info:
        make()
    text = str(info.value)
    assert INSECURE_OPT_IN in text and TOKEN not in text
    return text


@pytest.mark.parametrize(
    ("url", "environ"),
    [
        ("vault://10.0.0.5:8200/secret?tls=0", ENV),
        ("vault://10.0.0.5:8200/secret?verify=0", ENV),
        ("vault://vault.internal/secret", {**ENV, "VAULT_SKIP_VERIFY": "1"}),
        ("vault:///secret", {**ENV, "VAULT_ADDR": "http://10.0.0.5:8200"}),
        ("vault:///secret", {**ENV, "VAULT_ADDR": "https://10.0.0.5", "VAULT_SKIP_VERIFY": "t"}),
    ],
)
def test_vault_refuses_plaintext_or_unverified_tls_to_a_remote_host(url, environ):
    text = _refused(lambda: resolver_from_url(url, environ=environ))
    assert "not loopback" in text


def test_vault_transit_refuses_plaintext_to_a_remote_host():
    _refused(lambda: VaultTransitSigner.from_url(
        "vault-transit://10.0.0.5:8200/transit/{key_id}?tls=0", key_id="a", environ=ENV))
    _refused(lambda: VaultTransitSigner("a", "http://10.0.0.5:8200", environ=ENV, lazy=True))


def test_awssm_refuses_a_plaintext_remote_endpoint(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    _refused(lambda: resolver_from_url(
        "awssm://us-east-1/k/{key_id}?endpoint_url=http://10.0.0.5:4566"))
    _refused(lambda: AWSSecretsManagerKeyResolver(endpoint_url="http://10.0.0.5", **AWS))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://10.0.0.5:4566")
    _refused(lambda: AWSSecretsManagerKeyResolver(**AWS))


def test_loopback_needs_no_opt_in():
    for url in ("vault://127.0.0.1:8200/secret?tls=0", "vault://[::1]/secret?verify=0",
                "vault://localhost/secret?tls=0"):
        resolver_from_url(url, environ=ENV).close()
    VaultTransitSigner("a", "http://127.0.0.1:1", environ=ENV, lazy=True).close()
    AWSSecretsManagerKeyResolver(endpoint_url="http://127.0.0.1:1", **AWS).close()


def test_the_opt_in_allows_it_loudly_and_repr_shows_verification_off(caplog):
    caplog.set_level(logging.WARNING)
    with resolver_from_url(f"vault://10.0.0.5/secret?verify=0&{INSECURE_OPT_IN}=1",
                           environ=ENV) as resolver:
        assert "verify=False" in repr(resolver)
    assert "INSECURE TRANSPORT" in caplog.text
    with VaultKeyResolver("http://10.0.0.5:8200", environ=ENV,
                          dangerously_allow_insecure_transport=True) as plain:
        assert plain.addr.startswith("http://")
    with VaultTransitSigner("a", "https://10.0.0.5", verify=False, environ=ENV, lazy=True,
                            dangerously_allow_insecure_transport=True) as signer:
        assert "verify=False" in repr(signer)
    resolver_from_url("awssm://us-east-1/k/{key_id}?endpoint_url=http://10.0.0.5"
                      f"&{INSECURE_OPT_IN}=1").close()
    with resolver_from_url("vault://10.0.0.5/secret", environ=ENV) as verified:
        assert "verify" not in repr(verified)


# --------------------------------------------------------------------------- URL redaction


def test_malformed_url_with_a_password_is_not_echoed():
    url = "vault://admin:hunter2-SECRET@vault.internal:80x0/secret?token_hint=abc"
    with pytest.raises(ResolverConfigError, match="malformed") as info:
        ResolverURL(url)
    text = str(info.value)
    assert "hunter2" not in text and "admin" not in text and "abc" not in text
    assert "vault.internal" in text and "port" in text


def test_a_key_pasted_as_the_resolver_url_is_not_echoed(monkeypatch):
    key = tenuo_core.SigningKey.generate()
    for form in ("base64", "hex", "pem"):
        pasted = encode_signing_key(key, form)
        monkeypatch.setenv("TENUO_KEY_RESOLVER", pasted)
        with pytest.raises(ResolverConfigError) as info:
            resolver_from_url(pasted)
        text = str(info.value) + repr(info.value)
        assert pasted.strip() not in text and pasted[:16] not in text


def test_gcp_plaintext_to_a_remote_host_needs_the_same_opt_in():
    from tenuo_keys.backends.gcp import GCPSecretManagerKeyResolver

    _refused(lambda: resolver_from_url("gcpsm://p?insecure=1&api_endpoint=10.0.0.8:8085"))
    with resolver_from_url("gcpsm://p?insecure=1&api_endpoint=emulator:8085"
                           f"&{INSECURE_OPT_IN}=1") as resolver:
        assert isinstance(resolver, GCPSecretManagerKeyResolver)
        assert "plaintext=True" in repr(resolver)
