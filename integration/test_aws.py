"""``AWSSecretsManagerKeyResolver`` against a real ``moto_server`` (no mocks in process).

Every test isolates itself with a secret name template of its own; scenarios
that stop the server or switch on IAM get a private server (``moto_factory``).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import logging
import threading
import time
import uuid
from typing import Any

import pytest
import tenuo_core
from botocore.awsrequest import AWSResponse
from click.testing import CliRunner

from integration.support.procs import free_port
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
    ResolverConfigError,
    decode_signing_key,
    encode_signing_key,
    resolver_from_url,
)
from tenuo_keys.backends.aws import AWSSecretsManagerKeyResolver
from tenuo_keys.cli import main
from tenuo_keys.testing import (
    ResolverConformance,
    ResolverHarness,
    assert_no_secret,
    wait_for_sync,
)

pytestmark = pytest.mark.integration


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def _gen() -> Any:
    return tenuo_core.SigningKey.generate()


def _same(a: Any, b: Any) -> bool:
    return bytes(a.public_key_bytes()) == bytes(b.public_key_bytes())


def _seed(key: Any) -> bytes:
    return bytes(key.secret_key_bytes())


class Calls:
    """Counts Secrets Manager API calls made through one client (botocore event hook)."""

    def __init__(self, client: Any) -> None:
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        client.meta.events.register("before-call.secrets-manager", self._on_call)

    def _on_call(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.counts[model.name] += 1

    def __getitem__(self, operation: str) -> int:
        with self._lock:
            return self.counts[operation]


def _store(admin: Any, name: str, value: bytes | str) -> str:
    """Create or overwrite ``name``; returns the new VersionId (the old becomes AWSPREVIOUS)."""
    kw: dict[str, Any] = {"SecretBinary": value} if isinstance(value, bytes) else {
        "SecretString": value}
    try:
        return str(admin.put_secret_value(SecretId=name, **kw)["VersionId"])
    except admin.exceptions.ResourceNotFoundException:
        return str(admin.create_secret(Name=name, **kw)["VersionId"])


# --------------------------------------------------------------------------- conformance


class AWSHarness(ResolverHarness):
    """Keys stored through boto3 in moto_server, under a template unique to the test."""

    binary_values = True  # SecretBinary
    supports_rotation = True  # PutSecretValue keeps AWSPREVIOUS
    supports_listing = True  # ListSecrets

    def __init__(self, server: Any) -> None:
        self.admin = server.client()
        self.template = f"tenuo/conf-{_uid()}/{{key_id}}"

    def make_resolver(self, *, cache, observers):
        return AWSSecretsManagerKeyResolver(self.template, client=self.admin, cache=cache,
                                            observers=observers)

    def put(self, key_id, value):
        _store(self.admin, self.template.replace("{key_id}", key_id), value)


class TestAWSConformance(ResolverConformance):
    @pytest.fixture
    def harness(self, moto_server):
        return AWSHarness(moto_server)


# --------------------------------------------------------------------------- rotation


@pytest.mark.asyncio
async def test_rotation_holds_both_versions_and_downloads_only_new_ones(moto_server):
    admin = moto_server.client()
    client = moto_server.client()
    calls = Calls(client)
    template = f"tenuo/rot-{_uid()}/{{key_id}}"
    name = template.replace("{key_id}", "agent")
    old, new, third = _gen(), _gen(), _gen()
    v_old = _store(admin, name, encode_signing_key(old))
    with AWSSecretsManagerKeyResolver(template, client=client,
                                      cache=CachePolicy(ttl=60, jitter=0)) as resolver:
        first = await resolver.resolve_versions("agent")
        assert [v.version for v in first.versions] == [v_old]
        assert (calls["DescribeSecret"], calls["GetSecretValue"]) == (1, 1)

        v_new = _store(admin, name, _seed(new))  # SecretBinary this time
        assert _same(resolver.resolve_sync("agent"), old)  # memory until refreshed
        rotated = await asyncio.wrap_future(resolver.cache.refresh("agent"))
        assert [v.version for v in rotated.versions] == [v_new, v_old]  # VersionIds
        assert calls["GetSecretValue"] == 2, "only the new version is downloaded"
        assert _same(resolver.resolve_sync("agent"), new)
        assert _same(resolver.resolve_for_holder_sync("agent", old.public_key), old)
        assert _same(resolver.resolve_for_holder_sync("agent", new.public_key), new)

        # Unchanged stages: each refresh is one DescribeSecret, no GetSecretValue.
        for _ in range(3):
            again = await asyncio.wrap_future(resolver.cache.refresh("agent"))
            assert [v.version for v in again.versions] == [v_new, v_old]
        assert calls["GetSecretValue"] == 2
        assert calls["DescribeSecret"] == 5

        # A second rotation: the oldest leaves, AWSPREVIOUS is now `new` (already held).
        v_third = _store(admin, name, encode_signing_key(third, "pem"))
        latest = await asyncio.wrap_future(resolver.cache.refresh("agent"))
        assert [v.version for v in latest.versions] == [v_third, v_new]
        assert calls["GetSecretValue"] == 3
        with pytest.raises(HolderMismatch):
            resolver.resolve_for_holder_sync("agent", old.public_key)

    # TTL-driven refreshes (refresh-ahead on the sync path) take the same cheap path.
    client2 = moto_server.client()
    calls2 = Calls(client2)
    policy = CachePolicy(ttl=0.3, jitter=0, refresh_ahead=0.5)
    with AWSSecretsManagerKeyResolver(template, client=client2, cache=policy) as resolver:
        resolver.preload(["agent"])
        assert calls2["GetSecretValue"] == 2
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            assert _same(resolver.resolve_sync("agent"), third)
            time.sleep(0.02)
        assert calls2["DescribeSecret"] >= 3, "background refreshes ran"
        assert calls2["GetSecretValue"] == 2, "and downloaded nothing"


# --------------------------------------------------------------------------- outage


@pytest.mark.asyncio
async def test_outage_serves_warm_keys_then_fails_closed_then_recovers(moto_factory, caplog):
    caplog.set_level(logging.WARNING)
    server = moto_factory()
    template = f"tenuo/fault-{_uid()}/{{key_id}}"
    keys = {f"k{i}": _gen() for i in range(3)}

    def seed() -> None:
        admin = server.client()
        for key_id, key in keys.items():
            _store(admin, template.replace("{key_id}", key_id), encode_signing_key(key))

    seed()
    stats = CacheStats()
    policy = CachePolicy(ttl=1.0, jitter=0.0, refresh_ahead=0.2, max_staleness=2.0,
                         negative_ttl=0.2, error_backoff=0.2, max_backoff=0.4)
    resolver = AWSSecretsManagerKeyResolver(
        template, client=server.client(connect_timeout=0.5), cache=policy, observers=[stats])
    try:
        started = time.monotonic()
        assert resolver.preload(keys) == 3
        loaded = time.monotonic()
        port, pid = server.port, server.pid
        server.stop()

        # 1. Within ttl + max_staleness of the load, warm keys keep serving.
        while time.monotonic() < started + 2.5:
            for key_id, key in keys.items():
                assert _same(resolver.resolve_sync(key_id), key)
                assert _same(resolver.resolve_for_holder_sync(key_id, key.public_key), key)
            await asyncio.sleep(0.05)
        assert stats.snapshot()["error"] > 0, "refreshes were attempted and failed"
        assert stats.snapshot()["stale"] > 0, "keys were served stale"

        # 2. Past max_staleness every call fails closed with BackendUnavailable.
        await asyncio.sleep(max(0.0, loaded + 3.3 - time.monotonic()))
        for key_id in keys:
            with pytest.raises(BackendUnavailable) as info:
                await resolver.resolve(key_id)
            assert info.value.retryable and info.value.key_id == key_id
            deadline = time.monotonic() + 3
            while True:
                try:
                    resolver.resolve_sync(key_id)
                except BackendUnavailable:
                    break
                except KeyNotLoaded:  # a load is running; it must fail, not serve
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
                else:
                    pytest.fail("a key was served past max_staleness")

        # 3. Restart on the same port (state is lost), re-seed: the same resolver recovers.
        server.restart()
        assert server.port == port and server.pid != pid
        seed()
        deadline = time.monotonic() + 5
        for key_id, key in keys.items():
            while True:
                try:
                    found = await resolver.resolve(key_id)
                    break
                # Remembered for negative_ttl; and a background reload may have read
                # the restarted (empty) server before seed() ran: "not found".
                except (BackendUnavailable, KeyNotFound):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            assert _same(found, key)
            assert _same(resolver.resolve_sync(key_id), key)
        for key in keys.values():
            assert_no_secret(caplog.text, [key], "logs")
    finally:
        resolver.close()


# --------------------------------------------------------------------------- bad data


@pytest.mark.asyncio
async def test_bad_data_is_key_format_error_naming_the_key_without_the_secret(moto_server,
                                                                             caplog):
    caplog.set_level(logging.DEBUG)
    admin = moto_server.client()
    template = f"tenuo/bad-{_uid()}/{{key_id}}"
    key = _gen()
    seed = _seed(key)
    values: dict[str, tuple[bytes | str, str]] = {
        "garbage": ("definitely not a key", "not a key"),
        "short": (seed[:31], "31 bytes"),
        "short-b64": (base64.b64encode(seed[:31]).decode(), "31 bytes"),
        "json-no-field": (json.dumps({"private": base64.b64encode(seed).decode()}), "no field"),
        "json-bad": ('{"key": ', "not valid JSON"),
    }
    for key_id, (value, _) in values.items():
        _store(admin, template.replace("{key_id}", key_id), value)
    with AWSSecretsManagerKeyResolver(template, client=admin) as resolver:
        for key_id, (_, expected) in values.items():
            with pytest.raises(KeyFormatError) as info:
                await resolver.resolve(key_id)
            error = info.value
            assert error.key_id == key_id and error.backend == "awssm"
            assert expected in str(error) and not error.retryable
            assert error.__cause__ is None
            for text in (str(error), repr(error), caplog.text):
                assert_no_secret(text, [key])
        # The same through the batch path.
        results = resolver.cache.preload([f"{k}" for k in values if k != "garbage"] + ["garbage"])
        assert all(isinstance(r, KeyFormatError) for r in results.values())

    # A JSON secret with the key under another field, and a bad previous version
    # that is skipped while the current one serves.
    good, other = _gen(), _gen()
    _store(admin, template.replace("{key_id}", "fielded"),
           json.dumps({"seed": encode_signing_key(good, "hex"), "owner": "team-a"}))
    _store(admin, template.replace("{key_id}", "rotated"), "broken previous")
    _store(admin, template.replace("{key_id}", "rotated"), encode_signing_key(other))
    with AWSSecretsManagerKeyResolver(template, client=admin, field="seed") as resolver:
        assert _same(await resolver.resolve("fielded"), good)
    with AWSSecretsManagerKeyResolver(template, client=admin) as resolver:
        versions = await resolver.resolve_versions("rotated")
        assert len(versions) == 1 and _same(versions.current, other)
    assert "skipping previous version" in caplog.text
    assert_no_secret(caplog.text, [key, good, other])


@pytest.mark.asyncio
async def test_secret_scheduled_for_deletion_is_not_found(moto_server):
    admin = moto_server.client()
    template = f"tenuo/del-{_uid()}/{{key_id}}"
    name = template.replace("{key_id}", "gone")
    _store(admin, name, encode_signing_key(_gen()))
    admin.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    with AWSSecretsManagerKeyResolver(template, client=admin) as resolver:
        with pytest.raises(KeyNotFound) as info:
            await resolver.resolve("gone")
        assert "scheduled for deletion" in str(info.value)
        assert "gone" not in resolver.list_key_ids()


# --------------------------------------------------------------------------- IAM


@pytest.mark.asyncio
async def test_iam_policy_denying_get_secret_value_is_key_access_denied(moto_factory, caplog):
    """moto enforces IAM once /moto-api/reset-auth is 0 (INITIAL_NO_AUTH_ACTION_COUNT).

    moto checks actions against resource "*" for Secrets Manager (no per-ARN
    resources), so the deny covers GetSecretValue on every secret; the reader
    user, which may not call BatchGetSecretValue, exercises the batch fallback.
    """
    server = moto_factory()
    admin = server.client()
    iam = server.client("iam")
    template = f"tenuo/iam-{_uid()}/{{key_id}}"
    keys = {f"a{i}": _gen() for i in range(3)}
    for key_id, key in keys.items():
        _store(admin, template.replace("{key_id}", key_id), encode_signing_key(key))

    def user(name: str, statements: list[dict[str, Any]]) -> Any:
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="tenuo-keys", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": statements}))
        access = iam.create_access_key(UserName=name)["AccessKey"]
        return server.client(access_key=access["AccessKeyId"],
                             secret_key=access["SecretAccessKey"])

    reader = user("reader", [{"Effect": "Allow", "Resource": "*", "Action": [
        "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
        "secretsmanager:ListSecrets"]}])
    blocked = user("blocked", [
        {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
    ])
    server.enforce_iam()

    calls = Calls(reader)
    with AWSSecretsManagerKeyResolver(template, client=reader) as resolver:
        assert _same(await resolver.resolve("a0"), keys["a0"])
        assert resolver.preload(["a1", "a2"]) == 2  # BatchGetSecretValue denied: falls back
        assert calls["BatchGetSecretValue"] == 1
        assert "BatchGetSecretValue is not available" in caplog.text
        assert resolver.preload_all() == 3

    with AWSSecretsManagerKeyResolver(template, client=blocked) as resolver:
        with pytest.raises(KeyAccessDenied) as info:
            await resolver.resolve("a0")
        error = info.value
        assert error.key_id == "a0" and not error.retryable
        assert "GetSecretValue" in error.reason and "access denied" in str(error)
        with pytest.raises(KeyAccessDenied):
            wait_for_sync(resolver, "a1")

    stranger = server.client(access_key="AKIAUNKNOWN000000000", secret_key="not-a-real-secret")
    with AWSSecretsManagerKeyResolver(template, client=stranger) as resolver:
        with pytest.raises(KeyAccessDenied) as info:
            await resolver.resolve("a0")
        assert "not-a-real-secret" not in str(info.value) + repr(resolver)
        with pytest.raises(KeyAccessDenied):
            resolver.list_key_ids()


# --------------------------------------------------------------------------- batching


def _seed_many(admin: Any, template: str, count: int, rotated: int) -> dict[str, list[Any]]:
    keys: dict[str, list[Any]] = {}
    for i in range(count):
        key_id = f"tenant-{i:03d}"
        name = template.replace("{key_id}", key_id)
        keys[key_id] = [_gen()]
        _store(admin, name, encode_signing_key(keys[key_id][0]))
        if i < rotated:
            keys[key_id].insert(0, _gen())
            _store(admin, name, _seed(keys[key_id][0]))
    return keys


def test_batch_preload_of_50_keys_uses_batch_get_secret_value(moto_server):
    admin = moto_server.client()
    template = f"tenuo/batch-{_uid()}/{{key_id}}"
    keys = _seed_many(admin, template, 50, rotated=10)

    client = moto_server.client()
    calls = Calls(client)
    with AWSSecretsManagerKeyResolver(template, client=client) as resolver:
        assert resolver.preload(list(keys)) == 50
        assert calls["BatchGetSecretValue"] == 3  # ceil(50 / 20)
        assert calls["GetSecretValue"] == 10  # only the AWSPREVIOUS of the rotated ones
        assert calls["DescribeSecret"] == 50  # stage maps (no listing to take them from)
        for key_id, versions in keys.items():
            assert _same(resolver.resolve_sync(key_id), versions[0])
            for key in versions:
                assert _same(resolver.resolve_for_holder_sync(key_id, key.public_key), key)

    client = moto_server.client()
    calls = Calls(client)
    with AWSSecretsManagerKeyResolver(template, client=client) as resolver:
        assert resolver.preload_all() == 50
        assert calls["ListSecrets"] == 1
        assert calls["BatchGetSecretValue"] == 3
        assert calls["DescribeSecret"] == 0  # the listing's SecretVersionsToStages served
        assert calls["GetSecretValue"] == 10
        for key_id, versions in keys.items():
            assert [v.public for v in resolver.resolve_versions_sync(key_id).versions] == [
                bytes(k.public_key_bytes()) for k in versions]


def test_preload_falls_back_to_parallel_gets_when_batch_is_unsupported(moto_server, caplog):
    caplog.set_level(logging.WARNING)
    admin = moto_server.client()
    template = f"tenuo/nobatch-{_uid()}/{{key_id}}"
    keys = _seed_many(admin, template, 30, rotated=0)

    client = moto_server.client()
    calls = Calls(client)
    attempts = []

    def unsupported(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        # What an endpoint without the API answers (an older emulator or proxy).
        # This more specific hook runs before (and instead of) the counting one.
        attempts.append(1)
        return AWSResponse(moto_server.endpoint, 400, {}, None), {
            "Error": {"Code": "UnknownOperationException", "Message": "Unknown operation"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    client.meta.events.register("before-call.secrets-manager.BatchGetSecretValue", unsupported)
    ids = list(keys)
    with AWSSecretsManagerKeyResolver(template, client=client) as resolver:
        assert resolver.preload(ids[:15]) == 15
        assert len(attempts) == 1
        assert calls["GetSecretValue"] == 15 and calls["DescribeSecret"] == 15
        assert caplog.text.count("BatchGetSecretValue is not available") == 1
        assert resolver.preload(ids[15:]) == 15
        assert len(attempts) == 1, "unsupported is remembered"
        assert resolver.preload_all() == 30
        for key_id, versions in keys.items():
            assert _same(resolver.resolve_sync(key_id), versions[0])


# --------------------------------------------------------------------------- configuration


def test_secrets_manager_ttl_is_the_refresh_interval(moto_server, monkeypatch):
    admin = moto_server.client()
    template = f"tenuo/ttl-{_uid()}/{{key_id}}"
    name = template.replace("{key_id}", "agent")
    old, new = _gen(), _gen()
    _store(admin, name, encode_signing_key(old))

    monkeypatch.setenv("SECRETS_MANAGER_TTL", "0.5")
    with AWSSecretsManagerKeyResolver(template, client=admin) as resolver:
        assert resolver.cache.policy.ttl == 0.5
        resolver.preload(["agent"])
        loaded = time.monotonic()
        _store(admin, name, encode_signing_key(new))
        while not _same(resolver.resolve_sync("agent"), new):
            assert time.monotonic() - loaded < 3, "the rotation was not picked up"
            time.sleep(0.02)
        assert time.monotonic() - loaded >= 0.5 * 0.9 * 0.8 - 0.05  # not before the TTL

    with AWSSecretsManagerKeyResolver(template, client=admin,
                                      cache=CachePolicy(ttl=60)) as resolver:
        assert resolver.cache.policy.ttl == 60  # an explicit policy wins
    url = "awssm:///" + template + "?max_staleness=5"
    with resolver_from_url(url, client=admin) as resolver:
        assert isinstance(resolver, AWSSecretsManagerKeyResolver)
        assert (resolver.cache.policy.ttl, resolver.cache.policy.max_staleness) == (0.5, 5)
    with resolver_from_url(url + "&ttl=9", client=admin) as resolver:
        assert resolver.cache.policy.ttl == 9

    monkeypatch.setenv("SECRETS_MANAGER_TTL", "0")
    with pytest.raises(ResolverConfigError, match="SECRETS_MANAGER_TTL"):
        AWSSecretsManagerKeyResolver(template, client=admin)


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Credentials and region for code that builds its own client (URL, CLI)."""
    secret = f"dummy-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "SECRETS_MANAGER_TTL"):
        monkeypatch.delenv(name, raising=False)
    return secret


