"""The one key cache every backend shares.

It holds parsed :class:`~tenuo_keys.KeyVersions` (parsing costs as much as a
signature) and gives every resolver, for free:

* TTL with jitter (the jitter only shortens, so no entry outlives its TTL);
* refresh-ahead: past ``refresh_ahead`` of the TTL, one background refresh
  starts while readers keep the current value;
* stale-if-error: when a refresh fails with a *retryable* error, the last good
  value keeps serving until ``max_staleness`` past expiry, then every call fails
  closed with :class:`~tenuo_keys.errors.BackendUnavailable`. A definitive
  answer (not found, access denied, bad data) is never papered over: the entry
  is dropped at once, because that is how a revocation looks;
* a short negative cache for failures, so a missing key or a dead backend is
  not asked again on every call;
* single-flight: concurrent misses of one key, from threads or event loops,
  share one backend call;
* a bounded store with least-recently-used eviction (CLOCK, second chance),
  which a preload never turns on the keys it loads: left at its default size
  the cache grows to fit what a preload asks for, and an explicitly set
  ``maxsize`` too small for the preload is refused with
  :class:`~tenuo_keys.errors.ResolverConfigError`;
* a bounded amount of state per key id it was asked about and does not hold
  (negative cache, last errors, pending loads), so attacker-chosen ids cost
  memory and backend reads that are bounded, not a map that grows per id;
* ``invalidate`` and ``clear`` that only take a lock, never wait for I/O;
* observer hooks for metrics.

The read path of :meth:`KeyCache.get_sync` is lock-free: one dict lookup, one
clock read and one comparison. Everything else happens under one lock, and all
I/O runs on the cache's own worker threads, never on the caller's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar

import cachetools

from ._keyset import KeyVersions
from .errors import (
    BackendUnavailable,
    KeyNotLoaded,
    KeyResolutionError,
    ResolverClosed,
    ResolverConfigError,
)

__all__ = [
    "DEFAULT_MAXSIZE",
    "NEGATIVE_MAXSIZE",
    "CacheEvent",
    "CacheObserver",
    "CachePolicy",
    "CacheStats",
    "EventKind",
    "KeyCache",
    "sized_like",
]

logger = logging.getLogger("tenuo_keys.cache")

EventKind = Literal["hit", "stale", "miss", "refresh", "fetch", "error"]
"""``hit``: served fresh from memory. ``stale``: served past its TTL within
``max_staleness``. ``miss``: not in memory. ``refresh``: a background refresh
started. ``fetch``: a backend call succeeded. ``error``: a backend call failed.
``fetch`` and ``error`` carry ``latency``; their sum is the backend call count."""


@dataclass(frozen=True, slots=True)
class CacheEvent:
    """One thing the cache did, for metrics.

    Attributes:
        kind: What happened.
        backend: The resolver's backend name.
        key_id: The key id. Metrics exporters should not use it as a label.
        latency: Seconds the backend call took (``fetch`` and ``error`` only).
        error: The failure (``error`` only).
    """

    kind: EventKind
    backend: str
    key_id: str
    latency: float | None = None
    error: KeyResolutionError | None = None


DEFAULT_MAXSIZE = 65_536
"""Key ids a cache holds before least-recently-used eviction, unless told
otherwise. A held key costs about 1 KB of live memory (0.85 KB of Python objects
plus the key's own 0.25 KB), about 3 KB of process RSS when loaded by a
preload; the size only bounds memory when that many distinct keys are in use."""

NEGATIVE_MAXSIZE = 8_192
"""Most key ids remembered per cache for what they are *not*: the negative
cache, the last error per id, and background loads under way. These are the
maps an attacker who picks key ids can fill, so they do not grow with the
cache; past this many distinct unknown ids per ``negative_ttl``, an unknown id
costs one backend read per call instead of one per ``negative_ttl``."""


class _DefaultSize(int):
    """The default ``CachePolicy.maxsize``, which a preload may grow.

    An explicitly chosen size is a plain ``int`` and never grows.
    """

    __slots__ = ()


CacheObserver = Callable[[CacheEvent], None]
"""A callable that receives every :class:`CacheEvent`. It must be quick and must
not raise; an observer that raises is logged and ignored."""


class CacheStats:
    """A thread-safe observer that counts events by kind.

    Example:
        >>> stats = CacheStats()
        >>> stats(CacheEvent("hit", "env", "agent1"))
        >>> stats.snapshot()["hit"]
        1
    """

    _KINDS: tuple[EventKind, ...] = ("hit", "stale", "miss", "refresh", "fetch", "error")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(self._KINDS, 0)
        self._latency_total = 0.0

    def __call__(self, event: CacheEvent) -> None:
        with self._lock:
            self._counts[event.kind] += 1
            if event.latency is not None:
                self._latency_total += event.latency

    @property
    def backend_calls(self) -> int:
        """How many times the backend was asked (successes plus failures)."""
        with self._lock:
            return self._counts["fetch"] + self._counts["error"]

    def snapshot(self) -> dict[str, float]:
        """Counts by kind, plus ``backend_seconds`` spent in backend calls."""
        with self._lock:
            out: dict[str, float] = dict(self._counts)
            out["backend_seconds"] = self._latency_total
            return out

    def __repr__(self) -> str:
        return f"CacheStats({self.snapshot()!r})"


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How long keys live in memory and what happens when the backend fails.

    Attributes:
        ttl: Seconds a loaded key is fresh; None keeps it until invalidated.
        jitter: Fraction by which each entry's TTL is randomly shortened, so
            keys loaded together do not all refresh together.
        refresh_ahead: Fraction of the TTL, before expiry, at which one
            background refresh starts while readers keep the current value.
        max_staleness: Seconds past expiry that the last good key keeps serving
            while refreshes fail with retryable errors. 0 disables stale serving.
        negative_ttl: Seconds a failed load (not found, denied, unreachable)
            is remembered before the backend is asked again.
        error_backoff: Initial seconds between refresh attempts of a stale key
            whose refreshes fail; doubles on each failure up to ``max_backoff``.
        max_backoff: Cap of that backoff.
        maxsize: Most key ids held; past it, a key not read since the last
            sweep is evicted. Left at its default (:data:`DEFAULT_MAXSIZE`), the
            cache grows to fit whatever a preload asks for. Set explicitly, it is
            a hard cap: a preload of more ids than ``maxsize`` raises
            :class:`~tenuo_keys.errors.ResolverConfigError` instead of loading
            keys that would evict each other.
        max_workers: Threads that do backend I/O for this cache.
    """

    ttl: float | None = 300.0
    jitter: float = 0.1
    refresh_ahead: float = 0.2
    max_staleness: float = 900.0
    negative_ttl: float = 5.0
    error_backoff: float = 1.0
    max_backoff: float = 60.0
    maxsize: int = _DefaultSize(DEFAULT_MAXSIZE)
    max_workers: int = 8

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ResolverConfigError:
            return ResolverConfigError(f"CachePolicy.{name} {why}")

        if self.ttl is not None and not (self.ttl > 0 and math.isfinite(self.ttl)):
            raise bad("ttl", f"must be a positive number of seconds or None, got {self.ttl!r}")
        if not 0 <= self.jitter < 1:
            raise bad("jitter", f"must be in [0, 1), got {self.jitter!r}")
        if not 0 <= self.refresh_ahead < 1:
            raise bad("refresh_ahead", f"must be in [0, 1), got {self.refresh_ahead!r}")
        for name in ("max_staleness", "negative_ttl", "error_backoff", "max_backoff"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise bad(name, f"must be a finite number >= 0, got {value!r}")
        if self.maxsize < 1:
            raise bad("maxsize", f"must be >= 1, got {self.maxsize!r}")
        if self.max_workers < 1:
            raise bad("max_workers", f"must be >= 1, got {self.max_workers!r}")

    @property
    def grows(self) -> bool:
        """True when ``maxsize`` was left at its default, so a preload may grow it."""
        return isinstance(self.maxsize, _DefaultSize)

    @property
    def negative_maxsize(self) -> int:
        """Bound of the per-id maps for ids not held (see :data:`NEGATIVE_MAXSIZE`)."""
        return min(self.maxsize, NEGATIVE_MAXSIZE)


class _Entry:
    __slots__ = ("expires_at", "failures", "last_error", "refresh_at", "retry_at", "stale_until",
                 "used", "versions")

    def __init__(self, versions: KeyVersions, refresh_at: float, expires_at: float,
                 stale_until: float) -> None:
        self.versions = versions
        self.refresh_at = refresh_at
        self.expires_at = expires_at
        self.stale_until = stale_until
        self.retry_at = -math.inf
        self.failures = 0
        self.last_error: KeyResolutionError | None = None
        self.used = False


Loader = Callable[[str], KeyVersions]
BatchLoader = Callable[[Sequence[str]], Mapping[str, "KeyVersions | KeyResolutionError"]]


class KeyCache:
    """Caches parsed key versions in front of a loader that does the backend I/O.

    Args:
        loader: Fetches and parses one key id; raises ``KeyResolutionError``.
            Runs on the cache's worker threads only.
        backend: Backend name, for events and errors.
        policy: TTLs, staleness and sizes.
        observers: Called with each :class:`CacheEvent`.
        batch_loader: Optional loader of many ids in one backend call, used by
            :meth:`preload`.
        check_id: Optional validation of a key id not held, run before it
            reaches the negative cache or the loader; raises
            ``KeyResolutionError`` for an id no backend should be asked about.
        timer: Monotonic clock in seconds (injectable for tests).
        rng: Random source for TTL jitter (injectable for tests).
    """

    def __init__(
        self,
        loader: Loader,
        *,
        backend: str,
        policy: CachePolicy | None = None,
        observers: Iterable[CacheObserver] = (),
        batch_loader: BatchLoader | None = None,
        check_id: Callable[[str], object] | None = None,
        timer: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or CachePolicy()
        self.backend = backend
        self._loader = loader
        self._batch_loader = batch_loader
        self._check_id = check_id
        self._timer = timer
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self._observers: tuple[CacheObserver, ...] = tuple(observers)
        self._lock = threading.RLock()
        # A plain dict, so the hot path is one lock-free lookup; recency is kept
        # CLOCK-style (a flag set on hit, a second chance at eviction), which
        # approximates LRU without reordering anything on the read path.
        self._store: dict[str, _Entry] = {}
        self._order: OrderedDict[str, None] = OrderedDict()
        self._maxsize = int(self.policy.maxsize)
        # Ids a preload under way is loading, with how many preloads want each:
        # eviction passes over them, so a preload never evicts its own keys.
        self._pinned: dict[str, int] = {}
        negative = self.policy.negative_maxsize
        self._failures: cachetools.TTLCache[str, KeyResolutionError] = cachetools.TTLCache(
            maxsize=negative, ttl=max(self.policy.negative_ttl, 1e-9), timer=timer
        )
        # What to say while a key is unavailable and a new load is under way:
        # outlives the negative TTL so an outage reads the same on every call.
        self._last_error: cachetools.LRUCache[str, KeyResolutionError] = cachetools.LRUCache(
            negative
        )
        # Keys dropped past max_staleness while their backend kept failing, with
        # the count of background reloads since. Such a key is reloaded in the
        # background (with backoff) until it loads or fails definitively, so it
        # is back before the next caller asks, and its errors keep saying why.
        self._expired: cachetools.LRUCache[str, int] = cachetools.LRUCache(negative)
        self._retry_timers: dict[str, threading.Timer] = {}
        # One future per load under way. A load stores its result only while its
        # future is still the one registered here: invalidate() and clear()
        # unregister it, so a load that started before them cannot store a key
        # they meant to forget. No per-id counter outlives the load.
        self._inflight: dict[str, Future[KeyVersions]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    # -- observers -------------------------------------------------------

    def add_observer(self, observer: CacheObserver) -> None:
        """Add an observer; it sees events from now on."""
        with self._lock:
            self._observers = (*self._observers, observer)

    def _emit(
        self,
        kind: EventKind,
        key_id: str,
        latency: float | None = None,
        error: KeyResolutionError | None = None,
    ) -> None:
        event = CacheEvent(kind, self.backend, key_id, latency, error)
        for observer in self._observers:
            try:
                observer(event)
            except Exception:
                logger.exception("tenuo_keys cache observer %r raised; ignored", observer)

    # -- reads -----------------------------------------------------------

    def get_sync(self, key_id: str) -> KeyVersions:
        """Return the key from memory, never doing I/O on the calling thread.

        Fresh entries return at once. Entries in their refresh-ahead window,
        or expired but within ``max_staleness``, return the current value and
        start one background refresh.

        Args:
            key_id: The key id.

        Returns:
            The held versions.

        Raises:
            KeyNotLoaded: Not in memory; a background load was started.
            KeyResolutionError: A recent load failed (the remembered error), or
                the entry is past ``max_staleness`` (``BackendUnavailable``).
        """
        entry = self._store.get(key_id)
        if entry is not None and self._timer() < entry.refresh_at:
            entry.used = True
            if self._observers:
                self._emit("hit", key_id)
            return entry.versions
        return self._get_sync_slow(key_id, entry)

    def _get_sync_slow(self, key_id: str, entry: _Entry | None) -> KeyVersions:
        now = self._timer()
        if entry is not None and now < entry.stale_until:
            if now >= entry.retry_at:
                self._start_load(key_id, refresh=True)
            self._emit("hit" if now < entry.expires_at else "stale", key_id)
            return entry.versions
        if self._closed:
            raise ResolverClosed(key_id=key_id, backend=self.backend)
        if self._check_id is not None:
            self._check_id(key_id)
        # The negative maps reorder on reads, so they are read under the lock.
        with self._lock:
            failure = self._failures.get(key_id)
            last = self._last_error.get(key_id)
        if failure is not None:
            raise failure.with_context(key_id=key_id, backend=self.backend)
        self._emit("miss", key_id)
        started = self._start_miss(key_id)
        if started is None:
            raise self._busy(key_id, sync=True)
        if isinstance(started, KeyResolutionError):
            raise started
        if last is None and entry is not None and entry.last_error is not None:
            # Past max_staleness while refreshes fail: an outage, not a cold key.
            raise BackendUnavailable(
                f"{entry.last_error.reason}; the last good key is older than max_staleness "
                f"({self.policy.max_staleness:.0f}s past its TTL)",
                key_id=key_id, backend=self.backend,
            )
        if last is not None:
            # The last answer stands while a new load is under way. A definitive
            # one (not found, denied, corrupted) must read the same on every call
            # too: a caller that comes back later than negative_ttl (Temporal
            # retries a workflow task after ~10 s) would otherwise see a cold
            # key, retry, and never get the answer.
            raise last.with_context(key_id=key_id, backend=self.backend)
        raise KeyNotLoaded(key_id=key_id, backend=self.backend)

    def get_future(self, key_id: str) -> Future[KeyVersions]:
        """Return a future of the key, loading it on the worker threads if needed.

        Args:
            key_id: The key id.

        Returns:
            A future that is already done when memory can answer.
        """
        entry = self._store.get(key_id)
        now = self._timer()
        if entry is not None:
            entry.used = True
            if now < entry.expires_at:
                if now >= entry.refresh_at and now >= entry.retry_at:
                    self._start_load(key_id, refresh=True)
                self._emit("hit", key_id)
                return _done(entry.versions)
            if now < entry.stale_until and now < entry.retry_at:
                # Refreshes are failing and backing off: serve stale, do not hammer.
                self._emit("stale", key_id)
                return _done(entry.versions)
        if self._closed:
            return _failed(ResolverClosed(key_id=key_id, backend=self.backend))
        if self._check_id is not None:
            try:
                self._check_id(key_id)
            except KeyResolutionError as exc:
                return _failed(exc)
        with self._lock:
            failure = self._failures.get(key_id)
        if failure is not None:
            return _failed(failure.with_context(key_id=key_id, backend=self.backend))
        if entry is not None:
            return self._start_load(key_id, refresh=True)
        self._emit("miss", key_id)
        started = self._start_miss(key_id)
        if started is None:
            return _failed(self._busy(key_id, sync=False))
        return _failed(started) if isinstance(started, KeyResolutionError) else started

    async def get(self, key_id: str) -> KeyVersions:
        """Async form of :meth:`get_future`; the event loop is never blocked."""
        future = self.get_future(key_id)
        if future.done():
            return future.result()
        return await asyncio.wrap_future(future)

    def get_blocking(self, key_id: str, timeout: float | None = None) -> KeyVersions:
        """Blocking form of :meth:`get_future`, for start-up code and CLIs."""
        return self.get_future(key_id).result(timeout)

    # -- loading ---------------------------------------------------------

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.policy.max_workers,
                thread_name_prefix=f"tenuo-keys-{self.backend}",
            )
        return self._executor

    def _start_load(
        self, key_id: str, *, refresh: bool = False, force: bool = False
    ) -> Future[KeyVersions]:
        with self._lock:
            future = self._inflight.get(key_id)
            if future is not None:
                return future
            entry = self._store.get(key_id)
            if not force and entry is not None and self._timer() < entry.refresh_at:
                # A load finished between the caller's lock-free read and now.
                return _done(entry.versions)
            if self._closed:
                return _failed(ResolverClosed(key_id=key_id, backend=self.backend))
            future = Future()
            self._inflight[key_id] = future
            if refresh:
                self._emit("refresh", key_id)
            self._pool().submit(self._run_load, key_id, future)
            return future

    def _start_miss(self, key_id: str) -> Future[KeyVersions] | KeyResolutionError | None:
        """Start (or join) the load of a key not held.

        Misses are what a caller who picks key ids controls, so the loads they
        queue are bounded: past ``negative_maxsize`` loads under way, a miss of
        another id starts nothing and fails retryably. Preloads and refreshes of
        held keys are not limited.

        Returns:
            The load's future; the negative answer of a load that failed since
            the caller looked; or None when too many loads are pending.
        """
        with self._lock:
            failure = self._failures.get(key_id)
            if failure is not None:
                # A load failed since the caller looked: that answer stands for
                # negative_ttl, so asking the backend again now would be a second read.
                return failure.with_context(key_id=key_id, backend=self.backend)
            if (key_id not in self._inflight
                    and len(self._inflight) >= self.policy.negative_maxsize):
                return None
            return self._start_load(key_id)

    def _busy(self, key_id: str, *, sync: bool) -> KeyResolutionError:
        reason = f"{len(self._inflight)} key loads already pending; this one was not started"
        if sync:
            return KeyNotLoaded(f"not loaded in memory yet; {reason}", key_id=key_id,
                                backend=self.backend)
        return BackendUnavailable(reason, key_id=key_id, backend=self.backend)

    def _run_load(self, key_id: str, future: Future[KeyVersions]) -> None:
        started = self._timer()
        try:
            versions = self._loader(key_id)
        except BaseException as exc:
            error = _as_resolution_error(exc, key_id, self.backend)
            self._emit("error", key_id, self._timer() - started, error)
            self._finish(key_id, future, None, error)
        else:
            self._emit("fetch", key_id, self._timer() - started)
            self._finish(key_id, future, versions, None)

    def _finish(
        self,
        key_id: str,
        future: Future[KeyVersions],
        versions: KeyVersions | None,
        error: KeyResolutionError | None,
    ) -> None:
        result: KeyVersions | None = None
        with self._lock:
            # Still registered: no invalidate() or clear() since this load began.
            current = self._inflight.get(key_id) is future
            if current:
                del self._inflight[key_id]
            if versions is not None:
                result = versions
                if current:
                    self._put(key_id, self._new_entry(versions))
                    self._failures.pop(key_id, None)
                    self._last_error.pop(key_id, None)
                    self._expired.pop(key_id, None)
            elif error is not None and current:
                outcome = self._on_failure(key_id, error)
                if isinstance(outcome, KeyVersions):
                    result = outcome
                else:
                    error = outcome
        if result is not None:
            future.set_result(result)
        else:
            assert error is not None
            future.set_exception(error)

    def _on_failure(
        self, key_id: str, error: KeyResolutionError
    ) -> KeyVersions | KeyResolutionError:
        """Apply stale-if-error under the lock.

        Returns:
            A stale value to keep serving, or the error to raise.
        """
        now = self._timer()
        entry = self._store.get(key_id)
        if entry is not None and error.retryable and now < entry.stale_until:
            entry.failures += 1
            entry.last_error = error
            backoff = self.policy.error_backoff * 2 ** (entry.failures - 1)
            entry.retry_at = now + min(backoff, self.policy.max_backoff)
            # Warn once per outage; the backoff keeps retrying quietly.
            log = logger.warning if entry.failures == 1 else logger.debug
            log(
                "tenuo_keys: refresh of key %r on %s failed (%s); serving the last good "
                "key for up to %.0fs more",
                key_id, self.backend, error.reason, entry.stale_until - now,
            )
            return entry.versions
        if entry is not None:
            # Definitive answers (revoked, denied, corrupted) and exhausted
            # staleness both fail closed at once.
            self._drop(key_id)
            if error.retryable:
                self._expired.setdefault(key_id, 0)
        if not error.retryable:
            self._expired.pop(key_id, None)
        elif key_id in self._expired:
            # Still the same outage: say so on every call, and keep reloading
            # in the background so the key is back before the next caller.
            error = BackendUnavailable(
                f"{error.reason}; the last good key is older than max_staleness "
                f"({self.policy.max_staleness:.0f}s past its TTL)",
                key_id=key_id, backend=error.backend or self.backend,
            )
            self._retry_later(key_id)
        if self.policy.negative_ttl > 0:
            self._failures[key_id] = error
        self._last_error[key_id] = error
        return error

    def _retry_later(self, key_id: str) -> None:
        """Schedule one background reload of an expired key (caller holds the lock)."""
        if self._closed or key_id in self._retry_timers:
            return
        attempts = self._expired[key_id] = self._expired.get(key_id, 0) + 1
        delay = min(self.policy.error_backoff * 2 ** (attempts - 1), self.policy.max_backoff)
        timer = threading.Timer(max(delay, 0.05), self._retry_expired, args=(key_id,))
        timer.daemon = True
        self._retry_timers[key_id] = timer
        timer.start()

    def _retry_expired(self, key_id: str) -> None:
        with self._lock:
            self._retry_timers.pop(key_id, None)
            if self._closed or key_id not in self._expired:
                return
        self._start_load(key_id)

    def _cancel_retries(self, key_id: str | None = None) -> None:
        """Stop background reloads of one key, or of all (caller holds the lock)."""
        if key_id is None:
            timers = list(self._retry_timers.values())
            self._retry_timers.clear()
            self._expired.clear()
        else:
            timer = self._retry_timers.pop(key_id, None)
            timers = [timer] if timer is not None else []
            self._expired.pop(key_id, None)
        for timer in timers:
            timer.cancel()

    def _put(self, key_id: str, entry: _Entry) -> None:
        """Store an entry and evict past maxsize (caller holds the lock)."""
        self._store[key_id] = entry
        self._order[key_id] = None
        self._order.move_to_end(key_id)
        spared = 0
        while len(self._store) > self._maxsize:
            victim, _ = self._order.popitem(last=False)
            held = self._store.get(victim)
            if held is None:
                continue
            # Read since the last sweep, or loaded by a preload under way: a
            # second chance. Only concurrent preloads that together ask for more
            # than maxsize pin every entry; then one is evicted all the same,
            # and those preloads count it as not held.
            if (held.used or victim in self._pinned) and spared <= 2 * len(self._order):
                held.used = False
                self._order[victim] = None
                spared += 1
                continue
            self._store.pop(victim, None)

    def _drop(self, key_id: str) -> None:
        self._store.pop(key_id, None)
        self._order.pop(key_id, None)

    def _new_entry(self, versions: KeyVersions) -> _Entry:
        now = self._timer()
        ttl = self.policy.ttl
        if ttl is None:
            return _Entry(versions, math.inf, math.inf, math.inf)
        ttl *= 1.0 - self.policy.jitter * self._rng.random()
        expires = now + ttl
        return _Entry(
            versions,
            refresh_at=now + ttl * (1.0 - self.policy.refresh_ahead),
            expires_at=expires,
            stale_until=expires + self.policy.max_staleness,
        )

    def refresh(self, key_id: str) -> Future[KeyVersions]:
        """Start a refresh of ``key_id`` now (joining one already running).

        Returns:
            A future of the refreshed versions (or of the stale value, under
            stale-if-error).
        """
        with self._lock:
            self._failures.pop(key_id, None)
        return self._start_load(key_id, refresh=key_id in self._store, force=True)

    def preload(
        self, key_ids: Iterable[str], timeout: float | None = None
    ) -> dict[str, KeyVersions | KeyResolutionError]:
        """Load many keys now, in one batch call when the backend has one.

        Keys already fresh are not fetched again. Remembered failures are
        forgotten first: an explicit preload always asks the backend.

        Args:
            key_ids: The ids to load.
            timeout: Seconds to wait for all of them.

        Returns:
            For each id, its versions or the error that loading it raised.

        Raises:
            ResolverConfigError: ``maxsize`` was set explicitly and is smaller
                than the number of ids; nothing was loaded. (Left at its
                default, the cache grows to fit instead.)
        """
        ids = list(dict.fromkeys(key_ids))
        out: dict[str, KeyVersions | KeyResolutionError] = {}
        todo: list[str] = []
        with self._lock:
            self._reserve(ids)
            for key_id in ids:
                self._pinned[key_id] = self._pinned.get(key_id, 0) + 1
            now = self._timer()
            for key_id in ids:
                entry = self._store.get(key_id)
                if entry is not None and now < entry.refresh_at:
                    out[key_id] = entry.versions
                else:
                    self._failures.pop(key_id, None)
                    todo.append(key_id)
        try:
            futures = self._start_batch(todo) if self._batch_loader and len(todo) > 1 else {
                key_id: self._start_load(key_id) for key_id in todo
            }
            for key_id, future in futures.items():
                try:
                    out[key_id] = future.result(timeout)
                except KeyResolutionError as exc:
                    out[key_id] = exc
        finally:
            with self._lock:
                for key_id in ids:
                    left = self._pinned.pop(key_id, 1) - 1
                    if left:
                        self._pinned[key_id] = left
        return {key_id: out[key_id] for key_id in ids}

    def _reserve(self, ids: Sequence[str]) -> None:
        """Make room for a preload of ``ids`` without evicting any of them.

        Caller holds the lock.

        Raises:
            ResolverConfigError: ``maxsize`` was set explicitly and is smaller
                than the number of ids asked for.
        """
        if not self.policy.grows:
            if len(ids) > self._maxsize:
                raise ResolverConfigError(
                    f"cannot preload {len(ids)} keys into the {self.backend} cache: "
                    f"CachePolicy.maxsize={self._maxsize} holds fewer, so they would evict "
                    f"each other. Set maxsize to at least {len(ids)}, or leave it at its "
                    f"default so the cache grows to fit"
                )
            return
        # Every id held now stays: the cache grows to hold them and the new
        # ones, plus a quarter for keys first asked for after the preload, so
        # those do not evict preloaded keys at once.
        needed = len(self._store) + sum(1 for key_id in ids if key_id not in self._store)
        if needed > self._maxsize:
            grown = needed + needed // 4
            logger.info(
                "tenuo_keys: %s cache grows from %d to %d keys to fit a preload of %d",
                self.backend, self._maxsize, grown, len(ids),
            )
            self._maxsize = grown

    @property
    def maxsize(self) -> int:
        """How many keys this cache holds before evicting (it may have grown)."""
        return self._maxsize

    def _start_batch(self, key_ids: Sequence[str]) -> dict[str, Future[KeyVersions]]:
        mine: dict[str, Future[KeyVersions]] = {}
        futures: dict[str, Future[KeyVersions]] = {}
        with self._lock:
            if self._closed:
                return {k: _failed(ResolverClosed(key_id=k, backend=self.backend))
                        for k in key_ids}
            for key_id in key_ids:
                existing = self._inflight.get(key_id)
                if existing is not None:
                    futures[key_id] = existing
                    continue
                future: Future[KeyVersions] = Future()
                self._inflight[key_id] = future
                mine[key_id] = futures[key_id] = future
            if mine:
                self._pool().submit(self._run_batch, mine)
        return futures

    def _run_batch(self, futures: dict[str, Future[KeyVersions]]) -> None:
        assert self._batch_loader is not None
        ids = list(futures)
        started = self._timer()
        try:
            results: Mapping[str, KeyVersions | KeyResolutionError] = self._batch_loader(ids)
        except BaseException as exc:
            error = _as_resolution_error(exc, None, self.backend)
            results = {key_id: error.with_context(key_id=key_id) for key_id in ids}
        latency = (self._timer() - started) / max(len(ids), 1)
        for key_id, future in futures.items():
            result = results.get(key_id)
            if isinstance(result, KeyVersions):
                self._emit("fetch", key_id, latency)
                self._finish(key_id, future, result, None)
            else:
                error = result if result is not None else KeyResolutionError(
                    "batch load returned nothing for this key", key_id=key_id,
                    backend=self.backend,
                )
                self._emit("error", key_id, latency, error)
                self._finish(key_id, future, None, error)

    # -- invalidation and lifecycle -------------------------------------

    def invalidate(self, key_id: str) -> None:
        """Forget ``key_id``; a load already running for it is not stored.

        Takes the lock only; never waits for I/O.
        """
        with self._lock:
            self._drop(key_id)
            self._failures.pop(key_id, None)
            self._last_error.pop(key_id, None)
            self._inflight.pop(key_id, None)
            self._cancel_retries(key_id)

    def clear(self) -> None:
        """Forget every key; loads already running are not stored. Never waits."""
        with self._lock:
            self._forget_all()
            self._cancel_retries()

    def key_ids(self) -> list[str]:
        """The ids held in memory now."""
        with self._lock:
            return list(self._store.keys())

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._store

    def __len__(self) -> int:
        return len(self._store)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def close(self, wait: bool = True) -> None:
        """Stop the worker threads and drop every key from memory.

        Loads not yet started are cancelled and their waiters get
        ``ResolverClosed``. Calling it twice is harmless.

        Args:
            wait: Wait for backend calls already running to return.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._cancel_retries()
            pending = list(self._inflight.values())
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)
        for future in pending:
            if not future.done():
                future.set_exception(ResolverClosed(backend=self.backend))
        with self._lock:
            self._forget_all()

    def _forget_all(self) -> None:
        """Drop every key, failure record and in-flight load (the lock held)."""
        self._store.clear()
        self._order.clear()
        self._failures.clear()
        self._last_error.clear()
        self._inflight.clear()

    def __repr__(self) -> str:
        return (
            f"KeyCache(backend={self.backend!r}, held={len(self._store)}, "
            f"maxsize={self._maxsize}, ttl={self.policy.ttl!r}, closed={self._closed})"
        )


_V = TypeVar("_V")


def sized_like(side: cachetools.LRUCache[str, _V], cache: KeyCache
               ) -> cachetools.LRUCache[str, _V]:
    """``side`` itself, or a copy grown to the key cache's size when the cache grew.

    Backends keep side maps per key id (versions already parsed) bounded like
    the key cache; a preload can grow the cache, so they grow with it rather
    than evict what the cache still holds. Call under the backend's lock.
    """
    if side.maxsize >= cache.maxsize:
        return side
    grown: cachetools.LRUCache[str, _V] = cachetools.LRUCache(cache.maxsize)
    grown.update(side)
    return grown


def _done(versions: KeyVersions) -> Future[KeyVersions]:
    future: Future[KeyVersions] = Future()
    future.set_result(versions)
    return future


def _failed(error: BaseException) -> Future[KeyVersions]:
    future: Future[KeyVersions] = Future()
    future.set_exception(error)
    return future


def _as_resolution_error(
    exc: BaseException, key_id: str | None, backend: str
) -> KeyResolutionError:
    if isinstance(exc, KeyResolutionError):
        return exc.with_context(key_id=key_id, backend=backend)
    # A loader bug or an unmapped library error. Its message is not repeated:
    # a third-party exception may quote the stored value.
    logger.debug("tenuo_keys: loader for %s raised %s", backend, type(exc).__name__)
    return KeyResolutionError(
        f"unexpected {type(exc).__name__} while loading the key", key_id=key_id,
        backend=backend, retryable=False,
    )
