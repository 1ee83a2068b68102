"""The resolver conformance suite: one set of tests every resolver passes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import pytest
import pytest_asyncio  # noqa: F401  (its plugin runs the async tests: fail here if absent)
import tenuo_core

from .._cache import CacheObserver, CachePolicy, CacheStats, _DefaultSize
from .._resolver import BackendKeyResolver, KeyResolver
from ..backends.composite import CompositeKeyResolver
from ..errors import (
    HolderMismatch,
    KeyFormatError,
    KeyNotFound,
    KeyNotLoaded,
    KeyResolutionError,
    ResolverConfigError,
)
from ._guard import io_guard
from ._secrets import BINARY_FORMS, MATERIAL_FORMS, assert_no_secret, material

__all__ = ["ResolverConformance", "ResolverHarness", "wait_for_sync"]

FAST_POLICY = CachePolicy(ttl=60.0, negative_ttl=0.05, max_staleness=60.0)


class ResolverHarness:
    """What a resolver's tests supply: how to build it and how to store keys.

    Subclass it for your backend and return it from the ``harness`` fixture
    of a :class:`ResolverConformance` subclass.

    Attributes:
        binary_values: The backend can store raw bytes (not only text).
        supports_rotation: :meth:`rotate` keeps the previous version readable.
        supports_listing: ``preload_all`` discovers ids.
        always_in_memory: Every stored key is in memory as soon as it is put
            (a resolver over data it holds itself), so ``resolve_sync`` never
            raises ``KeyNotLoaded`` for it.
    """

    binary_values: ClassVar[bool] = True
    always_in_memory: ClassVar[bool] = False
    supports_rotation: ClassVar[bool] = True
    supports_listing: ClassVar[bool] = True

    def make_resolver(
        self, *, cache: CachePolicy, observers: Sequence[CacheObserver]
    ) -> KeyResolver:
        """Build a resolver on the test backend with this cache policy and observers."""
        raise NotImplementedError

    def put(self, key_id: str, value: bytes | str) -> None:
        """Store ``value`` as the current version of ``key_id`` (create or overwrite)."""
        raise NotImplementedError

    def rotate(self, key_id: str, value: bytes | str) -> None:
        """Store ``value`` as the new current version, keeping the old as previous."""
        self.put(key_id, value)

    def key_id(self, name: str) -> str:
        """A key id unique to this test run, so shared services need no cleanup."""
        return f"{name}-{uuid.uuid4().hex[:10]}"


def _stored_key(harness: ResolverHarness, name: str, form: str = "base64") -> tuple[Any, str]:
    """Put a new key, as ``form``, behind a new id made from ``name``.

    Returns:
        The ``tenuo_core.SigningKey`` and its key id.
    """
    key = tenuo_core.SigningKey.generate()
    key_id = harness.key_id(name)
    harness.put(key_id, material(key, form))
    return key, key_id


def wait_for_sync(
    resolver: KeyResolver, key_id: str, timeout: float = 10.0,
    call: Callable[[], Any] | None = None,
) -> Any:
    """Retry the memory-only path until the background load lands.

    Args:
        resolver: The resolver.
        key_id: The key id.
        timeout: Seconds to keep trying.
        call: What to retry (default ``resolver.resolve_sync(key_id)``).

    Returns:
        What the call returned once it stopped raising ``KeyNotLoaded``.
    """
    call = call or (lambda: resolver.resolve_sync(key_id))
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except KeyNotLoaded:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _same(a: Any, b: Any) -> bool:
    return bytes(a.public_key_bytes()) == bytes(b.public_key_bytes())


class ResolverConformance:
    """Mix this into a test class and override the ``harness`` fixture.

    Example:
        >>> class TestMine(ResolverConformance):           # doctest: +SKIP
        ...     @pytest.fixture
        ...     def harness(self):
        ...         return MyHarness()
    """

    @pytest.fixture
    def harness(self) -> ResolverHarness:
        """Override: return the backend's :class:`ResolverHarness`."""
        raise NotImplementedError("override the `harness` fixture in your test class")

    @pytest.fixture
    def stats(self) -> CacheStats:
        """Counts cache events, including backend calls."""
        return CacheStats()

    @pytest.fixture
    def resolver(self, harness: ResolverHarness, stats: CacheStats) -> Iterator[KeyResolver]:
        """A fresh resolver, closed after the test."""
        resolver = harness.make_resolver(cache=FAST_POLICY, observers=[stats])
        try:
            yield resolver
        finally:
            resolver.close()

    # -- round trip -------------------------------------------------------

    @pytest.mark.asyncio
    async def test_round_trip(self, harness: ResolverHarness, resolver: KeyResolver) -> None:
        key, key_id = _stored_key(harness, "round-trip")
        assert _same(await resolver.resolve(key_id), key)
        assert _same(resolver.resolve_sync(key_id), key)
        versions = await resolver.resolve_versions(key_id)
        assert versions.key_id == key_id
        assert versions.current_public == bytes(key.public_key_bytes())

    def test_resolve_sync_cold_loads_in_background(
        self, harness: ResolverHarness, resolver: KeyResolver
    ) -> None:
        key, key_id = _stored_key(harness, "cold", "hex")
        if harness.always_in_memory:
            assert _same(resolver.resolve_sync(key_id), key)
            return
        with pytest.raises(KeyNotLoaded) as info:
            resolver.resolve_sync(key_id)
        assert info.value.retryable is True
        assert info.value.key_id == key_id
        assert _same(wait_for_sync(resolver, key_id), key)

    # -- not found and bad input ----------------------------------------

    @pytest.mark.asyncio
    async def test_not_found(self, harness: ResolverHarness, resolver: KeyResolver) -> None:
        key_id = harness.key_id("absent")
        with pytest.raises(KeyNotFound) as info:
            await resolver.resolve(key_id)
        assert info.value.key_id == key_id
        assert info.value.backend
        assert info.value.retryable is False
        assert "not found" in str(info.value)

    def test_not_found_sync_after_background_load(
        self, harness: ResolverHarness, resolver: KeyResolver
    ) -> None:
        key_id = harness.key_id("absent-sync")
        with pytest.raises(KeyNotFound):
            wait_for_sync(resolver, key_id)

    @pytest.mark.asyncio
    async def test_invalid_key_id(self, resolver: KeyResolver) -> None:
        for bad in ("", "a\x00b", "x" * 1000):
            with pytest.raises(KeyResolutionError):
                await resolver.resolve(bad)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("form", sorted(MATERIAL_FORMS))
    async def test_every_format(
        self, harness: ResolverHarness, resolver: KeyResolver, form: str
    ) -> None:
        if form in BINARY_FORMS and not harness.binary_values:
            pytest.skip("this backend stores text only")
        key, key_id = _stored_key(harness, f"fmt-{form}", form)
        assert _same(await resolver.resolve(key_id), key)

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("case", "expected"),
        [
            ("short", "31 bytes"),
            ("json-no-field", "no field"),
            ("garbage", "not a key"),
            ("mismatched-halves", "does not match"),
        ],
    )
    async def test_bad_material(
        self, harness: ResolverHarness, resolver: KeyResolver, case: str, expected: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        import base64

        key = tenuo_core.SigningKey.generate()
        other = tenuo_core.SigningKey.generate()
        seed = bytes(key.secret_key_bytes())
        values: dict[str, str] = {
            "short": base64.b64encode(seed[:31]).decode(),
            "json-no-field": json.dumps({"private": base64.b64encode(seed).decode()}),
            "garbage": "this is not a key at all!",
            "mismatched-halves": base64.b64encode(seed + bytes(other.public_key_bytes())).decode(),
        }
        key_id = harness.key_id(f"bad-{case}")
        caplog.set_level(logging.DEBUG)
        with pytest.raises(KeyFormatError) as info:
            harness.put(key_id, values[case])
            await resolver.resolve(key_id)
        error = info.value
        assert error.key_id == key_id
        assert expected in str(error)
        assert error.retryable is False
        for text in (str(error), repr(error), caplog.text):
            assert_no_secret(text, [key])
        cause = error.__cause__ or error.__context__
        while cause is not None:
            assert_no_secret(str(cause) + repr(cause), [key], "a chained cause")
            cause = cause.__cause__ or cause.__context__

    # -- rotation ---------------------------------------------------------

    @pytest.mark.asyncio
    async def test_rotation_keeps_previous_version(
        self, harness: ResolverHarness, resolver: KeyResolver
    ) -> None:
        if not harness.supports_rotation:
            pytest.skip("this backend keeps one version")
        old = tenuo_core.SigningKey.generate()
        new = tenuo_core.SigningKey.generate()
        key_id = harness.key_id("rotate")
        harness.put(key_id, material(old, "base64"))
        assert _same(await resolver.resolve(key_id), old)
        harness.rotate(key_id, material(new, "base64"))
        # A warrant minted for the new holder finds it: the mismatch refreshes.
        assert _same(await resolver.resolve_for_holder(key_id, new.public_key), new)
        # In-flight warrants for the old holder still resolve, from memory.
        assert _same(resolver.resolve_for_holder_sync(key_id, old.public_key), old)
        assert _same(resolver.resolve_for_holder_sync(key_id, new.public_key), new)
        assert _same(resolver.resolve_sync(key_id), new)
        stranger = tenuo_core.SigningKey.generate()
        with pytest.raises(HolderMismatch) as info:
            await resolver.resolve_for_holder(key_id, stranger.public_key)
        assert "holder mismatch" in str(info.value)
        assert info.value.key_id == key_id

    # -- concurrency ------------------------------------------------------

    @pytest.mark.asyncio
    async def test_single_flight_async(
        self, harness: ResolverHarness, resolver: KeyResolver, stats: CacheStats
    ) -> None:
        key, key_id = _stored_key(harness, "flight")
        results = await asyncio.gather(*(resolver.resolve(key_id) for _ in range(100)))
        assert all(_same(r, key) for r in results)
        assert stats.backend_calls == 1

    def test_single_flight_threads(
        self, harness: ResolverHarness, resolver: KeyResolver, stats: CacheStats
    ) -> None:
        key, key_id = _stored_key(harness, "flight-threads")
        barrier = threading.Barrier(20)
        results: list[Any] = []
        lock = threading.Lock()

        def worker() -> None:
            barrier.wait()
            found = asyncio.run(resolver.resolve(key_id))
            with lock:
                results.append(found)

        threads = [threading.Thread(target=worker) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(results) == 20 and all(_same(r, key) for r in results)
        assert stats.backend_calls == 1

    # -- the sandbox rule: resolve_sync never does I/O --------------------

    def test_resolve_sync_does_no_io(
        self, harness: ResolverHarness, resolver: KeyResolver
    ) -> None:
        key, key_id = _stored_key(harness, "noio")
        resolver.preload([key_id])
        with io_guard() as seen:
            for _ in range(100):
                found = resolver.resolve_sync(key_id)
                held = resolver.resolve_for_holder_sync(key_id, key.public_key)
        assert seen.events == [], f"resolve_sync did I/O: {seen.events}"
        assert _same(found, key) and _same(held, key)

    def test_cold_resolve_sync_does_no_io(
        self, harness: ResolverHarness, resolver: KeyResolver
    ) -> None:
        key, key_id = _stored_key(harness, "noio-cold")
        with io_guard() as seen:
            try:
                resolver.resolve_sync(key_id)
            except KeyNotLoaded:
                assert not harness.always_in_memory
            else:
                assert harness.always_in_memory, "a cold key must raise KeyNotLoaded"
        assert seen.events == [], f"a cold resolve_sync did I/O: {seen.events}"
        assert _same(wait_for_sync(resolver, key_id), key)

    # -- preloading, lifecycle, redaction --------------------------------

    def test_preload(self, harness: ResolverHarness, resolver: KeyResolver) -> None:
        keys = {harness.key_id(f"pre{i}"): tenuo_core.SigningKey.generate() for i in range(3)}
        for key_id, key in keys.items():
            harness.put(key_id, material(key, "base64"))
        assert resolver.preload(list(keys)) == 3
        for key_id, key in keys.items():
            assert _same(resolver.resolve_sync(key_id), key)

    def test_preload_all_discovers(self, harness: ResolverHarness, resolver: KeyResolver) -> None:
        if not harness.supports_listing:
            pytest.skip("this backend cannot list its keys")
        keys = {harness.key_id(f"all{i}"): tenuo_core.SigningKey.generate() for i in range(3)}
        for key_id, key in keys.items():
            harness.put(key_id, material(key, "base64"))
        assert set(keys) <= set(resolver.list_key_ids())
        assert resolver.preload_all() >= 3
        for key_id, key in keys.items():
            assert _same(resolver.resolve_sync(key_id), key)

    def test_preload_holds_everything_it_loads(
        self, harness: ResolverHarness, stats: CacheStats
    ) -> None:
        # A default-sized cache grows to fit a preload: here a default of 2
        # and a preload of 6, each of which must then resolve from memory.
        keys = {harness.key_id(f"fit{i}"): tenuo_core.SigningKey.generate() for i in range(6)}
        for key_id, key in keys.items():
            harness.put(key_id, material(key, "base64"))
        policy = dataclasses.replace(FAST_POLICY, maxsize=_DefaultSize(2))
        with harness.make_resolver(cache=policy, observers=[stats]) as resolver:
            assert resolver.preload(list(keys)) == 6
            if harness.supports_listing:
                assert resolver.preload_all() >= 6
            calls = stats.backend_calls
            for key_id, key in keys.items():
                assert _same(resolver.resolve_sync(key_id), key)
            assert stats.backend_calls == calls, "a preloaded key was not held"

    def test_preload_beyond_explicit_maxsize_is_refused(
        self, harness: ResolverHarness, stats: CacheStats
    ) -> None:
        keys = [harness.key_id(f"cap{i}") for i in range(3)]
        policy = dataclasses.replace(FAST_POLICY, maxsize=2)
        with harness.make_resolver(cache=policy, observers=[stats]) as resolver:
            if not isinstance(resolver, (BackendKeyResolver, CompositeKeyResolver)):
                pytest.skip("this resolver does not use tenuo_keys' cache")
            for key_id in keys:
                harness.put(key_id, material(tenuo_core.SigningKey.generate(), "base64"))
            calls = stats.backend_calls
            with pytest.raises(ResolverConfigError, match=r"maxsize=2\b.*\b3\b"):
                resolver.preload(keys)
            assert stats.backend_calls == calls, "refused, yet the backend was asked"
            assert resolver.preload(keys[:2]) == 2

    @pytest.mark.asyncio
    async def test_close(self, harness: ResolverHarness, stats: CacheStats) -> None:
        key, key_id = _stored_key(harness, "close")
        async with harness.make_resolver(cache=FAST_POLICY, observers=[stats]) as resolver:
            assert _same(await resolver.resolve(key_id), key)
        with pytest.raises(KeyResolutionError):
            resolver.resolve_sync(key_id)
        resolver.close()  # twice is harmless

    @pytest.mark.asyncio
    async def test_redaction(
        self, harness: ResolverHarness, resolver: KeyResolver,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        key, key_id = _stored_key(harness, "redact", "pem")
        versions = await resolver.resolve_versions(key_id)
        resolver.resolve_sync(key_id)
        try:
            await resolver.resolve_for_holder(key_id, tenuo_core.SigningKey.generate().public_key)
        except HolderMismatch as exc:
            assert_no_secret(str(exc) + repr(exc), [key], "a holder-mismatch error")
        for text, where in (
            (repr(resolver), "repr(resolver)"),
            (str(resolver), "str(resolver)"),
            (repr(versions), "repr(versions)"),
            (repr(versions.versions), "repr(version)"),
            (caplog.text, "logs"),
        ):
            assert_no_secret(text, [key], where)
