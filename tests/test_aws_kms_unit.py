"""``AWSKMSSigner`` without a server: error mapping, DER parsing, names, URLs, answer checks.

The signer against a real AWS KMS JSON-protocol server is in
``integration/test_aws_kms.py``; here a stub client stands in where an answer
must be malformed on purpose.
"""

from __future__ import annotations

from typing import Any

import pytest
import tenuo_core
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tenuo_keys import (
    BackendUnavailable,
    HolderMismatch,
    KeyAccessDenied,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
    signer_from_url,
)
from tenuo_keys.backends.aws_kms import (
    DEFAULT_TEMPLATE,
    AWSKMSSigner,
    map_error,
    previous_alias,
    raw_public_key,
)

ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def client_error(code: str, status: int = 400, message: str = "secret-ish AWS text") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Sign")


@pytest.mark.parametrize(("code", "status", "kind", "retryable"), [
    ("NotFoundException", 400, KeyNotFound, False),
    ("DisabledException", 400, KeyNotFound, False),
    ("KMSInvalidStateException", 400, KeyNotFound, False),
    ("AccessDeniedException", 400, KeyAccessDenied, False),
    ("UnrecognizedClientException", 400, KeyAccessDenied, False),
    ("ExpiredTokenException", 400, KeyAccessDenied, False),
    ("SomethingNew", 403, KeyAccessDenied, False),
    ("ThrottlingException", 400, BackendUnavailable, True),
    ("KMSInternalException", 500, BackendUnavailable, True),
    ("DependencyTimeoutException", 503, BackendUnavailable, True),
    ("KeyUnavailableException", 500, BackendUnavailable, True),
    ("", 502, BackendUnavailable, True),
    ("InvalidKeyUsageException", 400, KeyResolutionError, False),
    ("ValidationException", 400, KeyResolutionError, False),
])
def test_client_errors_map_to_typed_errors_without_aws_text(code, status, kind, retryable):
    error = map_error(client_error(code, status), op="Sign", name="alias/tenuo-a",
                      key_id="a")
    assert type(error) is kind
    assert error.retryable is retryable
    assert error.key_id == "a" and error.backend == "aws-kms"
    assert "Sign" in error.reason and "alias/tenuo-a" in error.reason
    assert "secret-ish" not in str(error) + repr(error)
    if kind is KeyAccessDenied and code == "AccessDeniedException":
        assert "kms:Sign" in error.reason


def test_transport_and_credential_errors():
    down = map_error(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), op="Sign",
                     name="alias/x", key_id="x", endpoint="http://127.0.0.1:1")
    assert isinstance(down, BackendUnavailable) and down.retryable
    assert "http://127.0.0.1:1" in down.reason
    none = map_error(NoCredentialsError(), op="DescribeKey", name="alias/x", key_id="x")
    assert isinstance(none, KeyAccessDenied) and "no usable AWS credentials" in none.reason


