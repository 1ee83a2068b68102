"""``CompositeKeyResolver``: try several resolvers in order."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from .._keyset import KeyVersions
from .._resolver import KeyResolver, check_key_id
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
    """

    backend = "composite"

    def __init__(self, resolvers: Sequence[KeyResolver]) -> None:
        if not resolvers:
            raise ResolverConfigError("CompositeKeyResolver needs at least one resolver")
        self.resolvers: tuple[KeyResolver, ...] = tuple(resolvers)
        self._lock = threading.Lock()
        self._answered: dict[str, int] = {}

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

        Raises:
            KeyResolutionError: The first failure, after every id was tried.
        """
        errors: list[KeyResolutionError] = []
        loaded = 0
        for key_id in key_ids:
            try:
                self._preload_one(check_key_id(key_id, self.backend))
                loaded += 1
            except KeyResolutionError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        return loaded

    def _preload_one(self, key_id: str) -> None:
        for index, resolver in enumerate(self.resolvers):
            try:
                resolver.preload([key_id])
            except KeyNotFound:
                continue
            self._record(key_id, index)
            return
        raise self._not_found(key_id)

    def preload_all(self, strict: bool = False) -> int:
        """Preload every listable id, each from the first resolver that has it.

        Ids that fail are logged and skipped, as in the backends' own
        ``preload_all``; with ``strict=True`` the first failure raises.
        """
        loaded = 0
        errors: list[KeyResolutionError] = []
        for key_id in self.list_key_ids():
            try:
                self._preload_one(key_id)
                loaded += 1
            except KeyResolutionError as exc:
                errors.append(exc)
                logger.error("tenuo_keys: preload_all could not load a key: %s", exc)
        if strict and errors:
            raise errors[0]
        return loaded

    def list_key_ids(self) -> list[str]:
        """The union of every resolver's listable ids."""
        ids: dict[str, None] = {}
        for resolver in self.resolvers:
            ids.update(dict.fromkeys(resolver.list_key_ids()))
        return list(ids)

    def close(self) -> None:
        """Close every resolver."""
        for resolver in self.resolvers:
            resolver.close()

    def __repr__(self) -> str:
        return f"CompositeKeyResolver([{', '.join(repr(r) for r in self.resolvers)}])"


def _name(resolver: KeyResolver) -> str:
    return getattr(resolver, "backend", type(resolver).__name__)

