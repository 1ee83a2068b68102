"""``GCPKMSSigner`` without a server: URLs, names, error mapping, integrity checks.

A fake client stands in for ``KeyManagementServiceClient``; it returns the real
``google.cloud.kms_v1`` message types, signs with real Ed25519 keys and raises
the real ``google.api_core`` exceptions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import google_crc32c
import pytest
import tenuo_core
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exc
from google.cloud import kms_v1 as kms

from tenuo_keys import (
    BackendUnavailable,
    HolderMismatch,
    KeyAccessDenied,
    KeyNotFound,
    KeyResolutionError,
    ResolverClosed,
    ResolverConfigError,
    sign_pop,
)
from tenuo_keys.backends import gcp_kms
from tenuo_keys.backends.gcp_kms import MAX_DATA_BYTES, GCPKMSSigner
from tests._gcp_cases import SHARED_STATUS_CASES

RING = "projects/p/locations/global/keyRings/ring"


def crc(data: bytes) -> int:
    return int(google_crc32c.value(data))


def raw_public(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)


class FakeTransport:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class FakeKMS:
    """In-memory stand-in: keys by name, versions numbered from 1, real signatures."""

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, Any]] = {}
        self.fail: dict[str, list[BaseException]] = {}
        self.tamper: dict[str, list[Callable[[Any], Any]]] = {}
        self.calls: list[tuple[str, dict[str, Any], Any, Any]] = []
        self.transport = FakeTransport()

    def add_key(self, crypto_key_id: str, *, purpose: str = "ASYMMETRIC_SIGN",
                algorithm: str = "EC_SIGN_ED25519", versions: int = 1) -> str:
        name = f"{RING}/cryptoKeys/{crypto_key_id}"
        self.keys[name] = {"purpose": purpose, "algorithm": algorithm, "versions": []}
        for _ in range(versions):
            self.add_version(name)
        return name

    def add_version(self, key_name: str, state: str = "ENABLED") -> Ed25519PrivateKey:
        private = Ed25519PrivateKey.generate()
        self.keys[key_name]["versions"].append([private, state])
        return private

    def private(self, key_name: str, number: int) -> Ed25519PrivateKey:
        return self.keys[key_name]["versions"][number - 1][0]  # type: ignore[no-any-return]

    def set_state(self, key_name: str, number: int, state: str) -> None:
        self.keys[key_name]["versions"][number - 1][1] = state

    def count(self, method: str) -> int:
        return sum(1 for c in self.calls if c[0] == method)

    def _enter(self, method: str, request: dict[str, Any], retry: Any, timeout: Any) -> None:
        self.calls.append((method, request, retry, timeout))
        queued = self.fail.get(method)
        if queued:
            raise queued.pop(0)

    def _out(self, method: str, answer: Any) -> Any:
        queued = self.tamper.get(method)
        return queued.pop(0)(answer) if queued else answer

    def _version(self, name: str) -> tuple[str, int, Ed25519PrivateKey, str]:
        key_name, _, number = name.partition("/cryptoKeyVersions/")
        key = self.keys.get(key_name)
        if key is None or not number.isdigit() or int(number) > len(key["versions"]):
            raise gexc.NotFound(f"CryptoKeyVersion {name} not found.")
        private, state = key["versions"][int(number) - 1]
        return key_name, int(number), private, state

    def get_crypto_key(self, request: dict[str, Any], retry: Any = None,
                       timeout: Any = None) -> kms.CryptoKey:
        self._enter("get_crypto_key", request, retry, timeout)
        key = self.keys.get(request["name"])
        if key is None:
            raise gexc.NotFound(f"CryptoKey {request['name']} not found.")
        return kms.CryptoKey(name=request["name"], purpose=key["purpose"],
                             version_template={"algorithm": key["algorithm"],
                                               "protection_level": "HSM"})

    def list_crypto_key_versions(self, request: dict[str, Any], retry: Any = None,
                                 timeout: Any = None) -> list[kms.CryptoKeyVersion]:
        self._enter("list_crypto_key_versions", request, retry, timeout)
        key = self.keys[request["parent"]]
        # Deliberately oldest first: the signer must not rely on the order.
        return [kms.CryptoKeyVersion(name=f"{request['parent']}/cryptoKeyVersions/{n}",
                                     state=state, algorithm=key["algorithm"])
                for n, (_, state) in enumerate(key["versions"], 1)]

    def get_public_key(self, request: dict[str, Any], retry: Any = None,
                       timeout: Any = None) -> kms.PublicKey:
        self._enter("get_public_key", request, retry, timeout)
        _, _, private, state = self._version(request["name"])
        if state != "ENABLED":
            raise gexc.FailedPrecondition(f"Resource has value {state} in field state.")
        pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        return self._out("get_public_key", kms.PublicKey(
            pem=pem, pem_crc32c=crc(pem.encode()), name=request["name"],
            algorithm="EC_SIGN_ED25519"))

    def asymmetric_sign(self, request: dict[str, Any], retry: Any = None,
                        timeout: Any = None) -> kms.AsymmetricSignResponse:
        self._enter("asymmetric_sign", request, retry, timeout)
        _, _, private, state = self._version(request["name"])
        if state != "ENABLED":
            raise gexc.FailedPrecondition(
                f"Resource {request['name']} has value {state} in field "
                "crypto_key_version.state.")
        assert request["data_crc32c"] == crc(request["data"])
        signature = private.sign(request["data"])
        return self._out("asymmetric_sign", kms.AsymmetricSignResponse(
            signature=signature, signature_crc32c=crc(signature), verified_data_crc32c=True,
            name=request["name"]))


@pytest.fixture
def fake() -> FakeKMS:
    client = FakeKMS()
    client.add_key("tenuo-agent")
    return client


def make(fake: FakeKMS, key_id: str = "agent", **options: Any) -> GCPKMSSigner:
    return GCPKMSSigner(key_id, "p", "global", "ring", "tenuo-{key_id}", client=fake,
                        **options)


def warrant_for(holder: Any) -> Any:
    issuer = tenuo_core.SigningKey.generate()
    return tenuo_core.Warrant.issue(keypair=issuer, capabilities={"t": {}}, ttl_seconds=60,
                                    holder=holder)


# --------------------------------------------------------------------------- URLs and names


def test_from_url_full() -> None:
    client = FakeKMS()
    signer = GCPKMSSigner.from_url(
        "gcpkms://my-project/europe-west1/ring/tenuo-{key_id}?timeout=3&refresh_interval=1"
        "&max_age=60&max_data_bytes=1000&lazy=1", key_id="agent", client=client)
    assert (signer.project, signer.location, signer.key_ring, signer.crypto_key_id) == (
        "my-project", "europe-west1", "ring", "tenuo-agent")
    assert signer.key_name == ("projects/my-project/locations/europe-west1/keyRings/ring/"
                               "cryptoKeys/tenuo-agent")
    assert (signer.timeout, signer.refresh_interval, signer.max_age, signer.max_data_bytes) == (
        3.0, 1.0, 60.0, 1000)
    assert client.calls == []  # lazy: nothing read yet
    assert signer.endpoint == "cloudkms.googleapis.com"


def test_from_url_default_template_fixed_key_and_insecure_loopback() -> None:
    signer = GCPKMSSigner.from_url("gcpkms://p/global/ring?lazy=true", key_id="agent1",
                                   client=FakeKMS())
    assert signer.crypto_key_id == "agent1"
    fixed = GCPKMSSigner.from_url("gcpkms://p/global/ring/holder-key?lazy=1", client=FakeKMS())
    assert (fixed.key_id, fixed.crypto_key_id) == ("holder-key", "holder-key")
    local = GCPKMSSigner.from_url(
        "gcpkms://p/global/ring/{key_id}?api_endpoint=127.0.0.1:1&insecure=1&lazy=1",
        key_id="a")
    try:
        assert local.endpoint == "127.0.0.1:1"
        assert repr(local) == ("GCPKMSSigner(key_id='a', key='projects/p/locations/global/"
                               "keyRings/ring/cryptoKeys/a', endpoint='127.0.0.1:1')")
    finally:
        local.close()


@pytest.mark.parametrize(
    ("url", "kwargs", "expected"),
    [
        ("gcpkms://p:443/global/ring", {}, "authority is the project id"),
        ("gcpkms://user@p/global/ring", {}, "authority is the project id"),
        ("gcpkms://p/global", {}, "gcpkms://PROJECT/LOCATION/KEY_RING"),
        ("gcpkms://p/global/ring/a/b", {}, "gcpkms://PROJECT/LOCATION/KEY_RING"),
        ("gcpkms:///global/ring", {}, "authority is the project id"),
        ("gcpkms://p/global/ring?colour=red", {}, "does not understand parameter"),
        ("gcpkms://p/global/ring?token=x", {}, "must not carry secrets"),
        ("gcpkms://p/global/ring/{key_id}", {}, "needs a key id"),
        ("gcpkms://p/global/ring/k?timeout=3", {"timeout": 4}, "given both"),
        ("gcpkms://p/global/ring/k?timeout=soon", {}, "is not a number"),
        ("gcpkms://p/global/ring/k?insecure=maybe", {}, "is not a boolean"),
        ("gcpkms://p/global/ring/k?insecure=1&api_endpoint=kms.example.com:443", {},
         "not loopback.*dangerously_allow_insecure_transport"),
        ("gcpkms://p/global/ring/k?insecure=1", {}, "needs api_endpoint"),
        ("gcpkms://p/global/ring/k?api_endpoint=127.0.0.1:1", {"client": object()},
         "either client= or api_endpoint"),
        ("vault-transit://p/global/ring/k", {}, "expected a gcpkms:// URL"),
        ("gcpkms://p/global/ring/k?max_data_bytes=-1", {}, "max_data_bytes"),
        ("gcpkms://p/global/ring/k?timeout=0", {}, "timeout must be > 0"),
    ],
)
def test_from_url_refusals(url: str, kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ResolverConfigError, match=expected):
        GCPKMSSigner.from_url(url, **kwargs)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("a b", "p", "global", "ring"), "CryptoKey id"),
        (("x" * 64, "p", "global", "ring"), "CryptoKey id"),
        (("../x", "p", "global", "ring"), "CryptoKey id"),
        (("", "p", "global", "ring"), "invalid key id"),
        (("a", "p", "global", "ring", "{key_id}-{key_id}"), "at most one"),
        (("a", "p", "global", "ring", "tenuo.{key_id}"), "only letters"),
        (("a", "p/x", "global", "ring"), "invalid GCP project"),
        (("a", "p", "glob/al", "ring"), "invalid Cloud KMS location"),
        (("a", "p", "global", "r" * 64), "invalid Cloud KMS key ring"),
    ],
)
def test_names_are_checked_before_any_call(args: tuple[str, ...], expected: str) -> None:
    client = FakeKMS()
    with pytest.raises(ResolverConfigError, match=expected):
        GCPKMSSigner(*args, client=client)
    assert client.calls == []


@pytest.mark.parametrize(
    ("option", "value"),
    [("refresh_interval", -1), ("refresh_interval", float("inf")), ("max_age", 0),
     ("max_data_bytes", 0), ("max_data_bytes", True), ("timeout", float("nan"))],
)
def test_numeric_settings_are_checked(option: str, value: Any) -> None:
    with pytest.raises(ResolverConfigError, match=option):
        GCPKMSSigner("a", "p", "global", "ring", client=FakeKMS(), **{option: value})


def test_for_key_shares_the_client_and_needs_a_template(fake: FakeKMS) -> None:
    fake.add_key("tenuo-other")
    with make(fake) as signer:
        sibling = signer.for_key("other")
        assert sibling._shared is signer._shared
        assert sibling.crypto_key_id == "tenuo-other"
        with pytest.raises(ResolverConfigError, match="CryptoKey id"):
            signer.for_key("a b")
        sibling.close()
    fixed = GCPKMSSigner("tenuo-agent", "p", "global", "ring", "tenuo-agent", client=fake)
    with fixed, pytest.raises(ResolverConfigError, match="names the one CryptoKey"):
        fixed.for_key("other")
    assert fake.transport.closed == 0  # injected: never closed by the signer


# --------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("exc", "kind", "retryable", "text"),
    [
        (gexc.NotFound("CryptoKey x not found."), KeyNotFound, False, "does not exist"),
        (gexc.PermissionDenied("Permission denied"), KeyAccessDenied, False, "access denied"),
        *SHARED_STATUS_CASES,
        (gexc.RetryError("gave up", None), BackendUnavailable, True, "retries exhausted"),
        (gexc.FailedPrecondition("has value DISABLED"), KeyNotFound, False, "not ENABLED"),
        (gexc.MethodNotImplemented("no"), KeyResolutionError, False, "a Cloud KMS?"),
        (gexc.InvalidArgument("bad name"), KeyResolutionError, False,
         "INVALID_ARGUMENT from Cloud KMS"),
        (gexc.AlreadyExists("dup"), KeyResolutionError, False, "ALREADY_EXISTS from Cloud KMS"),
        (auth_exc.TransportError("dns"), BackendUnavailable, True, "refresh Google credentials"),
        (auth_exc.RefreshError("revoked"), KeyAccessDenied, False, "credentials failed"),
        (ValueError("weird"), KeyResolutionError, False, "unexpected ValueError"),
    ],
)
def test_error_mapping(exc: BaseException, kind: type, retryable: bool, text: str) -> None:
    error = gcp_kms._map_error(exc, key_id="agent", what="sign with version 1")
    assert type(error) is kind
    assert error.retryable is retryable
    assert text in error.reason
    assert (error.key_id, error.backend) == ("agent", "gcp-kms")


def test_errors_from_calls_are_mapped(fake: FakeKMS) -> None:
    fake.fail["get_crypto_key"] = [gexc.ServiceUnavailable("connect failed")]
    with pytest.raises(BackendUnavailable) as info:
        make(fake)
    assert info.value.retryable and info.value.backend == "gcp-kms"
    fake.fail["get_crypto_key"] = [gexc.PermissionDenied("Permission denied on resource")]
    with pytest.raises(KeyAccessDenied, match=r"needs cloudkms\.cryptoKeys\.get.*signerVerifier"):
        make(fake)
    with make(fake) as signer:
        fake.fail["asymmetric_sign"] = [gexc.PermissionDenied("denied")]
        with pytest.raises(KeyAccessDenied, match=r"cloudkms\.cryptoKeyVersions\.useToSign"):
            signer.sign(b"m")
        fake.fail["list_crypto_key_versions"] = [gexc.PermissionDenied("denied")]
        with pytest.raises(KeyAccessDenied, match=r"cloudkms\.cryptoKeyVersions\.list"):
            signer.refresh()


def test_missing_credentials_are_access_denied(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_adc(*_args: Any, **_kwargs: Any) -> Any:
        raise auth_exc.DefaultCredentialsError("Your default credentials were not found")

    monkeypatch.setattr("google.auth.default", no_adc)
    with pytest.raises(KeyAccessDenied, match="no Google credentials found") as info:
        GCPKMSSigner("a", "p", "global", "ring", lazy=True)
    assert info.value.retryable is False


# --------------------------------------------------------------------------- integrity checks


def sign_answer(name: str, message: bytes, **changes: Any) -> kms.AsymmetricSignResponse:
    signature = Ed25519PrivateKey.generate().sign(message)
    answer = kms.AsymmetricSignResponse(signature=signature, signature_crc32c=crc(signature),
                                        verified_data_crc32c=True, name=name)
    for field, value in changes.items():
        setattr(answer, field, value)
    return answer


def test_signature_answer_checks() -> None:
    name = f"{RING}/cryptoKeys/k/cryptoKeyVersions/1"
    good = sign_answer(name, b"m")
    assert gcp_kms._signature_from_answer(good, name) == bytes(good.signature)
    with pytest.raises(gcp_kms._Integrity, match="did not verify data_crc32c"):
        gcp_kms._signature_from_answer(sign_answer(name, b"m", verified_data_crc32c=False), name)
    with pytest.raises(gcp_kms._Integrity, match="signature_crc32c"):
        gcp_kms._signature_from_answer(sign_answer(name, b"m", signature_crc32c=1), name)
    no_crc = sign_answer(name, b"m")
    no_crc.signature_crc32c = None
    with pytest.raises(gcp_kms._Integrity, match="signature_crc32c"):
        gcp_kms._signature_from_answer(no_crc, name)
    with pytest.raises(ValueError, match="when asked for"):
        gcp_kms._signature_from_answer(good, name.replace("/1", "/2"))
    short = kms.AsymmetricSignResponse(signature=b"x" * 63, signature_crc32c=crc(b"x" * 63),
                                       verified_data_crc32c=True, name=name)
    with pytest.raises(ValueError, match="63-byte signature"):
        gcp_kms._signature_from_answer(short, name)


def test_public_key_answer_checks() -> None:
    name = f"{RING}/cryptoKeys/k/cryptoKeyVersions/1"
    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def answer(**changes: Any) -> kms.PublicKey:
        out = kms.PublicKey(pem=pem, pem_crc32c=crc(pem.encode()), name=name,
                            algorithm="EC_SIGN_ED25519")
        for field, value in changes.items():
            setattr(out, field, value)
        return out

    assert gcp_kms._public_from_answer(answer(), name) == raw_public(private)
    with pytest.raises(gcp_kms._Integrity, match="pem_crc32c"):
        gcp_kms._public_from_answer(answer(pem_crc32c=crc(pem.encode()) ^ 1), name)
    with pytest.raises(gcp_kms._Integrity, match="without pem_crc32c"):
        gcp_kms._public_from_answer(answer(pem_crc32c=None), name)
    with pytest.raises(ValueError, match="answered for"):
        gcp_kms._public_from_answer(answer(name=name + "0"), name)
    with pytest.raises(ValueError, match="EC_SIGN_P256_SHA256, not EC_SIGN_ED25519"):
        gcp_kms._public_from_answer(answer(algorithm="EC_SIGN_P256_SHA256"), name)
    from cryptography.hazmat.primitives.asymmetric import ec

    p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(ValueError, match="not an Ed25519"):
        gcp_kms._public_from_answer(answer(pem=p256, pem_crc32c=crc(p256.encode())), name)


def corrupt_crc(answer: Any) -> Any:
    answer.signature_crc32c = int(answer.signature_crc32c) ^ 0x1
    return answer


def test_integrity_failures_are_retried_then_retryable(fake: FakeKMS) -> None:
    with make(fake) as signer:
        fake.tamper["asymmetric_sign"] = [corrupt_crc, corrupt_crc]
        signature = signer.sign(b"m")
        fake.private(signer.key_name, 1).public_key().verify(signature, b"m")
        assert signer.sign_calls == 3
        fake.tamper["asymmetric_sign"] = [corrupt_crc] * 3
        with pytest.raises(KeyResolutionError, match=r"\(3 tries\)") as info:
            signer.sign(b"m")
        assert info.value.retryable is True
        assert signer.sign_calls == 6


def test_signature_that_does_not_verify_is_never_returned(fake: FakeKMS) -> None:
    def other_key(answer: Any) -> Any:
        forged = Ed25519PrivateKey.generate().sign(b"m")
        answer.signature, answer.signature_crc32c = forged, crc(forged)
        return answer

    with make(fake) as signer:
        lists = signer.list_calls
        fake.tamper["asymmetric_sign"] = [other_key]
        with pytest.raises(KeyResolutionError, match="does not verify") as info:
            signer.sign(b"m")
        assert info.value.retryable is False
        assert signer._snapshot is None  # re-listed on the next call
        signer.sign(b"m")
        assert signer.list_calls == lists + 1


# --------------------------------------------------------------------------- signing


def test_every_call_carries_the_deadline_and_retry(fake: FakeKMS) -> None:
    retry = Retry(initial=0.1, maximum=0.2, timeout=1.0)
    with make(fake, timeout=2.5, retry=retry) as signer:
        signer.sign(b"m")
    assert {(c[2], c[3]) for c in fake.calls} == {(retry, 2.5)}
    fake.calls.clear()
    with make(fake) as signer:
        signer.sign(b"m")
    assert {(c[2], c[3]) for c in fake.calls} == {(None, 10.0)}  # no client retries by default


def test_construction_reads_the_key_once_and_each_public_key_once(fake: FakeKMS) -> None:
    key_name = f"{RING}/cryptoKeys/tenuo-agent"
    fake.add_version(key_name)
    with make(fake, refresh_interval=0) as signer:
        assert [fake.count(m) for m in ("get_crypto_key", "list_crypto_key_versions",
                                        "get_public_key")] == [1, 1, 2]
        assert [v.number for v in signer.key_info().versions] == [2, 1]
        assert raw_public(fake.private(key_name, 2)) == bytes(signer.public_key.to_bytes())
        fake.add_version(key_name)
        signer.refresh()  # only the new version's public key is read
        assert [fake.count(m) for m in ("get_crypto_key", "list_crypto_key_versions",
                                        "get_public_key")] == [1, 2, 3]


def test_oversized_message_is_refused_without_a_call(fake: FakeKMS) -> None:
    with make(fake) as signer:
        before = len(fake.calls)
        with pytest.raises(KeyResolutionError, match=f"{MAX_DATA_BYTES + 1} bytes"):
            signer.sign(b"\0" * (MAX_DATA_BYTES + 1))
        with pytest.raises(TypeError, match="must be bytes"):
            signer.sign("text")  # type: ignore[arg-type]
        assert len(fake.calls) == before and signer.sign_calls == 0
        assert len(signer.sign(b"\0" * MAX_DATA_BYTES)) == 64


def test_holder_mismatch_names_the_version_state(fake: FakeKMS) -> None:
    key_name = f"{RING}/cryptoKeys/tenuo-agent"
    fake.add_version(key_name)
    with make(fake, refresh_interval=0) as signer:
        v1 = signer.key_info().versions[1].public_key
        stranger = tenuo_core.SigningKey.generate().public_key
        with pytest.raises(HolderMismatch, match=r"matches none of the 2 ENABLED version\(s\)"):
            signer.sign(b"m", holder=stranger)
        fake.set_state(key_name, 1, "DISABLED")
        # The cached map still says ENABLED: KMS refuses, the signer re-lists and explains.
        with pytest.raises(HolderMismatch, match=r"is version 1 .* which is DISABLED") as info:
            signer.sign(b"m", holder=v1)
        assert info.value.retryable is False
        assert signer.key_info().versions[1].state == "DISABLED"


def test_newest_version_disabled_behind_our_back_moves_to_the_next(fake: FakeKMS) -> None:
    key_name = f"{RING}/cryptoKeys/tenuo-agent"
    fake.add_version(key_name)
    with make(fake) as signer:
        fake.set_state(key_name, 2, "DISABLED")
        signature = signer.sign(b"m")  # holder-less: the newest ENABLED version now is 1
        fake.private(key_name, 1).public_key().verify(signature, b"m")
        fake.set_state(key_name, 1, "DESTROYED")
        with pytest.raises(KeyNotFound, match=r"no ENABLED .*\(2=DISABLED, 1=DESTROYED\)"):
            signer.sign(b"m")


def test_pending_version_is_retryable_not_found(fake: FakeKMS) -> None:
    name = fake.add_key("tenuo-new", versions=0)
    fake.add_version(name, state="PENDING_GENERATION")
    with make(fake, "new", refresh_interval=30) as signer:
        with pytest.raises(KeyNotFound, match="still being created") as info:
            signer.sign(b"m")
        assert info.value.retryable is True
        fake.set_state(name, 1, "ENABLED")
        with pytest.raises(KeyNotFound):  # re-listed once already: throttled
            signer.sign(b"m")
        signer._last_miss_refresh -= 30
        signature = signer.sign(b"m")  # no max_age wait: a key without versions re-lists
        fake.private(name, 1).public_key().verify(signature, b"m")
        assert signer.list_calls == 3


def test_unknown_holders_relist_at_most_once_per_interval(fake: FakeKMS) -> None:
    stranger = tenuo_core.SigningKey.generate().public_key
    with make(fake, refresh_interval=30) as signer:
        for i in range(20):
            with pytest.raises(HolderMismatch) as info:
                signer.sign(b"m", holder=stranger)
            assert info.value.retryable is (i > 0)  # throttled: a later re-list may find it
        assert signer.list_calls == 2 and signer.sign_calls == 0


def test_holderless_signing_relists_after_max_age(fake: FakeKMS) -> None:
    key_name = f"{RING}/cryptoKeys/tenuo-agent"
    with make(fake, max_age=0.05) as signer:
        fake.add_version(key_name)
        time.sleep(0.06)
        signature = signer.sign(b"m")
        fake.private(key_name, 2).public_key().verify(signature, b"m")


def test_unsuitable_keys(fake: FakeKMS) -> None:
    fake.add_key("tenuo-p256", algorithm="EC_SIGN_P256_SHA256")
    fake.add_key("tenuo-aes", purpose="ENCRYPT_DECRYPT", algorithm="GOOGLE_SYMMETRIC_ENCRYPTION")
    with pytest.raises(ResolverConfigError, match="has algorithm EC_SIGN_P256_SHA256"):
        make(fake, "p256")
    with pytest.raises(ResolverConfigError, match="has purpose ENCRYPT_DECRYPT"):
        make(fake, "aes")
    with make(fake, "p256", lazy=True) as lazy, pytest.raises(KeyResolutionError,
                                                              match="EC_SIGN_P256") as info:
        lazy.public_key  # noqa: B018
    assert not isinstance(info.value, ResolverConfigError) and info.value.retryable is False


def test_sign_pop_and_asign(fake: FakeKMS) -> None:
    with make(fake) as signer:
        warrant = warrant_for(signer.public_key)
        ts = int(time.time())
        pop = sign_pop(signer, warrant, "t", {"a": 1}, ts)
        tenuo_core.Authorizer(trusted_roots=[warrant.issuer]).check_chain(
            [warrant], "t", {"a": 1}, signature=pop)
        again = asyncio.run(signer.asign(b"m", holder=warrant.authorized_holder))
        assert len(again) == 64


def test_close_is_final_and_keeps_injected_clients(fake: FakeKMS) -> None:
    signer = make(fake)
    holder = signer.public_key
    signer.close()
    signer.close()
    with pytest.raises(ResolverClosed):
        signer.sign(b"m", holder=holder)
    with pytest.raises(ResolverClosed):
        signer.for_key("other")
    assert fake.transport.closed == 0


def test_owned_client_is_closed_with_the_last_sibling() -> None:
    signer = GCPKMSSigner("a", "p", "global", "ring", "{key_id}",
                          api_endpoint="127.0.0.1:1", insecure=True, lazy=True)
    closed: list[int] = []
    transport = signer._shared.client.transport
    original = transport.close
    transport.close = lambda: (closed.append(1), original())  # type: ignore[method-assign]
    sibling = signer.for_key("b", lazy=True)
    signer.close()
    assert closed == []
    sibling.close()
    assert closed == [1]


def test_repr_and_errors_hold_no_credentials() -> None:
    from google.oauth2.credentials import Credentials

    token = "ya29.SECRET-ACCESS-TOKEN"
    signer = GCPKMSSigner("a", "p", "global", "ring", credentials=Credentials(token=token),
                          lazy=True)
    try:
        assert token not in repr(signer) and token not in str(signer)
    finally:
        signer.close()


def test_the_project_may_come_from_google_cloud_project(fake: FakeKMS, monkeypatch: Any) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    with GCPKMSSigner.from_url("gcpkms:///global/ring/tenuo-{key_id}", key_id="agent",
                               client=fake) as signer:
        assert signer.key_info().name == f"{RING}/cryptoKeys/tenuo-agent"


@pytest.fixture
def kms_cli(fake: FakeKMS, monkeypatch: Any) -> FakeKMS:
    """The CLI's signer_from_url, talking to the in-memory KMS."""
    from tenuo_keys import cli

    real = cli.signer_from_url
    monkeypatch.setattr(cli, "signer_from_url",
                        lambda url, key_id: real(url, key_id=key_id, client=fake))
    return fake


