"""``GCPSecretManagerKeyResolver`` without a server: URLs, id mapping, error mapping.

A fake client stands in for ``SecretManagerServiceClient``; it returns the
real message types and raises the real ``google.api_core`` exceptions.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import google_crc32c
import pytest
import tenuo_core
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.cloud import secretmanager_v1 as sm

from tenuo_keys import (
    BackendUnavailable,
    CachePolicy,
    KeyAccessDenied,
    KeyFormatError,
    KeyNotFound,
    KeyResolutionError,
    ResolverClosed,
    ResolverConfigError,
    encode_signing_key,
    resolver_from_url,
)
from tenuo_keys.backends.gcp import GCPSecretManagerKeyResolver
from tenuo_keys.testing import assert_no_secret
from tests._gcp_cases import SHARED_STATUS_CASES

CREATED = datetime(2024, 1, 1, tzinfo=timezone.utc)


class FakeClient:
    """In-memory stand-in: secrets by id, versions numbered from 1."""

    def __init__(self) -> None:
        self.secrets: dict[str, list[list[Any]]] = {}  # id -> [[data, state], ...]
        self.labels: dict[str, dict[str, str]] = {}
        self.fail: dict[str, BaseException] = {}
        self.crc: dict[str, int | None] = {}  # "id/n" -> served crc (None: omitted)
        self.calls: list[tuple[str, dict[str, Any], Any, Any]] = []
        self.closed = False

    def add(self, secret_id: str, data: bytes | str, state: str = "ENABLED") -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.secrets.setdefault(secret_id, []).append([raw, state])

    def _enter(self, method: str, request: dict[str, Any], retry: Any, timeout: Any) -> None:
        self.calls.append((method, request, retry, timeout))
        if method in self.fail:
            raise self.fail[method]

    def names(self, method: str) -> list[str]:
        return [c[1].get("name") or c[1].get("parent") for c in self.calls if c[0] == method]

    @staticmethod
    def _split(name: str) -> tuple[str, str]:
        _, _, rest = name.partition("/secrets/")
        secret_id, _, version = rest.partition("/versions/")
        return secret_id, version

    def access_secret_version(self, request: dict[str, Any], retry: Any = None,
                              timeout: Any = None) -> sm.AccessSecretVersionResponse:
        self._enter("access", request, retry, timeout)
        secret_id, version = self._split(request["name"])
        versions = self.secrets.get(secret_id)
        if not versions:
            raise gexc.NotFound("Secret not found")
        number = len(versions) if version == "latest" else int(version)
        if number > len(versions):
            raise gexc.NotFound("Secret Version not found")
        data, state = versions[number - 1]
        if state != "ENABLED":
            raise gexc.FailedPrecondition(f"Secret Version is in {state} state.")
        payload = sm.SecretPayload(data=data)
        crc = self.crc.get(f"{secret_id}/{number}", google_crc32c.value(data))
        if crc is not None:
            payload.data_crc32c = crc
        return sm.AccessSecretVersionResponse(
            name=f"projects/123/secrets/{secret_id}/versions/{number}", payload=payload)

    def list_secret_versions(self, request: dict[str, Any], retry: Any = None,
                             timeout: Any = None) -> list[sm.SecretVersion]:
        self._enter("list_versions", request, retry, timeout)
        assert request["filter"] == "state:ENABLED"
        secret_id, _ = self._split(request["parent"])
        versions = self.secrets.get(secret_id, [])
        # Deliberately oldest first: the resolver must not rely on the order.
        return [
            sm.SecretVersion(name=f"projects/123/secrets/{secret_id}/versions/{n}",
                             state=sm.SecretVersion.State.ENABLED, create_time=CREATED)
            for n, (_, state) in enumerate(versions, 1) if state == "ENABLED"
        ]

    def list_secrets(self, request: dict[str, Any], retry: Any = None,
                     timeout: Any = None) -> list[sm.Secret]:
        self._enter("list_secrets", request, retry, timeout)
        return [sm.Secret(name=f"projects/123/secrets/{s}") for s in sorted(self.secrets)]

    def create_secret(self, request: dict[str, Any], retry: Any = None,
                      timeout: Any = None) -> sm.Secret:
        self._enter("create", request, retry, timeout)
        if request["secret_id"] in self.secrets:
            raise gexc.AlreadyExists("exists")
        self.secrets[request["secret_id"]] = []
        self.labels[request["secret_id"]] = dict(request["secret"].get("labels", {}))
        return sm.Secret(name=f"projects/123/secrets/{request['secret_id']}")

    def add_secret_version(self, request: dict[str, Any], retry: Any = None,
                           timeout: Any = None) -> sm.SecretVersion:
        self._enter("add", request, retry, timeout)
        secret_id, _ = self._split(request["parent"])
        if secret_id not in self.secrets:
            raise gexc.NotFound("Secret not found")
        data = request["payload"]["data"]
        assert request["payload"]["data_crc32c"] == google_crc32c.value(data)
        self.add(secret_id, data)
        number = len(self.secrets[secret_id])
        return sm.SecretVersion(name=f"projects/123/secrets/{secret_id}/versions/{number}")


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def make(client: FakeClient) -> Iterator[Any]:
    made: list[GCPSecretManagerKeyResolver] = []

    def build(**kwargs: Any) -> GCPSecretManagerKeyResolver:
        kwargs.setdefault("cache", CachePolicy(negative_ttl=0.0))
        resolver = GCPSecretManagerKeyResolver("proj", client=client, **kwargs)
        made.append(resolver)
        return resolver

    yield build
    for resolver in made:
        resolver.close()


def _key() -> Any:
    return tenuo_core.SigningKey.generate()


def _resolve(resolver: GCPSecretManagerKeyResolver, key_id: str) -> Any:
    return asyncio.run(resolver.resolve_versions(key_id))


def _pub(key: Any) -> bytes:
    return bytes(key.public_key_bytes())


# -- URLs ----------------------------------------------------------------------


def test_url_maps_one_to_one_onto_constructor_arguments() -> None:
    resolver = resolver_from_url(
        "gcpsm://my-project/svc_{key_id}-holder?field=seed&version=3&previous_versions=2"
        "&label=tenuo=holder&api_endpoint=127.0.0.1:8085&insecure=1&timeout=2.5&ttl=30"
        "&max_staleness=60"
    )
    assert isinstance(resolver, GCPSecretManagerKeyResolver)
    with resolver:
        assert resolver.project == "my-project"
        assert resolver.template == "svc_{key_id}-holder"
        assert resolver.version == "3" and resolver.previous_versions == 2
        assert resolver.label == "tenuo=holder"
        assert resolver.api_endpoint == "127.0.0.1:8085" and resolver.insecure is True
        assert resolver.timeout == 2.5
        assert resolver.cache.policy.ttl == 30 and resolver.cache.policy.max_staleness == 60
        assert resolver._field == "seed"
        assert repr(resolver) == (
            "GCPSecretManagerKeyResolver(project='my-project', template='svc_{key_id}-holder', "
            "endpoint='127.0.0.1:8085', plaintext=True, held=0)"
        )


def test_url_defaults_and_encoded_placeholder() -> None:
    with resolver_from_url("gcpsm://my-project") as resolver:
        assert isinstance(resolver, GCPSecretManagerKeyResolver)
        assert resolver.template == "tenuo-keys-{key_id}"
        assert resolver.version == "latest" and resolver.previous_versions == 1
        assert resolver.api_endpoint is None and resolver.insecure is False
        assert "secretmanager.googleapis.com" in repr(resolver)
    with resolver_from_url("gcpsm://p/k-%7Bkey_id%7D") as resolver:
        assert resolver.secret_id("a1") == "k-a1"  # type: ignore[attr-defined]


def test_url_keyword_arguments_reach_the_constructor(client: FakeClient) -> None:
    client.add("tenuo-keys-agent1", encode_signing_key(_key()))
    with resolver_from_url("gcpsm://p", client=client) as resolver:
        assert len(_resolve(resolver, "agent1")) == 1  # type: ignore[arg-type]
    assert client.names("access") == ["projects/p/secrets/tenuo-keys-agent1/versions/latest"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("gcpsm://p?bogus=1", "does not understand parameter(s): bogus"),
        ("gcpsm://p?token=abc", "must not carry secrets"),
        ("gcpsm://p?credentials=x", "must not carry secrets"),
        ("gcpsm://p:443/x-{key_id}", "no port or user"),
        ("gcpsm://user@p/x-{key_id}", "no port or user"),
        ("gcpsm:///x-{key_id}", "the authority is the project id"),
        ("gcpsm://p/no-placeholder", "exactly once"),
        ("gcpsm://p/{key_id}-{key_id}", "exactly once"),
        ("gcpsm://p/a/b-{key_id}", "only letters, digits"),
        ("gcpsm://p/a.b-{key_id}", "only letters, digits"),
        ("gcpsm://p?version=newest", "'latest' or a number"),
        ("gcpsm://p?version=0", "'latest' or a number"),
        ("gcpsm://p?previous_versions=-1", "previous_versions must be 0 to 10"),
        ("gcpsm://p?previous_versions=11", "previous_versions must be 0 to 10"),
        ("gcpsm://p?previous_versions=x", "not an integer"),
        ("gcpsm://p?insecure=1", "needs api_endpoint"),
        ("gcpsm://p?insecure=1&api_endpoint=secretmanager.googleapis.com:443", "loopback"),
        ("gcpsm://p?insecure=1&api_endpoint=10.0.0.8:8085", "loopback"),
        ("gcpsm://p?insecure=maybe&api_endpoint=127.0.0.1:1", "not a boolean"),
        ("gcpsm://p?label=Tenuo=x", "GCP label"),
        ("gcpsm://p?label=tenuo", "GCP label"),
        ("gcpsm://p?timeout=0", "timeout must be > 0"),
        ("gcpsm://p?timeout=none", "timeout must be a number"),
        ("gcpsm://p?ttl=-1", "CachePolicy.ttl"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ResolverConfigError) as info:
        resolver_from_url(url)
    assert message in str(info.value)


def test_conflicting_arguments_are_refused(client: FakeClient) -> None:
    with pytest.raises(ResolverConfigError, match="either client= or"):
        GCPSecretManagerKeyResolver("p", client=client, api_endpoint="127.0.0.1:1")
    with pytest.raises(ResolverConfigError, match="sends no credentials"):
        GCPSecretManagerKeyResolver("p", api_endpoint="127.0.0.1:1", insecure=True,
                                    credentials=object())  # type: ignore[arg-type]
    with pytest.raises(ResolverConfigError, match="use one"):
        resolver_from_url("gcpsm://p?ttl=5", cache=CachePolicy())
    with pytest.raises(ResolverConfigError, match="invalid GCP project"):
        GCPSecretManagerKeyResolver("projects/p")
    # localhost and IPv6 loopback are fine for a test server.
    GCPSecretManagerKeyResolver("p", api_endpoint="localhost:1", insecure=True).close()
    GCPSecretManagerKeyResolver("p", api_endpoint="[::1]:1", insecure=True).close()


# -- id mapping -------------------------------------------------------------------


def test_key_ids_map_to_secret_ids_through_the_template(make: Any) -> None:
    resolver = make(template="svc-{key_id}_holder")
    assert resolver.secret_id("agent-1_A") == "svc-agent-1_A_holder"


@pytest.mark.parametrize("key_id", ["a.b", "tenant/agent", "agent@corp", "sp ace", "ägent",
                                    "x" * 250])
def test_key_ids_no_secret_can_hold_are_not_found_without_a_call(
    make: Any, client: FakeClient, key_id: str,
) -> None:
    resolver = make()
    with pytest.raises(KeyNotFound) as info:
        _resolve(resolver, key_id)
    assert "letters, digits, '_' and '-'" in info.value.reason
    assert info.value.key_id == key_id and info.value.retryable is False
    assert client.calls == []


def test_list_maps_secret_ids_back_with_a_prefix_filter(make: Any, client: FakeClient) -> None:
    for secret_id in ("tenuo-keys-a1", "tenuo-keys-b_2", "tenuo-keys-", "other-c",
                      "x-tenuo-keys-d"):
        client.add(secret_id, "v")
    assert make().list_key_ids() == ["a1", "b_2"]
    _, request, retry, timeout = client.calls[-1]
    assert request == {"parent": "projects/proj", "filter": 'name:"tenuo-keys-"',
                       "page_size": 250}
    assert retry is None and timeout == 10.0


def test_list_filters(make: Any, client: FakeClient) -> None:
    client.add("a-holder", "v")
    client.add("b-other", "v")
    assert make(template="{key_id}-holder").list_key_ids() == ["a"]
    assert client.calls[-1][1]["filter"] == 'name:"-holder"'
    assert make(template="{key_id}").list_key_ids() == ["a-holder", "b-other"]
    assert client.calls[-1][1]["filter"] == ""
    make(label="tenuo=holder").list_key_ids()
    assert client.calls[-1][1]["filter"] == "labels.tenuo=holder"


# -- error mapping ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected", "retryable", "says"),
    [
        (gexc.NotFound("nope"), KeyNotFound, False, "does not exist"),
        (gexc.FailedPrecondition("Secret Version is in DISABLED state."), KeyNotFound, False,
         "disabled or destroyed"),
        (gexc.PermissionDenied("Permission 'secretmanager.versions.access' denied"),
         KeyAccessDenied, False, "secretmanager.versions.access"),
        *SHARED_STATUS_CASES,
        (gexc.RetryError("gave up", cause=gexc.ServiceUnavailable("down")), BackendUnavailable,
         True, "retries exhausted"),
        (gexc.MethodNotImplemented("no"), KeyResolutionError, False, "is api_endpoint"),
        (gexc.InvalidArgument("bad name"), KeyResolutionError, False, "INVALID_ARGUMENT"),
        (auth_exc.TransportError("metadata server down"), BackendUnavailable, True,
         "refresh Google credentials"),
        (auth_exc.RefreshError("invalid_grant"), KeyAccessDenied, False, "RefreshError"),
        (auth_exc.DefaultCredentialsError("none"), KeyAccessDenied, False,
         "DefaultCredentialsError"),
        (ValueError("boom"), KeyResolutionError, False, "unexpected ValueError"),
    ],
)
def test_status_codes_map_to_error_types(
    make: Any, client: FakeClient, exc: BaseException, expected: type, retryable: bool,
    says: str,
) -> None:
    client.add("tenuo-keys-agent1", encode_signing_key(_key()))
    client.fail["access"] = exc
    with pytest.raises(KeyResolutionError) as info:
        _resolve(make(), "agent1")
    error = info.value
    assert type(error) is expected
    assert error.retryable is retryable
    assert error.key_id == "agent1" and error.backend == "gcp"
    assert says in str(error)


def test_listing_errors_are_mapped_too(make: Any, client: FakeClient) -> None:
    client.fail["list_secrets"] = gexc.PermissionDenied("Permission 'secretmanager.secrets.list'")
    with pytest.raises(KeyAccessDenied, match=r"secretmanager\.secrets\.list"):
        make().list_key_ids()
    client.fail["list_secrets"] = gexc.ServiceUnavailable("down")
    with pytest.raises(BackendUnavailable):
        make().preload_all()


# -- checksums --------------------------------------------------------------------


def test_crc_mismatch_is_rejected(make: Any, client: FakeClient) -> None:
    key = _key()
    client.add("tenuo-keys-agent1", encode_signing_key(key))
    client.crc["tenuo-keys-agent1/1"] = 12345
    with pytest.raises(KeyFormatError) as info:
        _resolve(make(), "agent1")
    assert "payload checksum mismatch" in info.value.reason
    assert info.value.retryable is True and info.value.key_id == "agent1"
    assert_no_secret(str(info.value) + repr(info.value), [key])


def test_missing_crc_is_accepted_with_one_warning(
    make: Any, client: FakeClient, caplog: pytest.LogCaptureFixture,
) -> None:
    keys = {f"agent{i}": _key() for i in range(2)}
    for key_id, key in keys.items():
        client.add(f"tenuo-keys-{key_id}", encode_signing_key(key))
        client.crc[f"tenuo-keys-{key_id}/1"] = None
    resolver = make()
    for key_id, key in keys.items():
        assert _resolve(resolver, key_id).current_public == _pub(key)
    assert caplog.text.count("without data_crc32c") == 1


# -- versions ---------------------------------------------------------------------


def test_previous_versions_newest_first_and_reused(make: Any, client: FakeClient) -> None:
    keys = [_key() for _ in range(4)]
    for key in keys:
        client.add("tenuo-keys-agent1", encode_signing_key(key))
    client.secrets["tenuo-keys-agent1"][1][1] = "DISABLED"  # version 2
    # The window is versions 3 and 2; the disabled 2 is a hole, and 1 stays out of it.
    assert [v.version for v in _resolve(make(previous_versions=2), "agent1").versions] == [
        "4", "3"]
    client.calls.clear()
    resolver = make(previous_versions=3, timeout=3.0)
    versions = _resolve(resolver, "agent1")
    assert [v.version for v in versions.versions] == ["4", "3", "1"]
    assert [v.public for v in versions.versions] == [_pub(keys[3]), _pub(keys[2]), _pub(keys[0])]
    assert all(retry is None and timeout == 3.0 for _, _, retry, timeout in client.calls)
    # A refresh lists again but does not re-read immutable previous payloads.
    client.calls.clear()
    resolver.cache.refresh("agent1").result(5)
    assert [c[0] for c in client.calls] == ["access", "list_versions"]


def test_previous_versions_zero_never_lists(make: Any, client: FakeClient) -> None:
    client.add("tenuo-keys-agent1", encode_signing_key(_key()))
    client.add("tenuo-keys-agent1", encode_signing_key(_key()))
    assert len(_resolve(make(previous_versions=0), "agent1")) == 1
    assert [c[0] for c in client.calls] == ["access"]


def test_pinned_version_holds_older_enabled_versions_only(make: Any,
                                                           client: FakeClient) -> None:
    for _ in range(3):
        client.add("tenuo-keys-agent1", encode_signing_key(_key()))
    versions = _resolve(make(version="2"), "agent1")
    assert [v.version for v in versions.versions] == ["2", "1"]
    assert client.names("access")[0].endswith("/versions/2")


def test_list_denied_holds_current_only_with_one_warning(
    make: Any, client: FakeClient, caplog: pytest.LogCaptureFixture,
) -> None:
    client.add("tenuo-keys-agent1", encode_signing_key(_key()))
    client.add("tenuo-keys-agent1", encode_signing_key(_key()))
    client.fail["list_versions"] = gexc.PermissionDenied("Permission denied")
    resolver = make()
    assert [v.version for v in _resolve(resolver, "agent1").versions] == ["2"]
    resolver.cache.refresh("agent1").result(5)
    assert caplog.text.count("secretmanager.versions.list") == 1


def test_bad_previous_version_is_skipped_not_fatal(
    make: Any, client: FakeClient, caplog: pytest.LogCaptureFixture,
) -> None:
    old, new = _key(), _key()
    client.add("tenuo-keys-agent1", encode_signing_key(old))
    client.add("tenuo-keys-agent1", "garbage")
    client.add("tenuo-keys-agent1", encode_signing_key(new))
    client.crc["tenuo-keys-agent1/1"] = 1  # corrupted
    versions = _resolve(make(previous_versions=2), "agent1")
    assert [v.version for v in versions.versions] == ["3"]
    assert "skipping previous version 2" in caplog.text
    assert "skipping previous version 1" in caplog.text
    assert_no_secret(caplog.text, [old, new])


# -- writes -------------------------------------------------------------------------


def test_store_key_creates_the_secret_then_adds_versions(make: Any, client: FakeClient) -> None:
    resolver = make(label="tenuo=holder")
    first, second = encode_signing_key(_key()), encode_signing_key(_key())
    assert resolver.store_key("agent1", first) == "1"
    assert [c[0] for c in client.calls] == ["add", "create", "add"]
    create = client.calls[1][1]
    assert create == {"parent": "projects/proj", "secret_id": "tenuo-keys-agent1",
                      "secret": {"replication": {"automatic": {}},
                                 "labels": {"tenuo": "holder"}}}
    assert all(c[2] is None for c in client.calls)  # writes are never retried
    client.calls.clear()
    assert resolver.store_key("agent1", second) == "2"
    assert [c[0] for c in client.calls] == ["add"]
    with pytest.raises(KeyResolutionError) as info:
        resolver.store_key("a.b", first)
    assert type(info.value) is KeyResolutionError
    assert info.value.reason.startswith("this key id cannot name a GCP secret")


def test_store_key_errors_do_not_echo_the_material(make: Any, client: FakeClient) -> None:
    key = _key()
    client.fail["add"] = gexc.PermissionDenied("Permission 'secretmanager.versions.add' denied")
    with pytest.raises(KeyAccessDenied) as info:
        make().store_key("agent1", encode_signing_key(key))
    assert "secretmanager.versions.add" in str(info.value)
    assert_no_secret(str(info.value) + repr(info.value), [key])


# -- logging, lifecycle ---------------------------------------------------------------


def test_transport_payload_logs_are_dropped() -> None:
    name = "google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc"
    transport_logger = logging.getLogger(name)

    def record(rpc: str, **extra: Any) -> logging.LogRecord:
        return transport_logger.makeRecord(name, logging.DEBUG, __file__, 1,
                                           f"Received response for {rpc}.", (), None,
                                           extra={"rpcName": rpc, **extra})

    access = "/google.cloud.secretmanager.v1.SecretManagerService/AccessSecretVersion"
    listing = "/google.cloud.secretmanager.v1.SecretManagerService/ListSecrets"
    assert not transport_logger.filter(record(access, response={"payload": "c2VjcmV0"}))
    assert not transport_logger.filter(record(access.replace("Access", "Add"),
                                              request={"payload": "c2VjcmV0"}))
    assert transport_logger.filter(record(listing, response={"payload": "{}"}))


def test_unreachable_endpoint_is_backend_unavailable_and_close_releases() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    resolver = GCPSecretManagerKeyResolver("p", api_endpoint=f"127.0.0.1:{port}",
                                           insecure=True, timeout=2.0)
    with pytest.raises(BackendUnavailable) as info:
        _resolve(resolver, "agent1")
    assert info.value.retryable is True and "UNAVAILABLE" in info.value.reason
    resolver.close()
    with pytest.raises(ResolverClosed):
        resolver.store_key("agent1", encode_signing_key(_key()))
    resolver.close()  # twice is harmless


def test_injected_client_is_not_closed(client: FakeClient) -> None:
    client.transport = type("T", (), {"close": lambda self: setattr(client, "closed", True)})()  # type: ignore[attr-defined]
    resolver = GCPSecretManagerKeyResolver("p", client=client)
    resolver.close()
    assert client.closed is False


def test_the_project_may_come_from_google_cloud_project(monkeypatch: Any) -> None:
    monkeypatch.delenv("GCLOUD_PROJECT", raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    with resolver_from_url("gcpsm:///tenuo-keys-{key_id}", client=FakeClient()) as resolver:
        assert isinstance(resolver, GCPSecretManagerKeyResolver)
        assert resolver.project == "env-project"
        assert resolver.secret_id("agent1") == "tenuo-keys-agent1"
    with resolver_from_url("gcpsm://url-project/x-{key_id}", client=FakeClient()) as resolver:
        assert resolver.project == "url-project"  # the URL wins
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    with pytest.raises(ResolverConfigError, match="leave it empty and set GOOGLE_CLOUD_PROJECT"):
        resolver_from_url("gcpsm:///tenuo-keys-{key_id}", client=FakeClient())


def _credentials_problem(monkeypatch: Any, path: str) -> str:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
    with resolver_from_url("gcpsm://p/tenuo-keys-{key_id}") as resolver, \
            pytest.raises(KeyAccessDenied) as info:
        _resolve(resolver, "agent1")
    return info.value.reason


def test_a_wrong_google_application_credentials_path_is_named(monkeypatch: Any,
                                                               tmp_path: Any) -> None:
    missing = str(tmp_path / "missing.json")
    reason = _credentials_problem(monkeypatch, missing)
    assert f"GOOGLE_APPLICATION_CREDENTIALS={missing!r} does not exist" in reason
    assert "credentials=" not in reason
    assert "is a directory" in _credentials_problem(monkeypatch, str(tmp_path))
    junk = tmp_path / "junk.json"
    junk.write_text("{}")
    assert "is not a credentials file" in _credentials_problem(monkeypatch, str(junk))
