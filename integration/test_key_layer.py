"""Issue 14, part 10 (the key layer), against real services and hostile loopback servers.

* redirects: a 307 to another origin never receives the token or a key being
  written (Vault KV, a KV write, the Transit signer); a same-origin redirect
  (a standby's) in front of a real OpenBao is still followed;
* deleting a compromised previous KV v2 version (or disabling a GCP one) does
  not bring an older one back;
* a dripping or huge response is cut off by a total deadline and a size cap
  (Vault through requests, AWS through botocore, GCP through gRPC);
* the Transit signer refuses an exportable key unless loudly allowed.

Every server here listens on loopback; nothing is sent anywhere else.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import google_crc32c
import grpc
import pytest
import tenuo_core

from integration.support.hostile import Dripper, Flood, Recorder, Redirector, serve
from tenuo_keys import (
    BackendUnavailable,
    HolderMismatch,
    KeyResolutionError,
    ResolverConfigError,
    encode_signing_key,
)
from tenuo_keys.backends.aws import AWSSecretsManagerKeyResolver
from tenuo_keys.backends.gcp import GCPSecretManagerKeyResolver
from tenuo_keys.backends.vault import VaultKeyResolver
from tenuo_keys.backends.vault_transit import VaultTransitSigner
from tenuo_keys.testing import assert_no_secret

pytestmark = pytest.mark.integration

TOKEN = "hvs.KEYLAYERTESTTOKEN"
FAR_BELOW_THE_FLOOD = 64 * 1024 * 1024
"""What may cross before a refusal: the 4 MiB cap plus socket buffers, far below 150 MB."""


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


def vault_at(addr: str, token: str = TOKEN, **kwargs: Any) -> VaultKeyResolver:
    kwargs.setdefault("path_template", "tenuo/keys/{key_id}")
    return VaultKeyResolver(addr, token=token, environ={}, renew=False, **kwargs)


@pytest.fixture
def elsewhere() -> Iterator[Recorder]:
    """Another origin (another loopback port) that records what reaches it."""
    with serve(Recorder()) as recorder:
        yield recorder


# --------------------------------------------------------------------------- redirects


def _assert_refused_redirect(exc: BaseException, recorder: Recorder) -> None:
    assert isinstance(exc, BackendUnavailable) and not exc.retryable
    assert "another origin" in exc.reason
    assert recorder.seen == []  # neither the token nor a body went there


def test_vault_read_redirected_to_another_origin_sends_nothing_there(elsewhere):
    with serve(Redirector(target=elsewhere.url)) as standby, vault_at(
            standby.url) as resolver, pytest.raises(BackendUnavailable) as info:
        resolver.fetch("agent")
    _assert_refused_redirect(info.value, elsewhere)
    assert standby.seen and standby.seen[0].headers.get("X-Vault-Token") == TOKEN
    assert TOKEN not in str(info.value) + repr(info.value)


def test_vault_write_redirected_to_another_origin_does_not_carry_the_new_key(elsewhere):
    key = tenuo_core.SigningKey.generate()
    with serve(Redirector(target=elsewhere.url)) as standby, vault_at(
            standby.url) as resolver, pytest.raises(BackendUnavailable) as info:
        resolver.store_key("agent", encode_signing_key(key))
    _assert_refused_redirect(info.value, elsewhere)
    assert_no_secret(b"".join(seen.body for seen in standby.seen), [key])


def test_transit_signer_redirected_to_another_origin_sends_nothing_there(elsewhere):
    with serve(Redirector(target=elsewhere.url)) as standby:
        signer = VaultTransitSigner("agent", standby.url, token=TOKEN, environ={}, renew=False,
                                    lazy=True)
        with signer, pytest.raises(BackendUnavailable) as info:
            signer.sign(b"message")
    _assert_refused_redirect(info.value, elsewhere)


def test_same_origin_standby_redirect_is_followed_to_a_real_openbao(vault_server, vault_client):
    key = tenuo_core.SigningKey.generate()
    directory = f"tenuo/{uuid.uuid4().hex[:12]}"
    with serve(Redirector(upstream=vault_server.addr)) as standby, vault_at(
            standby.url, token=vault_server.token, path_template=directory + "/{key_id}",
    ) as resolver:
        version = resolver.store_key("agent", encode_signing_key(key))
        assert resolver.preload(["agent"]) == 1
        found = resolver.resolve_sync("agent")
    assert version == "1"
    assert bytes(found.public_key_bytes()) == bytes(key.public_key_bytes())
    # Each request arrived twice: answered 307 to the same origin, then forwarded.
    assert len(standby.seen) >= 6 and len(standby.seen) % 2 == 0
    stored = vault_client.secrets.kv.v2.read_secret_version(
        path=f"{directory}/agent", mount_point="secret", raise_on_deleted_version=True)
    assert stored["data"]["data"]["key"] == encode_signing_key(key)


# --------------------------------------------------------------------------- KV v2 holes


def test_deleting_a_previous_version_does_not_resurrect_an_older_one(vault_server,
                                                                     vault_client):
    directory = f"tenuo/{uuid.uuid4().hex[:12]}"
    path = f"{directory}/agent"
    keys = [tenuo_core.SigningKey.generate() for _ in range(3)]
    for key in keys:  # versions 1, 2, 3
        vault_client.secrets.kv.v2.create_or_update_secret(
            path=path, secret={"key": encode_signing_key(key)}, mount_point="secret")
    # v2 is compromised: the operator deletes it.
    vault_client.secrets.kv.v2.delete_secret_versions(path=path, versions=[2],
                                                      mount_point="secret")
    with vault_at(vault_server.addr, token=vault_server.token,
                  path_template=directory + "/{key_id}") as resolver:
        assert resolver.preload(["agent"]) == 1
        held = [v.version for v in resolver.resolve_versions_sync("agent").versions]
        assert held == ["3"]  # v2 is a hole; v1 was rotated out two rotations ago
        with pytest.raises(HolderMismatch):
            resolver.resolve_for_holder_sync("agent", keys[0].public_key)
        with pytest.raises(HolderMismatch):
            resolver.resolve_for_holder_sync("agent", keys[1].public_key)
        assert bytes(resolver.resolve_for_holder_sync(
            "agent", keys[2].public_key).public_key_bytes()) == bytes(keys[2].public_key_bytes())


# --------------------------------------------------------------------------- slow and huge


@pytest.mark.parametrize("headers", [False, True], ids=["body", "headers"])
def test_vault_dripping_response_is_cut_at_the_total_deadline(headers):
    with serve(Dripper(length=40, interval=0.4, headers=headers)) as server, vault_at(
            server.url, timeout=1) as resolver:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="deadline"):
            resolver.fetch("agent")
        elapsed = time.monotonic() - started
    assert elapsed < 3.0  # 40 bytes at 0.4 s each would take 16 s


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_vault_huge_response_is_refused_before_it_is_read(chunked):
    with serve(Flood(chunked=chunked)) as server, vault_at(
            server.url, timeout=30) as resolver, pytest.raises(
            BackendUnavailable, match="larger than") as info:
        resolver.fetch("agent")
    assert not info.value.retryable
    assert server.sent < FAR_BELOW_THE_FLOOD


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def aws_at(url: str, **kwargs: Any) -> AWSSecretsManagerKeyResolver:
    return AWSSecretsManagerKeyResolver(endpoint_url=url, region_name="us-east-1",
                                        max_attempts=1, **kwargs)


@pytest.mark.parametrize("headers", [False, True], ids=["body", "headers"])
def test_aws_dripping_response_is_cut_at_the_total_deadline(aws_env, headers):
    with serve(Dripper(length=40, interval=0.4, headers=headers)) as server, aws_at(
            server.url, read_timeout=1, request_timeout=1.5) as resolver:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="deadline"):
            resolver.fetch("agent")
        elapsed = time.monotonic() - started
    assert elapsed < 3.5


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_aws_huge_response_is_refused_before_it_is_read(aws_env, chunked):
    with serve(Flood(chunked=chunked)) as server, aws_at(server.url) as resolver, pytest.raises(
            BackendUnavailable, match="larger than"):
        resolver.fetch("agent")
    assert server.sent < FAR_BELOW_THE_FLOOD


def test_aws_bounds_keep_moto_working(aws_env, moto_server):
    key = tenuo_core.SigningKey.generate()
    name = unique("bounded")
    client = moto_server.client()
    client.create_secret(Name=f"tenuo/keys/{name}", SecretString=encode_signing_key(key))
    with aws_at(moto_server.endpoint) as resolver:
        assert resolver.preload([name]) == 1
        assert bytes(resolver.resolve_sync(name).public_key_bytes()) == bytes(
            key.public_key_bytes())


# --------------------------------------------------------------------------- Transit


def test_transit_signer_refuses_an_exportable_key_unless_allowed(vault_server, vault_client):
    name = unique("exportable")
    vault_client.secrets.transit.create_key(name=name, key_type="ed25519", exportable=True)
    options = {"token": vault_server.token, "environ": {}, "renew": False}
    with pytest.raises(ResolverConfigError, match="exportable") as info:
        VaultTransitSigner(name, vault_server.addr, **options)
    assert "dangerously_allow_exportable" in str(info.value)
    with VaultTransitSigner(name, vault_server.addr, dangerously_allow_exportable=True,
                            **options) as signer:
        assert len(signer.sign(b"message")) == 64  # verified locally by the signer
    url = f"vault-transit://127.0.0.1:{vault_server.port}/transit/{name}?tls=0"
    with pytest.raises(ResolverConfigError, match="exportable"):
        VaultTransitSigner.from_url(url, **options)
    with VaultTransitSigner.from_url(url + "&dangerously_allow_exportable=1", **options) as s:
        assert len(s.sign(b"m")) == 64


def test_transit_refusal_is_a_config_error_not_a_resolution_error(vault_server, vault_client):
    name = unique("exportable")
    vault_client.secrets.transit.create_key(name=name, key_type="ed25519", exportable=True)
    with VaultTransitSigner(name, vault_server.addr, token=vault_server.token, environ={},
                            renew=False, lazy=True) as signer, pytest.raises(KeyResolutionError,
                                                                             match="exportable"):
        signer.sign(b"m")


# --------------------------------------------------------------------------- GCP


def test_gcp_disabling_a_previous_version_does_not_resurrect_an_older_one(gcp_sm):
    template = f"t{uuid.uuid4().hex[:10]}-{{key_id}}"
    secret_id = template.replace("{key_id}", "agent")
    keys = [tenuo_core.SigningKey.generate() for _ in range(3)]
    for key in keys:  # versions 1, 2, 3
        gcp_sm.put(secret_id, encode_signing_key(key))
    gcp_sm.client.disable_secret_version(
        request={"name": f"{gcp_sm.secret_path(secret_id)}/versions/2"})
    with GCPSecretManagerKeyResolver(gcp_sm.project, template, api_endpoint=gcp_sm.endpoint,
                                     insecure=True) as resolver:
        assert resolver.preload(["agent"]) == 1
        assert [v.version for v in resolver.resolve_versions_sync("agent").versions] == ["3"]
        for old in keys[:2]:
            with pytest.raises(HolderMismatch):
                resolver.resolve_for_holder_sync("agent", old.public_key)


@contextlib.contextmanager
def hostile_secret_manager(answer: Any) -> Iterator[str]:
    """An in-process gRPC Secret Manager whose AccessSecretVersion runs ``answer``."""
    from google.cloud import secretmanager_v1 as sm

    handler = grpc.method_handlers_generic_handler(
        "google.cloud.secretmanager.v1.SecretManagerService",
        {"AccessSecretVersion": grpc.unary_unary_rpc_method_handler(
            answer, request_deserializer=sm.AccessSecretVersionRequest.deserialize,
            response_serializer=sm.AccessSecretVersionResponse.serialize)},
    )
    server = grpc.server(ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.max_send_message_length", -1)])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def _huge(request: Any, context: Any) -> Any:
    from google.cloud import secretmanager_v1 as sm

    data = b" " * (150 * 1024 * 1024 // 16)  # ~9.4 MB: over the cap, quick to build
    return sm.AccessSecretVersionResponse(
        name=f"{request.name.rsplit('/', 1)[0]}/1",
        payload={"data": data, "data_crc32c": google_crc32c.value(data)})


def _slow(request: Any, context: Any) -> Any:
    time.sleep(5)
    return _huge(request, context)


def test_gcp_huge_response_is_refused_by_the_channel():
    with hostile_secret_manager(_huge) as endpoint, GCPSecretManagerKeyResolver(
            "p", api_endpoint=endpoint, insecure=True, previous_versions=0,
    ) as resolver, pytest.raises(BackendUnavailable, match="larger than") as info:
        resolver.fetch("agent")
    assert not info.value.retryable


def test_gcp_slow_response_is_cut_at_the_call_deadline():
    with hostile_secret_manager(_slow) as endpoint, GCPSecretManagerKeyResolver(
            "p", api_endpoint=endpoint, insecure=True, previous_versions=0,
            timeout=1) as resolver:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            resolver.fetch("agent")
        assert time.monotonic() - started < 3


# --------------------------------------------------------------------------- revocation runbook


def test_aws_removing_awsprevious_revokes_the_previous_version(aws_env, moto_server):
    """The runbook's AWS step: take AWSPREVIOUS off a version; nothing older takes its place."""
    keys = [tenuo_core.SigningKey.generate() for _ in range(3)]
    name = unique("revoke")
    secret = f"tenuo/keys/{name}"
    client = moto_server.client()
    created = client.create_secret(Name=secret, SecretString=encode_signing_key(keys[0]))
    versions = [created["VersionId"]]
    for key in keys[1:]:
        versions.append(client.put_secret_value(
            SecretId=secret, SecretString=encode_signing_key(key))["VersionId"])
    with aws_at(moto_server.endpoint) as resolver:
        assert resolver.preload([name]) == 1
        assert [v.version for v in resolver.resolve_versions_sync(name).versions] == [
            versions[2], versions[1]]
        client.update_secret_version_stage(SecretId=secret, VersionStage="AWSPREVIOUS",
                                           RemoveFromVersionId=versions[1])
        resolver.cache.refresh(name).result(10)
        assert [v.version for v in resolver.resolve_versions_sync(name).versions] == [
            versions[2]]
        for old in keys[:2]:
            with pytest.raises(HolderMismatch):
                resolver.resolve_for_holder_sync(name, old.public_key)
