"""``AWSKMSSigner`` against a real AWS KMS JSON-protocol server, with the real boto3 client.

moto has no Ed25519 KMS keys: ``integration/support/aws_kms_server.py`` is a
small AWS KMS speaking the real protocol (``TrentService`` JSON 1.1), making
real Ed25519 signatures with keys that never leave it. The signer's own boto3
``kms`` client talks to it through ``endpoint_url=``. Every test isolates
itself with unique aliases; tests that set fault hooks or stop the server get
a server of their own.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import tenuo_core

from integration.support.aws_kms import REGION, AWSKMSServer
from integration.support.procs import free_port
from integration.support.signer_checks import (
    ARGS,
    TOOL,
    accepts,
    sign_latency_ms,
    unique,
    warrant_for,
)
from tenuo_keys import (
    BackendUnavailable,
    HolderMismatch,
    KeyAccessDenied,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
    signer_from_url,
)
from tenuo_keys._signer import LocalSigner, sign_pop
from tenuo_keys.backends import aws_kms as kms_tools
from tenuo_keys.backends.aws_kms import MAX_MESSAGE_BYTES, AWSKMSSigner
from tenuo_keys.testing._signer_conformance import SignerConformance, SignerHarness

pytestmark = pytest.mark.integration


def raw(public_key: Any) -> bytes:
    return bytes(public_key.to_bytes())


def alias(key_id: str) -> str:
    return f"alias/tenuo-{key_id}"


def new_key(server: AWSKMSServer, name: str = "agent") -> str:
    """Create a key with the alias ``alias/tenuo-<key id>`` on ``server``; returns the key id."""
    key_id = unique(name)
    server.create_key(alias(key_id))
    return key_id


# --------------------------------------------------------------------------- conformance


class AWSKMSHarness(SignerHarness):
    """Keys made through the real boto3 client; BYOK through ImportKeyMaterial."""

    def __init__(self, server: AWSKMSServer) -> None:
        self.server = server

    def make_signer(self, key_id):
        return self.server.signer(key_id)

    def put(self, key_id, key):
        self.server.import_key(alias(key_id), key)

    def create(self, key_id):
        self.server.create_key(alias(key_id))

    def rotate(self, key_id):
        self.server.rotate(alias(key_id))

    def make_unreachable_signer(self, key_id):
        return self.server.signer(key_id, endpoint_url=f"http://127.0.0.1:{free_port()}",
                                  connect_timeout=0.5, read_timeout=0.5, max_attempts=1)

    def make_denied_signer(self, key_id):
        self.server.control(deny=[*self.server.control()["faults"]["deny"], alias(key_id)])
        return self.server.signer(key_id)


class TestAWSKMSConformance(SignerConformance):
    @pytest.fixture
    def harness(self, aws_kms):
        return AWSKMSHarness(aws_kms)


# --------------------------------------------------------------------------- PoPs


def test_kms_key_is_the_warrant_holder_and_its_pop_verifies(aws_kms):
    key_id = new_key(aws_kms)
    with aws_kms.signer(key_id) as signer:
        assert raw(signer.public_key) == aws_kms.public_raw(alias(key_id))
        warrant = warrant_for(signer.public_key)
        accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))
        info = signer.key_info()
        assert info.target == aws_kms.target(alias(key_id))
        assert [v.number for v in info.signing] == [1]
        assert signer.sign_calls == 1


def test_imported_key_signs_byte_for_byte_like_the_local_key(aws_kms):
    key = tenuo_core.SigningKey.generate()
    key_id = unique("byok")
    aws_kms.import_key(alias(key_id), key)
    with aws_kms.signer(key_id) as signer:
        warrant = warrant_for(key.public_key)
        ts = int(time.time())
        assert sign_pop(signer, warrant, TOOL, ARGS, ts) == \
            sign_pop(LocalSigner(key_id, key), warrant, TOOL, ARGS, ts)


def test_rotation_moves_the_alias_and_keeps_the_previous_key(aws_kms):
    key_id = new_key(aws_kms, "rot")
    with aws_kms.signer(key_id, refresh_interval=0) as signer:
        old = signer.public_key
        in_flight = warrant_for(old)
        old_arn = aws_kms.target(alias(key_id))
        new_arn = aws_kms.rotate(alias(key_id))
        assert aws_kms.target(alias(key_id) + "/previous") == old_arn
        with aws_kms.signer(key_id) as fresh:
            new = fresh.public_key
            assert raw(new) != raw(old)
            assert [(v.number, v.key_arn) for v in fresh.key_info().signing] == \
                [(2, new_arn), (1, old_arn)]
        # Without a holder the old signer keeps the old key until max_age; a new holder
        # makes it read the alias again.
        minted_after = warrant_for(new)
        accepts(minted_after, sign_pop(signer, minted_after, TOOL, ARGS, int(time.time())))
        accepts(in_flight, sign_pop(signer, in_flight, TOOL, ARGS, int(time.time())))
        assert signer.key_info().target == new_arn
        # A second rotation: the first key is no longer any alias's, but this signer
        # remembers it while it is Enabled.
        aws_kms.rotate(alias(key_id))
        third = aws_kms.public_raw(alias(key_id))
        newest = warrant_for(tenuo_core.PublicKey.from_bytes(third))
        accepts(newest, sign_pop(signer, newest, TOOL, ARGS, int(time.time())))
        accepts(in_flight, sign_pop(signer, in_flight, TOOL, ARGS, int(time.time())))
        assert [v.number for v in signer.key_info().signing] == [3, 2, 1]
        # Disabling the old key stops it: a clear, non-retryable holder mismatch.
        aws_kms.client.disable_key(KeyId=old_arn)
        with pytest.raises(HolderMismatch, match="no longer signs") as info:
            sign_pop(signer, in_flight, TOOL, ARGS, int(time.time()))
        assert info.value.retryable is False
        with pytest.raises(HolderMismatch, match="is Disabled"):
            sign_pop(signer, in_flight, TOOL, ARGS, int(time.time()))
        # Scheduled for deletion: the same.
        aws_kms.client.schedule_key_deletion(KeyId=new_arn, PendingWindowInDays=7)
        with pytest.raises(HolderMismatch):
            sign_pop(signer, minted_after, TOOL, ARGS, int(time.time()))
        accepts(newest, sign_pop(signer, newest, TOOL, ARGS, int(time.time())))


def test_disabled_current_key_is_not_found_without_a_holder(aws_kms):
    key_id = new_key(aws_kms, "off")
    with aws_kms.signer(key_id, refresh_interval=0) as signer:
        signer.public_key  # noqa: B018
        aws_kms.client.disable_key(KeyId=alias(key_id))
        with pytest.raises(KeyNotFound, match="Disabled"):
            signer.sign(b"m")
        aws_kms.client.enable_key(KeyId=alias(key_id))
        assert len(signer.sign(b"m")) == 64


def test_unsuitable_keys_are_refused_at_construction(aws_kms):
    key_id = new_key(aws_kms, "unsuitable")
    real_describe = aws_kms.client.describe_key(KeyId=alias(key_id))["KeyMetadata"]

    class Client:
        """A client whose DescribeKey says the key is an ECC_NIST_P256 key."""

        meta = aws_kms.client.meta

        def describe_key(self, KeyId: str) -> dict[str, Any]:
            return {"KeyMetadata": {**real_describe, "KeySpec": "ECC_NIST_P256"}}

    with pytest.raises(ResolverConfigError, match="ECC_NIST_P256 SIGN_VERIFY"):
        AWSKMSSigner(key_id, client=Client())


def test_oversized_message_is_refused_before_the_call(aws_kms):
    key_id = new_key(aws_kms, "big")
    with aws_kms.signer(key_id) as signer:
        holder = signer.public_key
        assert len(signer.sign(b"x" * MAX_MESSAGE_BYTES, holder=holder)) == 64
        calls = signer.sign_calls
        with pytest.raises(KeyResolutionError, match="accepts at most 4096"):
            signer.sign(b"x" * (MAX_MESSAGE_BYTES + 1), holder=holder)
        assert signer.sign_calls == calls


def test_denied_key_is_access_denied_naming_the_action(aws_kms_factory):
    server = aws_kms_factory()
    key_id = new_key(server, "deny")
    with server.signer(key_id) as signer:
        warrant = warrant_for(signer.public_key)
        server.control(deny=["*"])
        with pytest.raises(KeyAccessDenied, match="AccessDeniedException on Sign") as info:
            sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
        assert "kms:Sign" in info.value.reason and info.value.retryable is False
        # AWS's free-text message (it names the resource and caller) is never copied.
        assert "not authorized" not in str(info.value)
        server.control(deny=[])
        accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))


def test_throttling_and_internal_errors_are_retryable(aws_kms_factory):
    server = aws_kms_factory()
    key_id = new_key(server, "codes")
    with server.signer(key_id, max_attempts=1) as signer:
        warrant = warrant_for(signer.public_key)
        for hook, code in (("throttle", "ThrottlingException"),
                           ("internal", "KMSInternalException")):
            server.control(**{hook: 1})
            with pytest.raises(BackendUnavailable, match=code) as info:
                sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
            assert info.value.retryable is True
            accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))
    # botocore's standard retries absorb a single throttle by default.
    with server.signer(key_id) as retrying:
        server.control(throttle=1)
        accepts(warrant, sign_pop(retrying, warrant, TOOL, ARGS, int(time.time())))


def test_outage_is_retryable_and_a_restart_recovers(aws_kms_factory):
    server = aws_kms_factory(state=True)
    key_id = new_key(server, "outage")
    with server.signer(key_id, connect_timeout=0.5, read_timeout=1, max_attempts=1) as signer:
        warrant = warrant_for(signer.public_key)
        accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))
        server.stop()
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(BackendUnavailable) as down:
                sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
            assert time.monotonic() - started < 3
            assert down.value.retryable is True and down.value.backend == "aws-kms"
        server.start()  # same port, same state file: the key survived
        accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))


def test_corrupted_signature_is_detected_locally_and_never_returned(aws_kms_factory):
    server = aws_kms_factory()
    key_id = new_key(server, "corrupt")
    with server.signer(key_id) as signer:
        warrant = warrant_for(signer.public_key)
        server.control(corrupt_signatures=1)
        with pytest.raises(KeyResolutionError, match="does not verify"):
            sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
        accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))


def test_sign_calls_match_the_requests_the_server_saw(aws_kms_factory):
    server = aws_kms_factory()
    key_id = new_key(server, "count")
    with server.signer(key_id) as signer:
        warrant = warrant_for(signer.public_key)
        for _ in range(5):
            sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
        counts = server.control()["counts"]
        assert counts["Sign"] == signer.sign_calls == 5
        assert counts["GetPublicKey"] == signer.public_key_calls == 1
        assert counts["DescribeKey"] == signer.describe_calls


# --------------------------------------------------------------------------- URLs


def test_awskms_urls(aws_kms):
    ids = [new_key(aws_kms, "url") for _ in range(2)]
    first = signer_from_url(aws_kms.url(refresh_interval=1, max_attempts=2), key_id=ids[0])
    assert isinstance(first, AWSKMSSigner)
    second = first.for_key(ids[1])
    try:
        assert second._shared is first._shared
        for signer, key_id in ((first, ids[0]), (second, ids[1])):
            assert signer.key_name == alias(key_id)
            warrant = warrant_for(signer.public_key)
            accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))
        assert repr(first) == (f"AWSKMSSigner(key_id={ids[0]!r}, key={alias(ids[0])!r}, "
                               f"endpoint={aws_kms.endpoint_url!r})")
    finally:
        first.close()
        second.close()
    # A template without {key_id} names one fixed key: an alias, or the key's ARN.
    arn = aws_kms.target(alias(ids[0]))
    with signer_from_url(aws_kms.url(template=alias(ids[0]))) as by_alias, \
            signer_from_url(aws_kms.url(template=arn)) as by_arn:
        assert by_alias.key_id == alias(ids[0])
        assert raw(by_alias.public_key) == raw(by_arn.public_key)
    bad = {
        f"awskms://{REGION}:443/alias/x": "no port",
        "awskms://not_a_region/alias/x": "AWS region",
        f"awskms://{REGION}/alias/tenuo-{{key_id}}?bogus=1": "bogus",
        f"awskms://{REGION}/alias/a{{key_id}}b{{key_id}}": "at most one",
        f"awskms://{REGION}/alias/tenuo-{{key_id}}?max_message_bytes=5000": "max_message_bytes",
        "awskms://us-east-1/alias/x?endpoint_url=http://10.1.2.3:4566": "plaintext",
    }
    for url, message in bad.items():
        with pytest.raises(ResolverConfigError, match=message):
            signer_from_url(url, key_id="k")
    with pytest.raises(ResolverConfigError, match="needs a key id"):
        signer_from_url(f"awskms://{REGION}/alias/tenuo-{{key_id}}")
    with pytest.raises(ResolverConfigError, match="previous"):
        signer_from_url(aws_kms.url(), key_id="agent/previous")


def test_create_rotate_and_public_tools(aws_kms):
    key_id = unique("tool")
    url = aws_kms.url()
    info = kms_tools.create_key(key_id, url)
    assert info.target == aws_kms.target(alias(key_id))
    with pytest.raises(KeyResolutionError, match="already names"):
        kms_tools.create_key(key_id, url)
    assert kms_tools.create_key(key_id, url, exist_ok=True).target == info.target
    first = kms_tools.public(key_id, url)
    assert first.public == aws_kms.public_raw(alias(key_id))
    rotated = kms_tools.rotate_key(key_id, url)
    assert [v.number for v in rotated.signing] == [2, 1]
    assert aws_kms.target(alias(key_id) + "/previous") == first.key_arn
    second = kms_tools.public(key_id, url)
    assert second.public != first.public
    assert kms_tools.public(key_id, url, holder=first.public_key).key_arn == first.key_arn
    with pytest.raises(HolderMismatch):
        kms_tools.public(key_id, url, holder=tenuo_core.SigningKey.generate().public_key)


# --------------------------------------------------------------------------- latency


def test_sign_latency(aws_kms):
    key_id = new_key(aws_kms, "lat")
    with aws_kms.signer(key_id) as signer:
        median, p99 = sign_latency_ms(signer, warrant_for(signer.public_key))
    print(f"\nAWS KMS sign (loopback HTTP JSON, local verify): median {median:.2f} ms, "
          f"p99 {p99:.2f} ms")
    assert median < 20
