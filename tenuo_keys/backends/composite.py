"""``CompositeKeyResolver``: try several resolvers in order."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import cachetools

from .._cache import DEFAULT_MAXSIZE, KeyCache
from .._keyset import KeyVersions
from .._resolver import KeyResolver, PreloadReport, check_key_id, preload_report
from ..errors import KeyNotFound, KeyResolutionError, ResolverConfigError

__all__ = ["CompositeKeyResolver"]

logger = logging.getLogger("tenuo_keys.composite")

T = TypeVar("T")


class CompositeKeyResolver(KeyResolver):
    """Asks each resolver in turn; falls through to the next on *not found* only.

    Access denied, unavailable, bad format and not-loaded errors surface at
    once: a composite that skipped a denied or unreachable backend would
    silently pick a different key than the one configured first. Each error
    names the backend that raised it, and :meth:`answered_by` says which
    resolver served a key.

    Args:
        resolvers: The resolvers, first asked first.
        max_routes: Most key ids whose serving resolver is remembered (least
            recently used forgotten first); a preload of more ids grows it to fit.
            A forgotten route only costs the memory-only path a walk down the
            list again, as for an id never served.
    """

    backend = "composite"

    def __init__(
        self, resolvers: Sequence[KeyResolver], *, max_routes: int = DEFAULT_MAXSIZE
    ) -> None:
        if not resolvers:
            raise ResolverConfigError("CompositeKeyResolver needs at least one resolver")
        if max_routes < 1:
            raise ResolverConfigError(f"max_routes must be >= 1, got {max_routes!r}")
        self.resolvers: tuple[KeyResolver, ...] = tuple(resolvers)
        self._lock = threading.Lock()
        # Sticky routing of the memory-only path. Bounded: it is an optimisation
        # (and what lets earlier resolvers' negative answers expire), never the
        # source of truth, because the order of ``resolvers`` decides who serves.
        self._answered: cachetools.LRUCache[str, int] = cachetools.LRUCache(max_routes)

    def answered_by(self, key_id: str) -> KeyResolver | None:
        """The resolver that last served ``key_id``, or None."""
        with self._lock:
            index = self._answered.get(key_id)
        return None if index is None else self.resolvers[index]

    def _record(self, key_id: str, index: int) -> None:
        with self._lock:
            if self._answered.get(key_id) != index:
                self._answered[key_id] = index
                logger.debug("tenuo_keys: key %r served by %s", key_id,
                             _name(self.resolvers[index]))

    def _make_room(self, count: int) -> None:
        """Grow the routes to remember ``count`` more ids (for a preload)."""
        with self._lock:
            needed = len(self._answered) + count
            if needed > self._answered.maxsize:
                grown: cachetools.LRUCache[str, int] = cachetools.LRUCache(
                    needed + needed // 4
                )
                grown.update(self._answered)
                self._answered = grown

    def _not_found(self, key_id: str) -> KeyNotFound:
        tried = ", ".join(_name(r) for r in self.resolvers)
        return KeyNotFound(f"not found in any of: {tried}", key_id=key_id, backend=self.backend)

    async def resolve_versions(self, key_id: str) -> KeyVersions:
        """Ask each resolver in order; may do I/O."""
        return await self._first_async(key_id, lambda r: r.resolve_versions(key_id))

    async def resolve_for_holder(self, key_id: str, holder: Any) -> Any:
        """Ask each resolver in order for the version matching ``holder``."""
        return await self._first_async(key_id, lambda r: r.resolve_for_holder(key_id, holder))

    def resolve_versions_sync(self, key_id: str) -> KeyVersions:
        """Serve from the resolver that answered before, else ask each in order.

        Routing is sticky: once a resolver has served an id (through
        ``resolve``, ``preload`` or here), the memory-only path goes straight
        to it, so earlier resolvers' negative answers need not stay cached. A
        resolver that has not loaded the key yet raises ``KeyNotLoaded``, which
        surfaces: only its *not found* lets a later resolver serve the id.
        """
        return self._first_sync(key_id, lambda r: r.resolve_versions_sync(key_id))

    def resolve_for_holder_sync(self, key_id: str, holder: Any) -> Any:
        """Like :meth:`resolve_versions_sync`, picking the version matching ``holder``."""
        return self._first_sync(key_id, lambda r: r.resolve_for_holder_sync(key_id, holder))

    def _first_sync(self, key_id: str, call: Callable[[KeyResolver], T]) -> T:
        with self._lock:
            index = self._answered.get(key_id)
        if index is not None:
            try:
                return call(self.resolvers[index])
            except KeyNotFound:
                with self._lock:
                    self._answered.pop(key_id, None)
        for index, resolver in enumerate(self.resolvers):
            try:
                result = call(resolver)
            except KeyNotFound:
                continue
            self._record(key_id, index)
            return result
        raise self._not_found(key_id)

    async def _first_async(
        self, key_id: str, call: Callable[[KeyResolver], Awaitable[T]]
    ) -> T:
        check_key_id(key_id, self.backend)
        for index, resolver in enumerate(self.resolvers):
            try:
                result = await call(resolver)
            except KeyNotFound:
                continue
            self._record(key_id, index)
            return result
        raise self._not_found(key_id)

    def preload(self, key_ids: Iterable[str]) -> int:
        """Preload each id from the first resolver that has it (blocking).

        Each resolver is asked for every id the ones before it did not have, in
        one preload, so its cache makes room for all of them at once.

        Returns:
            How many are held now.

        Raises:
            KeyResolutionError: The first failure, after every id was tried.
            ResolverConfigError: A resolver's explicit ``maxsize`` is smaller
                than the ids asked of it.
        """
        outcome = self._preload_many([check_key_id(k, self.backend) for k in key_ids])
        errors = [e for e in outcome.values() if e is not None]
        if errors:
            raise errors[0]
        return len(outcome)

    def _preload_many(self, key_ids: Sequence[str]) -> dict[str, KeyResolutionError | None]:
        ids = list(dict.fromkeys(key_ids))
        self._make_room(len(ids))
        out: dict[str, KeyResolutionError | None] = {}
        remaining = ids
        for index, resolver in enumerate(self.resolvers):
            if not remaining:
                break
            outcome = resolver._preload_many(remaining)
            missing: list[str] = []
            for key_id in remaining:
                error = outcome[key_id] if key_id in outcome else self._not_found(key_id)
                if isinstance(error, KeyNotFound):
                    missing.append(key_id)
                    continue
                if error is None:
                    self._record(key_id, index)
                out[key_id] = error
            remaining = missing
        for key_id in remaining:
            out[key_id] = self._not_found(key_id)
        return {key_id: out[key_id] for key_id in ids}

    def preload_all(self, strict: bool = False) -> PreloadReport:
        """Preload every listable id, each from the first resolver that has it.

        Ids that fail are logged and skipped, as in the backends' own
        ``preload_all``; with ``strict=True`` the first failure raises.

        Returns:
            A :class:`~tenuo_keys.PreloadReport`: the count of keys held now,
            naming each key that failed and why.
        """
        return preload_report(self._preload_many(self.list_key_ids()), strict, logger)

    def list_key_ids(self) -> list[str]:
        """The union of every resolver's listable ids."""
        ids: dict[str, None] = {}
        for resolver in self.resolvers:
            ids.update(dict.fromkeys(resolver.list_key_ids()))
        return list(ids)

    def caches(self) -> list[KeyCache]:
        """Every resolver's caches, in order."""
        return [cache for resolver in self.resolvers for cache in resolver.caches()]

    def close(self) -> None:
        """Close every resolver."""
        for resolver in self.resolvers:
            resolver.close()

    def __repr__(self) -> str:
        return f"CompositeKeyResolver([{', '.join(repr(r) for r in self.resolvers)}])"


def _name(resolver: KeyResolver) -> str:
    return getattr(resolver, "backend", type(resolver).__name__)

