"""Replay protection: a PoP belongs to the workflow that first presented it."""

from __future__ import annotations

import hashlib
import threading
from typing import Protocol, runtime_checkable

import cachetools

__all__ = ["InMemoryReplayStore", "ReplayStore"]


@runtime_checkable
class ReplayStore(Protocol):
    """Where activity workers record which run presented each PoP.

    A shared implementation (Redis, a database) makes the check span every
    activity worker of a fleet; the default is per process.
    """

    async def claim(self, pop_digest: bytes, owner: str, ttl_seconds: float) -> bool:
        """Record ``owner`` for ``pop_digest`` unless another owner holds it.

        Args:
            pop_digest: SHA-256 of the PoP signature.
            owner: The presenting workflow, ``namespace/workflow_id``.
            ttl_seconds: How long the claim must be remembered.

        Returns:
            True when the PoP is new or already belongs to ``owner``.
        """
        ...


class InMemoryReplayStore:
    """The default store: a bounded TTL map in this process.

    Args:
        maxsize: Most PoPs remembered; the oldest are dropped past it.
    """

    def __init__(self, maxsize: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._maxsize = maxsize
        self._caches: dict[int, cachetools.TTLCache[bytes, str]] = {}

    async def claim(self, pop_digest: bytes, owner: str, ttl_seconds: float) -> bool:
        """See :meth:`ReplayStore.claim`."""
        bucket = max(1, int(ttl_seconds))
        with self._lock:
            cache = self._caches.get(bucket)
            if cache is None:
                cache = self._caches[bucket] = cachetools.TTLCache(self._maxsize, bucket)
            holder = cache.get(pop_digest)
            if holder is None:
                cache[pop_digest] = owner
                return True
            return holder == owner

    def __repr__(self) -> str:
        with self._lock:
            held = sum(len(c) for c in self._caches.values())
        return f"InMemoryReplayStore(held={held})"


def pop_digest(pop: bytes) -> bytes:
    """The key a PoP is stored under (the signature itself is not kept)."""
    return hashlib.sha256(pop).digest()
