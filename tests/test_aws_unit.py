"""Fast tests of the AWS Secrets Manager resolver: error mapping, URLs, in-process moto.

botocore's ``Stubber`` produces exact AWS error responses (codes moto does not
emit, such as ``DecryptionFailure`` or ``ExpiredTokenException``); ``mock_aws``
runs the real request path in process. The wire-level tests against a real
``moto_server`` are in ``integration/test_aws.py``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import boto3
import pytest
import tenuo_core
from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.stub import Stubber
from moto import mock_aws

from tenuo_keys import (
    BackendUnavailable,
    CachePolicy,
    KeyAccessDenied,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
    encode_signing_key,
    resolver_from_url,
)
from tenuo_keys.backends.aws import (
    AWSSecretsManagerKeyResolver,
    _redact_url,
    policy_from_env,
)
from tenuo_keys.testing import (
    ResolverConformance,
    ResolverHarness,
    assert_no_secret,
    material,
)

REGION = "us-east-1"
AWS_MESSAGE = "SENTINEL-AWS-MESSAGE"  # must never be copied into our errors
V1, V2, VA, V_RACE = (f"{c * 8}-1111-2222-3333-444444444444" for c in "12ab")


def _client(**kwargs: Any) -> Any:
    return boto3.client("secretsmanager", region_name=REGION, aws_access_key_id="AKIATEST",
                        aws_secret_access_key="unit-test-secret", **kwargs)


def _same(a: Any, b: Any) -> bool:
    return bytes(a.public_key_bytes()) == bytes(b.public_key_bytes())


def _described(*stages: tuple[str, str]) -> dict[str, Any]:
    return {"Name": "tenuo/keys/k", "VersionIdsToStages": {v: [s] for v, s in stages}}


def _value(version: str, secret: str) -> dict[str, Any]:
    return {"Name": "tenuo/keys/k", "VersionId": version, "SecretString": secret}


@pytest.fixture
def stubbed():
    client = _client()
    with Stubber(client) as stubber:
        yield stubber, AWSSecretsManagerKeyResolver(client=client)
        stubber.assert_no_pending_responses()


# --------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("code", "status", "expected", "retryable", "text"),
    [
        ("ResourceNotFoundException", 400, KeyNotFound, False, "not found"),
        ("AccessDeniedException", 400, KeyAccessDenied, False, "secretsmanager:DescribeSecret"),
        ("UnrecognizedClientException", 400, KeyAccessDenied, False, "rejected the credentials"),
        ("InvalidSignatureException", 400, KeyAccessDenied, False, "rejected the credentials"),
        ("ExpiredTokenException", 400, KeyAccessDenied, False, "rejected the credentials"),
        ("403", 403, KeyAccessDenied, False, "HTTP 403"),
        ("ThrottlingException", 400, BackendUnavailable, True, "ThrottlingException"),
        ("InternalServiceError", 500, BackendUnavailable, True, "unreachable"),
        ("ServiceUnavailable", 503, BackendUnavailable, True, "unreachable"),
        ("SomethingNew", 502, BackendUnavailable, True, "SomethingNew"),
        ("InvalidParameterException", 400, KeyResolutionError, False, "DescribeSecret failed"),
    ],
)
def test_client_errors_map_to_typed_errors(stubbed, code, status, expected, retryable, text):
    stubber, resolver = stubbed
    stubber.add_client_error("describe_secret", service_error_code=code,
                             service_message=AWS_MESSAGE, http_status_code=status)
    with pytest.raises(KeyResolutionError) as info:
        resolver.fetch("k")
    error = info.value
    assert type(error) is expected
    assert error.retryable is retryable and error.key_id == "k" and error.backend == "awssm"
    assert text in str(error) and "tenuo/keys/k" in str(error)
    assert AWS_MESSAGE not in str(error) + repr(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_secret_marked_for_deletion_is_not_found(stubbed):
    stubber, resolver = stubbed
    stubber.add_client_error(
        "describe_secret", service_error_code="InvalidRequestException", http_status_code=400,
        service_message="You can't perform this operation on the secret because it was "
                        "marked for deletion.",
    )
    with pytest.raises(KeyNotFound, match="scheduled for deletion"):
        resolver.fetch("k")
    stubber.add_response("describe_secret", {**_described((V1, "AWSCURRENT")),
                                             "DeletedDate": "2030-01-01T00:00:00Z"})
    with pytest.raises(KeyNotFound, match="scheduled for deletion"):
        resolver.fetch("k")


def test_decryption_failure_is_access_denied_naming_kms(stubbed):
    stubber, resolver = stubbed
    stubber.add_response("describe_secret", _described((V1, "AWSCURRENT")))
    stubber.add_client_error("get_secret_value", service_error_code="DecryptionFailure",
                             service_message=AWS_MESSAGE, http_status_code=400)
    with pytest.raises(KeyAccessDenied) as info:
        resolver.fetch("k")
    assert "kms:Decrypt" in str(info.value) and "GetSecretValue" in str(info.value)
    assert not info.value.retryable and AWS_MESSAGE not in str(info.value)


def test_access_denied_via_stubber_on_get_secret_value(stubbed):
    """The mapping of a real AccessDeniedException body (moto answers 403 without a code)."""
    stubber, resolver = stubbed
    stubber.add_response("describe_secret", _described((V1, "AWSCURRENT")))
    stubber.add_client_error("get_secret_value", service_error_code="AccessDeniedException",
                             service_message=AWS_MESSAGE, http_status_code=400)
    with pytest.raises(KeyAccessDenied, match="secretsmanager:GetSecretValue"):
        resolver.fetch("k")


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        (EndpointConnectionError(endpoint_url="https://x"), BackendUnavailable, "unreachable"),
        (ConnectTimeoutError(endpoint_url="https://x"), BackendUnavailable, "ConnectTimeout"),
        (ReadTimeoutError(endpoint_url="https://x"), BackendUnavailable, "ReadTimeoutError"),
        (NoCredentialsError(), KeyAccessDenied, "no usable AWS credentials"),
    ],
)
def test_transport_errors_map_to_typed_errors(error, expected, text):
    client = _client()

    def fail(**_: Any) -> None:
        raise error

    client.meta.events.register("before-call.secrets-manager.DescribeSecret", fail)
    resolver = AWSSecretsManagerKeyResolver(client=client)
    with pytest.raises(expected, match=text) as info:
        resolver.fetch("k")
    assert info.value.__cause__ is None
    if expected is BackendUnavailable:
        assert info.value.retryable
        assert "DescribeSecret at https://secretsmanager.us-east-1.amazonaws.com" in str(info.value)


def test_previous_version_refused_is_skipped_but_an_outage_is_not(stubbed, caplog):
    stubber, resolver = stubbed
    key, old = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    stages = _described((V2, "AWSCURRENT"), (V1, "AWSPREVIOUS"))
    stubber.add_response("describe_secret", stages)
    stubber.add_response("get_secret_value", _value(V2, encode_signing_key(key)))
    stubber.add_client_error("get_secret_value", service_error_code="AccessDeniedException",
                             http_status_code=400)
    versions = resolver.fetch("k")
    assert [v.version for v in versions] == [V2]
    assert "skipping AWSPREVIOUS" in caplog.text

    # v2 is held now; the previous version's outage surfaces (stale-if-error applies).
    stubber.add_response("describe_secret", stages)
    stubber.add_client_error("get_secret_value", service_error_code="ThrottlingException",
                             http_status_code=400)
    with pytest.raises(BackendUnavailable):
        resolver.fetch("k")
    stubber.add_response("describe_secret", stages)
    stubber.add_response("get_secret_value", _value(V1, encode_signing_key(old)))
    assert [v.version for v in resolver.fetch("k")] == [V2, V1]


def test_batch_errors_map_per_key_and_a_failed_call_fails_all(stubbed):
    stubber, resolver = stubbed
    key = tenuo_core.SigningKey.generate()
    stubber.add_response("batch_get_secret_value", {
        "SecretValues": [{"Name": "tenuo/keys/a", "VersionId": VA,
                          "SecretString": encode_signing_key(key)}],
        "Errors": [
            {"SecretId": "tenuo/keys/b", "ErrorCode": "ResourceNotFoundException",
             "Message": AWS_MESSAGE},
            {"SecretId": "tenuo/keys/c", "ErrorCode": "DecryptionFailure",
             "Message": AWS_MESSAGE},
        ],
    })
    stubber.add_response("describe_secret", {"VersionIdsToStages": {VA: ["AWSCURRENT"]}})
    out = resolver.fetch_many(["a", "b", "c", "d", "bad id"])
    assert [v.version for v in out["a"]] == [VA]
    assert isinstance(out["b"], KeyNotFound) and isinstance(out["c"], KeyAccessDenied)
    assert isinstance(out["d"], KeyNotFound)  # in neither list
    assert isinstance(out["bad id"], KeyResolutionError)
    assert all(AWS_MESSAGE not in str(e) for e in out.values() if isinstance(e, Exception))

    stubber.add_client_error("batch_get_secret_value", service_error_code="ThrottlingException",
                             http_status_code=400)
    ids = [f"k{i}" for i in range(45)]  # three chunks; the first failure answers all
    out = resolver.fetch_many(ids)
    assert all(isinstance(out[i], BackendUnavailable) and out[i].key_id == i for i in ids)


# --------------------------------------------------------------------------- URLs


@pytest.fixture
def no_aws_env(monkeypatch, tmp_path):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "SECRETS_MANAGER_TTL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))


@pytest.mark.parametrize(
    ("url", "template"),
    [
        ("awssm://us-east-1/tenuo/keys/{key_id}", "tenuo/keys/{key_id}"),
        ("awssm://us-east-1/tenuo/keys/%7Bkey_id%7D", "tenuo/keys/{key_id}"),
        ("awssm://us-east-1/tenuo/keys/%7bkey_id%7d", "tenuo/keys/{key_id}"),
        ("awssm://us-east-1/prod/holders/", "prod/holders/{key_id}"),
        ("awssm://us-east-1", "tenuo/keys/{key_id}"),
        ("awssm://eu-central-2/teams/{key_id}/holder", "teams/{key_id}/holder"),
    ],
)
def test_url_templates(no_aws_env, url, template):
    with resolver_from_url(url) as resolver:
        assert isinstance(resolver, AWSSecretsManagerKeyResolver)
        assert resolver.template == template
        assert resolver.client.meta.region_name == url.split("/")[2]


def test_url_parameters_map_one_to_one(no_aws_env):
    url = ("awssm://ap-southeast-2/k/{key_id}?field=seed&endpoint_url=http://127.0.0.1:4566"
           "&connect_timeout=0.5&read_timeout=7&max_attempts=4&ttl=30&max_staleness=60")
    with resolver_from_url(url) as resolver:
        assert isinstance(resolver, AWSSecretsManagerKeyResolver)
        config = resolver.client.meta.config
        assert resolver.client.meta.endpoint_url == "http://127.0.0.1:4566"
        assert (config.connect_timeout, config.read_timeout) == (0.5, 7)
        assert config.retries["total_max_attempts"] == 4
        assert (resolver.cache.policy.ttl, resolver.cache.policy.max_staleness) == (30, 60)
        assert resolver._field == "seed"
        assert "ap-southeast-2" in repr(resolver) and "127.0.0.1:4566" in repr(resolver)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("awssm://us-east-1:443/x/{key_id}", "endpoint_url"),
        ("awssm://me@us-east-1/x/{key_id}", "no user"),
        ("awssm://127.0.0.1/x/{key_id}", "must be an AWS region"),
        ("awssm://us-east-1/x/{key_id}?prefix=y", "does not understand"),
        ("awssm://us-east-1/x/{key_id}?aws_secret_access_key=y", "must not carry secrets"),
        ("awssm://us-east-1/{key_id}/{key_id}", "exactly once"),
        ("awssm://us-east-1/bad%20name/{key_id}", "does not allow"),
        ("awssm://us-east-1/x/{key_id}?max_attempts=many", "not an integer"),
        ("awssm://us-east-1/x/{key_id}?max_attempts=0", "max_attempts"),
        ("awssm://us-east-1/x/{key_id}?profile=no-such-profile-here", "profile"),
        ("awssm:///x/{key_id}", "no AWS region"),
    ],
)
def test_url_mistakes_are_config_errors(no_aws_env, url, message):
    with pytest.raises(ResolverConfigError, match=message):
        resolver_from_url(url)


def test_client_excludes_client_options(no_aws_env):
    client = _client()
    with pytest.raises(ResolverConfigError, match="region_name"):
        resolver_from_url("awssm://us-east-1/x/{key_id}", client=client)
    with pytest.raises(ResolverConfigError, match="endpoint_url, read_timeout"):
        AWSSecretsManagerKeyResolver(client=client, endpoint_url="http://x", read_timeout=1)
    with resolver_from_url("awssm:///x/{key_id}?ttl=5", client=client) as resolver:
        assert resolver.client is client and resolver.cache.policy.ttl == 5


def test_secrets_manager_ttl(monkeypatch):
    assert policy_from_env({}) is None
    assert policy_from_env({"SECRETS_MANAGER_TTL": " 42 "}) == CachePolicy(ttl=42.0)
    for bad in ("0", "-5", "abc", "inf", "nan"):
        with pytest.raises(ResolverConfigError, match="SECRETS_MANAGER_TTL"):
            policy_from_env({"SECRETS_MANAGER_TTL": bad})
    monkeypatch.setenv("SECRETS_MANAGER_TTL", "12.5")
    assert AWSSecretsManagerKeyResolver(client=_client()).cache.policy.ttl == 12.5
    explicit = AWSSecretsManagerKeyResolver(client=_client(), cache=CachePolicy(ttl=3))
    assert explicit.cache.policy.ttl == 3


def test_repr_and_errors_never_show_credentials():
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    client = boto3.client("secretsmanager", region_name=REGION, aws_access_key_id="AKIAEXAMPLE",
                          aws_secret_access_key=secret,
                          endpoint_url="http://user:pw@127.0.0.1:9")
    resolver = AWSSecretsManagerKeyResolver("a/{key_id}", client=client)
    text = repr(resolver)
    assert secret not in text and "AKIAEXAMPLE" not in text and "pw" not in text
    assert "127.0.0.1:9" in text and "a/{key_id}" in text
    assert _redact_url("https://u:p@host:1/path?q") == "https://host:1/path"
    assert _redact_url("https://host") == "https://host"


def test_key_ids_and_names():
    resolver = AWSSecretsManagerKeyResolver("svc/{key_id}/holder", client=_client())
    assert resolver.secret_name("agent_1.a@b+c=d-e/f") == "svc/agent_1.a@b+c=d-e/f/holder"
    for bad in ("", "with space", "semi;colon", "ünï", "x" * 300):
        with pytest.raises(KeyResolutionError):
            resolver.secret_name(bad)
    long_template = AWSSecretsManagerKeyResolver("p" * 500 + "{key_id}", client=_client())
    with pytest.raises(KeyResolutionError, match="512"):
        long_template.secret_name("x" * 20)


# --------------------------------------------------------------------------- in-process moto


@pytest.fixture
def moto_client():
    with mock_aws():
        yield _client()


def test_list_key_ids_maps_names_back_through_the_template(moto_client):
    key = encode_signing_key(tenuo_core.SigningKey.generate())
    for name in ("svc/a/holder", "svc/b/c/holder", "svc/x/other", "svc//holder", "svcd/holder",
                 "other/a/holder", "SVC/z/holder", "svc/gone/holder"):
        moto_client.create_secret(Name=name, SecretString=key)
    moto_client.delete_secret(SecretId="svc/gone/holder")
    resolver = AWSSecretsManagerKeyResolver("svc/{key_id}/holder", client=moto_client)
    assert resolver.list_key_ids() == ["a", "b/c"]


def test_store_key_creates_then_rotates(moto_client):
    first, second = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    with AWSSecretsManagerKeyResolver(client=moto_client) as resolver:
        v1 = resolver.store_key("agent", encode_signing_key(first))
        v2 = resolver.store_key("agent", encode_signing_key(second))
        stages = moto_client.describe_secret(SecretId="tenuo/keys/agent")["VersionIdsToStages"]
        assert stages == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}
        versions = asyncio.run(resolver.resolve_versions("agent"))
        assert [v.version for v in versions.versions] == [v2, v1]
        assert _same(versions.current, second)


def test_store_key_survives_a_concurrent_create():
    client = _client()
    with Stubber(client) as stubber:
        stubber.add_client_error("put_secret_value", service_error_code="ResourceNotFoundException")
        stubber.add_client_error("create_secret", service_error_code="ResourceExistsException")
        stubber.add_response("put_secret_value", {"VersionId": V_RACE})
        resolver = AWSSecretsManagerKeyResolver(client=client)
        assert resolver.store_key("agent", "material") == V_RACE
        stubber.add_client_error("put_secret_value", service_error_code="AccessDeniedException",
                                 service_message=AWS_MESSAGE)
        with pytest.raises(KeyAccessDenied, match="PutSecretValue") as info:
            resolver.store_key("agent", "material")
        assert AWS_MESSAGE not in str(info.value)


def test_listing_stages_are_reused_only_while_consistent(moto_client):
    keys = {f"k{i}": tenuo_core.SigningKey.generate() for i in range(4)}
    for key_id, key in keys.items():
        moto_client.create_secret(Name=f"tenuo/keys/{key_id}", SecretString=encode_signing_key(key))
    calls: list[str] = []
    moto_client.meta.events.register("before-call.secrets-manager",
                                     lambda model, **_: calls.append(model.name))
    with AWSSecretsManagerKeyResolver(client=moto_client) as resolver:
        assert resolver.list_key_ids() == sorted(keys)
        rotated = tenuo_core.SigningKey.generate()
        moto_client.put_secret_value(SecretId="tenuo/keys/k2",
                                     SecretString=encode_signing_key(rotated))
        calls.clear()
        assert resolver.preload(list(keys)) == 4
        # Only the key rotated after the listing needs its stage map again.
        assert calls.count("DescribeSecret") == 1
        assert calls.count("GetSecretValue") == 1  # k2's AWSPREVIOUS
        assert calls.count("BatchGetSecretValue") == 1
        versions = resolver.resolve_versions_sync("k2")
        assert _same(versions.current, rotated) and len(versions) == 2


def test_close_releases_only_an_owned_client(no_aws_env, monkeypatch):
    injected = _client()
    closed: list[str] = []
    monkeypatch.setattr(injected, "close", lambda: closed.append("injected"))
    AWSSecretsManagerKeyResolver(client=injected).close()
    assert closed == []
    owned = AWSSecretsManagerKeyResolver(region_name=REGION)
    monkeypatch.setattr(owned.client, "close", lambda: closed.append("owned"))
    owned.close()
    owned.close()
    assert closed == ["owned"]


def test_botocore_debug_logs_carry_no_secret(moto_client, caplog):
    caplog.set_level(logging.DEBUG)
    key, other = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    with AWSSecretsManagerKeyResolver(client=moto_client) as resolver:
        resolver.store_key("agent", encode_signing_key(key))
        resolver.store_key("agent", encode_signing_key(other, "hex"))
        assert _same(asyncio.run(resolver.resolve("agent")), other)
        assert resolver.preload_all() == 1
    assert "redacted by tenuo_keys" in caplog.text  # botocore did log the bodies
    assert_no_secret(caplog.text, [key, other], "DEBUG logs")


class InProcessHarness(ResolverHarness):
    def __init__(self, client: Any) -> None:
        self.client = client

    def make_resolver(self, *, cache, observers):
        return AWSSecretsManagerKeyResolver(client=self.client, cache=cache, observers=observers)

    def put(self, key_id, value):
        kw = {"SecretBinary": value} if isinstance(value, bytes) else {"SecretString": value}
        try:
            self.client.put_secret_value(SecretId=f"tenuo/keys/{key_id}", **kw)
        except self.client.exceptions.ResourceNotFoundException:
            self.client.create_secret(Name=f"tenuo/keys/{key_id}", **kw)


class TestAWSConformanceInProcess(ResolverConformance):
    """The shared suite over in-process moto (the real server run is in integration/)."""

    @pytest.fixture
    def harness(self, moto_client):
        return InProcessHarness(moto_client)


def test_material_forms_are_stored_binary_or_text(moto_client):
    key = tenuo_core.SigningKey.generate()
    moto_client.create_secret(Name="tenuo/keys/raw", SecretBinary=material(key, "raw-64"))
    with AWSSecretsManagerKeyResolver(client=moto_client) as resolver:
        assert _same(asyncio.run(resolver.resolve("raw")), key)


@pytest.mark.parametrize(("env", "url", "region"), [
    ({"AWS_REGION": "eu-west-1"}, "awssm:///tenuo/keys/{key_id}", "eu-west-1"),
    ({"AWS_DEFAULT_REGION": "eu-west-2"}, "awssm:///tenuo/keys/{key_id}", "eu-west-2"),
    ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-2"}, "awssm:///t/{key_id}",
     "eu-west-1"),
    ({"AWS_REGION": "eu-west-1"}, "awssm://us-east-2/tenuo/keys/{key_id}", "us-east-2"),
])
def test_region_comes_from_the_environment_as_the_sdks_read_it(no_aws_env, monkeypatch, env,
                                                                 url, region):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with resolver_from_url(url) as resolver:
        assert f"region={region!r}" in repr(resolver)


def test_no_region_names_both_variables(no_aws_env):
    with pytest.raises(ResolverConfigError, match=r"set AWS_REGION \(or AWS_DEFAULT_REGION\)"):
        resolver_from_url("awssm:///tenuo/keys/{key_id}")


def test_an_unknown_profile_is_named_wherever_it_came_from(no_aws_env, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(ResolverConfigError) as from_env:
        resolver_from_url("awssm://us-east-1/tenuo/keys/{key_id}")
    assert "'no-such-profile' (from $AWS_PROFILE) not found" in str(from_env.value)
    assert "None" not in str(from_env.value)
    with pytest.raises(ResolverConfigError, match=r"AWS profile 'other' not found"):
        resolver_from_url("awssm://us-east-1/tenuo/keys/{key_id}?profile=other")
