"""Replay protection: a PoP belongs to the workflow that first presented it."""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from typing import Protocol, runtime_checkable

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
    """The default store: a bounded map in this process with per-entry expiry.

    A plain dict in the order claims were made. With one TTL (one plugin
    configuration) that is also the order they expire in, so expired claims
    are dropped from the front, at most once a second: a claim costs O(1)
    amortized however many are held, and the hot path is one dict probe and
    one insert. A PoP claimed again after it expired moves to the back.

    Args:
        maxsize: Most PoPs remembered; past it, the oldest claims are dropped
            (they may still be live: size the store for the rate times the TTL).
    """

    def __init__(self, maxsize: int = 200_000) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._lock = threading.Lock()
        self._maxsize = maxsize
        self._held: dict[bytes, tuple[str, float]] = {}
        self._next_sweep = 0.0

    async def claim(self, pop_digest: bytes, owner: str, ttl_seconds: float) -> bool:
        """See :meth:`ReplayStore.claim`."""
        return self.claim_now(pop_digest, owner, ttl_seconds)

    def claim_now(self, key: bytes, owner: str, ttl_seconds: float) -> bool:
        """:meth:`claim` without a coroutine; the verifier calls this when a store has it.

        Args:
            key: What names the PoP. The plugin passes the PoP itself: in process
                memory a digest buys nothing, and it costs a hash per activity.
            owner: The presenting workflow, ``namespace/workflow_id``.
            ttl_seconds: How long the claim must be remembered.
        """
        now = time.monotonic()
        with self._lock:
            held = self._held
            entry = held.get(key)
            if entry is not None:
                if entry[1] > now:
                    return entry[0] == owner
                del held[key]  # expired: claimed afresh below, at the back
            if now >= self._next_sweep:
                self._expire(now)
            if len(held) >= self._maxsize:
                self._evict()
            held[key] = (owner, now + ttl_seconds)
            return True

    def _expire(self, now: float) -> None:
        # From the front, up to the first live claim. (A longer-lived claim in
        # front, from a store shared by configurations with different TTLs,
        # holds expired ones behind it until it expires or the size bound
        # drops it; they are never honoured meanwhile.)
        self._next_sweep = now + 1.0
        held = self._held
        expired = []
        for key, entry in held.items():
            if entry[1] > now:
                break
            expired.append(key)
        for key in expired:
            del held[key]

    def _evict(self) -> None:
        # Full of live claims: drop the oldest, a batch at a time, so the walk
        # from the front of the dict is amortized over many claims.
        held = self._held
        for key in list(itertools.islice(held, max(1, len(held) // 64))):
            del held[key]

    @property
    def size(self) -> int:
        """How many claims are held (expired ones may linger up to a second).

        A property rather than ``__len__``: an empty store must stay truthy.
        """
        return len(self._held)

    def __repr__(self) -> str:
        with self._lock:
            held = len(self._held)
        return f"InMemoryReplayStore(held={held})"


def pop_digest(pop: bytes) -> bytes:
    """The key a PoP is stored under (the signature itself is not kept)."""
    return hashlib.sha256(pop).digest()
