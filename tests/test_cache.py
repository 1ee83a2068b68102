"""The shared cache: TTL, refresh-ahead, stale-if-error, negative cache, single-flight, LRU."""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cachetools
import pytest
import tenuo_core

from tenuo_keys import (
    BackendUnavailable,
    CachePolicy,
    CacheStats,
    KeyAccessDenied,
    KeyCache,
    KeyFormatError,
    KeyNotFound,
    KeyNotLoaded,
    KeyResolutionError,
    KeyVersion,
    KeyVersions,
    ResolverClosed,
    ResolverConfigError,
)
from tenuo_keys._cache import DEFAULT_MAXSIZE, _DefaultSize
from tenuo_keys.testing import io_guard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Backend:
    """A loader whose answers and speed the test controls; counts calls."""

    def __init__(self) -> None:
        self.keys: dict[str, object] = {}
        self.error: KeyResolutionError | None = None
        self.calls = 0
        self.gate: threading.Event | None = None
        self.lock = threading.Lock()

    def set(self, key_id: str) -> object:
        key = tenuo_core.SigningKey.generate()
        self.keys[key_id] = key
        return key

    def __call__(self, key_id: str) -> KeyVersions:
        with self.lock:
            self.calls += 1
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.error is not None:
            raise self.error
        if key_id not in self.keys:
            raise KeyNotFound(key_id=key_id)
        return KeyVersions(key_id, [KeyVersion.of(self.keys[key_id])])


def pub(key: object) -> bytes:
    return bytes(key.public_key_bytes())  # type: ignore[attr-defined]


def make(backend: Backend, clock: Clock, stats: CacheStats | None = None, **policy) -> KeyCache:
    defaults = dict(ttl=100.0, jitter=0.0, refresh_ahead=0.2, max_staleness=50.0,
                    negative_ttl=5.0, error_backoff=1.0, max_backoff=8.0)
    defaults.update(policy)
    return KeyCache(backend, backend="test", policy=CachePolicy(**defaults), timer=clock,
                    observers=[stats] if stats else [], rng=random.Random(7))


def start_blocked_load(
    backend: Backend, clock: Clock, **policy
) -> tuple[KeyCache, concurrent.futures.Future]:
    """A cache and the future of its load of "a", which waits on ``backend.gate``."""
    backend.set("a")
    backend.gate = threading.Event()
    cache = make(backend, clock, **policy)
    return cache, cache.get_future("a")


def wait_done(cache: KeyCache, key_id: str) -> None:
    deadline = time.monotonic() + 5
    while key_id in cache._inflight:
        assert time.monotonic() < deadline
        time.sleep(0.001)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend() -> Backend:
    return Backend()


def test_fresh_hit_serves_from_memory_without_backend_calls(backend, clock):
    key = backend.set("a")
    stats = CacheStats()
    cache = make(backend, clock, stats)
    assert pub(cache.get_blocking("a").current) == pub(key)
    for _ in range(50):
        assert pub(cache.get_sync("a").current) == pub(key)
    assert backend.calls == 1
    assert stats.snapshot()["hit"] >= 50
    cache.close()


def test_refresh_ahead_serves_current_and_refreshes_once_in_background(backend, clock):
    old = backend.set("a")
    cache = make(backend, clock)
    cache.get_blocking("a")
    new = backend.set("a")
    backend.gate = threading.Event()
    clock.advance(85)  # past 80% of the TTL, before expiry
    for _ in range(20):
        assert pub(cache.get_sync("a").current) == pub(old)  # readers keep the old value
    deadline = time.monotonic() + 5
    while backend.calls < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.02)
    assert backend.calls == 2  # exactly one refresh started for 20 readers
    backend.gate.set()
    wait_done(cache, "a")
    assert pub(cache.get_sync("a").current) == pub(new)
    cache.close()


def test_ttl_jitter_only_shortens(backend, clock):
    backend.set("a")
    cache = KeyCache(backend, backend="test", timer=clock, rng=random.Random(1),
                     policy=CachePolicy(ttl=100.0, jitter=0.5, refresh_ahead=0.0))
    expiries = set()
    for i in range(20):
        backend.set(f"k{i}")
        cache.get_blocking(f"k{i}")
        expiries.add(round(cache._store[f"k{i}"].expires_at - clock.now, 6))
    assert all(50.0 <= e <= 100.0 for e in expiries)
    assert len(expiries) > 10  # spread out, not one synchronized refresh
    cache.close()


