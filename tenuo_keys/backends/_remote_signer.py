"""What the remote signers share: the cached version snapshot and the local check.

:class:`~tenuo_keys.backends.vault_transit.VaultTransitSigner` and
:class:`~tenuo_keys.backends.gcp_kms.GCPKMSSigner` sign with a key that never
leaves its KMS and that has versions, each its own Ed25519 key pair. Both hold
one :class:`VersionSnapshot` of the key (a public key per signing version),
pick the version whose public key is the warrant holder, read the key again
when a holder is unknown (at most once per ``refresh_interval``) or when the
snapshot is older than ``max_age`` (signing without a holder), and verify
every signature locally before returning it. :class:`RemoteSigner` is that
logic; the backends supply how to read the key and how to explain a holder
that matches no version.
"""

from __future__ import annotations

import abc
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Final, Generic, Protocol, TypeVar

import tenuo_core
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .._keyset import public_bytes_of
from .._resolver import check_key_id
from .._signer import Signer
from .._template import PLACEHOLDER, KeyTemplate
from .._url import ResolverURL
from ..errors import HolderMismatch, KeyResolutionError, ResolverClosed, ResolverConfigError

__all__ = [
    "DEFAULT_TEMPLATE",
    "MAX_AGE",
    "PLACEHOLDER",
    "REFRESH_INTERVAL",
    "RemoteSigner",
    "SharedClient",
    "SignerSettings",
    "VersionSnapshot",
    "as_message",
    "check_intervals",
    "check_signer_key_id",
    "key_name",
    "signer_url",
    "url_key_id",
]

InfoT = TypeVar("InfoT")
SettingsT = TypeVar("SettingsT", bound="SignerSettings")
SharedT = TypeVar("SharedT", bound="SharedClient")
SignerT = TypeVar("SignerT", bound="RemoteSigner[Any, Any, Any]")

DEFAULT_TEMPLATE: Final = PLACEHOLDER
"""A signer's default key name template: the key id itself."""
REFRESH_INTERVAL: Final = 5.0
"""Fewest seconds between two re-reads of the key caused by an unknown holder."""
MAX_AGE: Final = 300.0
"""Seconds after which signing without a holder re-reads which version is current."""


class VersionSnapshot(Generic[InfoT]):
    """One reading of a remote key: its info, plus a verifier and a ``PublicKey`` per version.

    Attributes:
        info: What the backend said about the key (public data).
        loaded_at: ``time.monotonic()`` when it was read.
        by_public: Version number of each signing version, by raw public key.
        verifiers: Each signing version's ``Ed25519PublicKey``, by number.
        public_keys: Each signing version's ``tenuo_core.PublicKey``, by number.
    """

    __slots__ = ("by_public", "info", "loaded_at", "public_keys", "verifiers")

    def __init__(self, info: InfoT, signing: Mapping[int, bytes]) -> None:
        """Hold ``info`` and the raw 32-byte public key of each signing version.

        Args:
            info: What the backend said about the key.
            signing: Raw public key by version number, newest first (when two
                versions hold the same key, the oldest is the one found by it).
        """
        self.info = info
        self.loaded_at = time.monotonic()
        self.by_public = {public: number for number, public in signing.items()}
        self.verifiers = {number: Ed25519PublicKey.from_public_bytes(public)
                          for number, public in signing.items()}
        self.public_keys = {number: tenuo_core.PublicKey.from_bytes(public)
                            for number, public in signing.items()}


class SharedClient(abc.ABC):
    """A client used by a signer and its ``for_key`` siblings; closed with the last of them."""

    def __init__(self, backend: str) -> None:
        self._backend = backend
        self._users = 1
        self._lock = threading.Lock()

    def acquire(self: SharedT, key_id: str) -> SharedT:
        """One more user (a new sibling).

        Raises:
            ResolverClosed: The last user has already released it.
        """
        with self._lock:
            if self._users == 0:
                raise ResolverClosed("signer is closed", key_id=key_id, backend=self._backend)
            self._users += 1
        return self

    def release(self) -> None:
        """One user fewer; the last one closes the client."""
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            self.close_client()

    @abc.abstractmethod
    def close_client(self) -> None:
        """Close the client (called once, by the last user)."""


class SignerSettings(Protocol):
    """What a signer and its ``for_key`` siblings share besides the client."""

    @property
    def name_template(self) -> str:
        """The key name template, with at most one ``{key_id}``."""

    @property
    def refresh_interval(self) -> float:
        """Fewest seconds between two reads of the key caused by an unknown holder."""

    @property
    def max_age(self) -> float:
        """Seconds after which signing without a holder reads the key again."""


