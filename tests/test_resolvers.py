"""Behaviour specific to the Env, Static and Composite resolvers (the rest is conformance)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import threading
import time

import cachetools
import pytest
import tenuo_core

from tenuo_keys import (
    BackendKeyResolver,
    CachePolicy,
    CacheStats,
    CompositeKeyResolver,
    EnvKeyResolver,
    KeyResolver,
    KeyVersion,
    KeyVersions,
    PreloadReport,
    StaticKeyResolver,
    StoredKey,
    decode_signing_key,
    encode_signing_key,
    errors,
    resolver_from_url,
)
from tenuo_keys._cache import DEFAULT_MAXSIZE
from tenuo_keys._resolver import as_key_resolver
from tenuo_keys.testing import assert_no_secret, io_guard, wait_for_sync


def pub(key):
    return bytes(key.public_key_bytes())


class Failing(KeyResolver):
    """A resolver that always raises the given error."""

    backend = "failing"

    def __init__(self, error):
        self.error = error

    async def resolve_versions(self, key_id):
        raise self.error

    def resolve_versions_sync(self, key_id):
        raise self.error


@pytest.mark.parametrize(
    "value", ["production", "prod", "Production ", "live"]
)
def test_env_warns_when_production_is_signalled(caplog, value):
    caplog.set_level(logging.WARNING)
    EnvKeyResolver(environ={"APP_ENV": value}).close()
    assert "EnvKeyResolver is for development" in caplog.text
    assert "APP_ENV=" in caplog.text


def test_env_quiet_in_development(caplog):
    caplog.set_level(logging.WARNING)
    EnvKeyResolver(environ={"TENUO_ENV": "development"}).close()
    assert caplog.text == ""


def test_env_preload_all_snapshots_so_sandbox_never_reads_environ(monkeypatch):
    keys = {f"agent{i}": tenuo_core.SigningKey.generate() for i in range(3)}
    for key_id, key in keys.items():
        monkeypatch.setenv(f"SNAP_{key_id}", encode_signing_key(key))
    previous = encode_signing_key(tenuo_core.SigningKey.generate())
    monkeypatch.setenv("SNAP_agent0__PREVIOUS", previous)
    monkeypatch.setenv("SNAP_broken", "not a key")
    with EnvKeyResolver("SNAP_") as resolver:
        assert resolver.list_key_ids() == ["agent0", "agent1", "agent2", "broken"]
        assert resolver.preload_all() == 3  # the broken one is skipped, not fatal
        with pytest.raises(errors.KeyFormatError):
            resolver.preload_all(strict=True)
        for key_id in keys:
            monkeypatch.delenv(f"SNAP_{key_id}")  # the snapshot does not need them any more
        with io_guard() as seen:
            for key_id, key in keys.items():
                assert pub(resolver.resolve_sync(key_id)) == pub(key)
        assert seen.events == []
        assert len(resolver.resolve_versions_sync("agent0")) == 2


def test_static_accepts_keys_material_and_versions():
    a, b, c = (tenuo_core.SigningKey.generate() for _ in range(3))
    with StaticKeyResolver({"a": a, "b": encode_signing_key(b, "hex"), "c": [c, a]}) as r:
        r.preload_all()
        assert pub(r.resolve_sync("a")) == pub(a)
        assert pub(r.resolve_sync("b")) == pub(b)
        assert pub(r.resolve_for_holder_sync("c", a.public_key)) == pub(a)
        assert pub(r.resolve_sync("c")) == pub(c)
    with pytest.raises(errors.KeyFormatError):
        StaticKeyResolver({"bad": "nope"})


async def test_composite_falls_through_on_not_found_only():
    key = tenuo_core.SigningKey.generate()
    first = StaticKeyResolver({})
    second = StaticKeyResolver({"k": key})
    composite = CompositeKeyResolver([first, second])
    assert pub(await composite.resolve("k")) == pub(key)
    assert composite.answered_by("k") is second
    with pytest.raises(errors.KeyNotFound) as info:
        await composite.resolve("absent")
    assert "not found in any of: static, static" in str(info.value)
    composite.close()


@pytest.mark.parametrize(
    "error",
    [errors.KeyAccessDenied(backend="failing"), errors.BackendUnavailable(backend="failing"),
     errors.KeyFormatError("bad", backend="failing")],
)
async def test_composite_surfaces_denied_unavailable_and_bad_data(error):
    key = tenuo_core.SigningKey.generate()
    composite = CompositeKeyResolver([Failing(error), StaticKeyResolver({"k": key})])
    with pytest.raises(type(error)) as info:
        await composite.resolve("k")
    assert info.value.backend == "failing"  # says which resolver answered
    with pytest.raises(type(error)):
        composite.resolve_sync("k")
    composite.close()


def test_composite_sync_routing_is_sticky_after_preload():
    key = tenuo_core.SigningKey.generate()
    first = StaticKeyResolver({})
    second = StaticKeyResolver({"k": key})
    composite = CompositeKeyResolver([first, second])
    composite.preload(["k"])
    first.cache.clear()  # the first resolver's negative answer is gone
    with io_guard() as seen:
        assert pub(composite.resolve_sync("k")) == pub(key)
    assert seen.events == []
    composite.close()


def test_composite_sync_not_loaded_surfaces():
    env = EnvKeyResolver(environ={})
    key = tenuo_core.SigningKey.generate()
    composite = CompositeKeyResolver([env, StaticKeyResolver({"k": key})])
    with pytest.raises(errors.KeyNotLoaded):
        composite.resolve_sync("k")
    # Once env has answered "not found", the static resolver serves it.
    assert pub(wait_for_sync(composite, "k")) == pub(key)
    composite.close()


def test_composite_needs_resolvers():
    with pytest.raises(errors.ResolverConfigError):
        CompositeKeyResolver([])


async def test_rotation_picks_holder_version_and_refreshes_on_mismatch():
    old, new = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    resolver = StaticKeyResolver({"k": old})
    resolver.preload(["k"])
    # The backend rotates behind the cache's back (no invalidation).
    resolver._keys["k"] = [StoredKey(new, "2"), StoredKey(old, "1")]
    # The memory-only path cannot fetch: it says so, retryably, and starts a refresh.
    with pytest.raises(errors.HolderMismatch) as info:
        resolver.resolve_for_holder_sync("k", new.public_key)
    assert info.value.retryable is True
    found = wait_for_sync(resolver, "k", call=lambda: _retry_mismatch(resolver, new))
    assert pub(found) == pub(new)
    assert pub(resolver.resolve_for_holder_sync("k", old.public_key)) == pub(old)
    resolver.close()


def _retry_mismatch(resolver, key):
    try:
        return resolver.resolve_for_holder_sync("k", key.public_key)
    except errors.HolderMismatch as exc:
        raise errors.KeyNotLoaded() from exc


def test_key_versions_repr_and_mismatch_are_public_only():
    key = tenuo_core.SigningKey.generate()
    versions = KeyVersions("k", [KeyVersion.of(key, "7")], backend="x")
    assert "7" in repr(versions)
    err = versions.mismatch(tenuo_core.SigningKey.generate().public_key)
    assert "held version(s) (7=" in str(err)


async def test_async_context_manager_closes():
    key = tenuo_core.SigningKey.generate()
    async with StaticKeyResolver({"k": key}) as r:
        assert pub(await r.resolve("k")) == pub(key)
    assert r.cache.closed
    await asyncio.sleep(0)


# -- attacker-chosen key ids (issue 14.5) -----------------------------------


class Counting(BackendKeyResolver):
    """A backend that counts reads; holds ``keys``, answers not found otherwise."""

    backend = "counting"

    def __init__(self, keys=None, **kwargs):
        super().__init__(**kwargs)
        self.keys = dict(keys or {})
        self.reads = 0
        self.lock = threading.Lock()

    def fetch(self, key_id):
        with self.lock:
            self.reads += 1
        if key_id not in self.keys:
            raise errors.KeyNotFound(key_id=key_id, backend=self.backend)
        return self.keys[key_id]

    def list_key_ids(self):
        return sorted(self.keys)


def settle(resolver):
    """Wait until no background load is under way."""
    deadline = time.monotonic() + 10
    while resolver.cache._inflight:
        assert time.monotonic() < deadline
        time.sleep(0.005)


HOLDER = tenuo_core.SigningKey.generate().public_key

METHODS = {
    "resolve": lambda r, k: r.resolve(k),
    "resolve_for_holder": lambda r, k: r.resolve_for_holder(k, HOLDER),
    "resolve_sync": lambda r, k: r.resolve_sync(k),
    "resolve_for_holder_sync": lambda r, k: r.resolve_for_holder_sync(k, HOLDER),
}


def ask(resolver, method, key_id):
    """One call of ``method``; returns the error it raised."""
    try:
        result = METHODS[method](resolver, key_id)
        if asyncio.iscoroutine(result):
            asyncio.get_event_loop().run_until_complete(result)
    except errors.KeyResolutionError as exc:
        return exc
    raise AssertionError("an unknown id resolved")


@pytest.mark.parametrize("method", list(METHODS))
def test_unknown_ids_cost_one_backend_read_each_per_negative_ttl(method):
    resolver = Counting(cache=CachePolicy(negative_ttl=60.0, maxsize=5_000))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        ghosts = [f"ghost-{i}" for i in range(2_000)]
        for key_id in ghosts:  # a flood of distinct unknown ids
            ask(resolver, method, key_id)
        settle(resolver)
        assert resolver.reads == 2_000
        for _ in range(3):  # and each again, repeatedly
            for key_id in ghosts:
                assert isinstance(ask(resolver, method, key_id), errors.KeyNotFound)
        for _ in range(1_000):  # the same unknown id over and over
            ask(resolver, method, "one-ghost")
        settle(resolver)
        assert resolver.reads == 2_001
        sizes = per_id_state(resolver.cache)
        assert max(sizes.values()) <= 5_000, sizes
    finally:
        resolver.close()
        loop.close()
        asyncio.set_event_loop(None)


def test_resolve_sync_flood_of_100k_distinct_ids_stays_bounded():
    resolver = Counting()
    refused = 0
    for i in range(100_000):
        try:
            resolver.resolve_sync(f"flood-{i}")
        except errors.KeyNotLoaded as exc:
            refused += "pending" in exc.reason
        except errors.KeyNotFound:
            pass
    settle(resolver)
    # One read at most per id: refused misses started none.
    assert resolver.reads + refused <= 100_000
    sizes = per_id_state(resolver.cache)
    assert max(sizes.values()) <= 8_192, sizes
    resolver.close()


@pytest.mark.parametrize("key_id", ["x" * 10_000, "bad\nid", ""])
def test_sync_path_validates_key_ids_before_any_backend_read(key_id):
    resolver = Counting()
    for call in (resolver.resolve_sync,
                 lambda k: resolver.resolve_for_holder_sync(k, HOLDER)):
        with pytest.raises(errors.KeyResolutionError, match="invalid key id") as info:
            call(key_id)
        assert not isinstance(info.value, errors.KeyNotLoaded)
    settle(resolver)
    assert resolver.reads == 0
    assert max(per_id_state(resolver.cache).values()) == 0
    resolver.close()


def per_id_state(cache):
    return {name: len(value) for name, value in vars(cache).items()
            if isinstance(value, (dict, cachetools.Cache))}


# -- preloading holds what it loads (issue 14.6) ----------------------------


def fleet_environ(count, prefix="TENUO_KEY_", start=0):
    """``count`` distinct keys as environment variables, and their public keys."""
    environ, public = {}, {}
    for i in range(start, start + count):
        key = tenuo_core.SigningKey.generate()
        environ[f"{prefix}agent-{i:05d}"] = encode_signing_key(key)
        public[f"agent-{i:05d}"] = pub(key)
    return environ, public


def test_env_preload_all_of_10k_keys_serves_every_id_from_memory():
    environ, public = fleet_environ(10_000)
    stats = CacheStats()
    with EnvKeyResolver(environ=environ, observers=[stats]) as resolver:
        assert resolver.preload_all() == 10_000 == len(resolver.cache)
        reads = stats.backend_calls
        with io_guard() as seen:
            for key_id, public_key in public.items():
                assert pub(resolver.resolve_sync(key_id)) == public_key
                resolver.resolve_for_holder_sync(key_id, public_key)
        assert stats.backend_calls == reads == 10_000
        assert seen.events == []


def test_env_preload_all_beyond_an_explicit_maxsize_is_refused_before_any_read():
    environ, _ = fleet_environ(1_500)
    stats = CacheStats()
    resolver = EnvKeyResolver(environ=environ, observers=[stats],
                              cache=CachePolicy(maxsize=1_024))
    with pytest.raises(errors.ResolverConfigError) as info:
        resolver.preload_all()
    assert "maxsize=1024" in str(info.value) and "1500" in str(info.value)
    assert stats.backend_calls == 0 and len(resolver.cache) == 0
    resolver.close()


def test_preload_counts_only_what_is_still_held():
    gate = threading.Event()

    class Slow(Counting):
        def fetch(self, key_id):
            assert gate.wait(5)
            return super().fetch(key_id)

    keys = {f"k{i}": tenuo_core.SigningKey.generate() for i in range(3)}
    resolver = Slow(keys)
    done = []
    worker = threading.Thread(target=lambda: done.append(resolver.preload_all()))
    worker.start()
    deadline = time.monotonic() + 5
    while len(resolver.cache._inflight) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    resolver.invalidate("k1")  # its load is under way: it will not be stored
    gate.set()
    worker.join(5)
    assert done == [2]
    assert sorted(resolver.cache.key_ids()) == ["k0", "k2"]
    resolver.close()


# -- the composite: bounded routes, one preload per resolver ----------------


class Anything(KeyResolver):
    """Serves every id starting with ``prefix`` from one key; counts calls."""

    backend = "anything"

    def __init__(self, prefix):
        self.prefix = prefix
        self.versions = KeyVersions("shared", [KeyVersion.of(tenuo_core.SigningKey.generate())])
        self.calls = 0

    async def resolve_versions(self, key_id):
        return self.resolve_versions_sync(key_id)

    def resolve_versions_sync(self, key_id):
        self.calls += 1
        if not key_id.startswith(self.prefix):
            raise errors.KeyNotFound(key_id=key_id, backend=self.backend)
        return self.versions


def test_composite_routes_stay_bounded_after_100k_distinct_ids():
    first, second = Anything("a-"), Anything("b-")
    composite = CompositeKeyResolver([first, second])
    for i in range(100_000):
        composite.resolve_sync(f"b-{i}")
    assert len(composite._answered) <= DEFAULT_MAXSIZE
    composite.close()


def test_composite_forgotten_route_is_found_again_in_order():
    first, second = Anything("a-"), Anything("b-")
    composite = CompositeKeyResolver([first, second], max_routes=100)
    for i in range(1_000):
        composite.resolve_sync(f"b-{i}")
    assert len(composite._answered) == 100
    first.calls = 0
    composite.resolve_sync("b-999")  # remembered: straight to the second
    assert first.calls == 0 and composite.answered_by("b-999") is second
    assert composite.answered_by("b-0") is None  # forgotten ...
    assert composite.resolve_sync("b-0") is second.versions.current  # ... found again
    assert first.calls == 1 and composite.answered_by("b-0") is second
    with pytest.raises(errors.ResolverConfigError):
        CompositeKeyResolver([first], max_routes=0)


def test_composite_unknown_ids_cost_each_resolver_one_read_per_id():
    first, second = Counting(), Counting()
    composite = CompositeKeyResolver([first, second])
    ghosts = [f"ghost-{i}" for i in range(2_000)]
    for _ in range(4):
        for key_id in ghosts:
            with contextlib.suppress(errors.KeyNotLoaded, errors.KeyNotFound):
                composite.resolve_sync(key_id)
        settle(first)
        settle(second)
    assert first.reads == second.reads == 2_000
    assert len(composite._answered) == 0
    composite.close()


def test_composite_preload_asks_each_resolver_once_for_all_its_ids():
    a_keys = {f"a{i}": tenuo_core.SigningKey.generate() for i in range(50)}
    b_keys = {f"b{i}": tenuo_core.SigningKey.generate() for i in range(50)}
    first, second = Counting(a_keys), Counting(b_keys)
    asked = []
    for resolver in (first, second):
        preload = resolver.cache.preload
        resolver.cache.preload = lambda ids, *a, _p=preload, **k: asked.append(len(ids)) or _p(ids)
    composite = CompositeKeyResolver([first, second])
    assert composite.preload_all() == 100
    assert asked == [100, 50]
    assert composite.answered_by("a7") is first and composite.answered_by("b7") is second
    composite.close()


def test_composite_preload_all_of_10k_keys_serves_every_id_from_memory():
    env_a, public_a = fleet_environ(6_000, "A_")
    env_b, public_b = fleet_environ(4_000, "B_", start=6_000)
    stats = CacheStats()
    first = EnvKeyResolver("A_", environ=env_a, observers=[stats])
    second = EnvKeyResolver("B_", environ=env_b, observers=[stats])
    composite = CompositeKeyResolver([first, second])
    assert composite.preload_all() == 10_000
    reads = stats.backend_calls
    for key_id, public_key in {**public_a, **public_b}.items():
        assert pub(composite.resolve_sync(key_id)) == public_key
    assert stats.backend_calls == reads
    composite.close()


# --------------------------------------------------------------------------- the plugin's needs


def test_caches_lists_what_each_resolver_reads_through():
    static = StaticKeyResolver({"a": tenuo_core.SigningKey.generate()})
    env = EnvKeyResolver(environ={})
    assert static.caches() == [static.cache]
    assert CompositeKeyResolver([static, env]).caches() == [static.cache, env.cache]
    assert Anything("x").caches() == []


class Bare:
    """A resolver written for tenuo.temporal 0.3.3: resolve and resolve_sync only."""

    def __init__(self, keys):
        self.keys = keys
        self.calls = []

    async def resolve(self, key_id):
        self.calls.append(("resolve", key_id))
        return self.keys[key_id]

    def resolve_sync(self, key_id):
        self.calls.append(("resolve_sync", key_id))
        return self.keys[key_id]


def test_as_key_resolver_keeps_a_key_resolver_and_adapts_a_foreign_one():
    from tenuo_keys._resolver import ForeignKeyResolver, as_key_resolver

    static = StaticKeyResolver({})
    assert as_key_resolver(static) is static
    bare = Bare({})
    adapted = as_key_resolver(bare)
    assert isinstance(adapted, ForeignKeyResolver) and isinstance(adapted, KeyResolver)
    assert adapted.inner is bare
    with pytest.raises(errors.ResolverConfigError, match="lacks resolve/resolve_sync"):
        as_key_resolver(object())


def test_a_foreign_resolver_serves_the_contract_through_resolve_sync():
    from tenuo_keys._resolver import as_key_resolver

    key, other = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    bare = Bare({"a": key})
    adapted = as_key_resolver(bare)
    assert pub(adapted.resolve_sync("a")) == pub(key)
    assert pub(adapted.resolve_for_holder_sync("a", key.public_key)) == pub(key)
    assert pub(adapted.resolve_for_holder_sync("a", pub(key))) == pub(key)
    assert pub(asyncio.run(adapted.resolve_for_holder("a", key.public_key))) == pub(key)
    assert pub(adapted.resolve_versions_sync("a").current) == pub(key)
    with pytest.raises(errors.HolderMismatch) as caught:
        adapted.resolve_for_holder_sync("a", other.public_key)
    assert str(caught.value) == "key 'a' is not the warrant's holder"
    assert not caught.value.retryable
    assert bare.calls == [("resolve_sync", "a")] * 3 + [("resolve", "a")] \
        + [("resolve_sync", "a")] * 2
    # No optional hooks: preloading reads through resolve_sync; the rest does nothing.
    assert adapted.preload(["a"]) == 1
    assert adapted.preload_all() == 0
    adapted.close()
    assert adapted.caches() == []


def test_a_foreign_resolver_s_own_hooks_are_used():
    from tenuo_keys._resolver import as_key_resolver

    calls = []

    class WithHooks(Bare):
        def preload(self, key_ids):
            calls.append(("preload", list(key_ids)))
            return 7

        def preload_all(self):
            calls.append(("preload_all",))
            return 3

        def close(self):
            calls.append(("close",))

    adapted = as_key_resolver(WithHooks({}))
    assert adapted.preload(["x"]) == 7
    assert adapted.preload_all() == 3
    adapted.close()
    assert calls == [("preload", ["x"]), ("preload_all",), ("close",)]


@pytest.mark.parametrize("make", [
    lambda: resolver_from_url("env://?prefix="),
    lambda: EnvKeyResolver(""),
    lambda: EnvKeyResolver(prefix=""),
])
def test_env_refuses_an_empty_prefix(make):
    with pytest.raises(errors.ResolverConfigError, match="prefix must not be empty"):
        make()


def test_preload_all_reports_which_keys_failed_and_why(caplog):
    keys = {f"agent{i}": tenuo_core.SigningKey.generate() for i in range(2)}
    environ = {f"REP_{k}": encode_signing_key(v) for k, v in keys.items()}
    bad = encode_signing_key(tenuo_core.SigningKey.generate())
    environ["REP_short"] = bad[:-4]
    environ["REP_junk"] = "not a key"
    with EnvKeyResolver("REP_", environ=environ) as resolver:
        report = resolver.preload_all()
    assert isinstance(report, PreloadReport) and isinstance(report, int)
    assert report == 2 and report.loaded == 2 and int(report) == 2 and report >= 1
    assert f"{report}" == "2" and not report.ok
    assert sorted(report.failed) == ["junk", "short"]
    assert all(isinstance(e, errors.KeyFormatError) for e in report.failed.values())
    assert report.reasons()["short"].startswith("KeyFormatError: ")
    assert "expected 32" in report.reasons()["short"]
    assert repr(report).startswith("PreloadReport(loaded=2, failed={")
    assert_no_secret(repr(report), [decode_signing_key(environ["REP_agent0"])], "report")
    assert bad not in repr(report) and bad[:-4] not in repr(report)
    assert pickle.loads(pickle.dumps(report)).failed.keys() == report.failed.keys()


def test_composite_and_adapted_preload_all_report_too():
    good = tenuo_core.SigningKey.generate()
    env = EnvKeyResolver("A_", environ={"A_one": encode_signing_key(good), "A_bad": "x"})
    composite = CompositeKeyResolver([env])
    report = composite.preload_all()
    assert isinstance(report, PreloadReport) and report == 1 and list(report.failed) == ["bad"]
    composite.close()

    class Foreign:
        def resolve(self, key_id): ...
        def resolve_sync(self, key_id): ...
        def preload_all(self):
            return 4

    adapted = as_key_resolver(Foreign())
    assert isinstance(adapted.preload_all(), PreloadReport) and adapted.preload_all() == 4