def test_expired_entry_async_path_waits_for_refresh(backend, clock):
    backend.set("a")
    cache = make(backend, clock)
    cache.get_blocking("a")
    new = backend.set("a")
    clock.advance(101)
    assert pub(cache.get_blocking("a").current) == pub(new)
    assert backend.calls == 2
    cache.close()


def test_stale_if_error_serves_last_good_then_fails_closed(backend, clock):
    key = backend.set("a")
    cache = make(backend, clock)
    cache.get_blocking("a")
    backend.error = BackendUnavailable("connection refused")
    clock.advance(101)  # expired; backend down
    # The async path tries the backend, fails, serves the last good key.
    assert pub(cache.get_blocking("a").current) == pub(key)
    # The memory-only path serves it too, within max_staleness.
    clock.advance(20)
    assert pub(cache.get_sync("a").current) == pub(key)
    wait_done(cache, "a")
    calls = backend.calls
    # Backoff: while retry_at is in the future no new backend call is made.
    for _ in range(10):
        cache.get_sync("a")
        cache.get_blocking("a")
    assert backend.calls == calls
    clock.advance(31)  # past expiry + max_staleness (100 + 50)
    # The memory-only path says "outage" at once, not "not loaded".
    with pytest.raises(BackendUnavailable, match="max_staleness"):
        cache.get_sync("a")
    wait_done(cache, "a")
    clock.advance(6)  # let the negative TTL of that attempt lapse
    with pytest.raises(BackendUnavailable) as info:
        cache.get_blocking("a")
    assert info.value.retryable
    # The sync path fails closed with the same retryable error, never the stale key.
    with pytest.raises(BackendUnavailable):
        cache.get_sync("a")
    clock.advance(6)  # negative TTL over: a new load starts, the outage still reads the same
    with pytest.raises(BackendUnavailable):
        cache.get_sync("a")
    # Recovery without restarting anything.
    backend.error = None
    wait_done(cache, "a")
    clock.advance(6)
    assert pub(cache.get_blocking("a").current) == pub(key)
    assert pub(cache.get_sync("a").current) == pub(key)
    cache.close()


@pytest.mark.parametrize("error", [KeyNotFound(), KeyAccessDenied(), KeyFormatError("bad")])
def test_definitive_errors_on_refresh_fail_closed_at_once(backend, clock, error):
    backend.set("a")
    cache = make(backend, clock)
    cache.get_blocking("a")
    backend.error = error
    clock.advance(101)
    with pytest.raises(type(error)):
        cache.get_blocking("a")
    with pytest.raises(type(error)):
        cache.get_sync("a")  # the revoked key is not served from memory
    cache.close()


def test_negative_cache_for_not_found(backend, clock):
    cache = make(backend, clock)
    for _ in range(10):
        with pytest.raises(KeyNotFound):
            cache.get_blocking("missing")
    assert backend.calls == 1
    clock.advance(5.1)
    backend.set("missing")
    assert cache.get_blocking("missing")
    assert backend.calls == 2
    cache.close()


def test_resolve_sync_miss_raises_not_loaded_and_loads_in_background(backend, clock):
    key = backend.set("a")
    cache = make(backend, clock)
    with io_guard() as seen, pytest.raises(KeyNotLoaded) as info:
        cache.get_sync("a")
    assert seen.events == []
    assert info.value.retryable and info.value.key_id == "a"
    wait_done(cache, "a")
    assert pub(cache.get_sync("a").current) == pub(key)
    cache.close()


def test_single_flight_threads_and_event_loops(backend, clock):
    backend.set("a")
    backend.gate = threading.Event()
    cache = make(backend, clock)

    async def many() -> list[KeyVersions]:
        return await asyncio.gather(*(cache.get("a") for _ in range(100)))

    with ThreadPoolExecutor(4) as pool:
        loops = [pool.submit(asyncio.run, many()) for _ in range(2)]
        blocking = [pool.submit(cache.get_blocking, "a") for _ in range(2)]
        time.sleep(0.05)
        backend.gate.set()
        results = [v for f in loops for v in f.result(10)] + [f.result(10) for f in blocking]
    assert len(results) == 202
    assert backend.calls == 1
    cache.close()