def spki(private: Any) -> bytes:
    return bytes(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def test_der_subject_public_key_info_gives_the_raw_key():
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
    assert raw_public_key(spki(private)) == raw
    assert len(spki(private)) == 44  # 12-byte Ed25519 SPKI header + 32-byte key


@pytest.mark.parametrize("der", [
    spki(ec.generate_private_key(ec.SECP256R1())),  # ECC_NIST_P256
    b"\x30\x03\x02\x01\x00",                        # DER, but no key
    b"not der at all",
    b"",
    None,
])
def test_der_that_is_no_ed25519_key_is_refused(der):
    with pytest.raises(ValueError):
        raw_public_key(der)


def test_key_names_and_templates():
    assert DEFAULT_TEMPLATE == "alias/tenuo-{key_id}"
    assert previous_alias("alias/tenuo-a") == "alias/tenuo-a/previous"
    assert previous_alias(ARN) is None
    for template, key_id, message in [
        ("alias/{key_id}/{key_id}", "a", "at most one"),
        ("alias/tenuo-{key_id}", "a b", "KMS key name"),
        ("alias/tenuo-{key_id}", "a/previous", "previous"),
        ("tenuo-{key_id}", "a", "alias/NAME"),
        ("alias/x{key_id}", "é", "KMS key name"),
    ]:
        with pytest.raises(ResolverConfigError, match=message):
            AWSKMSSigner(key_id, template, region_name="us-east-1", lazy=True)


def test_settings_are_checked_before_any_call():
    for options, message in [
        ({"max_message_bytes": 4097}, "max_message_bytes"),
        ({"max_message_bytes": 0}, "max_message_bytes"),
        ({"refresh_interval": -1}, "refresh_interval"),
        ({"max_age": 0}, "max_age"),
        ({"region_name": "Mars"}, "region"),
        ({"client": object(), "region_name": "us-east-1"}, "not both"),
        ({"endpoint_url": "http://kms.example.com", "region_name": "us-east-1"}, "plaintext"),
    ]:
        with pytest.raises(ResolverConfigError, match=message):
            AWSKMSSigner("a", lazy=True, **options)


def test_urls_build_the_signer_they_say():
    import tenuo_keys

    assert tenuo_keys.AWSKMSSigner is AWSKMSSigner  # exported lazily, like GCPKMSSigner
    signer = signer_from_url(
        "awskms://eu-west-1/alias/team/{key_id}?endpoint_url=http://127.0.0.1:9&lazy=1"
        "&max_message_bytes=1024&refresh_interval=2&max_age=30&max_attempts=2",
        key_id="agent1")
    with signer:
        assert isinstance(signer, AWSKMSSigner)
        assert signer.key_name == "alias/team/agent1"
        assert signer.max_message_bytes == 1024
        assert (signer.refresh_interval, signer.max_age) == (2.0, 30.0)
        assert signer._shared.client.meta.region_name == "eu-west-1"
        assert signer.endpoint == "http://127.0.0.1:9"
    with signer_from_url("awskms://us-east-1/?endpoint_url=http://127.0.0.1:9&lazy=1",
                         key_id="b") as default:
        assert default.key_name == "alias/tenuo-b"
    with pytest.raises(ResolverConfigError, match="both in the URL and as an argument"):
        signer_from_url("awskms://us-east-1/alias/{key_id}?lazy=1", key_id="c", lazy=True)


# --------------------------------------------------------------------------- answers


class StubKMS:
    """A client stub: one Ed25519 key under one alias; ``sign_answer`` edits Sign's answer."""

    def __init__(self, key: Ed25519PrivateKey, **sign_answer: Any) -> None:
        self.key = key
        self.sign_answer = sign_answer
        self.meta = type("Meta", (), {"endpoint_url": "https://kms.us-east-1.amazonaws.com"})()

    def describe_key(self, KeyId: str) -> dict[str, Any]:
        if KeyId.endswith("/previous"):
            raise client_error("NotFoundException")
        return {"KeyMetadata": {"Arn": ARN, "KeyState": "Enabled", "KeyUsage": "SIGN_VERIFY",
                                "KeySpec": "ECC_NIST_EDWARDS25519"}}

    def get_public_key(self, KeyId: str) -> dict[str, Any]:
        return {"KeyId": ARN, "PublicKey": spki(self.key),
                "SigningAlgorithms": ["ED25519_SHA_512"]}

    def sign(self, **request: Any) -> dict[str, Any]:
        assert request["MessageType"] == "RAW"
        assert request["SigningAlgorithm"] == "ED25519_SHA_512"
        answer = {"KeyId": ARN, "Signature": self.key.sign(request["Message"]),
                  "SigningAlgorithm": "ED25519_SHA_512"}
        return {**answer, **self.sign_answer}


def test_a_good_answer_is_verified_and_returned():
    key = Ed25519PrivateKey.generate()
    with AWSKMSSigner("a", client=StubKMS(key)) as signer:
        signature = signer.sign(b"message", holder=signer.public_key)
        key.public_key().verify(signature, b"message")
        with pytest.raises(HolderMismatch, match="matches none of the 1 Enabled"):
            signer.sign(b"m", holder=tenuo_core.SigningKey.generate().public_key)


@pytest.mark.parametrize(("edit", "message"), [
    ({"KeyId": ARN.replace("1234abcd", "99999999")}, "when asked for"),
    ({"SigningAlgorithm": "ED25519_PH_SHA_512"}, "ED25519_PH_SHA_512"),
    ({"Signature": b"\x00" * 63}, "63-byte signature"),
    ({"Signature": b"\x00" * 64}, "does not verify"),
])
def test_a_wrong_answer_is_never_returned(edit, message):
    with AWSKMSSigner("a", client=StubKMS(Ed25519PrivateKey.generate(), **edit)) as signer, \
            pytest.raises(KeyResolutionError, match=message):
        signer.sign(b"message")


def test_a_public_key_of_another_kind_is_refused():
    stub = StubKMS(Ed25519PrivateKey.generate())
    stub.get_public_key = lambda KeyId: {  # type: ignore[method-assign]
        "KeyId": ARN, "PublicKey": spki(ec.generate_private_key(ec.SECP256R1()))}
    with pytest.raises(KeyResolutionError, match="not an Ed25519"):
        AWSKMSSigner("a", client=stub)
