"""A small but real gRPC Cloud KMS server, for tests (GCP ships no KMS emulator).

It speaks the real wire protocol of ``google.cloud.kms.v1.KeyManagementService``
with the request/response message classes that ``google.cloud.kms_v1`` ships,
so the real ``KeyManagementServiceClient`` talks to it over a loopback
insecure channel (see ``integration/_svc_gcp_kms.py``). Private keys are made
here with ``cryptography`` and no call ever returns one; signatures are real.

Implemented (names ``projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N``):

* CreateKeyRing, GetKeyRing;
* CreateCryptoKey (purposes ASYMMETRIC_SIGN with EC_SIGN_ED25519,
  EC_SIGN_P256_SHA256, EC_SIGN_P384_SHA384 or RSA_SIGN_PKCS1_2048_SHA256;
  ENCRYPT_DECRYPT with GOOGLE_SYMMETRIC_ENCRYPTION; ``skip_initial_version_creation``;
  ``destroy_scheduled_duration``), GetCryptoKey, ListCryptoKeys;
* CreateCryptoKeyVersion (rotation), GetCryptoKeyVersion, ListCryptoKeyVersions
  (oldest first; ``state=X``/``state:X``/``state!=X`` terms joined by AND; paging);
* UpdateCryptoKeyVersion (``update_mask=state``: ENABLED <-> DISABLED),
  DestroyCryptoKeyVersion (DESTROY_SCHEDULED, then DESTROYED with the material
  wiped once ``destroy_scheduled_duration`` has passed), RestoreCryptoKeyVersion;
* GetPublicKey (PEM SubjectPublicKeyInfo with ``pem_crc32c``, name, algorithm);
* AsymmetricSign: pure Ed25519 over ``data`` (a ``digest`` is refused for
  Ed25519), ECDSA/RSA over ``digest``; checks ``data_crc32c``/``digest_crc32c``
  when sent and answers ``verified_*_crc32c``, ``signature_crc32c`` and ``name``;
  ``data`` is limited to 64 KiB;
* CreateImportJob, GetImportJob, ImportCryptoKeyVersion (bring your own key:
  ``rsa_aes_wrapped_key`` = RSA-OAEP wrap of an AES-256 key, then AES-KWP
  (RFC 5649) wrap of the PKCS#8 private key, as Cloud KMS specifies).

Status codes follow Cloud KMS: NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT,
FAILED_PRECONDITION ("Resource ... has value DISABLED in field
crypto_key_version.state." for a version that is not ENABLED),
PERMISSION_DENIED, UNAUTHENTICATED.

Test hooks, set at start-up by flags or at run time through a second gRPC
service (``tenuo_keys.testing.KMSControl``, JSON in and out, see
:class:`ControlClient`):

* ``deny``: key ids (or resource-name prefixes) that answer PERMISSION_DENIED;
* ``corrupt_signature``: the next N signatures have a flipped bit and a
  *matching* ``signature_crc32c`` (only verifying the signature catches it);
* ``bad_signature_crc``: the next N answers carry a wrong ``signature_crc32c``;
* ``unverified_data_crc``: the next N answers say ``verified_data_crc32c=false``;
* ``wrong_version_name``: the next N answers name another key version;
* ``bad_pem_crc``: the next N public keys carry a wrong ``pem_crc32c``;
* ``generation_delay_ms``: new generated versions stay PENDING_GENERATION this long;
* ``fail``: ``{"code": "UNAVAILABLE", "count": 2, "methods": [...]}`` fails the next calls.

Plus the hooks of every test server (``token``, ``latency_ms``), the
``--state`` file and the command line, all from
``integration/support/grpc_test_server.py``. Run it as a process (the fault
tests stop and restart it by PID)::

    python -m integration.support.gcp_kms_server --port 8086 [--state state.json]
"""

from __future__ import annotations

import base64
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import google_crc32c
import grpc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
)
from google.cloud import kms_v1 as kms

from integration.support.grpc_test_server import (
    Abort,
    HandlerTable,
    HookedStore,
    JsonControlClient,
    page,
    run_main,
    start_server,
    timestamp,
)

__all__ = ["CONTROL_SERVICE", "MAX_DATA", "SERVICE", "ControlClient", "FakeKMS", "serve"]

SERVICE = "google.cloud.kms.v1.KeyManagementService"
CONTROL_SERVICE = "tenuo_keys.testing.KMSControl"
MAX_DATA = 64 * 1024
MAX_PAGE = 1000
DEFAULT_DESTROY_SCHEDULED = 24 * 3600.0

