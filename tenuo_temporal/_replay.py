"""Replay protection: a PoP belongs to the workflow that first presented it."""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable
from typing import Protocol, runtime_checkable

logger = logging.getLogger("tenuo_temporal")

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
            owner: The presenting workflow: an unambiguous encoding of its
                namespace and id (``<len(namespace)>:<namespace>/<workflow_id>``).
            ttl_seconds: How long the claim must be remembered: until the
                warrant chain expires (a retry can present the PoP until then).

        Returns:
            True when the PoP is new or already belongs to ``owner``.
        """
        ...


class InMemoryReplayStore:
    """The default store: a bounded map in this process with per-entry expiry.

    Claims live for different times (each until its warrant expires), so
    expiry is kept in a heap: expired claims leave from its top, at most once
    a second, whatever order they were made in, and a claim costs O(log n)
    however many are held. The hot path is one dict probe, one insert and one
    heap push. A PoP claimed again after it expired is claimed afresh.

    Args:
        maxsize: Most PoPs remembered. Past it, the oldest claims are dropped
            although they are still live (logged as a warning): size the
            store for the call rate times the warrants' lifetime.
        clock: Monotonic seconds (tests pass a fake one).
    """

    def __init__(self, maxsize: int = 200_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._lock = threading.Lock()
        self._maxsize = maxsize
        self._clock = clock
        self._held: dict[Hashable, tuple[Hashable, float]] = {}
        # (expiry, sequence, key): the sequence breaks ties, so keys are never compared
        self._expiries: list[tuple[float, int, Hashable]] = []
        self._sequence = itertools.count()
        self._next_sweep = 0.0
        self._warned_at = -math.inf

    async def claim(self, pop_digest: bytes, owner: str, ttl_seconds: float) -> bool:
        """See :meth:`ReplayStore.claim`."""
        return self.claim_now(pop_digest, owner, ttl_seconds)

    def claim_now(self, key: Hashable, owner: Hashable, ttl_seconds: float) -> bool:
        """:meth:`claim` without a coroutine; the verifier calls this when a store has it.

        Args:
            key: What names the claim. The plugin passes the PoP itself (strict
                mode), or the PoP with the activity attempt's identity (``"run"``
                mode): in process memory a digest buys nothing, and it costs a
                hash per activity.
            owner: The presenting workflow (strict mode), or a token unique to
                the presentation (``"run"`` mode: any second one is refused).
            ttl_seconds: How long the claim must be remembered.
        """
        now = self._clock()
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
                self._evict(now)
            expires = now + ttl_seconds
            held[key] = (owner, expires)
            heapq.heappush(self._expiries, (expires, next(self._sequence), key))
            return True

    def _expire(self, now: float) -> None:
        self._next_sweep = now + 1.0
        held, expiries = self._held, self._expiries
        while expiries and expiries[0][0] <= now:
            expires, _, key = heapq.heappop(expiries)
            entry = held.get(key)
            if entry is not None and entry[1] == expires:
                del held[key]
        if len(expiries) > 2 * self._maxsize:  # stale entries of dropped claims
            self._expiries = [(entry[1], next(self._sequence), key)
                              for key, entry in held.items()]
            heapq.heapify(self._expiries)

    def _evict(self, now: float) -> None:
        # Full of live claims: drop the oldest, a batch at a time, so the walk
        # from the front of the dict is amortized over many claims. Their heap
        # entries go stale and are skipped when they come up.
        held = self._held
        for key in list(itertools.islice(held, max(1, len(held) // 64))):
            del held[key]
        if now - self._warned_at >= 60.0:
            self._warned_at = now
            logger.warning(
                "tenuo_temporal: the replay store is full (%d claims): live claims were "
                "dropped, so their PoPs could be presented again by another workflow; "
                "raise InMemoryReplayStore(maxsize=...) or use a shared store", self._maxsize)

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