def test_lru_bound_evicts_least_recently_used(backend, clock):
    for k in "abc":
        backend.set(k)
    cache = make(backend, clock, maxsize=2)
    cache.get_blocking("a")
    cache.get_blocking("b")
    cache.get_sync("a")  # a is now more recent than b
    cache.get_blocking("c")
    assert "a" in cache and "c" in cache and "b" not in cache
    assert len(cache) == 2
    cache.close()


def test_invalidate_and_clear_never_wait_for_a_running_load(backend, clock):
    cache, future = start_blocked_load(backend, clock)
    started = time.monotonic()
    cache.invalidate("a")
    cache.clear()
    assert time.monotonic() - started < 1.0  # took the lock only; the load is still blocked
    assert not future.done()
    backend.gate.set()
    future.result(5)
    # The load that was running when we invalidated is not stored.
    assert "a" not in cache
    cache.close()


def test_observer_events_and_latency(backend, clock):
    backend.set("a")
    stats = CacheStats()
    seen: list[str] = []
    cache = make(backend, clock, stats)
    cache.add_observer(lambda e: seen.append(e.kind))
    cache.add_observer(lambda e: 1 / 0)  # a broken observer never breaks resolution
    with pytest.raises(KeyNotLoaded):
        cache.get_sync("a")
    wait_done(cache, "a")
    cache.get_sync("a")
    with pytest.raises(KeyNotFound):
        cache.get_blocking("nope")
    snap = stats.snapshot()
    assert snap["miss"] == 2 and snap["fetch"] == 1 and snap["error"] == 1 and snap["hit"] == 1
    assert stats.backend_calls == 2
    assert seen == ["miss", "fetch", "hit", "miss", "error"]
    cache.close()


def test_close_fails_waiters_and_later_calls(backend, clock):
    backend.set("a")
    cache = make(backend, clock, max_workers=1)
    backend.gate = threading.Event()
    first = cache.get_future("a")
    backend.set("b")
    queued = cache.get_future("b")  # waits behind "a" on the single worker
    threading.Timer(0.05, backend.gate.set).start()
    cache.close()
    first.result(5)
    with pytest.raises(ResolverClosed):
        queued.result(5)
    with pytest.raises(ResolverClosed):
        cache.get_sync("a")
    with pytest.raises(ResolverClosed):
        cache.get_blocking("a")
    cache.close()


def test_unexpected_loader_exception_is_wrapped_without_its_message(clock):
    def loader(key_id: str) -> KeyVersions:
        raise RuntimeError("secret-looking text that must not surface")

    cache = KeyCache(loader, backend="test", timer=clock)
    with pytest.raises(KeyResolutionError) as info:
        cache.get_blocking("a")
    assert "RuntimeError" in str(info.value)
    assert "secret-looking" not in str(info.value)
    cache.close()


def test_batch_preload_uses_one_backend_call(clock):
    calls: list[list[str]] = []
    keys = {f"k{i}": tenuo_core.SigningKey.generate() for i in range(5)}

    def one(key_id: str) -> KeyVersions:
        raise AssertionError("the batch path should be used")

    def many(ids):
        calls.append(list(ids))
        return {
            i: KeyVersions(i, [KeyVersion.of(keys[i])]) if i in keys else KeyNotFound(key_id=i)
            for i in ids
        }

    cache = KeyCache(one, backend="test", timer=clock, batch_loader=many)
    results = cache.preload([*keys, "missing"])
    assert len(calls) == 1
    assert isinstance(results["missing"], KeyNotFound)
    assert all(pub(results[k].current) == pub(keys[k]) for k in keys)
    assert pub(cache.get_sync("k3").current) == pub(keys["k3"])
    cache.close()


@pytest.mark.parametrize(
    "kwargs",
    [dict(ttl=0), dict(ttl=-1), dict(jitter=1.0), dict(refresh_ahead=-0.1),
     dict(max_staleness=float("inf")), dict(maxsize=0), dict(max_workers=0)],
)
def test_policy_validation(kwargs):
    with pytest.raises(ResolverConfigError) as info:
        CachePolicy(**kwargs)
    assert next(iter(kwargs)) in str(info.value)


def test_ttl_none_never_expires(backend, clock):
    backend.set("a")
    cache = make(backend, clock, ttl=None)
    cache.get_blocking("a")
    clock.advance(10**9)
    cache.get_sync("a")
    assert backend.calls == 1
    cache.close()


