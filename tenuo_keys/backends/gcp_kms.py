"""``GCPKMSSigner``: PoPs signed inside Google Cloud KMS; the key never leaves.

A Tenuo Proof-of-Possession is a pure Ed25519 signature over the bytes
:func:`~tenuo_keys._pop.pop_message` builds, so a Cloud KMS key with purpose
``ASYMMETRIC_SIGN`` and algorithm ``EC_SIGN_ED25519`` can sign it with
``AsymmetricSign`` over ``data`` (Ed25519 is never prehashed, so ``digest``
does not apply). Each signature is checked locally against the key version's
public key before it is returned.

Example::

    # gcloud kms keys create agent1 --keyring tenuo --location global
    #     --purpose asymmetric-signing --default-algorithm ec-sign-ed25519
    from tenuo_keys import sign_pop, signer_from_url

    signer = signer_from_url("gcpkms://my-project/global/tenuo/{key_id}", key_id="agent1")
    with signer:
        warrant = Warrant.issue(keypair=root, capabilities=caps, ttl_seconds=600,
                                holder=signer.public_key)
        pop = sign_pop(signer, warrant, "read_file", {"path": "/data/x"}, int(time.time()))

Calls and permissions. Construction reads the key (``GetCryptoKey``,
``cloudkms.cryptoKeys.get``), lists its versions (``ListCryptoKeyVersions``,
``cloudkms.cryptoKeyVersions.list``) and reads the public key of each ENABLED
version once (``GetPublicKey``, ``cloudkms.cryptoKeyVersions.viewPublicKey``;
a version's public key never changes, so it is never read twice). Signing is
one ``AsymmetricSign`` (``cloudkms.cryptoKeyVersions.useToSign``). So the
signing identity needs ``roles/cloudkms.signerVerifier`` plus
``roles/cloudkms.viewer`` on the key (or a custom role with those four
permissions).

Size limit. ``AsymmetricSign`` accepts at most :data:`MAX_DATA_BYTES`
(64 KiB) of ``data``; a PoP message over ``max_data_bytes`` is refused with
:class:`~tenuo_keys.errors.KeyResolutionError` before any call. PoP messages
grow with the tool arguments, so this bounds what a remote-signed call may
carry (local keys have no such limit).

Integrity, per Google's guidance for ``AsymmetricSign``/``GetPublicKey``:
requests carry ``data_crc32c``; an answer must say ``verified_data_crc32c``,
carry a ``signature_crc32c`` (or ``pem_crc32c``) matching its bytes and name
the version asked for. A checksum failure is retried at most twice (the
operation is deterministic and idempotent), then raised as a retryable
``KeyResolutionError``. Retries of outages are left to the caller (``retry=``
is off by default), as for the other GCP backends.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import google_crc32c
import tenuo_core
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth.credentials import Credentials
from google.cloud import kms_v1
from google.cloud.kms_v1.services.key_management_service.transports import (
    KeyManagementServiceGrpcTransport,
)

from .._keyset import public_bytes_of
from .._template import KeyTemplate, TemplateError
from .._url import ResolverURL
from ..errors import (
    HolderMismatch,
    KeyAccessDenied,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
)
from ._gcp_common import (
    SHARED_CODES,
    build_client,
    check_client_options,
    check_project,
    code_name,
    detail,
    map_error,
    project_from_url,
    version_number,
)
from ._remote_signer import (
    DEFAULT_TEMPLATE,
    MAX_AGE,
    PLACEHOLDER,
    REFRESH_INTERVAL,
    RemoteSigner,
    SharedClient,
    VersionSnapshot,
    as_message,
    check_intervals,
    key_name,
    signer_url,
    url_key_id,
)

__all__ = [
    "MAX_DATA_BYTES",
    "SCHEME",
    "GCPKMSSigner",
    "KMSKeyInfo",
    "KMSVersion",
]

logger = logging.getLogger("tenuo_keys.gcp_kms")

T = TypeVar("T")

BACKEND: Final = "gcp-kms"
SCHEME: Final = "gcpkms"
ALGORITHM: Final = "EC_SIGN_ED25519"
PURPOSE: Final = "ASYMMETRIC_SIGN"
DEFAULT_ENDPOINT: Final = "cloudkms.googleapis.com"
DEFAULT_TIMEOUT: Final = 10.0
MAX_DATA_BYTES: Final = 64 * 1024
"""Largest ``AsymmetricSignRequest.data`` Cloud KMS accepts (64 KiB)."""
INTEGRITY_ATTEMPTS: Final = 3
"""Tries of one call whose answer fails a CRC32C check (Google: "a limited number")."""
_ALGORITHMS: Final = kms_v1.CryptoKeyVersion.CryptoKeyVersionAlgorithm
_ID = re.compile(r"[a-zA-Z0-9_-]{1,63}")
_ID_CHARS = re.compile(r"[a-zA-Z0-9_-]*")
_LOCATION = re.compile(r"[a-zA-Z0-9-]{1,63}")
_PAGE: Final = 100
_ROLE_HINT: Final = "roles/cloudkms.signerVerifier plus roles/cloudkms.viewer grant all four"
_PENDING: Final = frozenset({"PENDING_GENERATION", "PENDING_IMPORT"})


# --------------------------------------------------------------------------- key info


@dataclass(frozen=True)
class KMSVersion:
    """One CryptoKeyVersion: its number, state and (when known) raw public key.

    Attributes:
        number: The version number.
        name: The full resource name.
        state: ``ENABLED``, ``DISABLED``, ``DESTROY_SCHEDULED``, ``DESTROYED``,
            ``PENDING_GENERATION``...
        algorithm: The version's algorithm name.
        public: The raw 32-byte Ed25519 public key, or None when it was never
            readable (not ENABLED when first seen, or another algorithm).
    """

    number: int
    name: str
    state: str
    algorithm: str
    public: bytes | None

    @property
    def signs(self) -> bool:
        """True when this version can sign PoPs now."""
        return self.state == "ENABLED" and self.algorithm == ALGORITHM and self.public is not None

    @property
    def public_key(self) -> Any:
        """The version's ``tenuo_core.PublicKey`` (None when unknown)."""
        return None if self.public is None else tenuo_core.PublicKey.from_bytes(self.public)

    def __repr__(self) -> str:
        public = "?" if self.public is None else self.public.hex()[:16] + "…"
        return f"KMSVersion(number={self.number}, state={self.state}, public={public})"


