"""``GCPSecretManagerKeyResolver`` against a real gRPC server, with the real client.

GCP has no emulator: ``integration/support/gcp_sm_server.py`` is a small Secret Manager
speaking the real protocol with the message classes ``google-cloud-secret-manager``
ships; the resolver's own ``SecretManagerServiceClient`` talks to it over
loopback. Every test isolates itself with unique secret ids.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from typing import Any

import pytest
import tenuo_core
from click.testing import CliRunner

from integration.support.gcp import GCPServer, make_gcp_client
from integration.support.resolver_checks import fails_closed_for, retry_sync
from tenuo_keys import (
    BackendUnavailable,
    CachePolicy,
    CacheStats,
    HolderMismatch,
    KeyAccessDenied,
    KeyFormatError,
    KeyNotFound,
    KeyNotLoaded,
    KeyResolutionError,
    decode_signing_key,
    encode_signing_key,
    resolver_from_url,
)
from tenuo_keys.backends.gcp import GCPSecretManagerKeyResolver
from tenuo_keys.cli import main
from tenuo_keys.testing import (
    ResolverConformance,
    ResolverHarness,
    assert_no_secret,
    material,
    wait_for_sync,
)

pytestmark = pytest.mark.integration


def _same(a: Any, b: Any) -> bool:
    return bytes(a.public_key_bytes()) == bytes(b.public_key_bytes())


def _b64(key: Any) -> str:
    return base64.b64encode(bytes(key.public_key_bytes())).decode()


def _template() -> str:
    return f"t{uuid.uuid4().hex[:10]}-{{key_id}}"


def _resolver(server: GCPServer, template: str, **kwargs: Any) -> GCPSecretManagerKeyResolver:
    return GCPSecretManagerKeyResolver(
        server.project, template, api_endpoint=server.endpoint, insecure=True, **kwargs
    )


def _sid(template: str, key_id: str) -> str:
    return template.replace("{key_id}", key_id)


def _labels(resolver: GCPSecretManagerKeyResolver, key_id: str) -> list[str | None]:
    return [v.version for v in resolver.cache.get_blocking(key_id, 10).versions]


# -- conformance -----------------------------------------------------------


class GCPHarness(ResolverHarness):
    """Keys stored through the real client; rotation is ``AddSecretVersion``."""

    binary_values = True

    def __init__(self, server: GCPServer) -> None:
        self.server = server
        self.template = _template()

    def make_resolver(self, *, cache, observers):
        return _resolver(self.server, self.template, cache=cache, observers=observers)

    def put(self, key_id, value):
        self.server.put(_sid(self.template, key_id), value)

    def rotate(self, key_id, value):
        self.server.put(_sid(self.template, key_id), value)


class TestGCPConformance(ResolverConformance):
    @pytest.fixture
    def harness(self, gcp_sm):
        return GCPHarness(gcp_sm)


# -- rotation ----------------------------------------------------------------


def test_rotation_holds_current_and_previous_enabled_versions(gcp_sm: GCPServer) -> None:
    template, key_id = _template(), "agent1"
    old, new = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    gcp_sm.put(_sid(template, key_id), material(old, "base64"))
    with _resolver(gcp_sm, template) as resolver:
        assert resolver.preload([key_id]) == 1
        assert _labels(resolver, key_id) == ["1"]

        gcp_sm.put(_sid(template, key_id), material(new, "raw-32"))
        resolver.cache.refresh(key_id).result(10)
        assert _labels(resolver, key_id) == ["2", "1"]
        assert _same(resolver.resolve_sync(key_id), new)
        assert _same(resolver.resolve_for_holder_sync(key_id, new.public_key), new)
        assert _same(resolver.resolve_for_holder_sync(key_id, old.public_key), old)

        # A steady refresh reads the current version and lists; the previous
        # version's payload is immutable and is not read again.
        gcp_sm.control.stats(reset=True)
        resolver.cache.refresh(key_id).result(10)
        calls = gcp_sm.control.stats()["calls"]
        assert calls == {"AccessSecretVersion": 1, "ListSecretVersions": 1}

        # A disabled previous version is no longer held.
        gcp_sm.client.disable_secret_version(
            request={"name": f"{gcp_sm.secret_path(_sid(template, key_id))}/versions/1"}
        )
        resolver.cache.refresh(key_id).result(10)
        assert _labels(resolver, key_id) == ["2"]
        with pytest.raises(HolderMismatch):
            resolver.resolve_for_holder_sync(key_id, old.public_key)
        assert _same(resolver.resolve_for_holder_sync(key_id, new.public_key), new)


def test_previous_versions_count_and_zero(gcp_sm: GCPServer) -> None:
    template, key_id = _template(), "agent1"
    keys = [tenuo_core.SigningKey.generate() for _ in range(4)]
    for key in keys:
        gcp_sm.put(_sid(template, key_id), material(key, "hex"))
    with _resolver(gcp_sm, template, previous_versions=2) as resolver:
        assert _labels(resolver, key_id) == ["4", "3", "2"]
    gcp_sm.control.stats(reset=True)
    with _resolver(gcp_sm, template, previous_versions=0) as resolver:
        assert _labels(resolver, key_id) == ["4"]
    assert gcp_sm.control.stats()["calls"] == {"AccessSecretVersion": 1}


def test_pinned_version(gcp_sm: GCPServer) -> None:
    template, key_id = _template(), "agent1"
    first, second = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    gcp_sm.put(_sid(template, key_id), material(first, "base64"))
    gcp_sm.put(_sid(template, key_id), material(second, "base64"))
    with _resolver(gcp_sm, template, version="1") as resolver:
        assert _same(asyncio.run(resolver.resolve(key_id)), first)
        assert _labels(resolver, key_id) == ["1"]


def test_disabled_current_version_fails_closed(gcp_sm: GCPServer) -> None:
    template, key_id = _template(), "agent1"
    key = tenuo_core.SigningKey.generate()
    gcp_sm.put(_sid(template, key_id), material(key, "base64"))
    with _resolver(gcp_sm, template, cache=CachePolicy(negative_ttl=0.05)) as resolver:
        resolver.preload([key_id])
        gcp_sm.client.disable_secret_version(
            request={"name": f"{gcp_sm.secret_path(_sid(template, key_id))}/versions/1"}
        )
        with pytest.raises(KeyNotFound) as info:
            resolver.cache.refresh(key_id).result(10)
        assert "disabled" in info.value.reason
        assert info.value.retryable is False
        # A revocation is never papered over by the cache: memory is dropped.
        with pytest.raises(KeyResolutionError):
            resolver.resolve_sync(key_id)


# -- outage: stale-if-error, then fail closed, then recovery -------------------


@pytest.mark.asyncio
async def test_outage_serves_warm_keys_within_max_staleness_then_fails_closed(
    gcp_sm_factory: Any,
) -> None:
    server = gcp_sm_factory(state=True)
    template = _template()
    keys = {f"agent{i}": tenuo_core.SigningKey.generate() for i in range(3)}
    for key_id, key in keys.items():
        server.put(_sid(template, key_id), material(key, "base64"))
    policy = CachePolicy(ttl=1.0, jitter=0.0, refresh_ahead=0.0, max_staleness=2.0,
                         negative_ttl=0.1, error_backoff=0.1, max_backoff=0.2)
    stats = CacheStats()
    with _resolver(server, template, cache=policy, observers=[stats], timeout=2.0) as resolver:
        loaded_from = time.monotonic()
        assert resolver.preload_all(strict=True) == 3
        loaded_by = time.monotonic()
        first_pid = server.pid
        server.stop()

        # Within ttl + max_staleness, warm keys keep serving, from memory.
        while time.monotonic() < loaded_from + 1.0 + 2.0 - 0.3:
            for key_id, key in keys.items():
                assert _same(resolver.resolve_sync(key_id), key)
                assert _same(await resolver.resolve(key_id), key)
            await asyncio.sleep(0.05)
        snapshot = stats.snapshot()
        assert snapshot["stale"] > 0 and snapshot["error"] > 0, snapshot

        # Past it, every call fails closed. The memory-only path may answer the
        # very first call with KeyNotLoaded (the shared cache starts a load and
        # has no remembered error yet); after that it is BackendUnavailable.
        await asyncio.sleep(max(0.0, loaded_by + 3.0 + 0.1 - time.monotonic()))
        with pytest.raises((BackendUnavailable, KeyNotLoaded)):
            resolver.resolve_sync("agent0")
        for key_id in keys:
            with pytest.raises(BackendUnavailable) as info:
                await resolver.resolve(key_id)
            assert info.value.retryable is True and info.value.key_id == key_id
        await fails_closed_for(resolver, keys, 0.5)

        # The same server comes back on the same port with its state: the
        # same resolver recovers without being rebuilt.
        server.start()
        assert server.pid != first_pid and server.state is not None and server.state.exists()
        deadline = time.monotonic() + 15
        while True:
            try:
                found = await resolver.resolve("agent0")
                break
            except BackendUnavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        assert _same(found, keys["agent0"])
        for key_id, key in keys.items():
            assert _same(wait_for_sync(resolver, key_id, call=lambda k=key_id: retry_sync(
                resolver, k, 10)), key)


# -- bad data --------------------------------------------------------------------


@pytest.mark.parametrize("case", ["malformed", "raw-31-bytes", "json-missing-field", "crc"])
def test_bad_data_is_a_format_error_without_secret_bytes(
    gcp_sm: GCPServer, case: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    template, key_id = _template(), f"bad-{case}"
    key = tenuo_core.SigningKey.generate()
    seed = bytes(key.secret_key_bytes())
    values: dict[str, bytes | str] = {
        "malformed": "seed: " + seed.hex(),
        "raw-31-bytes": seed[:31],
        "json-missing-field": json.dumps({"private": base64.b64encode(seed).decode()}),
        "crc": material(key, "base64"),
    }
    secret_id = _sid(template, key_id)
    version = gcp_sm.put(secret_id, values[case])
    expected = {
        "malformed": "not a key",
        "raw-31-bytes": "31 bytes",
        "json-missing-field": "no field 'key'",
        "crc": "payload checksum mismatch",
    }[case]
    if case == "crc":
        gcp_sm.control.configure(corrupt_crc=[f"{secret_id}/{version}"])
    try:
        with _resolver(gcp_sm, template) as resolver, pytest.raises(KeyFormatError) as info:
            asyncio.run(resolver.resolve(key_id))
    finally:
        gcp_sm.control.reset()
    error = info.value
    assert error.key_id == key_id and error.backend == "gcp"
    assert expected in error.reason
    # A checksum mismatch is usually transit corruption: retryable. Bad data is not.
    assert error.retryable is (case == "crc")
    for text in (str(error), repr(error), caplog.text):
        assert_no_secret(text, [key])


def test_missing_crc_is_accepted_and_noted(
    gcp_sm: GCPServer, caplog: pytest.LogCaptureFixture,
) -> None:
    template, key_id = _template(), "agent1"
    key = tenuo_core.SigningKey.generate()
    gcp_sm.put(_sid(template, key_id), material(key, "base64"))
    gcp_sm.control.configure(omit_crc=[_sid(template, key_id)])
    try:
        with _resolver(gcp_sm, template) as resolver:
            assert _same(asyncio.run(resolver.resolve(key_id)), key)
    finally:
        gcp_sm.control.reset()
    assert "without data_crc32c" in caplog.text
    assert_no_secret(caplog.text, [key])


def test_debug_logging_of_the_google_transport_does_not_leak_payloads(
    gcp_sm: GCPServer,
) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    google = logging.getLogger("google")
    handler, level = Keep(level=logging.DEBUG), google.level
    google.addHandler(handler)
    google.setLevel(logging.DEBUG)
    template, key_id = _template(), "agent1"
    key = tenuo_core.SigningKey.generate()
    try:
        with _resolver(gcp_sm, template) as resolver:
            resolver.store_key(key_id, encode_signing_key(key))
            assert _same(asyncio.run(resolver.resolve(key_id)), key)
    finally:
        google.removeHandler(handler)
        google.setLevel(level)
    rpcs = {str(getattr(r, "rpcName", "")) for r in records}
    assert any(r.endswith("ListSecretVersions") for r in rpcs), "transport logging was off"
    for record in records:
        assert_no_secret(repr(record.__dict__), [key], "a google transport log record")


# -- access control ------------------------------------------------------------


def test_denied_secret_is_access_denied(gcp_sm: GCPServer) -> None:
    template, key_id = _template(), "agent1"
    gcp_sm.put(_sid(template, key_id), material(tenuo_core.SigningKey.generate(), "base64"))
    gcp_sm.control.configure(deny=[_sid(template, key_id)])
    try:
        with _resolver(gcp_sm, template) as resolver, pytest.raises(KeyAccessDenied) as info:
            asyncio.run(resolver.resolve(key_id))
    finally:
        gcp_sm.control.reset()
    assert info.value.key_id == key_id and info.value.retryable is False
    assert "secretmanager.versions.access" in info.value.reason


def test_rejected_bearer_token_is_access_denied(gcp_sm: GCPServer) -> None:
    template, key_id = _template(), "agent1"
    key = tenuo_core.SigningKey.generate()
    gcp_sm.put(_sid(template, key_id), material(key, "base64"))
    gcp_sm.control.configure(token="right-token")
    bad, good = make_gcp_client(gcp_sm.endpoint, "wrong"), make_gcp_client(gcp_sm.endpoint,
                                                                           "right-token")
    try:
        with GCPSecretManagerKeyResolver(gcp_sm.project, template, client=bad) as resolver, \
                pytest.raises(KeyAccessDenied) as info:
            asyncio.run(resolver.resolve(key_id))
        assert "unauthenticated" in info.value.reason
        with GCPSecretManagerKeyResolver(gcp_sm.project, template, client=good) as resolver:
            assert _same(asyncio.run(resolver.resolve(key_id)), key)
        # An injected client belongs to the caller: close() leaves it open.
        assert good.get_secret(request={"name": gcp_sm.secret_path(_sid(template, key_id))})
    finally:
        gcp_sm.control.reset()
        bad.transport.close()
        good.transport.close()


@pytest.mark.parametrize(
    ("code", "expected", "retryable"),
    [
        ("UNAVAILABLE", BackendUnavailable, True),
        ("DEADLINE_EXCEEDED", BackendUnavailable, True),
        ("RESOURCE_EXHAUSTED", BackendUnavailable, True),
        ("INTERNAL", BackendUnavailable, True),
        ("UNAUTHENTICATED", KeyAccessDenied, False),
        ("PERMISSION_DENIED", KeyAccessDenied, False),
        ("NOT_FOUND", KeyNotFound, False),
        ("FAILED_PRECONDITION", KeyNotFound, False),
        ("INVALID_ARGUMENT", KeyResolutionError, False),
    ],
)
def test_grpc_status_codes_map_to_error_types(
    gcp_sm: GCPServer, code: str, expected: type[KeyResolutionError], retryable: bool,
) -> None:
    template, key_id = _template(), "agent1"
    gcp_sm.put(_sid(template, key_id), material(tenuo_core.SigningKey.generate(), "base64"))
    gcp_sm.control.configure(fail={"code": code, "count": 1,
                                   "methods": ["AccessSecretVersion"]})
    try:
        with _resolver(gcp_sm, template) as resolver, pytest.raises(expected) as info:
            asyncio.run(resolver.resolve(key_id))
    finally:
        gcp_sm.control.reset()
    assert type(info.value) is expected
    assert info.value.retryable is retryable and info.value.key_id == key_id


# -- discovery -------------------------------------------------------------------


def test_preload_all_by_prefix(gcp_sm: GCPServer) -> None:
    template = _template()
    keys = {f"agent{i}": tenuo_core.SigningKey.generate() for i in range(3)}
    for key_id, key in keys.items():
        gcp_sm.put(_sid(template, key_id), material(key, "base64"))
    gcp_sm.put(f"other-{uuid.uuid4().hex[:8]}", material(tenuo_core.SigningKey.generate(), "hex"))
    gcp_sm.control.stats(reset=True)
    with _resolver(gcp_sm, template) as resolver:
        assert resolver.list_key_ids() == sorted(keys)
        assert resolver.preload_all(strict=True) == 3
        for key_id, key in keys.items():
            assert _same(resolver.resolve_sync(key_id), key)
    assert gcp_sm.control.calls("ListSecrets") == 2


def test_preload_all_by_label(gcp_sm: GCPServer) -> None:
    template = _template()
    label = f"tenuo=h{uuid.uuid4().hex[:10]}"
    name, value = label.split("=")
    labelled = {f"agent{i}": tenuo_core.SigningKey.generate() for i in range(2)}
    for key_id, key in labelled.items():
        gcp_sm.put(_sid(template, key_id), material(key, "base64"), labels={name: value})
    gcp_sm.put(_sid(template, "unlabelled"), material(tenuo_core.SigningKey.generate(), "hex"))
    with _resolver(gcp_sm, template, label=label) as resolver:
        # store_key labels the secrets it creates, so they are discovered too.
        stored = tenuo_core.SigningKey.generate()
        assert resolver.store_key("agent9", encode_signing_key(stored)) == "1"
        labelled["agent9"] = stored
        assert resolver.list_key_ids() == sorted(labelled)
        assert resolver.preload_all(strict=True) == 3
        for key_id, key in labelled.items():
            assert _same(resolver.resolve_sync(key_id), key)
    with _resolver(gcp_sm, template) as by_prefix:
        assert by_prefix.list_key_ids() == sorted([*labelled, "unlabelled"])


# -- URL ---------------------------------------------------------------------------


def test_resolver_from_url(gcp_sm: GCPServer) -> None:
    key_id = f"url{uuid.uuid4().hex[:8]}"
    key = tenuo_core.SigningKey.generate()
    gcp_sm.put(f"tenuo-keys-{key_id}", material(key, "pem"))
    url = (f"gcpsm://{gcp_sm.project}/tenuo-keys-{{key_id}}"
           f"?api_endpoint={gcp_sm.endpoint}&insecure=1&ttl=30&previous_versions=0")
    with resolver_from_url(url) as resolver:
        assert isinstance(resolver, GCPSecretManagerKeyResolver)
        assert resolver.cache.policy.ttl == 30 and resolver.previous_versions == 0
        assert _same(asyncio.run(resolver.resolve(key_id)), key)
        assert gcp_sm.endpoint in repr(resolver) and gcp_sm.project in repr(resolver)
        assert_no_secret(repr(resolver), [key])


# -- CLI ---------------------------------------------------------------------------


def _stored_keys(server: GCPServer, secret_id: str) -> list[Any]:
    out = []
    for version in server.client.list_secret_versions(
        request={"parent": server.secret_path(secret_id)}
    ):
        data = server.client.access_secret_version(request={"name": version.name}).payload.data
        out.append(decode_signing_key(data))
    return out


def test_cli_put_rotate_public_doctor(gcp_sm: GCPServer) -> None:
    template = _template()
    url = gcp_sm.url(template)
    runner = CliRunner()

    put = runner.invoke(main, ["put", url, "agent1"])
    assert put.exit_code == 0, put.output
    assert put.output.startswith("stored agent1 (version 1); public key (base64): ")
    first = _stored_keys(gcp_sm, _sid(template, "agent1"))
    assert len(first) == 1 and _b64(first[0]) in put.output

    again = runner.invoke(main, ["put", url, "agent1"])
    assert again.exit_code == 1 and "already exists" in again.output

    rotate = runner.invoke(main, ["rotate", url, "agent1"])
    assert rotate.exit_code == 0, rotate.output
    new, old = _stored_keys(gcp_sm, _sid(template, "agent1"))
    assert _same(old, first[0])
    lines = rotate.output.splitlines()
    assert lines[0] == "rotated agent1 (version 2); held versions:"
    assert lines[1].split() == ["2", _b64(new)] and lines[2].split() == ["1", _b64(old)]

    public = runner.invoke(main, ["public", url, "agent1"])
    assert public.exit_code == 0 and public.stdout.strip() == _b64(new)

    doctor = runner.invoke(main, ["doctor", url])
    assert doctor.exit_code == 0, doctor.output
    assert "1 key(s) listed" in doctor.output
    assert "agent1" in doctor.output and "2 version(s)" in doctor.output

    gcp_sm.put(_sid(template, "broken"), "definitely not a key")
    sick = runner.invoke(main, ["doctor", url])
    assert sick.exit_code == 2
    broken = next(line for line in sick.output.splitlines() if line.startswith("broken"))
    assert "FAIL" in broken and "KeyFormatError" in broken
    assert any(line.startswith("agent1") and " ok " in line for line in sick.output.splitlines())

    missing = runner.invoke(main, ["rotate", url, "nobody"])
    assert missing.exit_code == 1 and "does not exist" in missing.output

    for result in (put, again, rotate, public, doctor, sick, missing):
        assert_no_secret(result.output, [new, old], "CLI output")