# -- bounded per-id state (issue 14.5) -------------------------------------


def per_id_state(cache: KeyCache) -> dict[str, int]:
    """Sizes of every map the cache keeps, whatever its name: none may grow per id."""
    return {name: len(value) for name, value in vars(cache).items()
            if isinstance(value, (dict, cachetools.Cache))}


def test_invalidate_keeps_no_state_per_id_after_100k_ids(backend, clock):
    cache = make(backend, clock, maxsize=100)
    for i in range(100_000):
        cache.invalidate(f"id-{i}")
    assert max(per_id_state(cache).values()) == 0
    cache.close()


def test_load_begun_before_invalidate_is_not_stored_after_100k_other_invalidates(
    backend, clock
):
    # The race a per-id generation counter guarded: a bounded counter that
    # forgot "a" would let this stale load store the key invalidate() dropped.
    cache, future = start_blocked_load(backend, clock, maxsize=100)
    cache.invalidate("a")
    for i in range(100_000):
        cache.invalidate(f"other-{i}")
    backend.gate.set()
    future.result(5)  # its waiter still gets an answer
    assert "a" not in cache
    backend.gate = None
    cache.get_blocking("a")  # the next caller asks the backend again
    assert backend.calls == 2
    cache.close()


def test_load_begun_before_clear_is_not_stored(backend, clock):
    cache, future = start_blocked_load(backend, clock)
    cache.clear()
    backend.gate.set()
    future.result(5)
    assert "a" not in cache
    cache.close()


def test_unknown_id_repeated_costs_one_read_per_negative_ttl(backend, clock):
    cache = make(backend, clock, negative_ttl=5.0)

    async def async_calls() -> None:
        for _ in range(100):
            with pytest.raises(KeyNotFound):
                await cache.get("ghost")

    asyncio.run(async_calls())
    for _ in range(100):
        with pytest.raises(KeyNotFound):
            cache.get_sync("ghost")
    assert backend.calls == 1
    clock.advance(5.1)
    # Past the negative TTL the sync path says the same and starts one reload.
    for _ in range(100):
        with pytest.raises(KeyNotFound):
            cache.get_sync("ghost")
    wait_done(cache, "ghost")
    assert backend.calls == 2
    cache.close()


def test_flood_of_distinct_unknown_ids_reads_each_once_and_stays_bounded(backend, clock):
    stats = CacheStats()
    cache = make(backend, clock, stats, maxsize=1_000, negative_ttl=60.0)
    ids = [f"ghost-{i}" for i in range(1_000)]
    for key_id in ids:
        with pytest.raises(KeyNotFound):
            cache.get_blocking(key_id)
    for _ in range(3):  # repeats, sync and async, within the negative TTL
        for key_id in ids:
            with pytest.raises(KeyNotFound):
                cache.get_sync(key_id)
            with pytest.raises(KeyNotFound):
                cache.get_future(key_id).result(5)
    assert backend.calls == 1_000
    # 100k distinct ids: at most one read each, and the maps stay bounded.
    for start in range(0, 100_000, 500):  # in waves the pending-load bound admits
        futures = [cache.get_future(f"flood-{i}") for i in range(start, start + 500)]
        for future in futures:
            with pytest.raises(KeyNotFound):
                future.result(5)
    assert backend.calls == 101_000
    sizes = per_id_state(cache)
    assert max(sizes.values()) <= 1_000, sizes
    assert len(cache) == 0
    cache.close()


def test_sync_misses_queue_a_bounded_number_of_loads(backend, clock):
    # resolve_sync never waits, so without a bound a flood of ids queues one
    # background load each while the backend is slow.
    backend.gate = threading.Event()
    cache = make(backend, clock, maxsize=500)
    try:
        busy = 0
        for i in range(100_000):
            try:
                cache.get_sync(f"flood-{i}")
            except KeyNotLoaded as exc:
                busy += "pending" in exc.reason
        assert len(cache._inflight) == 500
        assert busy == 100_000 - 500
        with pytest.raises(BackendUnavailable, match="pending"):
            cache.get_future("one-more").result(1)
    finally:
        backend.gate.set()
        cache.close(wait=False)  # a failed bound leaves loads queued: cancel them
    assert backend.calls <= 500  # only the admitted loads ever reached the backend


