"""``VaultKeyResolver`` without a server: URLs, settings, key ids, listing and error mapping.

The behaviour against a real OpenBao lives in ``integration/test_vault.py``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import hvac.exceptions
import pytest
import requests

from tenuo_keys import (
    BackendUnavailable,
    KeyAccessDenied,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
    resolver_from_url,
)
from tenuo_keys.backends._vault_common import map_error as _map_error
from tenuo_keys.backends.vault import DEFAULT_K8S_JWT_PATH, VaultKeyResolver

TOKEN = "hvs.TOPSECRETTOKEN"
ENV = {"VAULT_TOKEN": TOKEN}


def build(**kwargs: Any) -> VaultKeyResolver:
    kwargs.setdefault("environ", ENV)
    return VaultKeyResolver(**kwargs)


def from_url(url: str, **kwargs: Any) -> VaultKeyResolver:
    kwargs.setdefault("environ", ENV)
    resolver = resolver_from_url(url, **kwargs)
    assert isinstance(resolver, VaultKeyResolver)
    resolver.close()
    return resolver


# --------------------------------------------------------------------------- URLs


def test_url_host_port_mount_template_and_options():
    r = from_url(
        "vault://vault.internal:8201/kv/apps/{key_id}/signing?kv=1&field=seed&auth=approle"
        "&namespace=team-a&previous_versions=3&timeout=2.5&ttl=60&max_staleness=120&renew=0",
        role_id="rid", secret_id="sid",
    )
    assert r.addr == "https://vault.internal:8201"
    assert (r.mount, r.path_template, r.kv_version, r.field) == (
        "kv", "apps/{key_id}/signing", 1, "seed")
    assert (r.auth_method, r.namespace, r.previous_versions, r.timeout) == (
        "approle", "team-a", 3, 2.5)
    assert r.cache.policy.ttl == 60 and r.cache.policy.max_staleness == 120


def test_url_defaults_and_plain_http():
    r = from_url("vault://127.0.0.1?tls=0")
    assert r.addr == "http://127.0.0.1:8200"
    assert (r.mount, r.path_template, r.field, r.kv_version) == (
        "secret", "tenuo/keys/{key_id}", "key", 2)
    assert from_url("vault://[::1]:9200/secret").addr == "https://[::1]:9200"
    assert from_url("vault://h/secret").path_template == "tenuo/keys/{key_id}"


def test_url_without_host_uses_vault_addr():
    r = from_url("vault:///secret/x/{key_id}",
                 environ={"VAULT_ADDR": "https://10.0.0.1:8200/", **ENV})
    assert r.addr == "https://10.0.0.1:8200"
    assert from_url("vault://", environ=ENV).addr == "https://127.0.0.1:8200"  # the CLI default
    with pytest.raises(ResolverConfigError, match="without a host"):
        from_url("vault:///secret?tls=0")


def test_url_nested_mount_and_transit():
    r = from_url("vault://h/teams/kv/{key_id}?mount=platform/kv")
    assert (r.mount, r.path_template) == ("platform/kv", "teams/kv/{key_id}")
    t = from_url("vault://h/transit?transit=1")
    assert (t.transit, t.mount, t.path_template) == (True, "transit", "{key_id}")
    t = from_url("vault://h?transit=true&previous_versions=0")
    assert (t.mount, t.previous_versions) == ("transit", 0)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("vault://h/secret?token=abc", "must not carry secrets"),
        ("vault://h/secret?secret_id=abc", "must not carry secrets"),
        ("vault://h/secret?jwt=abc", "must not carry secrets"),
        ("vault://user:pw@h/secret", "must not carry a password"),
        ("vault://user@h/secret", "no user name"),
        ("vault://h/secret?kv=3", "must be 1 or 2"),
        ("vault://h/secret?tls=maybe", "not a boolean"),
        ("vault://h/secret?previous_versions=x", "not an integer"),
        ("vault://h/secret?previous_versions=50", "previous_versions"),
        ("vault://h/secret?tiemout=3", "does not understand"),
        ("vault://h/secret/tenuo/keys", "{key_id}"),
        ("vault://h/secret/{key_id}/{key_id}", "exactly once"),
        ("vault://h/secret/../{key_id}", "invalid Vault path template"),
        ("vault://h/transit/a/{key_id}?transit=1", "Transit key name"),
        ("vault://h/secret?auth=ldap", "unknown Vault auth method"),
    ],
)
def test_url_mistakes_are_config_errors(url, message):
    with pytest.raises(ResolverConfigError) as info:
        from_url(url)
    assert message in str(info.value)
    assert TOKEN not in str(info.value)


def test_url_and_argument_naming_the_same_setting_is_refused():
    with pytest.raises(ResolverConfigError, match="'field' given both"):
        from_url("vault://h/secret?field=a", field="b")


# --------------------------------------------------------------------------- credentials


def test_credentials_follow_explicit_then_environment():
    assert build().auth_method == "token"
    assert build(role_id="rid").auth_method == "approle"  # explicit beats $VAULT_TOKEN
    assert build(token="t", environ={"VAULT_ROLE_ID": "rid"}).auth_method == "token"
    assert build(environ={"VAULT_ROLE_ID": "rid"}).auth_method == "approle"
    assert build(environ={"VAULT_ROLE_ID": "r", "VAULT_TOKEN": "t"}).auth_method == "token"
    assert build(auth="approle", environ={"VAULT_ROLE_ID": "r", "VAULT_TOKEN": "t"}
                 ).auth_method == "approle"
    k8s = build(auth="kubernetes", role="worker")
    assert k8s._credentials.jwt_path == DEFAULT_K8S_JWT_PATH
    assert k8s._credentials.mount == "kubernetes"
    assert build(auth="jwt", role="w", jwt="a.b.c", auth_mount="oidc")._credentials.mount == "oidc"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"environ": {}}, "no Vault credentials"),
        ({"auth": "token", "environ": {}}, "needs token"),
        ({"auth": "approle", "environ": {}}, "needs role_id"),
        ({"auth": "kubernetes"}, "needs role"),
        ({"auth": "jwt", "role": "w"}, "needs jwt"),
        ({"role": "w"}, "role is for kubernetes or jwt"),
        ({"addr": "vault.internal:8200"}, "http:// or https://"),
        ({"kv_version": 3}, "kv_version"),
        ({"previous_versions": -1}, "previous_versions"),
        ({"timeout": 0}, "timeout"),
        ({"transit": True, "allow_slash": True}, "allow_slash"),
        ({"mount": "a/../b"}, "invalid Vault mount"),
        ({"path_template": "x/{key_id}/{other}"}, "no other braces"),
        ({"client_key": "/k.pem"}, "client_key needs client_cert"),
    ],
)
def test_bad_settings_are_config_errors(kwargs, message):
    with pytest.raises(ResolverConfigError, match=message.replace("(", r"\(")):
        build(**kwargs)


def test_repr_names_the_setup_but_no_secret():
    resolvers = [
        build(addr="https://v:8200", namespace="ns"),
        build(role_id="rid-123", secret_id="SECRETID-456"),
        build(auth="jwt", role="w", jwt="header.payload.SIGNATURE"),
    ]
    for resolver in resolvers:
        text = repr(resolver) + repr(resolver._credentials)
        for secret in (TOKEN, "SECRETID-456", "SIGNATURE"):
            assert secret not in text
        resolver.close()
    assert "auth='approle'" in repr(resolvers[1]) and "source='kv-v2'" in repr(resolvers[1])


def test_tls_settings_reach_the_shared_http_session():
    with build(ca_cert="/etc/ca.pem", client_cert="/c.pem", client_key="/k.pem") as r:
        http = r._session.client.adapter.session
        assert (http.verify, http.cert) == ("/etc/ca.pem", ("/c.pem", "/k.pem"))
        assert http.trust_env is False  # proxies were read once, at construction
    env = {**ENV, "VAULT_CACERT": "/env/ca.pem", "VAULT_CLIENT_CERT": "/env/c.pem",
           "VAULT_CLIENT_KEY": "/env/k.pem", "VAULT_SKIP_VERIFY": ""}
    with build(environ=env) as r:
        http = r._session.client.adapter.session
        assert (http.verify, http.cert) == ("/env/ca.pem", ("/env/c.pem", "/env/k.pem"))
    with build(environ={**env, "VAULT_SKIP_VERIFY": "true"}) as r:
        assert r._session.client.adapter.session.verify is False
    with build(environ={**env, "VAULT_SKIP_VERIFY": "true"}, verify=True) as r:
        assert r._session.client.adapter.session.verify == "/env/ca.pem"  # explicit wins


# --------------------------------------------------------------------------- key ids


@pytest.mark.parametrize("key_id", ["agent1", "team-a.worker_2", "svc@prod", "a:b+c=d,e~f"])
def test_key_ids_that_stay_inside_the_template(key_id):
    with build() as resolver:
        assert resolver._target(key_id) == f"tenuo/keys/{key_id}"


@pytest.mark.parametrize("key_id", ["../x", "a/b", "..", ".", "a b", "a?b", "a#b", "a%2e", "ä"])
def test_key_ids_that_would_escape_are_refused(key_id):
    with build() as resolver, pytest.raises(KeyResolutionError) as info:
        resolver._target(key_id)
    assert not isinstance(info.value, KeyNotFound)
    assert info.value.retryable is False


def test_slashes_only_when_allowed_and_never_dot_segments():
    with build(allow_slash=True) as resolver:
        assert resolver._target("team/agent") == "tenuo/keys/team/agent"
        for bad in ("team/../x", "team//x", "/x", "x/", "./x"):
            with pytest.raises(KeyResolutionError):
                resolver._target(bad)
    with build(transit=True) as resolver, pytest.raises(KeyResolutionError):
        resolver._target("with:colon")  # not a valid Transit key name


# --------------------------------------------------------------------------- listing


class FakeClient:
    """Just enough of hvac.Client for list_key_ids (token handling is bypassed)."""

    def __init__(self, keys: list[str] | None, error: Exception | None = None) -> None:
        self.token = ""
        self.listed: list[tuple[str, str]] = []

        def list_secrets(path: str, mount_point: str) -> Any:
            self.listed.append((mount_point, path))
            if error is not None:
                raise error
            return {"data": {"keys": keys}}

        engine = SimpleNamespace(list_secrets=list_secrets)
        self.secrets = SimpleNamespace(kv=SimpleNamespace(v1=engine, v2=engine))


def listing(template: str, keys: list[str] | None, **kwargs: Any) -> tuple[list[str], Any]:
    resolver = build(path_template=template, renew=False, **kwargs)
    fake = FakeClient(keys)
    resolver._session.client = fake
    try:
        return resolver.list_key_ids(), fake.listed
    finally:
        resolver._session.client = SimpleNamespace(adapter=SimpleNamespace(close=lambda: None))
        resolver.close()


def test_listing_matches_the_template():
    ids, listed = listing("tenuo/keys/{key_id}", ["b", "a", "sub/", "bad id"])
    assert ids == ["a", "b"] and listed == [("secret", "tenuo/keys/")]
    ids, listed = listing("apps/key-{key_id}.v1", ["key-a.v1", "key-b.v2", "other", "key-.v1"],
                          kv_version=1, mount="kv")
    assert ids == ["a"] and listed == [("kv", "apps/")]
    ids, _ = listing("apps/{key_id}/signing", ["a/", "b/", "c"])
    assert ids == ["a", "b"]
    assert listing("{key_id}", None)[0] == []


def test_listing_a_missing_directory_is_empty_and_denial_raises():
    resolver = build(renew=False)
    resolver._session.client = FakeClient(None, hvac.exceptions.InvalidPath(errors=[]))
    assert resolver.list_key_ids() == []
    resolver._session.client = FakeClient(None, hvac.exceptions.Forbidden(
        errors=["1 error occurred:\n\t* permission denied\n\n"]))
    resolver._session._token_rejected = lambda generation: False  # a policy, not the token
    with pytest.raises(KeyAccessDenied, match="policy does not allow list on secret/metadata"):
        resolver.list_key_ids()
    resolver._session.client = SimpleNamespace(adapter=SimpleNamespace(close=lambda: None))
    resolver.close()


# --------------------------------------------------------------------------- error mapping


def mapped(exc: BaseException) -> KeyResolutionError:
    return _map_error(exc, key_id="agent1", what="read", where="secret/data/tenuo/keys/agent1",
                      addr="https://v:8200", timeout=5.0)


SECRET_IN_BODY = '{"data":{"data":{"key":"c2VjcmV0LXNlZWQtYnl0ZXMtMDEyMzQ1Njc4OWFiY2Q="}}}'


@pytest.mark.parametrize(
    ("exc", "cls", "retryable", "says"),
    [
        (hvac.exceptions.Forbidden(errors=["permission denied"]), KeyAccessDenied, False,
         "access denied"),
        (hvac.exceptions.Unauthorized(SECRET_IN_BODY), KeyAccessDenied, False, "access denied"),
        (hvac.exceptions.InvalidPath(SECRET_IN_BODY, json={"errors": []}), KeyNotFound, False,
         "not found: nothing at secret/data/tenuo/keys/agent1"),
        (hvac.exceptions.InvalidPath(json={"warnings": [
            "Invalid path for a versioned K/V secrets engine."]}), KeyNotFound, False,
         "KV version 2 mount"),
        (hvac.exceptions.RateLimitExceeded(SECRET_IN_BODY), BackendUnavailable, True, "429"),
        (hvac.exceptions.VaultDown(errors=["Vault is sealed"]), BackendUnavailable, True,
         "sealed"),
        (hvac.exceptions.InternalServerError(errors=["1 error occurred:\n\t* boom\n\n"]),
         BackendUnavailable, True,
         "server error (500) on read of secret/data/tenuo/keys/agent1: boom"),
        (hvac.exceptions.BadGateway(SECRET_IN_BODY), BackendUnavailable, True, "(502)"),
        (hvac.exceptions.VaultNotInitialized(), BackendUnavailable, True, "not initialized"),
        (hvac.exceptions.UnexpectedError(SECRET_IN_BODY), BackendUnavailable, True, "unexpected"),
        (hvac.exceptions.InvalidRequest(errors=["private key material is not exportable"]),
         KeyAccessDenied, False, "not exportable"),
        (hvac.exceptions.InvalidRequest(errors=["bad field"]), KeyResolutionError, False,
         "rejected read on secret/data/tenuo/keys/agent1 (400): bad field"),
        (requests.exceptions.SSLError(SECRET_IN_BODY), BackendUnavailable, False, "TLS"),
        (requests.exceptions.ConnectTimeout(SECRET_IN_BODY), BackendUnavailable, True,
         "did not answer within 5s"),
        (requests.exceptions.ReadTimeout(), BackendUnavailable, True, "did not answer"),
        (requests.exceptions.ConnectionError(SECRET_IN_BODY), BackendUnavailable, True,
         "cannot connect to Vault at https://v:8200"),
        (ValueError(SECRET_IN_BODY), BackendUnavailable, True, "ValueError"),
        (KeyError("data"), KeyResolutionError, False, "unexpected response shape"),
        (RuntimeError(SECRET_IN_BODY), KeyResolutionError, False, "unexpected RuntimeError"),
    ],
)
def test_error_mapping(exc, cls, retryable, says):
    error = mapped(exc)
    assert type(error) is cls
    assert error.retryable is retryable
    assert says in str(error)
    assert error.key_id == "agent1" and error.backend == "vault"
    assert "c2VjcmV0" not in str(error) + repr(error)
    assert error.__cause__ is None