@dataclass(frozen=True)
class KMSKeyInfo:
    """What Cloud KMS says about a CryptoKey (public data only).

    Attributes:
        name: The CryptoKey resource name.
        protection_level: ``SOFTWARE``, ``HSM``...
        versions: Every version listed, newest first.
    """

    name: str
    protection_level: str
    versions: tuple[KMSVersion, ...]

    @property
    def signing(self) -> tuple[KMSVersion, ...]:
        """The versions that sign PoPs now, newest first."""
        return tuple(v for v in self.versions if v.signs)

    @property
    def current(self) -> KMSVersion | None:
        """The newest signing version (used when no holder is named)."""
        return next(iter(self.signing), None)

    def find(self, holder: Any) -> KMSVersion | None:
        """The version (of any state) whose public key is ``holder``, or None."""
        raw = public_bytes_of(holder)
        return next((v for v in self.versions if v.public == raw), None)


_Snapshot = VersionSnapshot[KMSKeyInfo]


class _SharedClient(SharedClient):
    """One KMS client used by several signers; closed with the last of them (if ours)."""

    def __init__(self, client: kms_v1.KeyManagementServiceClient, owned: bool) -> None:
        super().__init__(BACKEND)
        self.client = client
        self.owned = owned

    def close_client(self) -> None:
        """Close the client's transport, unless it was injected."""
        if self.owned:
            self.client.transport.close()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class _Settings:
    project: str
    location: str
    key_ring: str
    name_template: str
    timeout: float
    retry: Retry | None
    refresh_interval: float
    max_age: float
    max_data_bytes: int
    endpoint: str


class _Integrity(Exception):
    """An answer failed a CRC32C or verified-flag check (corruption in transit)."""


