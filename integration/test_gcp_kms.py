"""``GCPKMSSigner`` against a real gRPC Cloud KMS server, with the real client.

GCP has no KMS emulator: ``integration/support/gcp_kms_server.py`` is a small Cloud KMS
speaking the real protocol with the message classes ``google-cloud-kms`` ships,
making real Ed25519 signatures with keys that never leave it. The signer's own
``KeyManagementServiceClient`` talks to it over loopback. Every test isolates
itself with unique CryptoKey ids; tests that set server-wide fault hooks or
stop the server get a server of their own.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import tenuo_core
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from integration.support.gcp_kms import KMS_TOKEN, KMSServer, make_kms_client
from integration.support.procs import free_port
from integration.support.signer_checks import (
    ARGS,
    ISSUER,
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
)
from tenuo_keys._signer import LocalSigner, sign_pop
from tenuo_keys.backends.gcp_kms import MAX_DATA_BYTES, GCPKMSSigner
from tenuo_keys.testing._signer_conformance import SignerConformance, SignerHarness

pytestmark = pytest.mark.integration

WRONG_TOKEN = "ya29.WRONG-kms-token-value"


def raw(public_key: Any) -> bytes:
    return bytes(public_key.to_bytes())


def new_key(server: KMSServer, name: str = "agent", **options: Any) -> str:
    """Create ``tenuo-<key id>`` on ``server``; returns the key id."""
    key_id = unique(name)
    server.create_key(f"tenuo-{key_id}", **options)
    return key_id


# --------------------------------------------------------------------------- conformance


class KMSHarness(SignerHarness):
    """Keys made through the real client; BYOK through a real import job."""

    def __init__(self, server: KMSServer) -> None:
        self.server = server
        self.clients: list[Any] = []

    def make_signer(self, key_id):
        return self.server.signer(key_id)

    def put(self, key_id, key):
        self.server.import_key(f"tenuo-{key_id}", key)

    def create(self, key_id):
        self.server.create_key(f"tenuo-{key_id}")

    def rotate(self, key_id):
        self.server.rotate(f"tenuo-{key_id}")

    def make_unreachable_signer(self, key_id):
        return GCPKMSSigner(key_id, self.server.project, self.server.location,
                            self.server.key_ring, "tenuo-{key_id}",
                            api_endpoint=f"127.0.0.1:{free_port()}", insecure=True, timeout=1.0)

    def make_denied_signer(self, key_id):
        # Credentials the server rejects: the client sends a bearer token it does not accept.
        client = make_kms_client(self.server.endpoint, token=WRONG_TOKEN)
        self.clients.append(client)
        return self.server.signer(key_id, client=client)

    def secrets(self):
        return [WRONG_TOKEN, KMS_TOKEN]

    def close(self) -> None:
        for client in self.clients:
            client.transport.close()


class TestGCPKMSConformance(SignerConformance):
    @pytest.fixture
    def harness(self, gcp_kms):
        harness = KMSHarness(gcp_kms)
        yield harness
        harness.close()


# --------------------------------------------------------------------------- PoPs


def test_kms_pop_passes_check_chain_for_a_warrant_minted_for_the_kms_key(gcp_kms):
    key_id = new_key(gcp_kms)
    with gcp_kms.signer(key_id) as signer:
        holder = signer.public_key
        warrant = warrant_for(holder)
        assert warrant.authorized_holder.to_bytes() == holder.to_bytes()
        for args in (ARGS, {}, {"path": "/ü", "n": -1, "big": 2**70, "f": 0.1, "z": None,
                                "nested": {"b": [1, 2.5, "x"], "a": []}}):
            ts = int(time.time())
            pop = sign_pop(signer, warrant, TOOL, args, ts)
            assert len(pop) == 64
            accepts(warrant, pop, args)
            with pytest.raises(Exception, match=r"(?i)signature"):
                accepts(warrant, pop, {**args, "extra": 1})
        assert signer.sign_calls == 3


def test_kms_pop_for_a_delegated_leaf_passes_check_chain(gcp_kms):
    """Root -> orchestrator (local key) -> worker whose holder key lives in KMS."""
    key_id = new_key(gcp_kms, "worker")
    orchestrator = tenuo_core.SigningKey.generate()
    root = tenuo_core.Warrant.issue(keypair=ISSUER, capabilities={TOOL: {}}, ttl_seconds=600,
                                    holder=orchestrator.public_key)
    with gcp_kms.signer(key_id) as signer:
        leaf = root.attenuate({TOOL: {}}, signing_key=orchestrator, ttl_seconds=300,
                              holder=signer.public_key)
        pop = sign_pop(signer, leaf, TOOL, ARGS, int(time.time()))
    tenuo_core.Authorizer(trusted_roots=[ISSUER.public_key]).check_chain(
        [root, leaf], TOOL, ARGS, signature=pop)


def test_imported_key_signs_byte_for_byte_like_the_local_key(gcp_kms):
    key = tenuo_core.SigningKey.generate()
    key_id = unique("byok")
    assert gcp_kms.import_key(f"tenuo-{key_id}", key) == 1
    warrant = warrant_for(key.public_key)
    local = LocalSigner(key_id, key)
    with gcp_kms.signer(key_id) as signer:
        for ts in (int(time.time()), 1_700_000_000, 1_700_000_029):
            assert sign_pop(signer, warrant, TOOL, ARGS, ts) == sign_pop(local, warrant, TOOL,
                                                                         ARGS, ts)


# --------------------------------------------------------------------------- rotation and state


def test_rotation_keeps_version_1_usable_for_its_holder(gcp_kms):
    key_id = new_key(gcp_kms, "rot")
    crypto_key = f"tenuo-{key_id}"
    with gcp_kms.signer(key_id) as signer:
        v1 = signer.public_key
        in_flight = warrant_for(v1)
        ts = int(time.time())
        accepts(in_flight, sign_pop(signer, in_flight, TOOL, ARGS, ts))
        lists, publics = signer.list_calls, signer.public_key_calls

        assert gcp_kms.rotate(crypto_key) == 2
        assert gcp_kms.rotate(crypto_key) == 3
        # Version 1's warrant still signs from the cached version map: no listing.
        accepts(in_flight, sign_pop(signer, in_flight, TOOL, ARGS, ts))
        assert (signer.list_calls, signer.public_key_calls) == (lists, publics)

        with gcp_kms.signer(key_id) as fresh:
            v3 = fresh.public_key  # the newest ENABLED version signs without a holder
            assert [v.number for v in fresh.key_info().signing] == [3, 2, 1]
            # A signer that first saw the key after the rotation serves version 1 too.
            accepts(in_flight, sign_pop(fresh, in_flight, TOOL, ARGS, ts))
        assert raw(v3) != raw(v1)
        minted_after = warrant_for(v3)
        # An unknown holder: one listing, and only the two new public keys are read.
        accepts(minted_after, sign_pop(signer, minted_after, TOOL, ARGS, ts))
        assert (signer.list_calls, signer.public_key_calls) == (lists + 1, publics + 2)
        accepts(in_flight, sign_pop(signer, in_flight, TOOL, ARGS, ts))
        assert raw(signer.public_key_for(v1)) == raw(v1)


def test_disabled_and_destroyed_versions_fail_clearly(gcp_kms):
    key_id = new_key(gcp_kms, "state", destroy_after=1.0)
    crypto_key = f"tenuo-{key_id}"
    gcp_kms.rotate(crypto_key)
    with gcp_kms.signer(key_id, refresh_interval=0) as signer:
        v1, v2 = (signer.key_info().versions[1].public_key,
                  signer.key_info().versions[0].public_key)
        old, new = warrant_for(v1), warrant_for(v2)
        ts = int(time.time())
        accepts(old, sign_pop(signer, old, TOOL, ARGS, ts))

        # Disabled behind the signer's back: KMS answers FAILED_PRECONDITION; the signer
        # re-lists and says which version and which state.
        gcp_kms.set_state(crypto_key, 1, "DISABLED")
        with pytest.raises(HolderMismatch, match=r"is version 1 of CryptoKey .*which is DISABLED"
                           ) as info:
            sign_pop(signer, old, TOOL, ARGS, ts)
        assert info.value.retryable is False and info.value.key_id == key_id
        with pytest.raises(HolderMismatch, match="DISABLED"):  # from the new listing
            signer.sign(b"m", holder=v1)
        accepts(new, sign_pop(signer, new, TOOL, ARGS, ts))  # version 2 is unaffected

        gcp_kms.set_state(crypto_key, 1, "ENABLED")
        accepts(old, sign_pop(signer, old, TOOL, ARGS, ts))

        assert gcp_kms.destroy(crypto_key, 1) == "DESTROY_SCHEDULED"
        with pytest.raises(HolderMismatch, match="which is DESTROY_SCHEDULED"):
            sign_pop(signer, old, TOOL, ARGS, ts)
        time.sleep(1.1)
        with pytest.raises(HolderMismatch, match="which is DESTROYED"):
            sign_pop(signer, old, TOOL, ARGS, ts)

        # No ENABLED version left: signing without a holder is KeyNotFound, not a guess.
        gcp_kms.set_state(crypto_key, 2, "DISABLED")
        with pytest.raises(KeyNotFound, match=r"no ENABLED EC_SIGN_ED25519 version .*"
                           r"2=DISABLED, 1=DESTROYED") as none:
            signer.sign(b"m")
        assert none.value.retryable is False
        with pytest.raises(HolderMismatch, match="which is DISABLED"):
            sign_pop(signer, new, TOOL, ARGS, ts)


def test_pending_generation_is_retryable_then_signs(gcp_kms_factory):
    server = gcp_kms_factory()
    server.control.configure(generation_delay_ms=800)
    key_id = new_key(server, "pending")
    with server.signer(key_id, refresh_interval=0.5) as signer:
        with pytest.raises(KeyNotFound, match="still being created") as info:
            signer.public_key  # noqa: B018
        assert info.value.retryable is True
        time.sleep(1.0)
        warrant = warrant_for(signer.public_key)
        accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("algorithm", "purpose", "expected"),
    [
        ("EC_SIGN_P256_SHA256", "ASYMMETRIC_SIGN", "has algorithm EC_SIGN_P256_SHA256"),
        ("RSA_SIGN_PKCS1_2048_SHA256", "ASYMMETRIC_SIGN", "has algorithm RSA_SIGN_PKCS1"),
        ("GOOGLE_SYMMETRIC_ENCRYPTION", "ENCRYPT_DECRYPT", "has purpose ENCRYPT_DECRYPT"),
    ],
)
def test_unsuitable_keys_are_refused_at_construction(gcp_kms, algorithm, purpose, expected):
    key_id = new_key(gcp_kms, "bad", algorithm=algorithm, purpose=purpose)
    with pytest.raises(ResolverConfigError, match=expected):
        gcp_kms.signer(key_id)
    with gcp_kms.signer(key_id, lazy=True) as lazy, pytest.raises(
            KeyResolutionError, match=expected) as info:
        lazy.sign(b"m")
    assert info.value.retryable is False
    assert lazy.sign_calls == 0


def test_versions_of_another_algorithm_are_never_used(gcp_kms):
    """A P-256 version imported into an Ed25519 key: listed, never chosen to sign."""
    key_id = new_key(gcp_kms, "mixed")
    p256 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    assert gcp_kms.import_der(f"tenuo-{key_id}", p256, "EC_SIGN_P256_SHA256") == 2
    with gcp_kms.signer(key_id) as signer:
        info = signer.key_info()
        assert [(v.number, v.algorithm, v.public is None) for v in info.versions] == [
            (2, "EC_SIGN_P256_SHA256", True), (1, "EC_SIGN_ED25519", False)]
        assert info.current is not None and info.current.number == 1
        warrant = warrant_for(signer.public_key)
        accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))


def test_oversized_message_is_refused_before_the_call(gcp_kms):
    key_id = new_key(gcp_kms, "big")
    with gcp_kms.signer(key_id) as signer:
        warrant = warrant_for(signer.public_key)
        holder = warrant.authorized_holder
        before = gcp_kms.control.calls("AsymmetricSign")
        big = {"path": "x" * MAX_DATA_BYTES}
        with pytest.raises(KeyResolutionError, match=r"at most 65536 .* not sent") as info:
            sign_pop(signer, warrant, TOOL, big, int(time.time()))
        assert info.value.retryable is False
        with pytest.raises(KeyResolutionError, match="65537 bytes"):
            signer.sign(b"\0" * (MAX_DATA_BYTES + 1), holder=holder)
        assert signer.sign_calls == 0
        assert gcp_kms.control.calls("AsymmetricSign") == before
        # Exactly at the limit: Cloud KMS (and this server) accept it.
        message = b"\1" * MAX_DATA_BYTES
        signature = signer.sign(message, holder=holder)
        Ed25519PublicKey.from_public_bytes(raw(holder)).verify(signature, message)
    with gcp_kms.signer(key_id, max_data_bytes=1024) as small, pytest.raises(
            KeyResolutionError, match="at most 1024"):
        small.sign(b"\0" * 1025)


# --------------------------------------------------------------------------- access


def test_denied_key_is_access_denied_with_the_missing_permission(gcp_kms):
    key_id = new_key(gcp_kms, "deny")
    with gcp_kms.signer(key_id) as signer:
        warrant = warrant_for(signer.public_key)
        accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))
        gcp_kms.control.configure(deny=[f"tenuo-{key_id}"])
        try:
            with pytest.raises(KeyAccessDenied,
                               match=r"cloudkms\.cryptoKeyVersions\.useToSign") as info:
                sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
            assert info.value.retryable is False and info.value.key_id == key_id
            assert info.value.backend == "gcp-kms"
            with pytest.raises(KeyAccessDenied, match=r"cloudkms\.cryptoKeys\.get"):
                gcp_kms.signer(key_id)
        finally:
            gcp_kms.control.configure(deny=[])
        accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))


def test_rejected_credentials_are_access_denied_and_never_echoed(gcp_kms):
    key_id = new_key(gcp_kms, "token")
    good = make_kms_client(gcp_kms.endpoint, token=KMS_TOKEN)
    bad = make_kms_client(gcp_kms.endpoint, token=WRONG_TOKEN)
    try:
        with gcp_kms.signer(key_id, client=good) as signer:  # an injected client works
            warrant = warrant_for(signer.public_key)
            accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))
        with pytest.raises(KeyAccessDenied, match="unauthenticated") as info:
            gcp_kms.signer(key_id, client=bad)
        assert WRONG_TOKEN not in str(info.value) + repr(info.value)
        # An injected client is the caller's: closing the signer leaves it open.
        with gcp_kms.signer(key_id, client=good) as again:
            again.public_key  # noqa: B018
        assert good.get_crypto_key(request={"name": gcp_kms.key_path(f"tenuo-{key_id}")})
    finally:
        good.transport.close()
        bad.transport.close()


def test_missing_key_and_key_ring(gcp_kms):
    with pytest.raises(KeyNotFound, match="does not exist") as info:
        gcp_kms.signer(unique("absent"))
    assert info.value.retryable is False
    with pytest.raises(KeyNotFound):
        GCPKMSSigner("agent", gcp_kms.project, gcp_kms.location, "no-such-ring",
                     api_endpoint=gcp_kms.endpoint, insecure=True)


# --------------------------------------------------------------------------- outages


def test_outage_is_retryable_and_a_restart_recovers(gcp_kms_factory):
    server = gcp_kms_factory(state=True)
    key_id = new_key(server, "outage")
    with server.signer(key_id, timeout=1.0) as signer:
        holder = signer.public_key
        warrant = warrant_for(holder)
        accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))

        server.stop()
        calls = signer.sign_calls
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(BackendUnavailable) as down:
                sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
            assert time.monotonic() - started < 2
            assert down.value.retryable is True
            assert "UNAVAILABLE" in down.value.reason
            assert down.value.key_id == key_id and down.value.backend == "gcp-kms"
        assert signer.sign_calls == calls + 3

        # Same port, same state file: the key (and its private half) survived.
        server.start()
        deadline = time.monotonic() + 10
        while True:
            try:
                pop = sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
                break
            except BackendUnavailable:
                assert time.monotonic() < deadline, "did not recover after the restart"
                time.sleep(0.05)
        accepts(warrant, pop)
        assert raw(signer.key_info(refresh=True).signing[0].public_key) == raw(holder)


def test_server_status_codes_map_to_error_types(gcp_kms_factory):
    server = gcp_kms_factory()
    key_id = new_key(server, "codes")
    expected = {
        "UNAVAILABLE": BackendUnavailable, "INTERNAL": BackendUnavailable,
        "RESOURCE_EXHAUSTED": BackendUnavailable, "ABORTED": BackendUnavailable,
        "DEADLINE_EXCEEDED": BackendUnavailable, "NOT_FOUND": KeyNotFound,
        "PERMISSION_DENIED": KeyAccessDenied, "UNAUTHENTICATED": KeyAccessDenied,
        "INVALID_ARGUMENT": KeyResolutionError, "UNIMPLEMENTED": KeyResolutionError,
    }
    with server.signer(key_id) as signer:
        warrant = warrant_for(signer.public_key)
        for code, kind in expected.items():
            server.control.configure(fail={"code": code, "count": 1,
                                           "methods": ["AsymmetricSign"]})
            with pytest.raises(KeyResolutionError) as info:
                sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
            assert type(info.value) is kind, (code, info.value)
            assert info.value.retryable is (kind is BackendUnavailable), code
            # One failure, then the next call signs: no client-side retries by default.
            accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))
        server.control.configure(latency_ms=1500)
        with server.signer(key_id, timeout=0.5, lazy=True) as slow, pytest.raises(
                BackendUnavailable, match="DEADLINE_EXCEEDED"):
            slow.public_key  # noqa: B018


# --------------------------------------------------------------------------- integrity


def test_corrupted_signature_is_detected_locally_and_never_returned(gcp_kms_factory):
    server = gcp_kms_factory()
    key_id = new_key(server, "corrupt")
    with server.signer(key_id) as signer:
        warrant = warrant_for(signer.public_key)
        ts = int(time.time())
        # A flipped bit with a matching CRC32C: only verifying the signature can tell.
        server.control.configure(corrupt_signature=1)
        with pytest.raises(KeyResolutionError, match="does not verify") as info:
            sign_pop(signer, warrant, TOOL, ARGS, ts)
        assert info.value.retryable is False
        assert not isinstance(info.value, BackendUnavailable)
        accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, ts))

        # Corruption in transit (CRC32C mismatches): retried, at most three tries in all.
        for hook in ("bad_signature_crc", "unverified_data_crc"):
            calls = signer.sign_calls
            server.control.configure(**{hook: 2})
            accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, ts))
            assert signer.sign_calls == calls + 3
            server.control.configure(**{hook: 3})
            with pytest.raises(KeyResolutionError, match=r"\(3 tries\)") as crc:
                sign_pop(signer, warrant, TOOL, ARGS, ts)
            assert crc.value.retryable is True
            assert signer.sign_calls == calls + 6

        server.control.configure(wrong_version_name=1)
        with pytest.raises(KeyResolutionError, match="when asked for"):
            sign_pop(signer, warrant, TOOL, ARGS, ts)

    # A public key whose PEM fails its CRC32C is read again, never trusted.
    server.control.configure(bad_pem_crc=1)
    with server.signer(key_id) as fresh:
        assert fresh.public_key_calls == 2
        assert raw(fresh.public_key) == raw(warrant.authorized_holder)
    server.control.configure(bad_pem_crc=3)
    with pytest.raises(KeyResolutionError, match="pem_crc32c"):
        server.signer(key_id)


# --------------------------------------------------------------------------- counting, URLs


def test_sign_calls_match_the_requests_the_server_saw(gcp_kms_factory):
    server = gcp_kms_factory()
    key_id = new_key(server, "counted")
    with server.signer(key_id) as signer:
        server.control.stats(reset=True)
        warrant = warrant_for(signer.public_key)
        for i in range(7):
            sign_pop(signer, warrant, TOOL, {"i": i}, int(time.time()))
        with pytest.raises(HolderMismatch):  # an unknown holder: listing, no signing
            signer.sign(b"m", holder=tenuo_core.SigningKey.generate().public_key)
        assert signer.sign_calls == 7
        calls = server.control.stats()["calls"]
        assert calls.get("AsymmetricSign") == 7
        assert calls.get("ListCryptoKeyVersions") == 1 and "GetPublicKey" not in calls


def test_from_url_and_for_key_share_one_client(gcp_kms):
    ids = [new_key(gcp_kms, "url") for _ in range(3)]
    first = GCPKMSSigner.from_url(gcp_kms.url(timeout=3, refresh_interval=1), key_id=ids[0])
    others = [first.for_key(key_id) for key_id in ids[1:]]
    try:
        for signer in (first, *others):
            assert signer._shared is first._shared
            warrant = warrant_for(signer.public_key)
            accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))
        assert repr(first) == (f"GCPKMSSigner(key_id={ids[0]!r}, key="
                               f"{gcp_kms.key_path('tenuo-' + ids[0])!r}, "
                               f"endpoint={gcp_kms.endpoint!r})")
        first.close()
        # The client stays open for the siblings until the last one closes.
        warrant = warrant_for(others[0].public_key)
        accepts(warrant, sign_pop(others[0], warrant, TOOL, ARGS, int(time.time())))
    finally:
        for signer in (first, *others):
            signer.close()
    # A template without {key_id} names one fixed key; the key id is its name.
    with GCPKMSSigner.from_url(gcp_kms.url(template=f"tenuo-{ids[0]}")) as fixed, \
            gcp_kms.signer(ids[0]) as same:
        assert fixed.key_id == f"tenuo-{ids[0]}"
        assert raw(fixed.public_key) == raw(same.public_key)


# --------------------------------------------------------------------------- latency


def test_sign_latency(gcp_kms):
    key_id = new_key(gcp_kms, "lat")
    with gcp_kms.signer(key_id) as signer:
        median, p99 = sign_latency_ms(signer, warrant_for(signer.public_key))
    print(f"\nCloud KMS sign (loopback gRPC, CRC32C + local verify): median {median:.2f} ms, "
          f"p99 {p99:.2f} ms")
    assert median < 20