@pytest.mark.asyncio
async def test_resolver_from_url(moto_server, aws_env):
    admin = moto_server.client()
    key_id = f"url-{_uid()}"
    key = _gen()
    _store(admin, f"tenuo/keys/{key_id}", encode_signing_key(key))
    endpoint = f"?endpoint_url={moto_server.endpoint}"
    for url in (
        "awssm://us-east-1/tenuo/keys/{key_id}" + endpoint,
        "awssm://us-east-1/tenuo/keys/%7Bkey_id%7D" + endpoint,
        "awssm://us-east-1/tenuo/keys/" + endpoint,
        "awssm://us-east-1" + endpoint + "&max_attempts=2&connect_timeout=1&ttl=30",
    ):
        with resolver_from_url(url) as resolver:
            assert isinstance(resolver, AWSSecretsManagerKeyResolver)
            assert resolver.template == "tenuo/keys/{key_id}"
            assert _same(await resolver.resolve(key_id), key)
            text = repr(resolver)
            assert "us-east-1" in text and moto_server.endpoint in text
            assert aws_env not in text
    with pytest.raises(ResolverConfigError, match="secret_access_key"):
        resolver_from_url("awssm://us-east-1/?aws_secret_access_key=x")


# --------------------------------------------------------------------------- CLI