class _NotEnabled(Exception):
    """AsymmetricSign said FAILED_PRECONDITION: the version no longer signs."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


# --------------------------------------------------------------------------- the signer


class GCPKMSSigner(RemoteSigner[KMSKeyInfo, _Settings, _SharedClient]):
    """Signs PoPs with a Cloud KMS ``EC_SIGN_ED25519`` key that never leaves KMS.

    **The key.** Key id ``agent1`` names the CryptoKey
    ``projects/PROJECT/locations/LOCATION/keyRings/KEY_RING/cryptoKeys/NAME``
    where NAME is ``name_template`` with ``{key_id}`` replaced (default: the
    key id itself); a template without ``{key_id}`` names one fixed key.
    CryptoKey ids allow only ``[a-zA-Z0-9_-]``, 1 to 63 characters, so a key
    id that cannot name one is refused (``ResolverConfigError``), never
    rewritten. The constructor reads the key and refuses, with
    ``ResolverConfigError``, one whose purpose is not ``ASYMMETRIC_SIGN`` or
    whose algorithm is not ``EC_SIGN_ED25519``.

    **Versions.** Each CryptoKeyVersion has its own key pair. A signature for
    a warrant is made with the ENABLED version whose public key is the
    warrant's holder, so rotating the key (a new version) does not break
    warrants in flight. Without a holder the newest ENABLED version signs.
    The version list is cached; an unknown holder re-lists it at most once per
    ``refresh_interval`` seconds, and signing without a holder re-lists it
    when older than ``max_age`` (or at once, throttled like an unknown holder,
    while no version is ENABLED yet: a new key's first version takes a few
    seconds to generate). A holder whose version was disabled,
    scheduled for destruction or destroyed gets ``HolderMismatch`` naming the
    version and its state.

    **Checks.** Requests and answers are checked with CRC32C as Google
    advises (see the module docstring), and every signature is verified
    locally against the version's public key before it is returned; one that
    does not verify is never returned (``KeyResolutionError``).

    **Client.** One ``KeyManagementServiceClient`` is built (Application
    Default Credentials, or ``credentials=``) and reused by this signer and
    every :meth:`for_key` sibling; it is closed with the last of them unless
    it was injected with ``client=``. Every call has the deadline ``timeout``.

    **URL** (:meth:`from_url`)::

        gcpkms://PROJECT/LOCATION/KEY_RING[/NAME_TEMPLATE]?param=value&...

    e.g. ``gcpkms://my-project/global/tenuo/tenuo-{key_id}``. Parameters:
    ``api_endpoint``, ``insecure`` (plaintext to a loopback test server),
    ``dangerously_allow_insecure_transport``, ``timeout``,
    ``refresh_interval``, ``max_age``, ``max_data_bytes``, ``lazy``. Credentials never go in URLs.

    Errors: NOT_FOUND is ``KeyNotFound``; PERMISSION_DENIED and
    UNAUTHENTICATED are ``KeyAccessDenied``; UNAVAILABLE, DEADLINE_EXCEEDED,
    RESOURCE_EXHAUSTED, INTERNAL and other server errors are
    ``BackendUnavailable`` (retryable); FAILED_PRECONDITION on signing (the
    version is no longer ENABLED) is ``HolderMismatch`` when a holder was
    named, else ``KeyNotFound``; other refusals are non-retryable
    ``KeyResolutionError``.

    Attributes:
        sign_calls: ``AsymmetricSign`` requests sent (tests use it to prove
            that a replay or a refused message signs nothing).
        list_calls: ``ListCryptoKeyVersions`` listings made.
        public_key_calls: ``GetPublicKey`` requests sent.

    Args:
        key_id: The key id.
        project: Project id.
        location: KMS location (``global``, ``europe-west1``...).
        key_ring: Key ring id.
        name_template: CryptoKey id, with at most one ``{key_id}``.
        api_endpoint: ``host:port`` of another endpoint (regional, private, test).
        insecure: Plaintext gRPC to ``api_endpoint`` without credentials;
            only for a test server on loopback (other hosts are refused
            unless ``dangerously_allow_insecure_transport``).
        credentials: ``google.auth`` credentials (default: ADC).
        client: A ``KeyManagementServiceClient`` to use (never closed by us).
        timeout: Deadline in seconds of each call.
        retry: A ``google.api_core.retry.Retry`` for every call (signing is
            idempotent); default none.
        refresh_interval: Fewest seconds between re-listings caused by an
            unknown holder.
        max_age: Seconds after which signing without a holder re-lists.
        max_data_bytes: Largest message sent to ``AsymmetricSign``.
        lazy: Read the key on first use instead of in the constructor; a key
            that turns out unsuitable then fails each call with
            ``KeyResolutionError``.
        dangerously_allow_insecure_transport: Allow ``insecure`` towards a
            host that is not loopback (an emulator on another host). URL:
            ``?dangerously_allow_insecure_transport=1``.

    Raises:
        ResolverConfigError: Bad settings, or a key that cannot sign PoPs.
        KeyResolutionError: The key could not be read (not found, denied,
            unreachable), unless ``lazy``.
    """

    backend = BACKEND
    _KEY_KIND = "CryptoKey"

    def __init__(
        self,
        key_id: str,
        project: str,
        location: str,
        key_ring: str,
        name_template: str = DEFAULT_TEMPLATE,
        *,
        api_endpoint: str | None = None,
        insecure: bool = False,
        credentials: Credentials | None = None,
        client: kms_v1.KeyManagementServiceClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: Retry | None = None,
        refresh_interval: float = REFRESH_INTERVAL,
        max_age: float = MAX_AGE,
        max_data_bytes: int = MAX_DATA_BYTES,
        lazy: bool = False,
        dangerously_allow_insecure_transport: bool = False,
    ) -> None:
        check_project(project)
        if not isinstance(location, str) or not _LOCATION.fullmatch(location):
            raise ResolverConfigError(f"invalid Cloud KMS location {location!r}")
        if not isinstance(key_ring, str) or not _ID.fullmatch(key_ring):
            raise ResolverConfigError(
                f"invalid Cloud KMS key ring id {key_ring!r} (1 to 63 of [a-zA-Z0-9_-])")
        _check_template(name_template)
        _key_name(name_template, key_id)  # refuse a bad key id before connecting
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ResolverConfigError(f"timeout must be > 0 seconds, got {timeout!r}")
        check_intervals(refresh_interval, max_age)
        if isinstance(max_data_bytes, bool) or not isinstance(max_data_bytes, int) \
                or max_data_bytes <= 0:
            raise ResolverConfigError(
                f"max_data_bytes must be a positive integer, got {max_data_bytes!r}")
        check_client_options(client, api_endpoint, insecure, credentials,
                             allow_insecure_transport=dangerously_allow_insecure_transport)
        settings = _Settings(project, location, key_ring, name_template, float(timeout), retry,
                             float(refresh_interval), float(max_age), max_data_bytes,
                             api_endpoint or DEFAULT_ENDPOINT)
        if client is None:
            shared = _SharedClient(
                build_client(kms_v1.KeyManagementServiceClient,
                             KeyManagementServiceGrpcTransport, api_endpoint=api_endpoint,
                             insecure=insecure, credentials=credentials, key_id=key_id,
                             backend=BACKEND),
                owned=True)
        else:
            shared = _SharedClient(client, owned=False)
        self._setup(key_id, settings, shared, lazy=lazy)

    def _setup(self, key_id: str, settings: _Settings, shared: _SharedClient, *,
               lazy: bool) -> None:
        self._init_versions(key_id, settings, shared)
        self.project = settings.project
        self.location = settings.location
        self.key_ring = settings.key_ring
        self.crypto_key_id = self._key_name_for(key_id)
        self.key_name = (f"projects/{settings.project}/locations/{settings.location}/keyRings/"
                         f"{settings.key_ring}/cryptoKeys/{self.crypto_key_id}")
        self.endpoint = settings.endpoint
        self.timeout = settings.timeout
        self.max_data_bytes = settings.max_data_bytes
        self._key_checked = False
        self._protection_level = ""
        self._publics: dict[str, bytes] = {}  # version name -> raw public key (immutable)
        self.sign_calls = 0
        self.list_calls = 0
        self.public_key_calls = 0
        self._load_unless_lazy(lazy)

    @classmethod
    def from_url(cls, url: str | ResolverURL, *, key_id: str | None = None,
                 **kwargs: Any) -> GCPKMSSigner:
        """Build from ``gcpkms://PROJECT/LOCATION/KEY_RING/NAME_TEMPLATE?api_endpoint=...``.

        Args:
            url: The URL (see the class docstring); the template defaults to
                ``{key_id}``.
            key_id: The key id; may be omitted when the template names one
                fixed key (then the key id is that name).
            **kwargs: Constructor arguments (``credentials``, ``client``,
                ``retry``); naming a setting both here and in the URL is an error.

        Raises:
            ResolverConfigError: A malformed URL, an unknown parameter, a
                conflict, or no key id for a template with ``{key_id}``.
        """
        parsed = signer_url(url, SCHEME)
        parts = parsed.path.strip("/").split("/") if parsed.path.strip("/") else []
        if parsed.port is not None or parsed.username is not None or len(parts) not in (2, 3):
            raise ResolverConfigError(
                f"{SCHEME}:// URLs look like {SCHEME}://PROJECT/LOCATION/KEY_RING/"
                "NAME_TEMPLATE (e.g. gcpkms://my-project/global/tenuo/{key_id}): the "
                "authority is the project id (or empty, for $GOOGLE_CLOUD_PROJECT), with no "
                "port or user")
        project = project_from_url(parsed.host, SCHEME, "gcpkms://my-project/global/tenuo/{key_id}")
        options: dict[str, Any] = {}
        if len(parts) == 3:
            options["name_template"] = parts[2]
        endpoint = parsed.pop_optional("api_endpoint")
        if endpoint is not None:
            options["api_endpoint"] = endpoint
        for flag in ("insecure", "lazy", "dangerously_allow_insecure_transport"):
            if parsed.pop_bool(flag, False):  # all default to False
                options[flag] = True
        options.update(parsed.pop_floats("timeout", "refresh_interval", "max_age"))
        max_data = parsed.pop_int("max_data_bytes", 0)
        if max_data:
            options["max_data_bytes"] = max_data
        parsed.finish()
        key_id = url_key_id(SCHEME, options, kwargs, key_id, DEFAULT_TEMPLATE)
        return cls(key_id, project, parts[0], parts[1], **options, **kwargs)

    def _key_name_for(self, key_id: str) -> str:
        return _key_name(self._settings.name_template, key_id)

    # -- the Signer contract ------------------------------------------------------

    def sign(self, message: bytes, *, holder: Any | None = None) -> bytes:
        """Sign ``message`` in Cloud KMS with the version matching ``holder``.

        Returns:
            The 64-byte pure Ed25519 signature, verified locally.

        Raises:
            TypeError: ``message`` is not bytes.
            KeyResolutionError: The message is over ``max_data_bytes`` (no call
                is made), KMS refused or was unreachable (``BackendUnavailable``,
                retryable), an answer failed its integrity checks, or the
                signature did not verify (never returned).
            HolderMismatch: No ENABLED version of the key is ``holder``.
        """
        message = as_message(message)
        if len(message) > self.max_data_bytes:
            raise KeyResolutionError(
                f"the message to sign is {len(message)} bytes; Cloud KMS AsymmetricSign "
                f"accepts at most {self.max_data_bytes} (max_data_bytes), so it was not sent. "
                "A PoP message grows with the tool arguments: pass large values by reference",
                key_id=self.key_id, backend=self.backend)
        snapshot, number = self._select(holder)
        version = _signing_version(snapshot, number)
        try:
            signature = self._kms_sign(message, version)
        except _NotEnabled as exc:
            snapshot, version = self._after_not_enabled(holder, version, exc.detail)
            try:
                signature = self._kms_sign(message, version)
            except _NotEnabled as again:
                self._snapshot = None
                raise KeyNotFound(
                    f"not found: version {version.number} of CryptoKey {self.key_name} is "
                    f"not ENABLED ({again.detail})",
                    key_id=self.key_id, backend=self.backend) from None
        return self._verified(
            snapshot, version.number, message, signature, source="Cloud KMS",
            against=f"the public key of version {version.number} of {self.key_name}")

    # -- selection -------------------------------------------------------------------

    def _select_newest(self) -> tuple[_Snapshot, int]:
        snapshot = self._current(max_age=self.max_age)
        if snapshot.info.current is None:
            # A new key's first version takes a few seconds to generate: look again.
            snapshot, _ = self._refresh_on_miss(lambda s: s.info.current is not None)
        current = snapshot.info.current
        if current is None:
            raise self._none_enabled(snapshot.info)
        return snapshot, current.number

    def _after_not_enabled(self, holder: Any | None, version: KMSVersion,
                           detail: str) -> tuple[_Snapshot, KMSVersion]:
        """The version stopped signing after we listed it: re-list, then explain or move on."""
        self._snapshot = None
        try:
            snapshot = self._refresh()
        except KeyResolutionError:
            snapshot = None
        if holder is not None:
            if snapshot is not None:
                raw = public_bytes_of(holder)
                found = snapshot.by_public.get(raw)
                if found is None:
                    raise self._mismatch(snapshot.info, raw, retryable=False)
                if found != version.number:  # the same key imported twice
                    return snapshot, _signing_version(snapshot, found)
            raise HolderMismatch(
                f"holder mismatch: version {version.number} of CryptoKey {self.key_name}, the "
                f"warrant holder's, no longer signs ({detail})",
                key_id=self.key_id, backend=self.backend)
        if snapshot is None or snapshot.info.current is None:
            info = snapshot.info if snapshot is not None else None
            if info is not None:
                raise self._none_enabled(info)
            raise KeyNotFound(
                f"not found: version {version.number} of CryptoKey {self.key_name} is not "
                f"ENABLED ({detail})", key_id=self.key_id, backend=self.backend)
        return snapshot, snapshot.info.current

    def _mismatch(self, info: KMSKeyInfo, raw: bytes, *, retryable: bool) -> HolderMismatch:
        known = next((v for v in info.versions if v.public == raw), None)
        why = None if known is None else (
            known.number, f"is {known.state} (Cloud KMS signs only with ENABLED versions)")
        return self._mismatch_error(raw, info.name, [(v.number, v.public) for v in info.signing],
                                    "ENABLED", why, retryable=retryable)

    def _none_enabled(self, info: KMSKeyInfo) -> KeyNotFound:
        states = ", ".join(f"{v.number}={v.state}" for v in info.versions) or "no versions"
        pending = any(v.state in _PENDING for v in info.versions)
        return KeyNotFound(
            f"not found: CryptoKey {info.name} has no ENABLED {ALGORITHM} version to sign "
            f"with ({states})" + ("; a version is still being created" if pending else ""),
            key_id=self.key_id, backend=self.backend, retryable=pending)

    # -- reading the key -------------------------------------------------------------

    def _load(self, construction: bool) -> _Snapshot:
        if not self._key_checked:
            self._check_key(construction)
        versions = self._list_versions()
        listed: list[KMSVersion] = []
        for meta in versions:
            number = version_number(meta.name, "/cryptoKeyVersions/")
            if number is None:
                continue
            state = _name(kms_v1.CryptoKeyVersion.CryptoKeyVersionState, meta.state)
            algorithm = _name(_ALGORITHMS, meta.algorithm)
            public = self._publics.get(meta.name)
            if public is None and state == "ENABLED" and algorithm == ALGORITHM:
                # None: disabled between the listing and the read; the next listing says so.
                public = self._read_public(meta.name)
            listed.append(KMSVersion(number, meta.name, state, algorithm, public))
        listed.sort(key=lambda v: v.number, reverse=True)
        info = KMSKeyInfo(self.key_name, self._protection_level, tuple(listed))
        snapshot = _Snapshot(info, {v.number: v.public for v in info.signing
                                    if v.public is not None})
        previous = self._snapshot
        if previous is not None:
            before = {v.number: v.state for v in previous.info.versions}
            for version in listed:
                if before.get(version.number) != version.state:
                    logger.info("tenuo_keys: Cloud KMS %s version %d is now %s", self.key_name,
                                version.number, version.state)
        return snapshot

    def _check_key(self, construction: bool) -> None:
        key = self._call("get_crypto_key", {"name": self.key_name},
                         what=f"CryptoKey {self.key_name}", permission="cloudkms.cryptoKeys.get")
        purpose = _name(kms_v1.CryptoKey.CryptoKeyPurpose, key.purpose)
        algorithm = _name(_ALGORITHMS, key.version_template.algorithm)
        problem = None
        if purpose != PURPOSE:
            problem = (f"CryptoKey {self.key_name} has purpose {purpose}; a Tenuo holder key "
                       f"needs purpose {PURPOSE} with algorithm {ALGORITHM}")
        elif algorithm != ALGORITHM:
            problem = (f"CryptoKey {self.key_name} has algorithm {algorithm}; a Tenuo holder "
                       f"key needs {ALGORITHM} (a PoP is a pure Ed25519 signature)")
        if problem is not None:
            if construction:
                raise ResolverConfigError(f"key {self.key_id!r}: {problem}")
            raise KeyResolutionError(problem, key_id=self.key_id, backend=self.backend)
        self._protection_level = _name(kms_v1.ProtectionLevel,
                                       key.version_template.protection_level)
        self._key_checked = True

    def _list_versions(self) -> list[Any]:
        self._count("list_calls")
        what = f"versions of CryptoKey {self.key_name}"
        permission = "cloudkms.cryptoKeyVersions.list"
        pager = self._call("list_crypto_key_versions",
                           {"parent": self.key_name, "page_size": _PAGE}, what=what,
                           permission=permission)
        return self._guard(lambda: list(pager), what=what, permission=permission)

    def _read_public(self, name: str) -> bytes | None:
        """The raw public key of version ``name``; None if it stopped being ENABLED."""

        def read() -> Any:
            self._count("public_key_calls")
            return self._call("get_public_key", {"name": name},
                              what=f"the public key of {name}",
                              permission="cloudkms.cryptoKeyVersions.viewPublicKey",
                              passthrough=(gexc.FailedPrecondition, gexc.NotFound))

        try:
            raw = self._integrity_checked(read, lambda answer: _public_from_answer(answer, name))
        except (gexc.FailedPrecondition, gexc.NotFound):
            return None  # disabled or gone between the listing and this read
        self._publics[name] = raw
        return raw

    # -- signing ----------------------------------------------------------------------

    def _kms_sign(self, message: bytes, version: KMSVersion) -> bytes:
        request = {"name": version.name, "data": message,
                   "data_crc32c": int(google_crc32c.value(message))}

        def sign() -> Any:
            self._count("sign_calls")
            try:
                return self._call("asymmetric_sign", request,
                                  what=f"version {version.number} of {self.key_name} "
                                       "(AsymmetricSign)",
                                  permission="cloudkms.cryptoKeyVersions.useToSign",
                                  passthrough=(gexc.FailedPrecondition,))
            except gexc.FailedPrecondition as exc:
                raise _NotEnabled(detail(exc)) from None

        return self._integrity_checked(
            sign, lambda answer: _signature_from_answer(answer, version.name), forget=True)

    def _integrity_checked(self, request: Callable[[], Any], check: Callable[[Any], T], *,
                           forget: bool = False) -> T:
        """``check(request())``, asking again while the answer fails its CRC32C checks.

        Args:
            request: One call; what it raises is raised.
            check: Checks an answer and returns what it holds.
            forget: Drop the snapshot when the answer is wrong (not corrupted).

        Raises:
            KeyResolutionError: Every one of ``INTEGRITY_ATTEMPTS`` answers was
                corrupted (retryable), or an answer was wrong.
        """
        for attempt in range(INTEGRITY_ATTEMPTS):
            answer = request()
            try:
                return check(answer)
            except _Integrity as exc:
                if attempt + 1 < INTEGRITY_ATTEMPTS:
                    logger.warning("tenuo_keys: %s; retrying", exc)
                    continue
                raise KeyResolutionError(f"{exc} ({INTEGRITY_ATTEMPTS} tries)",
                                         key_id=self.key_id, backend=self.backend,
                                         retryable=True) from None
            except ValueError as exc:
                if forget:
                    self._snapshot = None
                raise KeyResolutionError(str(exc), key_id=self.key_id,
                                         backend=self.backend) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- plumbing ----------------------------------------------------------------------

    def _call(self, method: str, request: dict[str, Any], *, what: str, permission: str,
              passthrough: tuple[type[BaseException], ...] = ()) -> Any:
        """One KMS call on the shared client, with our deadline, retry and error mapping."""
        self._check_open()
        fn = getattr(self._shared.client, method)
        return self._guard(
            lambda: fn(request=request, retry=self._settings.retry, timeout=self.timeout),
            what=what, permission=permission, passthrough=passthrough)

    def _guard(self, fn: Callable[[], T], *, what: str, permission: str,
               passthrough: tuple[type[BaseException], ...] = ()) -> T:
        try:
            return fn()
        except passthrough:
            raise
        except Exception as exc:
            if self._closed:
                raise self._closed_error() from None
            error = _map_error(exc, key_id=self.key_id, what=what)
            if isinstance(exc, gexc.PermissionDenied):
                # Say which permission, and which role grants it, so an operator can fix IAM.
                error = KeyAccessDenied(f"{error.reason} (this call needs {permission}; "
                                        f"{_ROLE_HINT})", key_id=self.key_id,
                                        backend=self.backend)
            raise error from None

    def __repr__(self) -> str:
        return (f"GCPKMSSigner(key_id={self.key_id!r}, key={self.key_name!r}, "
                f"endpoint={self.endpoint!r})")


# --------------------------------------------------------------------------- helpers


def _check_template(template: str) -> KeyTemplate:
    try:
        return KeyTemplate.parse(template, optional=True, chars=_ID_CHARS)
    except TemplateError:
        raise ResolverConfigError(
            f"CryptoKey name template must hold at most one '{PLACEHOLDER}' and otherwise "
            f"only letters, digits, '_' and '-', got {template!r}") from None


def _key_name(template: str, key_id: str) -> str:
    """The CryptoKey id of ``key_id``; refuses ids that make an invalid one."""
    return key_name(_check_template(template), key_id, BACKEND, _ID, "CryptoKey id",
                    "CryptoKey ids are 1 to 63 letters, digits, '_' or '-'")


def _name(enum: Any, value: Any) -> str:
    """An enum value's name; an unknown number (a newer API than this client) as its digits."""
    try:
        return str(enum(value).name)
    except ValueError:
        return str(int(value))