_ID = re.compile(r"[a-zA-Z0-9_-]{1,63}")
_LOCATION = re.compile(r"projects/([^/]+)/locations/([^/]+)")
_RING = re.compile(r"(projects/[^/]+/locations/[^/]+)/keyRings/([^/]+)")
_KEY = re.compile(r"(projects/[^/]+/locations/[^/]+/keyRings/[^/]+)/cryptoKeys/([^/]+)")
_VERSION = re.compile(
    r"(projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+)/cryptoKeyVersions/([^/]+)")
_JOB = re.compile(r"(projects/[^/]+/locations/[^/]+/keyRings/[^/]+)/importJobs/([^/]+)")

Algorithm = kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm
Purpose = kms.CryptoKey.CryptoKeyPurpose
State = kms.CryptoKeyVersion.CryptoKeyVersionState

# algorithm -> (purpose, key kind, digest for AsymmetricSign)
_ALGORITHMS: dict[str, tuple[str, str, Any]] = {
    "EC_SIGN_ED25519": ("ASYMMETRIC_SIGN", "ed25519", None),
    "EC_SIGN_P256_SHA256": ("ASYMMETRIC_SIGN", "p256", hashes.SHA256()),
    "EC_SIGN_P384_SHA384": ("ASYMMETRIC_SIGN", "p384", hashes.SHA384()),
    "RSA_SIGN_PKCS1_2048_SHA256": ("ASYMMETRIC_SIGN", "rsa2048", hashes.SHA256()),
    "GOOGLE_SYMMETRIC_ENCRYPTION": ("ENCRYPT_DECRYPT", "aes256", None),
}
_IMPORT_METHODS: dict[str, tuple[int, Any]] = {
    "RSA_OAEP_3072_SHA1_AES_256": (3072, hashes.SHA1()),
    "RSA_OAEP_4096_SHA1_AES_256": (4096, hashes.SHA1()),
    "RSA_OAEP_3072_SHA256_AES_256": (3072, hashes.SHA256()),
    "RSA_OAEP_4096_SHA256_AES_256": (4096, hashes.SHA256()),
}
_HOOK_COUNTS = ("corrupt_signature", "bad_signature_crc", "unverified_data_crc",
                "wrong_version_name", "bad_pem_crc")