def test_cli_gcpkms_public_and_versions(kms_cli: FakeKMS) -> None:
    import base64

    from click.testing import CliRunner

    from tenuo_keys.cli import EXIT_BACKEND, main

    name = f"{RING}/cryptoKeys/tenuo-agent"
    first = raw_public(kms_cli.private(name, 1))
    second = raw_public(kms_cli.add_version(name))
    url = "gcpkms://p/global/ring/tenuo-{key_id}"
    runner = CliRunner()
    current = runner.invoke(main, ["gcpkms", "public", url, "agent"])
    assert current.exit_code == 0, current.output
    assert base64.b64decode(current.stdout.strip()) == second
    assert current.stderr.strip() == "version 2 (ENABLED)"
    holder = base64.b64encode(first).decode()
    old = runner.invoke(main, ["gcpkms", "public", url, "agent", "--holder", holder,
                               "--format", "hex"])
    assert old.exit_code == 0 and old.stdout.strip() == first.hex()
    kms_cli.set_state(name, 2, "DISABLED")
    listed = runner.invoke(main, ["gcpkms", "versions", url, "agent"])
    assert listed.exit_code == 0, listed.output
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [row[:2] for row in rows] == [["2", "DISABLED"], ["1", "ENABLED"]]
    assert rows[1][-2:] == ["signs", holder]
    missing = runner.invoke(main, ["gcpkms", "public", url, "nobody"])
    assert missing.exit_code == EXIT_BACKEND and "not found" in missing.output.lower()
    stranger = base64.b64encode(bytes(32)).decode()
    unknown = runner.invoke(main, ["gcpkms", "public", url, "agent", "--holder", stranger])
    assert unknown.exit_code == EXIT_BACKEND and "no version of" in unknown.output
