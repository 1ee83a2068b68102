"""The ``KeyResolver`` contract and the base class every fetching backend uses."""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Union

import cachetools
import tenuo_core

from ._cache import CacheObserver, CachePolicy, KeyCache
from ._formats import decode_signing_key
from ._keyset import KeyVersion, KeyVersions
from .errors import (
    HolderMismatch,
    KeyFormatError,
    KeyNotLoaded,
    KeyResolutionError,
    ResolverConfigError,
)

__all__ = ["BackendKeyResolver", "ForeignKeyResolver", "KeyMaterial", "KeyResolver",
           "PreloadReport", "StoredKey", "as_key_resolver", "check_key_id", "preload_report"]

logger = logging.getLogger("tenuo_keys")


class PreloadReport(int):
    """What ``preload_all()`` did: the number of keys loaded, and each failure.

    It is an ``int`` (the count ``preload_all`` always returned), so
    ``resolver.preload_all() == 3`` and ``int(report)`` keep working; the
    failures are in :attr:`failed`.

    Attributes:
        failed: Key id to the error that kept it from loading. Errors name the
            reason, never key material.
    """

    failed: dict[str, KeyResolutionError]

    def __new__(cls, loaded: int = 0,
                failed: Mapping[str, KeyResolutionError] | None = None) -> PreloadReport:
        report = super().__new__(cls, loaded)
        report.failed = dict(failed or {})
        return report

    @property
    def loaded(self) -> int:
        """How many keys are held now."""
        return int(self)

    @property
    def ok(self) -> bool:
        """True when no key failed."""
        return not self.failed

    def reasons(self) -> dict[str, str]:
        """Key id to ``"ErrorType: reason"`` for each failed key, e.g. for a log line."""
        return {key_id: f"{type(error).__name__}: {error.reason}"
                for key_id, error in self.failed.items()}

    def __repr__(self) -> str:
        return f"PreloadReport(loaded={int(self)}, failed={self.reasons()!r})"

    __str__ = int.__repr__


def preload_report(outcome: Mapping[str, KeyResolutionError | None], strict: bool,
                   log: logging.Logger = logger) -> PreloadReport:
    """What ``preload_all`` returns: a report of ``outcome``, each failure logged.

    Args:
        outcome: Key id to None (held) or the error that kept it out.
        strict: Raise the first failure instead of skipping it.
        log: The resolver's logger.
    """
    failed = {key_id: error for key_id, error in outcome.items() if error is not None}
    for error in failed.values():
        log.error("tenuo_keys: preload_all could not load a key: %s", error)
    if strict and failed:
        raise next(iter(failed.values()))
    return PreloadReport(len(outcome) - len(failed), failed)

MAX_KEY_ID = 256


def check_key_id(key_id: object, backend: str | None = None) -> str:
    """Validate a key id: a non-empty string without control characters.

    Args:
        key_id: The value to check.
        backend: Backend name for the error.

    Returns:
        The key id.

    Raises:
        KeyResolutionError: It is not a usable key id.
    """
    if not isinstance(key_id, str):
        raise KeyResolutionError(
            f"key id must be a string, got {type(key_id).__name__}", backend=backend
        )
    if not key_id or len(key_id) > MAX_KEY_ID or not key_id.isprintable():
        raise KeyResolutionError(
            f"invalid key id: must be 1 to {MAX_KEY_ID} printable characters",
            key_id=key_id[:64], backend=backend,
        )
    return key_id