def test_cli_put_rotate_public_doctor(moto_server, aws_env):
    admin = moto_server.client()
    prefix = f"tenuo/cli-{_uid()}/"
    url = f"awssm://us-east-1/{prefix}{{key_id}}?endpoint_url={moto_server.endpoint}"
    runner = CliRunner()

    def stored(key_id: str, stage: str = "AWSCURRENT") -> tuple[str, Any]:
        value = admin.get_secret_value(SecretId=prefix + key_id, VersionStage=stage)
        return value["VersionId"], decode_signing_key(value["SecretString"])

    put = runner.invoke(main, ["put", url, "agent1"])
    assert put.exit_code == 0, put.output
    version1, key1 = stored("agent1")
    public1 = base64.b64encode(bytes(key1.public_key_bytes())).decode()
    assert put.output.strip() == (
        f"stored agent1 (version {version1}); public key (base64): {public1}")

    again = runner.invoke(main, ["put", url, "agent1"])
    assert again.exit_code == 1 and "already exists" in again.output

    rotate = runner.invoke(main, ["rotate", url, "agent1"])
    assert rotate.exit_code == 0, rotate.output
    version2, key2 = stored("agent1")
    assert stored("agent1", "AWSPREVIOUS")[0] == version1
    public2 = base64.b64encode(bytes(key2.public_key_bytes())).decode()
    lines = rotate.output.splitlines()
    assert lines[0] == f"rotated agent1 (version {version2}); held versions:"
    assert lines[1].split() == [version2, public2] and lines[2].split() == [version1, public1]

    public = runner.invoke(main, ["public", url, "agent1"])
    assert public.exit_code == 0 and public.output.strip() == public2
    missing = runner.invoke(main, ["public", url, "nobody"])
    assert missing.exit_code == 2 and "not found" in missing.output

    assert runner.invoke(main, ["put", url, "agent2"]).exit_code == 0
    doctor = runner.invoke(main, ["doctor", url])
    assert doctor.exit_code == 0, doctor.output
    assert "2 key(s) listed" in doctor.output
    rows = {line.split()[0]: line.split()[1] for line in doctor.output.splitlines()}
    assert rows["agent1"] == "ok" and rows["agent2"] == "ok" and rows["resolver"] == "ok"
    assert "2 version(s)" in doctor.output

    bad_key = _gen()
    admin.create_secret(Name=prefix + "broken", SecretBinary=_seed(bad_key)[:31])
    doctor = runner.invoke(main, ["doctor", url])
    assert doctor.exit_code == 2
    broken = [line for line in doctor.output.splitlines() if line.startswith("broken")]
    assert broken and broken[0].split()[1] == "FAIL" and "KeyFormatError" in broken[0]
    assert "31 bytes" in broken[0]

    outputs = put.output + rotate.output + public.output + doctor.output
    assert_no_secret(outputs, [key1, key2, bad_key, stored("agent2")[1]], "CLI output")
    assert aws_env not in outputs


def test_cli_reports_unreachable_backend(aws_env):
    url = f"awssm://us-east-1/tenuo/keys/{{key_id}}?endpoint_url=http://127.0.0.1:{free_port()}"
    url += "&max_attempts=1&connect_timeout=0.5"
    result = CliRunner().invoke(main, ["doctor", url, "agent1"])
    assert result.exit_code == 2
    assert "FAIL" in result.output and "unreachable" in result.output


# --------------------------------------------------------------------------- contract


def test_invalid_key_ids_never_reach_aws(moto_server):
    client = moto_server.client()
    calls = Calls(client)
    with AWSSecretsManagerKeyResolver(client=client) as resolver:
        for bad in ("has space", "semi;colon", "x" * 600, "tab\tid"):
            with pytest.raises(KeyResolutionError):
                asyncio.run(resolver.resolve(bad))
            with pytest.raises(KeyResolutionError):
                resolver.store_key(bad, "irrelevant")
    assert sum(calls.counts.values()) == 0