# -- preloading sizes the cache for what was asked (issue 14.6) ------------


class Cheap:
    """A loader that serves any id from one shared key; counts calls."""

    def __init__(self) -> None:
        self.versions = KeyVersions("shared", [KeyVersion.of(tenuo_core.SigningKey.generate())])
        self.calls = 0
        self.lock = threading.Lock()
        self.known: set[str] | None = None

    def __call__(self, key_id: str) -> KeyVersions:
        with self.lock:
            self.calls += 1
        if self.known is not None and key_id not in self.known:
            raise KeyNotFound(key_id=key_id)
        return self.versions


def test_default_maxsize_is_sized_for_fleets_and_grows_to_fit_a_preload():
    loader = Cheap()
    cache = KeyCache(loader, backend="test")
    assert CachePolicy().maxsize == DEFAULT_MAXSIZE >= 65_536
    assert CachePolicy().grows and not CachePolicy(maxsize=DEFAULT_MAXSIZE).grows
    ids = [f"agent-{i}" for i in range(DEFAULT_MAXSIZE + 5_000)]
    results = cache.preload(ids)
    assert len(results) == len(cache) == len(ids)
    assert cache.maxsize >= len(ids)
    calls = loader.calls
    for key_id in ids:
        cache.get_sync(key_id)
    assert loader.calls == calls  # every id from memory
    cache.close()


def test_grown_cache_keeps_what_it_held_and_leaves_room_for_new_keys():
    loader = Cheap()
    cache = KeyCache(loader, backend="test", policy=CachePolicy(maxsize=_DefaultSize(100)))
    before = [f"early-{i}" for i in range(60)]
    cache.preload(before)
    later = [f"agent-{i}" for i in range(1_000)]
    cache.preload(later)
    assert all(k in cache for k in before + later)
    assert cache.maxsize == 1_060 + 1_060 // 4
    for i in range(200):  # keys first asked after the preload fit too
        cache.get_blocking(f"new-{i}")
    assert len(cache) == 1_260
    cache.close()


def test_explicit_maxsize_refuses_a_bigger_preload_before_any_read():
    loader = Cheap()
    cache = KeyCache(loader, backend="test", policy=CachePolicy(maxsize=1_000))
    with pytest.raises(ResolverConfigError) as info:
        cache.preload([f"agent-{i}" for i in range(1_001)])
    assert "maxsize=1000" in str(info.value) and "1001" in str(info.value)
    assert loader.calls == 0 and len(cache) == 0
    assert cache.maxsize == 1_000
    assert len(cache.preload([f"agent-{i}" for i in range(1_000)])) == len(cache) == 1_000
    cache.close()


def test_preload_under_an_explicit_cap_evicts_others_never_its_own_keys():
    loader = Cheap()
    cache = KeyCache(loader, backend="test", policy=CachePolicy(maxsize=3))
    cache.get_blocking("x")
    cache.get_blocking("y")
    cache.get_sync("x")
    cache.get_sync("y")  # both read since the last sweep: second chances
    cache.preload(["a", "b", "c"])
    assert sorted(cache.key_ids()) == ["a", "b", "c"]
    cache.close()


def test_preload_of_5000_with_old_default_size_thrashed_now_all_held():
    # The soak's symptom: 5,000 preloaded, 1,024 held, then a resolve_sync
    # pass where each miss evicted another held key.
    loader = Cheap()
    cache = KeyCache(loader, backend="test")
    ids = [f"agent-{i}" for i in range(5_000)]
    cache.preload(ids)
    calls = loader.calls
    missed = 0
    for key_id in ids:
        try:
            cache.get_sync(key_id)
        except KeyNotLoaded:
            missed += 1
    assert missed == 0 and loader.calls == calls == 5_000
    cache.close()


def test_backend_side_maps_grow_with_the_key_cache():
    import cachetools

    from tenuo_keys._cache import KeyCache, sized_like

    cache = KeyCache(lambda key_id: [], backend="test")
    side: cachetools.LRUCache[str, int] = cachetools.LRUCache(4)
    side.update({"a": 1, "b": 2})
    grown = sized_like(side, cache)
    assert grown.maxsize == cache.maxsize and dict(grown) == {"a": 1, "b": 2}
    assert sized_like(grown, cache) is grown  # already the cache's size: kept as it is
    cache.close()
