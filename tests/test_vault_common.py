"""``VaultConnection``: one Vault connection, settled from arguments, a URL or ``$VAULT_*``.

The KV resolver and the Transit signer both build their session from it; their
own tests (``test_vault_unit.py``, ``test_vault_transit_unit.py``) cover the
constructor arguments and URLs that reach it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from tenuo_keys import ResolverConfigError
from tenuo_keys._url import ResolverURL
from tenuo_keys.backends._vault_common import (
    Connection,
    VaultArguments,
    VaultConnection,
    map_error,
)
from tenuo_keys.backends.vault import VaultKeyResolver
from tenuo_keys.backends.vault_transit import VaultTransitSigner

TOKEN = "hvs.TOPSECRETTOKEN"


def test_from_env_reads_what_the_cli_reads() -> None:
    conn = VaultConnection.from_env({
        "VAULT_ADDR": "https://vault.example:8201/", "VAULT_TOKEN": TOKEN,
        "VAULT_NAMESPACE": "team-a", "VAULT_CACERT": "/ca.pem",
        "VAULT_CLIENT_CERT": "/c.pem", "VAULT_CLIENT_KEY": "/k.pem",
    })
    assert (conn.addr, conn.namespace, conn.verify, conn.cert) == (
        "https://vault.example:8201", "team-a", "/ca.pem", ("/c.pem", "/k.pem"))
    assert (conn.credentials.method, conn.credentials.token) == ("token", TOKEN)
    assert (conn.timeout, conn.renew, conn.insecure_allowed) == (5.0, True, False)
    approle = VaultConnection.from_env({"VAULT_ROLE_ID": "rid", "VAULT_SECRET_ID": "sid"})
    assert (approle.addr, approle.credentials.method) == ("https://127.0.0.1:8200", "approle")


def test_from_env_skip_verify_and_the_insecure_opt_in() -> None:
    local = VaultConnection.from_env({"VAULT_ADDR": "https://127.0.0.1:8200",
                                      "VAULT_SKIP_VERIFY": "true", "VAULT_TOKEN": TOKEN})
    assert local.verify is False and local.transport_note == ", verify=False"
    with pytest.raises(ResolverConfigError, match="dangerously_allow_insecure_transport"):
        VaultConnection.from_env({"VAULT_ADDR": "http://vault.example:8200", "VAULT_TOKEN": TOKEN})
    remote = VaultConnection.from_arguments(
        "http://vault.example:8200", token=TOKEN, environ={},
        dangerously_allow_insecure_transport=True)
    assert remote.insecure_allowed and remote.addr == "http://vault.example:8200"


def test_from_arguments_win_over_the_environment() -> None:
    env = {"VAULT_ADDR": "https://env:8200", "VAULT_TOKEN": "env-token", "VAULT_NAMESPACE": "env"}
    conn = VaultConnection.from_arguments(
        "https://arg:8200", token=TOKEN, namespace="arg", verify=True, ca_cert="/ca.pem",
        timeout=2, renew=False, environ=env)
    assert (conn.addr, conn.namespace, conn.verify, conn.timeout, conn.renew) == (
        "https://arg:8200", "arg", "/ca.pem", 2.0, False)
    assert conn.credentials.token == TOKEN
    with pytest.raises(ResolverConfigError, match="timeout"):
        VaultConnection.from_arguments(token=TOKEN, timeout=0, environ={})
    with pytest.raises(ResolverConfigError, match="no Vault credentials"):
        VaultConnection.from_arguments(environ={})


def test_from_url_takes_the_connection_part_and_leaves_the_rest() -> None:
    url = ResolverURL("vault://vault.internal:8201/secret/tenuo/{key_id}?auth=approle"
                      "&namespace=team-a&timeout=2&field=seed")
    conn = VaultConnection.from_url(url, role_id="rid", secret_id="sid", environ={})
    assert (conn.addr, conn.namespace, conn.timeout, conn.credentials.method) == (
        "https://vault.internal:8201", "team-a", 2.0, "approle")
    assert url.path.strip("/") == "secret/tenuo/{key_id}"
    assert url.pop_optional("field") == "seed"
    url.finish()
    local = VaultConnection.from_url(ResolverURL("vault-transit://127.0.0.1?tls=0"),
                                     environ={"VAULT_TOKEN": TOKEN})
    assert local.addr == "http://127.0.0.1:8200"
    with pytest.raises(ResolverConfigError, match="both in the URL and as an argument"):
        VaultConnection.from_url(ResolverURL("vault://h?timeout=1"), timeout=2, token=TOKEN)


def test_repr_never_shows_secrets() -> None:
    conn = VaultConnection.from_arguments("https://h:8200", auth="approle", role_id="rid",
                                          secret_id="TOPSECRETID", environ={})
    assert "TOPSECRETID" not in repr(conn) and "rid" not in repr(conn)
    assert repr(conn) == "VaultConnection(addr='https://h:8200', auth='approle', namespace=None)"
    assert "TOPSECRET" not in repr(VaultConnection.from_arguments(token=TOKEN, environ={}))
    assert Connection is VaultConnection  # the earlier name


def test_one_connection_serves_the_resolver_and_the_signer() -> None:
    conn = VaultConnection.from_arguments("https://vault.example:8200", token=TOKEN,
                                          namespace="team-a", environ={})
    with VaultKeyResolver(connection=conn) as resolver:
        assert resolver.connection is conn
        assert (resolver.addr, resolver.namespace, resolver.auth_method) == (
            "https://vault.example:8200", "team-a", "token")
        signer = VaultTransitSigner("agent1", connection=resolver.connection, lazy=True)
        try:
            assert signer.connection is conn
            assert (signer.addr, signer.namespace, signer.auth_method) == (
                "https://vault.example:8200", "team-a", "token")
        finally:
            signer.close()


def test_connection_and_connection_arguments_are_not_both_taken() -> None:
    conn = VaultConnection.from_arguments(token=TOKEN, environ={})
    with pytest.raises(ResolverConfigError, match="not both"):
        VaultKeyResolver(connection=conn, timeout=2)
    with pytest.raises(ResolverConfigError, match="not both"):
        VaultKeyResolver("https://other:8200", connection=conn)
    with pytest.raises(ResolverConfigError, match="not both"):
        VaultTransitSigner("agent1", connection=conn, token="other", lazy=True)
    with pytest.raises(ResolverConfigError, match="not both"):
        VaultKeyResolver(connection=conn, timeout=5.0)  # even a default, when named


def test_the_connection_arguments_are_still_every_constructors_keywords() -> None:
    arguments: dict[str, Any] = {
        "auth": "approle", "role_id": "rid", "secret_id": "sid", "auth_mount": "ar",
        "namespace": "ns", "verify": True, "ca_cert": "/ca.pem", "client_cert": "/c.pem",
        "client_key": "/k.pem", "timeout": 3, "renew": False, "environ": {},
        "dangerously_allow_insecure_transport": True,
    }
    assert set(arguments) | {"token", "role", "jwt", "jwt_path"} == set(
        VaultArguments.__annotations__)
    expected = VaultConnection.from_arguments("http://vault.example:8200", **arguments)
    with VaultKeyResolver("http://vault.example:8200", **arguments) as resolver:
        assert resolver.connection == expected
    signer = VaultTransitSigner("agent1", "http://vault.example:8200", lazy=True, **arguments)
    try:
        assert signer.connection == expected
    finally:
        signer.close()
    jwt = VaultConnection.from_arguments(auth="jwt", role="r", jwt="a.b.c", environ={})
    assert (jwt.credentials.role, jwt.credentials.jwt) == ("r", "a.b.c")


def test_an_unknown_keyword_is_a_type_error_as_before() -> None:
    with pytest.raises(TypeError, match=re.escape(
            "VaultKeyResolver() got an unexpected keyword argument 'tiemout'")):
        VaultKeyResolver(tiemout=3, environ={"VAULT_TOKEN": TOKEN})  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'tiemout'"):
        VaultTransitSigner("a", tiemout=3, lazy=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        VaultConnection.from_arguments(nope=1)  # type: ignore[call-arg]


def test_the_token_file_of_vault_login_is_used_when_nothing_else_is_set(tmp_path) -> None:
    (tmp_path / ".vault-token").write_text(TOKEN + "\n")
    env = {"HOME": str(tmp_path)}
    conn = VaultConnection.from_arguments(environ=env)
    assert (conn.credentials.method, conn.credentials.token) == ("token", TOKEN)
    assert VaultConnection.from_arguments(auth="token", environ=env).credentials.token == TOKEN
    # $VAULT_TOKEN and $VAULT_ROLE_ID come first, as for the vault CLI.
    first = VaultConnection.from_arguments(environ={**env, "VAULT_TOKEN": "hvs.ENV"})
    assert first.credentials.token == "hvs.ENV"
    role = VaultConnection.from_arguments(environ={**env, "VAULT_ROLE_ID": "rid"})
    assert role.credentials.method == "approle"
    assert TOKEN not in repr(conn) and TOKEN not in repr(conn.credentials)


def test_a_missing_or_unreadable_token_file(tmp_path) -> None:
    with pytest.raises(ResolverConfigError, match=r"no Vault credentials: .*~/\.vault-token"):
        VaultConnection.from_arguments(environ={"HOME": str(tmp_path)})
    (tmp_path / ".vault-token").mkdir()
    with pytest.raises(ResolverConfigError,
                       match=r"cannot read the Vault token file .*\.vault-token: Is a directory"):
        VaultConnection.from_arguments(environ={"HOME": str(tmp_path)})


@pytest.mark.parametrize(("url", "vault_addr", "addr"), [
    # The host matches $VAULT_ADDR: its scheme (and port) are used.
    ("vault://127.0.0.1/secret/{key_id}", "http://127.0.0.1:8200", "http://127.0.0.1:8200"),
    ("vault://127.0.0.1:8200/secret/{key_id}", "http://127.0.0.1:8200", "http://127.0.0.1:8200"),
    ("vault://localhost/secret/{key_id}", "http://LOCALHOST:18200", "http://localhost:18200"),
    ("vault://127.0.0.1/secret/{key_id}", "http://127.0.0.1", "http://127.0.0.1:8200"),
    # Another host, another port, or an explicit tls=: the URL decides.
    ("vault://127.0.0.1/secret/{key_id}", "http://10.0.0.1:8200", "https://127.0.0.1:8200"),
    ("vault://127.0.0.1:8300/secret/{key_id}", "http://127.0.0.1:8200", "https://127.0.0.1:8300"),
    ("vault://127.0.0.1/secret/{key_id}?tls=1", "http://127.0.0.1:8200", "https://127.0.0.1:8200"),
    ("vault://127.0.0.1:8300/secret/{key_id}?tls=0", "https://127.0.0.1:8200", "http://127.0.0.1:8300"),
    ("vault://127.0.0.1/secret/{key_id}", "", "https://127.0.0.1:8200"),
    ("vault://127.0.0.1/secret/{key_id}", "not a url:x", "https://127.0.0.1:8200"),
])
def test_a_url_host_takes_the_scheme_of_a_vault_addr_naming_it(url, vault_addr, addr) -> None:
    env = {"VAULT_ADDR": vault_addr, "VAULT_TOKEN": TOKEN}
    assert VaultConnection.from_url(ResolverURL(url), environ=env).addr == addr
    with VaultKeyResolver.from_url(ResolverURL(url), environ=env) as resolver:
        assert resolver.connection.addr == addr


def test_a_tls_failure_points_at_tls_0_for_a_plaintext_server() -> None:
    error = map_error(requests.exceptions.SSLError("wrong version number"), key_id="a",
                      what="read", where="secret/x", addr="https://127.0.0.1:8200", timeout=5)
    assert "tls=0" in error.reason and "http:// VAULT_ADDR" in error.reason
    assert "VAULT_CACERT" in error.reason and not error.retryable