def _pkcs8(private: Any) -> bytes:
    return bytes(private.private_bytes(serialization.Encoding.DER,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _generate(kind: str) -> bytes:
    """New key material of ``kind``: PKCS#8 DER, or raw bytes for a symmetric key."""
    if kind == "ed25519":
        return _pkcs8(Ed25519PrivateKey.generate())
    if kind == "p256":
        return _pkcs8(ec.generate_private_key(ec.SECP256R1()))
    if kind == "p384":
        return _pkcs8(ec.generate_private_key(ec.SECP384R1()))
    if kind == "rsa2048":
        return _pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return os.urandom(32)


def _matches_kind(private: Any, kind: str) -> bool:
    if kind == "ed25519":
        return isinstance(private, Ed25519PrivateKey)
    if kind in ("p256", "p384"):
        curve = ec.SECP256R1 if kind == "p256" else ec.SECP384R1
        return isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(
            private.curve, curve)
    if kind == "rsa2048":
        return isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    return False


@dataclass
class _Version:
    number: int
    algorithm: str
    material: bytes
    state: str = "ENABLED"
    created: float = field(default_factory=time.time)
    ready_at: float = 0.0  # PENDING_GENERATION until then
    destroy_at: float | None = None
    destroyed_at: float | None = None
    import_job: str = ""


@dataclass
class _Key:
    name: str
    purpose: str
    algorithm: str
    protection_level: str
    labels: dict[str, str]
    destroy_scheduled: float = DEFAULT_DESTROY_SCHEDULED
    import_only: bool = False
    created: float = field(default_factory=time.time)
    versions: list[_Version] = field(default_factory=list)


@dataclass
class _ImportJob:
    name: str
    method: str
    protection_level: str
    material: bytes  # the RSA wrapping key, PKCS#8
    created: float = field(default_factory=time.time)


def _crc(data: bytes) -> int:
    return int(google_crc32c.value(data))


def _public_pem(private_der: bytes) -> str:
    """PEM SubjectPublicKeyInfo of a PKCS#8 DER private key."""
    private = serialization.load_der_private_key(private_der, password=None)
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _not_fulfilled(resource: str, value: str, field_name: str) -> Abort:
    """FAILED_PRECONDITION as Cloud KMS words it: ``resource`` has ``value`` in a field."""
    return Abort(grpc.StatusCode.FAILED_PRECONDITION,
                 f"The request cannot be fulfilled. Resource {resource} has value {value} "
                 f"in field {field_name}.")


class FakeKMS(HookedStore):
    """The Cloud KMS state and behaviour behind the gRPC handlers (thread-safe).

    The hooks, call counters and state file come from
    :class:`integration.support.grpc_test_server.HookedStore`.

    Args:
        state_file: JSON file to load at start and rewrite after each change.
    """

    unauthenticated_message = (
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential.")
    state_prefix = ".gcp-kms-state-"

    def __init__(self, state_file: str | None = None) -> None:
        self._rings: dict[str, float] = {}
        self._keys: dict[str, _Key] = {}
        self._jobs: dict[str, _ImportJob] = {}
        super().__init__(state_file)

    # -- hooks -------------------------------------------------------------

    def _default_faults(self) -> dict[str, Any]:
        return {"deny": [], "token": None, "latency_ms": 0.0, "fail": None,
                "generation_delay_ms": 0.0, **dict.fromkeys(_HOOK_COUNTS, 0)}

    def _counts(self) -> dict[str, int]:
        """The number of keys held."""
        return {"keys": len(self._keys)}

    def _take(self, hook: str) -> bool:
        """Consume one use of a counting hook; True when it fires."""
        with self._lock:
            left = int(self.faults.get(hook) or 0)
            if left <= 0:
                return False
            self.faults[hook] = left - 1
            return True

    def _check_access(self, resource: str, permission: str) -> None:
        for entry in self.faults["deny"]:
            key_id = _KEY.match(resource)
            if resource.startswith(entry) or (key_id is not None and key_id[2] == entry):
                raise Abort(grpc.StatusCode.PERMISSION_DENIED,
                            f"Permission '{permission}' denied on resource '{resource}' "
                            "(or it may not exist).")

    # -- lookups -----------------------------------------------------------

    def _ring(self, name: str, permission: str) -> str:
        match = _RING.fullmatch(name)
        if not match:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid key ring name {name!r}")
        self._check_access(name, permission)
        if name not in self._rings:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"KeyRing {name} not found.")
        return name

    def _key(self, name: str, permission: str) -> _Key:
        if not _KEY.fullmatch(name):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid crypto key name {name!r}")
        self._check_access(name, permission)
        key = self._keys.get(name)
        if key is None:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"CryptoKey {name} not found.")
        return key

    def _version(self, name: str, permission: str) -> tuple[_Key, _Version]:
        match = _VERSION.fullmatch(name)
        if not match:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"invalid crypto key version name {name!r}")
        key = self._key(match[1], permission)
        if match[2].isdigit():
            for version in key.versions:
                if version.number == int(match[2]):
                    self._settle(version)
                    return key, version
        raise Abort(grpc.StatusCode.NOT_FOUND, f"CryptoKeyVersion {name} not found.")

    @staticmethod
    def _settle(version: _Version) -> None:
        """Apply time-driven transitions: generation done, scheduled destruction due."""
        now = time.time()
        if version.state == "PENDING_GENERATION" and now >= version.ready_at:
            version.state = "ENABLED"
        if version.state == "DESTROY_SCHEDULED" and version.destroy_at is not None \
                and now >= version.destroy_at:
            version.state = "DESTROYED"
            version.material = b""
            version.destroyed_at = now

    @staticmethod
    def _require_state(name: str, version: _Version, *allowed: str) -> None:
        if version.state not in allowed:
            raise _not_fulfilled(name, version.state, "crypto_key_version.state")

    def _signing_version(self, name: str, permission: str) -> tuple[_Key, _Version]:
        """An ENABLED version of an ASYMMETRIC_SIGN key (called with the lock held)."""
        key, version = self._version(name, permission)
        if key.purpose != "ASYMMETRIC_SIGN":
            raise _not_fulfilled(key.name, key.purpose, "crypto_key.purpose")
        self._require_state(name, version, "ENABLED")
        return key, version

    # -- messages ------------------------------------------------------------

    @staticmethod
    def _version_msg(key: _Key, version: _Version) -> kms.CryptoKeyVersion:
        msg = kms.CryptoKeyVersion(
            name=f"{key.name}/cryptoKeyVersions/{version.number}",
            state=State[version.state],
            protection_level=kms.ProtectionLevel[key.protection_level],
            algorithm=Algorithm[version.algorithm],
            create_time=timestamp(version.created),
            destroy_time=timestamp(version.destroy_at),
            destroy_event_time=timestamp(version.destroyed_at),
        )
        if version.state != "PENDING_GENERATION" and not version.import_job:
            msg.generate_time = timestamp(max(version.created, version.ready_at))
        if version.import_job:
            msg.import_job = version.import_job
            msg.import_time = timestamp(version.created)
        return msg

    def _key_msg(self, key: _Key) -> kms.CryptoKey:
        msg = kms.CryptoKey(
            name=key.name,
            purpose=Purpose[key.purpose],
            create_time=timestamp(key.created),
            version_template=kms.CryptoKeyVersionTemplate(
                algorithm=Algorithm[key.algorithm],
                protection_level=kms.ProtectionLevel[key.protection_level]),
            labels=key.labels,
            import_only=key.import_only,
            destroy_scheduled_duration=timedelta(seconds=key.destroy_scheduled),
        )
        if key.purpose == "ENCRYPT_DECRYPT":
            enabled = [v for v in key.versions if v.state == "ENABLED"]
            if enabled:
                msg.primary = self._version_msg(key, enabled[-1])
        return msg

    # -- key rings and keys --------------------------------------------------

    def create_key_ring(self, req: kms.CreateKeyRingRequest) -> kms.KeyRing:
        """CreateKeyRing."""
        if not _LOCATION.fullmatch(req.parent):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid parent {req.parent!r}")
        if not _ID.fullmatch(req.key_ring_id):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        "key_ring_id must match [a-zA-Z0-9_-]{1,63}")
        name = f"{req.parent}/keyRings/{req.key_ring_id}"
        self._check_access(name, "cloudkms.keyRings.create")
        with self._lock:
            if name in self._rings:
                raise Abort(grpc.StatusCode.ALREADY_EXISTS, f"KeyRing {name} already exists.")
            self._rings[name] = time.time()
            self._save()
            return kms.KeyRing(name=name, create_time=timestamp(self._rings[name]))

    def get_key_ring(self, req: kms.GetKeyRingRequest) -> kms.KeyRing:
        """GetKeyRing."""
        with self._lock:
            name = self._ring(req.name, "cloudkms.keyRings.get")
            return kms.KeyRing(name=name, create_time=timestamp(self._rings[name]))

    def create_crypto_key(self, req: kms.CreateCryptoKeyRequest) -> kms.CryptoKey:
        """CreateCryptoKey: checks purpose and algorithm; makes version 1 unless skipped."""
        if not _ID.fullmatch(req.crypto_key_id):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        "crypto_key_id must match [a-zA-Z0-9_-]{1,63}")
        spec = req.crypto_key
        purpose = Purpose(spec.purpose).name
        algorithm = Algorithm(spec.version_template.algorithm).name
        if purpose == "ENCRYPT_DECRYPT" and algorithm == "CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED":
            algorithm = "GOOGLE_SYMMETRIC_ENCRYPTION"
        known = _ALGORITHMS.get(algorithm)
        if purpose == "CRYPTO_KEY_PURPOSE_UNSPECIFIED":
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "crypto_key.purpose is required")
        if known is None:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"crypto_key.version_template.algorithm {algorithm} is not supported "
                        f"by this test server (supported: {', '.join(sorted(_ALGORITHMS))})")
        if known[0] != purpose:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"Algorithm {algorithm} is not compatible with purpose {purpose}.")
        level = kms.ProtectionLevel(spec.version_template.protection_level).name
        if level == "PROTECTION_LEVEL_UNSPECIFIED":
            level = "SOFTWARE"
        if level not in ("SOFTWARE", "HSM"):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"protection level {level} is not supported by this test server")
        destroy = DEFAULT_DESTROY_SCHEDULED
        if "destroy_scheduled_duration" in spec:
            destroy = spec.destroy_scheduled_duration.total_seconds()
        with self._lock:
            self._ring(req.parent, "cloudkms.cryptoKeys.create")
            name = f"{req.parent}/cryptoKeys/{req.crypto_key_id}"
            if name in self._keys:
                raise Abort(grpc.StatusCode.ALREADY_EXISTS, f"CryptoKey {name} already exists.")
            key = _Key(name, purpose, algorithm, level, dict(spec.labels), destroy,
                       bool(spec.import_only))
            if not req.skip_initial_version_creation:
                if key.import_only:
                    raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "an import_only key needs skip_initial_version_creation")
                self._new_version(key)
            self._keys[name] = key
            self._save()
            return self._key_msg(key)

    def get_crypto_key(self, req: kms.GetCryptoKeyRequest) -> kms.CryptoKey:
        """GetCryptoKey."""
        with self._lock:
            key = self._key(req.name, "cloudkms.cryptoKeys.get")
            for version in key.versions:
                self._settle(version)
            return self._key_msg(key)

    def list_crypto_keys(self, req: kms.ListCryptoKeysRequest) -> kms.ListCryptoKeysResponse:
        """ListCryptoKeys: sorted by name, paged."""
        with self._lock:
            ring = self._ring(req.parent, "cloudkms.cryptoKeys.list")
            found = sorted((k for n, k in self._keys.items() if n.startswith(ring + "/")),
                           key=lambda k: k.name)
            page, token = _page(found, req.page_size, req.page_token)
            return kms.ListCryptoKeysResponse(crypto_keys=[self._key_msg(k) for k in page],
                                              next_page_token=token, total_size=len(found))

    # -- versions ------------------------------------------------------------

    def _new_version(self, key: _Key, material: bytes | None = None, algorithm: str = "",
                     import_job: str = "") -> _Version:
        algorithm = algorithm or key.algorithm
        number = max((v.number for v in key.versions), default=0) + 1
        version = _Version(number, algorithm,
                           material if material is not None
                           else _generate(_ALGORITHMS[algorithm][1]),
                           import_job=import_job)
        delay = float(self.faults["generation_delay_ms"] or 0) / 1000.0
        if delay and material is None:
            version.state = "PENDING_GENERATION"
            version.ready_at = version.created + delay
        key.versions.append(version)
        return version

    def create_crypto_key_version(
        self, req: kms.CreateCryptoKeyVersionRequest
    ) -> kms.CryptoKeyVersion:
        """CreateCryptoKeyVersion: a new generated version (rotation)."""
        with self._lock:
            key = self._key(req.parent, "cloudkms.cryptoKeyVersions.create")
            if key.import_only:
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION,
                            f"CryptoKey {key.name} is import_only; import a version instead.")
            version = self._new_version(key)
            self._save()
            return self._version_msg(key, version)

    def get_crypto_key_version(
        self, req: kms.GetCryptoKeyVersionRequest
    ) -> kms.CryptoKeyVersion:
        """GetCryptoKeyVersion."""
        with self._lock:
            return self._version_msg(*self._version(req.name, "cloudkms.cryptoKeyVersions.get"))

    def list_crypto_key_versions(
        self, req: kms.ListCryptoKeyVersionsRequest
    ) -> kms.ListCryptoKeyVersionsResponse:
        """ListCryptoKeyVersions: oldest first, filtered by state, paged."""
        test = _state_filter(req.filter)
        with self._lock:
            key = self._key(req.parent, "cloudkms.cryptoKeyVersions.list")
            for version in key.versions:
                self._settle(version)
            found = [v for v in key.versions if test(v.state)]
            page, token = _page(found, req.page_size, req.page_token)
            return kms.ListCryptoKeyVersionsResponse(
                crypto_key_versions=[self._version_msg(key, v) for v in page],
                next_page_token=token, total_size=len(found))

    def update_crypto_key_version(
        self, req: kms.UpdateCryptoKeyVersionRequest
    ) -> kms.CryptoKeyVersion:
        """UpdateCryptoKeyVersion: only ``state`` (ENABLED or DISABLED)."""
        paths = list(req.update_mask.paths)
        if paths != ["state"]:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"update_mask must be ['state'] on this test server, got {paths}")
        wanted = State(req.crypto_key_version.state).name
        if wanted not in ("ENABLED", "DISABLED"):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"crypto_key_version.state may only be set to ENABLED or DISABLED, "
                        f"not {wanted}")
        name = req.crypto_key_version.name
        with self._lock:
            key, version = self._version(name, "cloudkms.cryptoKeyVersions.update")
            self._require_state(name, version, "ENABLED", "DISABLED")
            version.state = wanted
            self._save()
            return self._version_msg(key, version)

    def destroy_crypto_key_version(
        self, req: kms.DestroyCryptoKeyVersionRequest
    ) -> kms.CryptoKeyVersion:
        """DestroyCryptoKeyVersion: DESTROY_SCHEDULED for the key's scheduled duration."""
        with self._lock:
            key, version = self._version(req.name, "cloudkms.cryptoKeyVersions.destroy")
            self._require_state(req.name, version, "ENABLED", "DISABLED")
            version.state = "DESTROY_SCHEDULED"
            version.destroy_at = time.time() + key.destroy_scheduled
            self._settle(version)
            self._save()
            return self._version_msg(key, version)

    def restore_crypto_key_version(
        self, req: kms.RestoreCryptoKeyVersionRequest
    ) -> kms.CryptoKeyVersion:
        """RestoreCryptoKeyVersion: DESTROY_SCHEDULED back to DISABLED."""
        with self._lock:
            key, version = self._version(req.name, "cloudkms.cryptoKeyVersions.restore")
            self._require_state(req.name, version, "DESTROY_SCHEDULED")
            version.state = "DISABLED"
            version.destroy_at = None
            self._save()
            return self._version_msg(key, version)

    # -- crypto ----------------------------------------------------------------

    def get_public_key(self, req: kms.GetPublicKeyRequest) -> kms.PublicKey:
        """GetPublicKey: PEM SPKI of an ENABLED asymmetric version, with its CRC32C."""
        with self._lock:
            key, version = self._signing_version(
                req.name, "cloudkms.cryptoKeyVersions.viewPublicKey")
            material = version.material
        pem = _public_pem(material)
        crc = _crc(pem.encode())
        if self._take("bad_pem_crc"):
            crc ^= 0x5A5A5A5A
        return kms.PublicKey(pem=pem, pem_crc32c=crc, algorithm=Algorithm[version.algorithm],
                             name=f"{key.name}/cryptoKeyVersions/{version.number}",
                             protection_level=kms.ProtectionLevel[key.protection_level])

    def asymmetric_sign(self, req: kms.AsymmetricSignRequest) -> kms.AsymmetricSignResponse:
        """AsymmetricSign: real signatures, integrity fields as Cloud KMS sets them."""
        with self._lock:
            key, version = self._signing_version(
                req.name, "cloudkms.cryptoKeyVersions.useToSign")
            material = version.material
            level = key.protection_level
        _, kind, digest_algorithm = _ALGORITHMS[version.algorithm]
        has_digest = "digest" in req
        data = bytes(req.data)
        private = serialization.load_der_private_key(material, password=None)
        verified_data = verified_digest = False
        if kind == "ed25519":
            if has_digest:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"Algorithm {version.algorithm} signs data, not a digest; "
                            "set AsymmetricSignRequest.data")
            if len(data) > MAX_DATA:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"AsymmetricSignRequest.data is larger than {MAX_DATA} bytes")
            if "data_crc32c" in req:
                if _crc(data) != req.data_crc32c:
                    raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "The checksum in field data_crc32c did not match the data in "
                                "field data.")
                verified_data = True
            assert isinstance(private, Ed25519PrivateKey)
            signature = private.sign(data)
        else:
            digest = getattr(req.digest, digest_algorithm.name) if has_digest else b""
            if not digest:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"Algorithm {version.algorithm} needs digest.{digest_algorithm.name}")
            if "digest_crc32c" in req:
                if _crc(digest) != req.digest_crc32c:
                    raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "The checksum in field digest_crc32c did not match the data "
                                "in field digest.")
                verified_digest = True
            prehashed = utils.Prehashed(digest_algorithm)
            if isinstance(private, ec.EllipticCurvePrivateKey):
                signature = private.sign(digest, ec.ECDSA(prehashed))
            else:
                assert isinstance(private, rsa.RSAPrivateKey)
                signature = private.sign(digest, padding.PKCS1v15(), prehashed)
        if self._take("corrupt_signature"):
            signature = bytes([signature[0] ^ 0x01]) + signature[1:]
        crc = _crc(signature)
        if self._take("bad_signature_crc"):
            crc ^= 0x5A5A5A5A
        if self._take("unverified_data_crc"):
            verified_data = False
        name = f"{key.name}/cryptoKeyVersions/{version.number}"
        if self._take("wrong_version_name"):
            name = f"{key.name}/cryptoKeyVersions/{version.number + 1000}"
        return kms.AsymmetricSignResponse(
            signature=signature, signature_crc32c=crc, verified_data_crc32c=verified_data,
            verified_digest_crc32c=verified_digest, name=name,
            protection_level=kms.ProtectionLevel[level])

    # -- import ------------------------------------------------------------------

    def _job_msg(self, job: _ImportJob) -> kms.ImportJob:
        return kms.ImportJob(
            name=job.name, import_method=kms.ImportJob.ImportMethod[job.method],
            protection_level=kms.ProtectionLevel[job.protection_level],
            create_time=timestamp(job.created), generate_time=timestamp(job.created),
            expire_time=timestamp(job.created + 3 * 24 * 3600),
            state=kms.ImportJob.ImportJobState.ACTIVE,
            public_key=kms.ImportJob.WrappingPublicKey(pem=_public_pem(job.material)))

    def create_import_job(self, req: kms.CreateImportJobRequest) -> kms.ImportJob:
        """CreateImportJob: an RSA wrapping key made here (RSA-OAEP + AES-KWP methods)."""
        if not _ID.fullmatch(req.import_job_id):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        "import_job_id must match [a-zA-Z0-9_-]{1,63}")
        method = kms.ImportJob.ImportMethod(req.import_job.import_method).name
        if method not in _IMPORT_METHODS:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"import_method {method} is not supported by this test server")
        level = kms.ProtectionLevel(req.import_job.protection_level).name
        if level not in ("SOFTWARE", "HSM"):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "protection_level is required")
        name = f"{req.parent}/importJobs/{req.import_job_id}"
        with self._lock:
            self._ring(req.parent, "cloudkms.importJobs.create")
            if name in self._jobs:
                raise Abort(grpc.StatusCode.ALREADY_EXISTS, f"ImportJob {name} already exists.")
        bits = _IMPORT_METHODS[method][0]
        material = _pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=bits))
        with self._lock:
            job = _ImportJob(name, method, level, material)
            self._jobs[name] = job
            self._save()
            return self._job_msg(job)

    def get_import_job(self, req: kms.GetImportJobRequest) -> kms.ImportJob:
        """GetImportJob."""
        if not _JOB.fullmatch(req.name):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid import job {req.name!r}")
        with self._lock:
            self._check_access(req.name, "cloudkms.importJobs.get")
            job = self._jobs.get(req.name)
            if job is None:
                raise Abort(grpc.StatusCode.NOT_FOUND, f"ImportJob {req.name} not found.")
            return self._job_msg(job)

    def import_crypto_key_version(
        self, req: kms.ImportCryptoKeyVersionRequest
    ) -> kms.CryptoKeyVersion:
        """ImportCryptoKeyVersion with ``rsa_aes_wrapped_key``; the key is never exported."""
        algorithm = Algorithm(req.algorithm).name
        known = _ALGORITHMS.get(algorithm)
        if known is None or known[1] == "aes256":
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"importing algorithm {algorithm} is not supported by this test server")
        with self._lock:
            key = self._key(req.parent, "cloudkms.cryptoKeyVersions.create")
            job = self._jobs.get(req.import_job)
            if job is None:
                raise Abort(grpc.StatusCode.NOT_FOUND, f"ImportJob {req.import_job} not found.")
            if known[0] != key.purpose:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"Algorithm {algorithm} is not compatible with purpose "
                            f"{key.purpose}.")
        wrapped = bytes(req.rsa_aes_wrapped_key)
        bits, oaep_hash = _IMPORT_METHODS[job.method]
        split = bits // 8
        wrapping = serialization.load_der_private_key(job.material, password=None)
        assert isinstance(wrapping, rsa.RSAPrivateKey)
        try:
            aes_key = wrapping.decrypt(wrapped[:split], padding.OAEP(
                mgf=padding.MGF1(oaep_hash), algorithm=oaep_hash, label=None))
            der = aes_key_unwrap_with_padding(aes_key, wrapped[split:])
            private = serialization.load_der_private_key(der, password=None)
        except (ValueError, InvalidUnwrap, TypeError):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        "rsa_aes_wrapped_key could not be unwrapped with the import job's key"
                        ) from None
        if not _matches_kind(private, known[1]):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"the imported key is not an {algorithm} key")
        with self._lock:
            version = self._new_version(key, _pkcs8(private), algorithm, job.name)
            self._save()
            return self._version_msg(key, version)

    # -- persistence -------------------------------------------------------

    def _dump(self) -> Any:
        return {
            "rings": self._rings,
            "jobs": [{"name": j.name, "method": j.method, "level": j.protection_level,
                      "material": base64.b64encode(j.material).decode(), "created": j.created}
                     for j in self._jobs.values()],
            "keys": [
                {
                    "name": k.name, "purpose": k.purpose, "algorithm": k.algorithm,
                    "level": k.protection_level, "labels": k.labels,
                    "destroy_scheduled": k.destroy_scheduled, "import_only": k.import_only,
                    "created": k.created,
                    "versions": [
                        {"number": v.number, "algorithm": v.algorithm,
                         "material": base64.b64encode(v.material).decode(), "state": v.state,
                         "created": v.created, "ready_at": v.ready_at,
                         "destroy_at": v.destroy_at, "destroyed_at": v.destroyed_at,
                         "import_job": v.import_job}
                        for v in k.versions
                    ],
                }
                for k in self._keys.values()
            ],
        }

    def _restore(self, doc: Any) -> None:
        self._rings = {name: float(at) for name, at in doc["rings"].items()}
        for j in doc["jobs"]:
            self._jobs[j["name"]] = _ImportJob(j["name"], j["method"], j["level"],
                                               base64.b64decode(j["material"]), j["created"])
        for k in doc["keys"]:
            key = _Key(k["name"], k["purpose"], k["algorithm"], k["level"], k["labels"],
                       k["destroy_scheduled"], k["import_only"], k["created"])
            key.versions = [
                _Version(v["number"], v["algorithm"], base64.b64decode(v["material"]),
                         v["state"], v["created"], v["ready_at"], v["destroy_at"],
                         v["destroyed_at"], v["import_job"])
                for v in k["versions"]
            ]
            self._keys[key.name] = key


