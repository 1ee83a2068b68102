"""Replay protection: a PoP belongs to the workflow that first presented it."""

from __future__ import annotations

import hashlib
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

    A plain dict, swept of expired entries once a second at most, so a claim
    costs about a microsecond on the verification hot path.

    Args:
        maxsize: Most PoPs remembered; past it, expired ones are swept and then
            the oldest dropped.
    """

    def __init__(self, maxsize: int = 200_000) -> None:
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
            held = self._held.get(key)
            if held is not None and held[1] > now:
                return held[0] == owner
            if now >= self._next_sweep or len(self._held) >= self._maxsize:
                self._sweep(now)
            self._held[key] = (owner, now + ttl_seconds)
            return True

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + 1.0
        self._held = {k: v for k, v in self._held.items() if v[1] > now}
        while len(self._held) >= self._maxsize:  # dicts keep insertion order: oldest first
            del self._held[next(iter(self._held))]

    def __repr__(self) -> str:
        with self._lock:
            held = len(self._held)
        return f"InMemoryReplayStore(held={held})"


def pop_digest(pop: bytes) -> bytes:
    """The key a PoP is stored under (the signature itself is not kept)."""
    return hashlib.sha256(pop).digest()