class RemoteSigner(Signer, Generic[InfoT, SettingsT, SharedT]):
    """Base of the signers whose key never leaves a KMS (see the module docstring).

    Type parameters: what the backend says about a key (``InfoT``), the
    settings siblings share (``SettingsT``) and the shared client (``SharedT``).

    A subclass's :meth:`_setup` calls :meth:`_init_versions` first and
    :meth:`_load_unless_lazy` last; the subclass implements :meth:`_setup`,
    :meth:`_key_name_for`, :meth:`_load`, :meth:`_select_newest`,
    :meth:`_mismatch` and ``sign`` (which returns through :meth:`_verified`).

    Attributes:
        refresh_interval: Fewest seconds between two reads of the key caused
            by an unknown holder.
        max_age: Seconds after which signing without a holder reads the key again.
    """

    remote = True
    _KEY_KIND: ClassVar[str]
    """What the backend calls a key, for errors (``"CryptoKey"``)."""
    _settings: SettingsT
    _shared: SharedT

    @abc.abstractmethod
    def _setup(self, key_id: str, settings: SettingsT, shared: SharedT, *,
               lazy: bool) -> None:
        """Set up a signer for ``key_id`` (the constructor's work after the checks)."""

    @abc.abstractmethod
    def _key_name_for(self, key_id: str) -> str:
        """The backend's name of ``key_id``'s key under the settings' template.

        Raises:
            ResolverConfigError: ``key_id`` names no valid key.
        """

    def _init_versions(self, key_id: str, settings: SettingsT, shared: SharedT) -> None:
        """Hold ``settings`` and ``shared``; no key version is known yet."""
        Signer.__init__(self, key_id)
        self._settings = settings
        self._shared = shared
        self.refresh_interval = settings.refresh_interval
        self.max_age = settings.max_age
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._snapshot: VersionSnapshot[InfoT] | None = None
        self._last_miss_refresh = -math.inf
        self._closed = False

    def _load_unless_lazy(self, lazy: bool) -> None:
        """Read the key now unless ``lazy``; a failure closes the signer and is raised."""
        if not lazy:
            try:
                self._refresh(construction=True)
            except BaseException:
                self.close()
                raise

    def for_key(self: SignerT, key_id: str, *, lazy: bool = False) -> SignerT:
        """A signer for another key id on the same client and settings.

        The client (for Vault, the session and its token) is closed when the
        last signer sharing it is closed.

        Raises:
            ResolverConfigError: The template names one fixed key, the key id
                maps to no valid key name, or the key cannot sign PoPs.
            KeyResolutionError: The key could not be read (unless ``lazy``).
        """
        self._check_open()
        if PLACEHOLDER not in self._settings.name_template:
            raise ResolverConfigError(
                f"this signer's template names the one {self._KEY_KIND} "
                f"{self._key_name_for(self.key_id)!r}; for_key needs a template with "
                f"'{PLACEHOLDER}'")
        self._key_name_for(key_id)
        sibling = type(self).__new__(type(self))
        sibling._setup(key_id, self._settings, self._shared.acquire(key_id), lazy=lazy)
        return sibling

    # -- the Signer contract ------------------------------------------------------

    def public_key_for(self, holder: Any | None = None) -> Any:
        """The ``PublicKey`` that signs for ``holder`` (the newest signing version when None).

        Raises:
            HolderMismatch: No version of the key that signs now is ``holder``.
            KeyNotFound: No holder named and no version signs now (a Cloud KMS
                key with no ENABLED version).
            KeyResolutionError: The key cannot be read, or is no longer suitable.
        """
        snapshot, number = self._select(holder)
        return snapshot.public_keys[number]

    # -- key info ----------------------------------------------------------------

    def key_info(self, *, refresh: bool = False) -> InfoT:
        """What the backend says about the key (public data), read again when ``refresh``."""
        if refresh:
            return self._refresh().info
        return self._current().info

    def refresh(self) -> InfoT:
        """Read the key again now (after a rotation or state change made elsewhere)."""
        return self._refresh().info

    # -- selection -------------------------------------------------------------------

    def _select(self, holder: Any | None) -> tuple[VersionSnapshot[InfoT], int]:
        """The snapshot and the number of the version to sign with for ``holder``."""
        if holder is None:
            return self._select_newest()
        raw = public_bytes_of(holder)
        snapshot = self._current()
        number = snapshot.by_public.get(raw)
        if number is not None:
            return snapshot, number
        snapshot, throttled = self._refresh_on_miss(lambda s: raw in s.by_public)
        number = snapshot.by_public.get(raw)
        if number is not None:
            return snapshot, number
        raise self._mismatch(snapshot.info, raw, retryable=throttled)

    def _refresh_on_miss(
        self, found: Callable[[VersionSnapshot[InfoT]], bool]
    ) -> tuple[VersionSnapshot[InfoT], bool]:
        """Read the key again unless done less than ``refresh_interval`` ago.

        Args:
            found: Whether a snapshot already holds what was missing (another
                thread may have read the key meanwhile).

        Returns:
            The snapshot, and True when the read was throttled (skipped).
        """
        with self._lock:
            snapshot = self._snapshot
            if snapshot is not None and found(snapshot):
                return snapshot, False  # another thread read the key meanwhile
            now = time.monotonic()
            if snapshot is not None and now - self._last_miss_refresh < self.refresh_interval:
                return snapshot, True
            self._last_miss_refresh = now
            return self._reload(construction=False), False

    @abc.abstractmethod
    def _select_newest(self) -> tuple[VersionSnapshot[InfoT], int]:
        """The snapshot and the version that signs when no holder is named."""

    @abc.abstractmethod
    def _mismatch(self, info: InfoT, raw: bytes, *, retryable: bool) -> HolderMismatch:
        """The error for a holder ``raw`` that is no signing version of the key."""

    def _mismatch_error(self, raw: bytes, key: str, signing: Sequence[tuple[int, bytes | None]],
                        adjective: str, known: tuple[int, str] | None, *,
                        retryable: bool) -> HolderMismatch:
        """The :meth:`_mismatch` error, worded the same for every backend.

        Args:
            raw: The holder's raw public key.
            key: How the error names the key.
            signing: Number and public key of each version that signs, newest first.
            adjective: What the backend calls a version that signs (``"ENABLED"``).
            known: When ``raw`` is a version that does not sign: its number and
                why it does not (``"no longer signs (...)"``).
            retryable: Whether a later read of the key may find the holder.
        """
        wanted = raw.hex()[:16]
        if known is not None:
            number, why = known
            reason = (f"holder mismatch: the warrant holder {wanted}… is version {number} of "
                      f"{self._KEY_KIND} {key}, which {why}")
        else:
            held = ", ".join(f"{n}={(public or b'').hex()[:16]}…" for n, public in signing)
            reason = (f"holder mismatch: the warrant holder {wanted}… matches none of the "
                      f"{len(signing)} {adjective} version(s) of {self._KEY_KIND} {key}"
                      + (f" ({held})" if held else ""))
        return HolderMismatch(reason, key_id=self.key_id, backend=self.backend,
                              retryable=retryable)

    # -- reading the key -------------------------------------------------------------

    def _current(self, max_age: float | None = None) -> VersionSnapshot[InfoT]:
        """The held snapshot; read the key first when none is held or it is too old."""
        snapshot = self._held(max_age)
        if snapshot is not None:
            return snapshot
        with self._lock:
            return self._held(max_age) or self._reload(construction=False)

    def _held(self, max_age: float | None) -> VersionSnapshot[InfoT] | None:
        """The held snapshot unless there is none or it is older than ``max_age``."""
        snapshot = self._snapshot
        if snapshot is not None and (
            max_age is None or time.monotonic() - snapshot.loaded_at < max_age
        ):
            return snapshot
        return None

    def _refresh(self, *, construction: bool = False) -> VersionSnapshot[InfoT]:
        """Read the key now."""
        with self._lock:
            return self._reload(construction=construction)

    def _reload(self, *, construction: bool) -> VersionSnapshot[InfoT]:
        """Read the key and hold the new snapshot (the caller holds the lock)."""
        snapshot = self._load(construction)
        self._snapshot = snapshot
        return snapshot

    @abc.abstractmethod
    def _load(self, construction: bool) -> VersionSnapshot[InfoT]:
        """Read the key from the backend (the caller holds the lock).

        ``self._snapshot`` is still the previous snapshot; the new one is held
        once this returns.

        Raises:
            ResolverConfigError: When ``construction``, a key that cannot sign PoPs.
            KeyResolutionError: The key could not be read, or (after
                construction) cannot sign PoPs.
        """

    # -- checks ------------------------------------------------------------------------

    def _verified(self, snapshot: VersionSnapshot[InfoT], number: int, message: bytes,
                  signature: bytes, *, source: str, against: str) -> bytes:
        """``signature`` once it verifies against version ``number``'s public key.

        Args:
            snapshot: The snapshot the version was selected from.
            number: The version that signed.
            message: What was signed.
            signature: What the backend returned.
            source: Who signed, for the error (``"Transit"``).
            against: What it was checked against, for the error.

        Raises:
            KeyResolutionError: It does not verify (a key deleted and created
                again under the same name, or a tampered or broken answer):
                the signature is never returned, and the snapshot is dropped
                so the next call reads the key again.
        """
        try:
            snapshot.verifiers[number].verify(signature, message)
        except InvalidSignature:
            self._snapshot = None
            raise KeyResolutionError(
                f"{source} returned a signature that does not verify against {against}; it "
                "was discarded", key_id=self.key_id, backend=self.backend) from None
        return signature

    def _check_open(self) -> None:
        """Raise ``ResolverClosed`` once :meth:`close` was called."""
        if self._closed:
            raise self._closed_error()

    def _closed_error(self) -> ResolverClosed:
        return ResolverClosed("signer is closed", key_id=self.key_id, backend=self.backend)

    def _count(self, counter: str) -> None:
        """Add one to the call counter attribute ``counter`` (``"sign_calls"``...)."""
        with self._count_lock:
            setattr(self, counter, getattr(self, counter) + 1)

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self: SignerT) -> SignerT:
        return self

    def close(self) -> None:
        """Release this signer's share of the client. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._snapshot = None
        self._shared.release()


# --------------------------------------------------------------------------- helpers


def as_message(message: Any) -> bytes:
    """``message`` as ``bytes``.

    Raises:
        TypeError: It is not bytes-like.
    """
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise TypeError(f"message must be bytes, got {type(message).__name__}")
    return bytes(message)


def check_intervals(refresh_interval: float, max_age: float) -> None:
    """Refuse a negative or non-finite ``refresh_interval`` and a non-positive ``max_age``.

    Raises:
        ResolverConfigError: Either is out of range.
    """
    if not (refresh_interval >= 0 and math.isfinite(refresh_interval)):
        raise ResolverConfigError(
            f"refresh_interval must be a non-negative number of seconds, got "
            f"{refresh_interval!r}")
    if not (max_age > 0 and math.isfinite(max_age)):
        raise ResolverConfigError(
            f"max_age must be a positive number of seconds, got {max_age!r}")


def signer_url(url: str | ResolverURL, scheme: str) -> ResolverURL:
    """``url`` parsed, refused unless its scheme is ``scheme``.

    Raises:
        ResolverConfigError: A malformed URL, or one of another scheme.
    """
    parsed = url if isinstance(url, ResolverURL) else ResolverURL(url)
    if parsed.scheme != scheme:
        raise ResolverConfigError(f"expected a {scheme}:// URL, got {parsed.scheme}://")
    return parsed


def key_name(template: KeyTemplate, key_id: str, backend: str, valid: re.Pattern[str],
             what: str, rule: str) -> str:
    """The remote key's name for ``key_id``; refuses ids that make an invalid one.

    Args:
        template: The signer's name template.
        key_id: The key id.
        backend: The backend name, for errors.
        valid: What a name must fully match.
        what: What the name is called in errors (``"Transit key name"``).
        rule: What ``valid`` asks, in words.

    Raises:
        ResolverConfigError: A bad key id, or one giving a name ``valid`` refuses.
    """
    check_signer_key_id(key_id, backend)
    name = template.render(key_id)
    if not valid.fullmatch(name):
        raise ResolverConfigError(f"key id {key_id!r} gives the {what} {name[:80]!r}; {rule}")
    return name


def check_signer_key_id(key_id: str, backend: str) -> None:
    """Refuse a key id no backend could take (a signer is built for it: a config error).

    Raises:
        ResolverConfigError: Not a non-empty printable string of bounded length.
    """
    try:
        check_key_id(key_id, backend)
    except KeyResolutionError as exc:
        raise ResolverConfigError(exc.reason) from None


def url_key_id(scheme: str, options: Mapping[str, Any], kwargs: Mapping[str, Any],
               key_id: str | None, default_template: str) -> str:
    """Check a signer URL's settings against the arguments; the key id to build for.

    Args:
        scheme: The URL scheme, for errors.
        options: Constructor arguments taken from the URL.
        kwargs: Constructor arguments passed alongside the URL.
        key_id: The key id passed, if any.
        default_template: The name template when the URL names none.

    Returns:
        ``key_id``, or the template itself when it names one fixed key.

    Raises:
        ResolverConfigError: A setting given both ways, or no key id for a
            template with ``{key_id}``.
    """
    clash = sorted(set(options).intersection(kwargs))
    if clash:
        raise ResolverConfigError(
            f"{scheme}:// setting {clash[0]!r} given both in the URL and as an argument")
    if key_id is not None:
        return key_id
    template = str(options.get("name_template", default_template))
    if PLACEHOLDER in template:
        raise ResolverConfigError(f"{scheme}:// template {template!r} needs a key id: pass key_id=")
    return template