# -- filters and paging ----------------------------------------------------

_TERM = re.compile(r"(state)\s*(!=|=|:)\s*([A-Z_]+)")


def _state_filter(text: str) -> Callable[[str], bool]:
    tests: list[Callable[[str], bool]] = []
    rest = text.strip()
    while rest:
        if rest.startswith("AND "):
            rest = rest[4:].lstrip()
            continue
        match = _TERM.match(rest)
        if not match:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"unsupported filter {text!r} (this test server knows state=X, "
                        "state:X and state!=X joined by AND)")
        op, value = match[2], match[3]
        if value not in State.__members__:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown state {value!r}")
        if op == "!=":
            tests.append(lambda s, v=value: s != v)
        else:
            tests.append(lambda s, v=value: s == v)
        rest = rest[match.end():].lstrip()
    return lambda state: all(t(state) for t in tests)


def _page(items: list[Any], size: int, token: str) -> tuple[list[Any], str]:
    return page(items, size, token, max_size=MAX_PAGE)


# -- gRPC plumbing ---------------------------------------------------------


def _handlers(store: FakeKMS) -> HandlerTable:
    version = kms.CryptoKeyVersion.serialize
    key = kms.CryptoKey.serialize
    job = kms.ImportJob.serialize
    return {
        "CreateKeyRing": (store.create_key_ring, kms.CreateKeyRingRequest,
                          kms.KeyRing.serialize),
        "GetKeyRing": (store.get_key_ring, kms.GetKeyRingRequest, kms.KeyRing.serialize),
        "CreateCryptoKey": (store.create_crypto_key, kms.CreateCryptoKeyRequest, key),
        "GetCryptoKey": (store.get_crypto_key, kms.GetCryptoKeyRequest, key),
        "ListCryptoKeys": (store.list_crypto_keys, kms.ListCryptoKeysRequest,
                           kms.ListCryptoKeysResponse.serialize),
        "CreateCryptoKeyVersion": (store.create_crypto_key_version,
                                   kms.CreateCryptoKeyVersionRequest, version),
        "GetCryptoKeyVersion": (store.get_crypto_key_version, kms.GetCryptoKeyVersionRequest,
                                version),
        "ListCryptoKeyVersions": (store.list_crypto_key_versions,
                                  kms.ListCryptoKeyVersionsRequest,
                                  kms.ListCryptoKeyVersionsResponse.serialize),
        "UpdateCryptoKeyVersion": (store.update_crypto_key_version,
                                   kms.UpdateCryptoKeyVersionRequest, version),
        "DestroyCryptoKeyVersion": (store.destroy_crypto_key_version,
                                    kms.DestroyCryptoKeyVersionRequest, version),
        "RestoreCryptoKeyVersion": (store.restore_crypto_key_version,
                                    kms.RestoreCryptoKeyVersionRequest, version),
        "GetPublicKey": (store.get_public_key, kms.GetPublicKeyRequest, kms.PublicKey.serialize),
        "AsymmetricSign": (store.asymmetric_sign, kms.AsymmetricSignRequest,
                           kms.AsymmetricSignResponse.serialize),
        "CreateImportJob": (store.create_import_job, kms.CreateImportJobRequest, job),
        "GetImportJob": (store.get_import_job, kms.GetImportJobRequest, job),
        "ImportCryptoKeyVersion": (store.import_crypto_key_version,
                                   kms.ImportCryptoKeyVersionRequest, version),
    }


def serve(
    port: int, *, host: str = "127.0.0.1", state_file: str | None = None,
    max_workers: int = 32,
) -> tuple[grpc.Server, FakeKMS]:
    """Start the server in this process; returns it (already started) and its store."""
    store = FakeKMS(state_file)
    server = start_server(store, SERVICE, _handlers(store), CONTROL_SERVICE,
                          port=port, host=host, max_workers=max_workers)
    return server, store


class ControlClient(JsonControlClient):
    """Drive the test hooks of a running Cloud KMS test server.

    ``configure`` sets the hooks the module docstring lists; ``stats`` counts
    the keys held too; ``calls`` counts one KMS method; ``reset`` clears the
    hooks and counters (the keys stay).

    Args:
        target: ``host:port`` of the server.
    """

    service = CONTROL_SERVICE


def main(argv: Iterable[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT."""
    return run_main(argv, serve, name="gcp_kms_server", description=__doc__.splitlines()[0],
                    deny_help="key id to deny")


if __name__ == "__main__":
    sys.exit(main())
