"""One bounded map, on ``cachetools``, for every cache the plugin keeps.

**The eviction rule.** A map holds at most ``maxsize`` entries (with
``getsizeof``: at most ``maxsize`` in total size). Setting a key when the map
is full first drops the entry that was set longest ago; setting a key again
counts as setting it now. With a ``ttl``, an entry is also gone ``ttl``
seconds after it was last set, and no read returns it after that.

**Reads.** Without a ``ttl``, :meth:`BoundedMap.get` *is* ``dict.get`` on
:attr:`BoundedMap.view`, a plain dict that mirrors the entries: the hot path
pays one dict read and takes no lock (a dict read is atomic). Writes take the
map's lock and keep the view in step with the ``cachetools`` cache, which
decides what goes. With a ``ttl``, reads take the lock too (they expire what
is due first); only maps off the per-activity path use one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar, cast, overload

import cachetools

__all__ = ["BoundedMap"]

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")
K_in = TypeVar("K_in", contravariant=True)
V_out = TypeVar("V_out", covariant=True)


class _Get(Protocol[K_in, V_out]):
    """``dict.get``'s shape."""

    @overload
    def __call__(self, key: K_in, /) -> V_out | None: ...
    @overload
    def __call__(self, key: K_in, default: T, /) -> V_out | T: ...


class _Mirrored(cachetools.Cache[K, V]):
    """Mirrors every insert and removal of a ``cachetools`` cache into ``view``."""

    view: dict[K, V]

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.view[key] = value

    def __delitem__(self, key: K) -> None:
        super().__delitem__(key)
        self.view.pop(key, None)

    def popitem(self) -> tuple[K, V]:
        key, value = super().popitem()
        self.view.pop(key, None)
        return key, value


class _FIFO(_Mirrored[K, V], cachetools.FIFOCache[K, V]):
    """A FIFO cache mirrored into ``view``."""

    def __init__(self, maxsize: float, getsizeof: Callable[[V], float] | None,
                 view: dict[K, V]) -> None:
        cachetools.FIFOCache.__init__(self, maxsize, getsizeof)
        self.view = view


class _TTL(_Mirrored[K, V], cachetools.TTLCache[K, V]):
    """A TTL cache (reads never touch its order) mirrored into ``view``."""

    def __init__(self, maxsize: float, ttl: float, timer: Callable[[], float],
                 getsizeof: Callable[[V], float] | None, view: dict[K, V]) -> None:
        cachetools.TTLCache.__init__(self, maxsize, ttl, timer, getsizeof)
        self.view = view

    def expire(self, time: float | None = None) -> list[tuple[K, V]]:
        expired = list(super().expire(time))
        for key, _ in expired:
            self.view.pop(key, None)
        return expired


class BoundedMap(Generic[K, V]):
    """A bounded mapping: see the module docstring for its one eviction rule.

    Args:
        maxsize: The most entries (or total size, with ``getsizeof``) held.
        ttl: Seconds an entry lives after it was last set; None: no expiry.
        timer: The clock ``ttl`` is measured on.
        getsizeof: The size of one value; None: each entry counts 1.
    """

    __slots__ = ("_cache", "_lock", "get", "view")

    def __init__(self, maxsize: float, *, ttl: float | None = None,
                 timer: Callable[[], float] = time.monotonic,
                 getsizeof: Callable[[V], float] | None = None) -> None:
        self.view: dict[K, V] = {}
        """The entries, as a plain dict: read it, never write it."""
        self._lock = threading.Lock()
        self._cache: _FIFO[K, V] | _TTL[K, V]
        self.get: _Get[K, V]
        """``dict.get``: the view's own without a ``ttl`` (no lock, no call of ours)."""
        if ttl is None:
            self._cache = _FIFO(maxsize, getsizeof, self.view)
            self.get = cast("_Get[K, V]", self.view.get)
        else:
            self._cache = _TTL(maxsize, ttl, timer, getsizeof, self.view)
            self.get = cast("_Get[K, V]", self._get_live)

    def _get_live(self, key: K, default: Any = None) -> Any:
        with self._lock:
            self._cache.expire()  # type: ignore[union-attr] # only with a ttl
            return self.view.get(key, default)

    def __setitem__(self, key: K, value: V) -> None:
        with self._lock:
            self._cache[key] = value

    def setdefault(self, key: K, value: V) -> V:
        """The value held for ``key``; else ``value``, set now."""
        with self._lock:
            if isinstance(self._cache, _TTL):
                self._cache.expire()
            if key in self.view:
                return self.view[key]
            self._cache[key] = value
            return value

    def pop(self, key: K, default: Any = None) -> Any:
        """Remove ``key`` and return its value (``default`` when not held)."""
        with self._lock:
            if isinstance(self._cache, _TTL):
                self._cache.expire()
            if key not in self.view:
                return default
            value = self.view[key]
            del self._cache[key]
            return value

    def expire(self) -> None:
        """Drop the entries whose ``ttl`` has passed (nothing without a ``ttl``)."""
        if isinstance(self._cache, _TTL):
            with self._lock:
                self._cache.expire()

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._cache.clear()  # cachetools' clear bypasses the mirrored removals
            self.view.clear()

    def keys(self) -> list[K]:
        """The keys, as the ``cachetools`` cache holds them (a snapshot)."""
        with self._lock:
            return list(self._cache.keys())

    def values(self) -> list[V]:
        """The values (a snapshot)."""
        with self._lock:
            return list(self._cache.values())

    def items(self) -> list[tuple[K, V]]:
        """The entries (a snapshot)."""
        with self._lock:
            return list(self._cache.items())

    @property
    def maxsize(self) -> float:
        """The bound."""
        return self._cache.maxsize

    @property
    def currsize(self) -> float:
        """What is held: entries, or total size with ``getsizeof``."""
        return self._cache.currsize

    def __getitem__(self, key: K) -> V:
        found = self.get(key, _MISSING)
        if found is _MISSING:
            raise KeyError(key)
        return cast(V, found)

    def __contains__(self, key: object) -> bool:
        return self.get(cast(K, key), _MISSING) is not _MISSING

    def __len__(self) -> int:
        return len(self.view)

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys())

    def __repr__(self) -> str:
        return f"BoundedMap({len(self)}/{self.maxsize})"


_MISSING: Any = object()
