"""``StaticKeyResolver``: keys held in code, for tests and development."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence

from .._cache import CacheObserver, CachePolicy
from .._keyset import KeyVersions
from .._resolver import BackendKeyResolver, KeyMaterial, StoredKey
from ..errors import KeyNotFound, KeyNotLoaded

__all__ = ["StaticKeyResolver"]


class StaticKeyResolver(BackendKeyResolver):
    """Serves keys given in code: ``StaticKeyResolver({"agent1": signing_key})``.

    A value may be a ``SigningKey``, stored material in any accepted format,
    or a sequence of those, current first (previous versions for rotation).
    Everything is decoded and held in memory at construction or :meth:`put`,
    so a bad value fails early and ``resolve_sync`` never sees a key cold.
    Keys never expire from memory.

    Args:
        keys: Key id to key(s).
        observers: Cache event observers.
        cache: Cache policy; the default keeps keys until :meth:`put` replaces them.
    """

    backend = "static"

    def __init__(
        self,
        keys: Mapping[str, KeyMaterial | Sequence[KeyMaterial]] | None = None,
        *,
        observers: Iterable[CacheObserver] = (),
        cache: CachePolicy | None = None,
    ) -> None:
        super().__init__(cache=cache or CachePolicy(ttl=None), observers=observers)
        self._lock = threading.Lock()
        self._keys: dict[str, list[StoredKey]] = {}
        for key_id, value in (keys or {}).items():
            self._set(key_id, value)
        # One preload of them all, so the cache is sized for all of them (or
        # an explicit maxsize too small for them is refused) at once.
        self.preload(list(self._keys))

    def put(self, key_id: str, value: KeyMaterial | Sequence[KeyMaterial]) -> None:
        """Set ``key_id`` to ``value`` (one key, or versions current first).

        The key is in memory when this returns: ``resolve_sync`` never sees it cold.
        """
        self._set(key_id, value)
        self.invalidate(key_id)
        self.preload([key_id])

    def _set(self, key_id: str, value: KeyMaterial | Sequence[KeyMaterial]) -> None:
        versions = self._decode(key_id, value)
        stored = [StoredKey(v.key, v.version or str(i)) for i, v in enumerate(versions.versions)]
        with self._lock:
            self._keys[key_id] = stored

    def resolve_versions_sync(self, key_id: str) -> KeyVersions:
        """Serve ``key_id`` from memory; an id never given is ``KeyNotFound`` at once."""
        try:
            return self._cache.get_sync(key_id)
        except KeyNotLoaded:
            with self._lock:
                known = key_id in self._keys
            if not known:
                raise KeyNotFound(key_id=key_id, backend=self.backend) from None
            raise

    def rotate(self, key_id: str, new_key: KeyMaterial) -> None:
        """Make ``new_key`` current and keep the old current as previous."""
        with self._lock:
            old = self._keys.get(key_id, [])[:1]
        self.put(key_id, [new_key, *(s.material for s in old)])

    def fetch(self, key_id: str) -> KeyMaterial | Sequence[KeyMaterial]:
        """Return the versions held for ``key_id``."""
        with self._lock:
            stored = self._keys.get(key_id)
        if stored is None:
            raise KeyNotFound(key_id=key_id, backend=self.backend)
        return list(stored)

    def list_key_ids(self) -> list[str]:
        """Every key id given."""
        with self._lock:
            return sorted(self._keys)

    def __repr__(self) -> str:
        with self._lock:
            count = len(self._keys)
        return f"StaticKeyResolver(keys={count})"