def _signing_version(snapshot: _Snapshot, number: int) -> KMSVersion:
    """The signing version ``number`` of ``snapshot``."""
    return next(v for v in snapshot.info.signing if v.number == number)


def _crc32c(data: bytes) -> int:
    return int(google_crc32c.value(data))


def _public_from_answer(answer: Any, name: str) -> bytes:
    """Check a ``GetPublicKey`` answer and return the raw Ed25519 public key.

    Raises:
        _Integrity: A checksum did not match (corrupted in transit).
        ValueError: The answer is for another version or is not an Ed25519 key.
    """
    pem = str(answer.pem).encode()
    if "pem_crc32c" not in answer:
        raise _Integrity(f"GetPublicKey for {name} came without pem_crc32c")
    if _crc32c(pem) != int(answer.pem_crc32c):
        raise _Integrity(f"the public key of {name} does not match its pem_crc32c "
                         "(corrupted in transit)")
    if answer.name and answer.name != name:
        raise ValueError(f"GetPublicKey for {name} answered for {answer.name}")
    algorithm = _name(_ALGORITHMS, answer.algorithm)
    if algorithm != ALGORITHM:
        raise ValueError(f"the public key of {name} is {algorithm}, not {ALGORITHM}")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"the public key of {name} is not an Ed25519 SubjectPublicKeyInfo PEM")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _signature_from_answer(answer: Any, name: str) -> bytes:
    """Check an ``AsymmetricSign`` answer as Google advises; return the signature.

    Raises:
        _Integrity: The request or the answer was corrupted in transit.
        ValueError: The answer is for another version, or not 64 bytes.
    """
    if not answer.verified_data_crc32c:
        raise _Integrity(f"Cloud KMS did not verify data_crc32c signing with {name} "
                         "(the request was corrupted or stripped in transit)")
    signature = bytes(answer.signature)
    if "signature_crc32c" not in answer or _crc32c(signature) != int(answer.signature_crc32c):
        raise _Integrity(f"the signature from {name} does not match its signature_crc32c "
                         "(corrupted in transit)")
    if answer.name != name:
        raise ValueError(f"Cloud KMS signed with {answer.name or 'an unnamed version'} when "
                         f"asked for {name}; the signature was discarded")
    if len(signature) != 64:
        raise ValueError(f"{name} returned a {len(signature)}-byte signature; expected 64")
    return signature


def _map_error(exc: BaseException, *, key_id: str | None, what: str) -> KeyResolutionError:
    """Turn a google-api-core / google-auth exception into our error types.

    Codes that mean the same for every GCP API are mapped as for Secret
    Manager; the KMS-specific ones are handled here.
    """
    if isinstance(exc, gexc.FailedPrecondition):
        return KeyNotFound(
            f"not found: {what}: the key version is not ENABLED (disabled, scheduled for "
            f"destruction, destroyed or still being created): {detail(exc)}",
            key_id=key_id, backend=BACKEND)
    if isinstance(exc, gexc.GoogleAPICallError) and not isinstance(exc, SHARED_CODES):
        return KeyResolutionError(f"{code_name(exc)} from Cloud KMS ({what}): {detail(exc)}",
                                  key_id=key_id, backend=BACKEND, retryable=False)
    return map_error(exc, key_id=key_id, what=what, backend=BACKEND, service="Cloud KMS")