class KeyResolver(abc.ABC):
    """Turns a key id into the holder's ``tenuo_core.SigningKey``.

    The contract:

    * ``await resolve(key_id)`` may do I/O.
    * ``resolve_sync(key_id)`` never does I/O on the calling thread: it serves
      from memory only, so it is safe inside Temporal's workflow sandbox. When
      the key is not in memory it raises :class:`~tenuo_keys.errors.KeyNotLoaded`
      and starts a background load, so a retried call finds it.
    * ``preload(key_ids)`` and ``preload_all()`` load ahead of time.
    * ``resolve_for_holder_sync(key_id, holder)`` picks, among the versions held
      for the id (current and previous), the one whose public key is a
      warrant's holder, so rotations do not break workflows in flight.
    * ``close()`` (or ``with``/``async with``) stops background work.

    The method names match what ``tenuo.temporal`` 0.3.3 duck-types
    (``resolve``, ``resolve_sync``, ``preload_all``), so any resolver here also
    plugs into the stock ``TenuoPluginConfig(key_resolver=...)``.

    Subclasses implement :meth:`resolve_versions` and
    :meth:`resolve_versions_sync`; most should subclass
    :class:`BackendKeyResolver` instead, which only asks for ``fetch``.
    """

    backend: ClassVar[str] = "custom"

    @abc.abstractmethod
    async def resolve_versions(self, key_id: str) -> KeyVersions:
        """Return every held version of ``key_id``, current first (may do I/O)."""

    @abc.abstractmethod
    def resolve_versions_sync(self, key_id: str) -> KeyVersions:
        """Return every held version of ``key_id`` from memory only (no I/O)."""

    async def resolve(self, key_id: str) -> Any:
        """Return the current ``SigningKey`` for ``key_id``; may do I/O.

        Raises:
            KeyResolutionError: Or one of its subclasses, saying why.
        """
        return (await self.resolve_versions(key_id)).current

    def resolve_sync(self, key_id: str) -> Any:
        """Return the current ``SigningKey`` for ``key_id`` from memory only.

        Raises:
            KeyNotLoaded: The key is not in memory; a background load started.
            KeyResolutionError: Or another subclass, saying why.
        """
        return self.resolve_versions_sync(key_id).current

    def resolve_for_holder_sync(self, key_id: str, holder: Any) -> Any:
        """Return the version of ``key_id`` whose public key is ``holder`` (no I/O).

        Args:
            key_id: The key id.
            holder: The warrant's holder (``PublicKey`` or raw bytes).

        Raises:
            HolderMismatch: No held version matches.
            KeyNotLoaded: The key is not in memory yet.
        """
        return self.resolve_versions_sync(key_id).for_holder(holder)

    async def resolve_for_holder(self, key_id: str, holder: Any) -> Any:
        """Async form of :meth:`resolve_for_holder_sync`; may do I/O."""
        return (await self.resolve_versions(key_id)).for_holder(holder)

    def preload(self, key_ids: Iterable[str]) -> int:
        """Load ``key_ids`` into memory now (blocking; call before workers poll).

        Returns:
            How many keys are held afterwards.

        Raises:
            KeyResolutionError: The first failure, after every id was tried.
        """
        count = 0
        for key_id in key_ids:
            self.resolve_versions_sync(key_id)
            count += 1
        return count

    def _preload_many(self, key_ids: Sequence[str]) -> dict[str, KeyResolutionError | None]:
        """Preload ``key_ids``, saying per id whether it is held (None) or why not.

        What :class:`~tenuo_keys.CompositeKeyResolver` calls on each of its
        resolvers, so it can hand every id to the next resolver in one batch.
        This default preloads one id at a time; resolvers with a cache batch.
        """
        out: dict[str, KeyResolutionError | None] = {}
        for key_id in key_ids:
            try:
                self.preload([key_id])
            except KeyResolutionError as exc:
                out[key_id] = exc
            else:
                out[key_id] = None
        return out

    def preload_all(self, strict: bool = False) -> int:
        """Discover every key id the backend can list and load them all.

        Args:
            strict: Raise the first per-key failure instead of logging and
                skipping it (for workers that must not start with a bad key).

        Returns:
            How many keys were loaded. The default resolver cannot list: 0.
        """
        return 0

    def list_key_ids(self) -> list[str]:
        """Ids the backend holds, where it can list them; otherwise empty."""
        return []

    def caches(self) -> list[KeyCache]:
        """The key caches this resolver reads through, for observers and their policies.

        Returns:
            Every :class:`~tenuo_keys.KeyCache` behind it (none by default; a
            composite resolver lists its resolvers' caches).
        """
        return []

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Stop background work and release clients. Safe to call twice."""

    async def aclose(self) -> None:
        """Async form of :meth:`close`; waits for background work off the loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> KeyResolver:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> KeyResolver:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One stored version as a backend fetched it, before decoding.

    Attributes:
        material: The stored value in any accepted format, or a ``SigningKey``.
        version: The backend's version label, if it has one.
    """

    material: Any
    version: str | None = None

    def __repr__(self) -> str:
        return f"StoredKey(version={self.version!r}, material=<redacted>)"


KeyMaterial = Union[bytes, str, StoredKey, Any]  # noqa: UP007 - runtime alias
"""What ``fetch`` may return per version: bytes, text, a ``StoredKey``, or a ``SigningKey``."""


class BackendKeyResolver(KeyResolver):
    """Base class of every resolver that fetches from a backend.

    A subclass implements :meth:`fetch` (and, where the backend can list,
    :meth:`list_key_ids`). Caching, decoding, single-flight, refresh-ahead,
    stale-if-error, rotation and preloading all come from here and from
    :class:`~tenuo_keys.KeyCache`: a backend only fetches.

    Args:
        cache: The cache policy (TTL, staleness, size).
        observers: Callables that receive each :class:`~tenuo_keys.CacheEvent`.
        field: JSON field that holds the key when a stored value is a JSON object.
    """

    backend: ClassVar[str] = "custom"

    def __init__(
        self,
        *,
        cache: CachePolicy | None = None,
        observers: Iterable[CacheObserver] = (),
        field: str = "key",
    ) -> None:
        self._field = field
        batches = type(self).fetch_many is not BackendKeyResolver.fetch_many
        self._cache = KeyCache(
            self._load,
            backend=self.backend,
            policy=cache,
            observers=observers,
            batch_loader=self._load_many if batches else None,
            check_id=self._check_id,
        )
        self._observers = tuple(observers)
        self._documents: KeyCache | None = None
        self._documents_lock = threading.Lock()
        self._mismatch_lock = threading.Lock()
        policy = self._cache.policy
        self._mismatch_refreshed: cachetools.TTLCache[str, bool] = cachetools.TTLCache(
            maxsize=policy.maxsize, ttl=max(policy.negative_ttl, 1e-9)
        )

    # -- what a backend implements ---------------------------------------

    @abc.abstractmethod
    def fetch(self, key_id: str) -> KeyMaterial | Sequence[KeyMaterial]:
        """Fetch the stored value(s) of ``key_id`` from the backend.

        Runs on the cache's worker threads, never in the workflow sandbox.

        Args:
            key_id: The key id.

        Returns:
            One stored value (the current version), or a sequence of versions,
            current first.

        Raises:
            KeyNotFound: The backend has no such key.
            KeyAccessDenied: The backend refused.
            BackendUnavailable: The backend could not be reached.
        """

    def store_key(self, key_id: str, material: str) -> str | None:
        """Write ``material`` as the new current version of ``key_id``.

        Used by the ``tenuo-keys`` CLI (``put``, ``rotate``). Creates the
        secret when missing; where the backend versions secrets, the previous
        version stays readable. Runs on the caller's thread (it is not a
        sandbox path). The default backend is read-only.

        Args:
            key_id: The key id.
            material: The canonical encoding (``encode_signing_key``).

        Returns:
            The backend's label of the new version, if it has one.

        Raises:
            NotImplementedError: The backend is read-only.
            KeyResolutionError: The write failed (denied, unreachable).
        """
        raise NotImplementedError(f"the {self.backend} backend is read-only")

    def fetch_many(
        self, key_ids: Sequence[str]
    ) -> Mapping[str, KeyMaterial | Sequence[KeyMaterial] | KeyResolutionError]:
        """Fetch many ids in one backend call, where the backend has such a call.

        Override only when the backend batches; the default is never called.
        """
        raise NotImplementedError

    # -- the contract, served from the shared cache -----------------------

    @property
    def cache(self) -> KeyCache:
        """The cache in front of this backend (for invalidation and observers)."""
        return self._cache

    def caches(self) -> list[KeyCache]:
        """:attr:`cache`, the one cache in front of this backend."""
        return [self._cache]

    async def resolve_versions(self, key_id: str) -> KeyVersions:
        """Return every held version of ``key_id``, loading it if needed."""
        return await self._cache.get(check_key_id(key_id, self.backend))

    def resolve_versions_sync(self, key_id: str) -> KeyVersions:
        """Return every held version of ``key_id`` from memory (no I/O).

        An id that is not held is validated (:func:`check_key_id`) before it
        reaches the negative cache or the backend, as on the async path.
        """
        return self._cache.get_sync(key_id)

    def _check_id(self, key_id: str) -> None:
        check_key_id(key_id, self.backend)

    def resolve_for_holder_sync(self, key_id: str, holder: Any) -> Any:
        """Return the version whose public key is ``holder``, from memory.

        On a mismatch, one background refresh is started (at most one per
        key per TTL refresh window), since a rotation may have landed in the
        backend after the key was loaded; the error is then retryable.
        """
        versions = self._cache.get_sync(key_id)
        try:
            return versions.for_holder(holder)
        except HolderMismatch:
            refreshing = self._refresh_on_mismatch(key_id)
            raise versions.mismatch(holder, retryable=refreshing) from None

    async def resolve_for_holder(self, key_id: str, holder: Any) -> Any:
        """Return the version whose public key is ``holder``; refreshes once on a miss."""
        versions = await self.resolve_versions(key_id)
        try:
            return versions.for_holder(holder)
        except HolderMismatch:
            if not self._refresh_on_mismatch(key_id):
                raise versions.mismatch(holder) from None
        versions = await asyncio.wrap_future(self._cache.refresh(key_id))
        return versions.for_holder(holder)

    def _refresh_on_mismatch(self, key_id: str) -> bool:
        # One forced refresh per key per negative_ttl: a key refreshed moments
        # ago is the backend's truth, and a flood of bad warrants must not
        # turn into a flood of backend calls.
        with self._mismatch_lock:
            if key_id in self._mismatch_refreshed:
                return False
            self._mismatch_refreshed[key_id] = True
        self._cache.refresh(key_id)
        return True

    def preload(self, key_ids: Iterable[str]) -> int:
        """Load ``key_ids`` now, batched or in parallel; blocks until done.

        The cache makes room for all of them first (see
        :attr:`CachePolicy.maxsize <tenuo_keys.CachePolicy>`), so none evicts another.

        Returns:
            How many are held now.

        Raises:
            KeyResolutionError: The first failure, after every id was tried.
            ResolverConfigError: An explicit ``maxsize`` is smaller than the
                number of ids; nothing was loaded.
        """
        outcome = self._preload_many([check_key_id(k, self.backend) for k in key_ids])
        errors = [e for e in outcome.values() if e is not None]
        for error in errors[1:]:
            logger.warning("tenuo_keys: preload failed: %s", error)
        if errors:
            raise errors[0]
        return len(outcome)

    def _preload_many(self, key_ids: Sequence[str]) -> dict[str, KeyResolutionError | None]:
        results = self._cache.preload(key_ids)
        out: dict[str, KeyResolutionError | None] = {}
        for key_id, result in results.items():
            if isinstance(result, KeyResolutionError):
                out[key_id] = result
            elif key_id in self._cache:
                out[key_id] = None
            else:
                # Loaded, then invalidated (or cleared) before the preload
                # returned: not held, so not counted as preloaded.
                out[key_id] = KeyNotLoaded(
                    "loaded by the preload but no longer held (invalidated meanwhile)",
                    key_id=key_id, backend=self.backend,
                )
        return out

    def preload_all(self, strict: bool = False) -> PreloadReport:
        """List every key id the backend holds and load them all.

        A failure to list always raises. A key that fails to load is logged at
        ERROR and skipped, so one corrupted tenant key does not stop a worker
        serving the others; with ``strict=True`` it raises instead.

        Args:
            strict: Raise the first per-key failure after trying every key.

        Returns:
            A :class:`PreloadReport`: an ``int`` counting the keys held now
            (what was loaded, never more), whose ``failed`` names each key
            that did not load and why.

        Raises:
            ResolverConfigError: An explicit ``maxsize`` is smaller than the
                number of keys listed; nothing was loaded.
        """
        return preload_report(self._preload_many(self.list_key_ids()), strict)

    def invalidate(self, key_id: str) -> None:
        """Forget ``key_id`` so the next resolve fetches it again."""
        self._cache.invalidate(key_id)

    # -- documents (revocation lists, trusted-root sets) ------------------

    def read_document(self, name: str, *, fresh: bool = False,
                      timeout: float | None = None) -> bytes:
        """The current stored value of ``name`` as raw bytes, without the key decoder.

        Signed revocation lists and trusted-root sets live next to the keys:
        this is the same :meth:`fetch`, authentication and typed errors, behind
        a second :class:`~tenuo_keys.KeyCache` with this resolver's policy
        (refresh-ahead, stale-if-error, single-flight). Text is UTF-8 encoded.

        Args:
            name: The document's id, as a key id would be given.
            fresh: Fetch now (joining a fetch under way) instead of serving the
                cached value; a retryable failure still serves the last good
                value within ``max_staleness``.
            timeout: Seconds to wait for the backend.

        Returns:
            The stored bytes.

        Raises:
            KeyResolutionError: Not found, denied, unreachable (typed as for keys).
        """
        cache = self._document_cache()
        check_key_id(name, self.backend)
        future = cache.refresh(name) if fresh else cache.get_future(name)
        return bytes(future.result(timeout).current)

    def store_document(self, name: str, content: bytes) -> str | None:
        """Write ``content`` (UTF-8 text) as the new current value of ``name``.

        The write path of :meth:`read_document`, through :meth:`store_key`.

        Raises:
            NotImplementedError: The backend is read-only.
            KeyFormatError: ``content`` is not UTF-8 text.
            KeyResolutionError: The write failed.
        """
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            raise KeyFormatError("a document must be UTF-8 text", key_id=name,
                                 backend=self.backend) from None
        label = self.store_key(name, text)
        if self._documents is not None:
            self._documents.invalidate(name)
        return label

    def _document_cache(self) -> KeyCache:
        with self._documents_lock:
            if self._documents is None:
                self._documents = KeyCache(
                    self._load_document, backend=self.backend, policy=self._cache.policy,
                    observers=self._observers, check_id=self._check_id)
            return self._documents

    def _load_document(self, name: str) -> KeyVersions:
        fetched = self.fetch(name)
        if not isinstance(fetched, (bytes, bytearray, memoryview, str, StoredKey)) and \
                isinstance(fetched, Sequence):
            if not fetched:
                raise KeyFormatError("backend returned no versions", key_id=name,
                                     backend=self.backend)
            fetched = fetched[0]
        stored = fetched if isinstance(fetched, StoredKey) else StoredKey(fetched)
        material = stored.material
        if isinstance(material, str):
            raw = material.encode("utf-8")
        elif isinstance(material, (bytes, bytearray, memoryview)):
            raw = bytes(material)
        else:
            raise KeyFormatError(f"stored value is {type(material).__name__}, not a document",
                                 key_id=name, backend=self.backend)
        # The cache holds KeyVersions; a document is one "version" whose key is its bytes.
        return KeyVersions(name, [KeyVersion(key=raw, public=b"", version=stored.version)],
                           backend=self.backend)

    def close(self) -> None:
        """Stop background loads, drop keys from memory, release clients."""
        self._cache.close()
        if self._documents is not None:
            self._documents.close()
        self._close_backend()

    def _close_backend(self) -> None:
        """Release backend clients; override where there are any."""

    # -- loading ----------------------------------------------------------

    def _load(self, key_id: str) -> KeyVersions:
        return self._decode(key_id, self.fetch(key_id))

    def _load_many(
        self, key_ids: Sequence[str]
    ) -> dict[str, KeyVersions | KeyResolutionError]:
        out: dict[str, KeyVersions | KeyResolutionError] = {}
        for key_id, fetched in self.fetch_many(key_ids).items():
            if isinstance(fetched, KeyResolutionError):
                out[key_id] = fetched.with_context(key_id=key_id, backend=self.backend)
                continue
            try:
                out[key_id] = self._decode(key_id, fetched)
            except KeyResolutionError as exc:
                out[key_id] = exc
        return out

    def _decode(self, key_id: str, fetched: KeyMaterial | Sequence[KeyMaterial]) -> KeyVersions:
        items: Sequence[Any]
        if isinstance(fetched, (bytes, bytearray, memoryview, str, StoredKey)) or not isinstance(
            fetched, Sequence
        ):
            items = [fetched]
        else:
            items = fetched
        if not items:
            raise KeyFormatError("backend returned no versions", key_id=key_id,
                                 backend=self.backend)
        versions: list[KeyVersion] = []
        for index, item in enumerate(items):
            stored = item if isinstance(item, StoredKey) else StoredKey(item)
            try:
                key = self._decode_one(key_id, stored.material)
            except KeyFormatError as exc:
                if index == 0:
                    raise
                logger.warning(
                    "tenuo_keys: skipping previous version %r of key %r: %s",
                    stored.version, key_id, exc.reason,
                )
                continue
            versions.append(KeyVersion.of(key, stored.version))
        return KeyVersions(key_id, versions, backend=self.backend)

    def _decode_one(self, key_id: str, material: Any) -> Any:
        if isinstance(material, tenuo_core.SigningKey):
            return material
        return decode_signing_key(material, key_id=key_id, backend=self.backend,
                                  field=self._field)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r}, held={len(self._cache)})"


class ForeignKeyResolver(KeyResolver):
    """A resolver written elsewhere, seen through the :class:`KeyResolver` contract.

    Wraps an object with only ``async resolve(key_id)`` and
    ``resolve_sync(key_id)`` (a ``tenuo.temporal`` 0.3.3 resolver, or a bare
    user class). It holds one version per key id, the one ``resolve_sync``
    returns; the holder-matched reads compare that key with the holder. The
    optional hooks (``preload``, ``preload_all``, ``close``) are used when the
    object has them, and do nothing otherwise. Built by :func:`as_key_resolver`.

    Args:
        inner: The wrapped object.
    """

    backend: ClassVar[str] = "foreign"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._preload = getattr(inner, "preload", None)
        self._preload_all = getattr(inner, "preload_all", None)
        self._close = getattr(inner, "close", None)

    def __repr__(self) -> str:
        return f"ForeignKeyResolver({self.inner!r})"

    async def resolve(self, key_id: str) -> Any:
        """``inner.resolve(key_id)``."""
        return await self.inner.resolve(key_id)

    def resolve_sync(self, key_id: str) -> Any:
        """``inner.resolve_sync(key_id)``."""
        return self.inner.resolve_sync(key_id)

    async def resolve_versions(self, key_id: str) -> KeyVersions:
        """The key ``inner.resolve`` returns, as the only version."""
        return _one_version(key_id, await self.resolve(key_id))

    def resolve_versions_sync(self, key_id: str) -> KeyVersions:
        """The key ``inner.resolve_sync`` returns, as the only version."""
        return _one_version(key_id, self.resolve_sync(key_id))

    def resolve_for_holder_sync(self, key_id: str, holder: Any) -> Any:
        """``inner.resolve_sync(key_id)`` when its public key is ``holder``.

        Raises:
            HolderMismatch: The key is not the holder's.
        """
        return _holders(key_id, self.resolve_sync(key_id), holder)

    async def resolve_for_holder(self, key_id: str, holder: Any) -> Any:
        """``await inner.resolve(key_id)`` when its public key is ``holder``.

        Raises:
            HolderMismatch: The key is not the holder's.
        """
        return _holders(key_id, await self.resolve(key_id), holder)

    def preload(self, key_ids: Iterable[str]) -> int:
        """``inner.preload`` when it has one; else each id through ``resolve_sync``."""
        if self._preload is not None:
            return int(self._preload(key_ids) or 0)
        return super().preload(key_ids)

    def preload_all(self, strict: bool = False) -> PreloadReport:
        """``inner.preload_all()`` when it has one; else nothing (0)."""
        if self._preload_all is None:
            return PreloadReport(0)
        result = self._preload_all() or 0
        return result if isinstance(result, PreloadReport) else PreloadReport(int(result))

    def close(self) -> None:
        """``inner.close()`` when it has one."""
        if self._close is not None:
            self._close()


def _one_version(key_id: str, key: Any) -> KeyVersions:
    return KeyVersions(key_id, [KeyVersion.of(key)])


def _holders(key_id: str, key: Any, holder: Any) -> Any:
    raw = holder if isinstance(holder, bytes) else bytes(holder.to_bytes())
    if bytes(key.public_key_bytes()) != raw:
        raise HolderMismatch(f"key {key_id!r} is not the warrant's holder")
    return key


def as_key_resolver(resolver: Any) -> KeyResolver:
    """``resolver`` itself when it is a :class:`KeyResolver`; else adapted once.

    Raises:
        ResolverConfigError: It has no ``resolve`` and ``resolve_sync``.
    """
    if isinstance(resolver, KeyResolver):
        return resolver
    if not all(callable(getattr(resolver, m, None)) for m in ("resolve", "resolve_sync")):
        raise ResolverConfigError(
            f"key_resolver {type(resolver).__name__} lacks resolve/resolve_sync")
    return ForeignKeyResolver(resolver)
