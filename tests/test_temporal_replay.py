"""The in-memory replay store: ownership, expiry, bounds."""

from __future__ import annotations

import time

import pytest

from tenuo_temporal import InMemoryReplayStore


async def test_first_owner_keeps_the_pop_until_it_expires():
    store = InMemoryReplayStore()
    assert await store.claim(b"d1", "ns/wf-a", 60)
    assert await store.claim(b"d1", "ns/wf-a", 60)  # same workflow: retries, continue-as-new
    assert not await store.claim(b"d1", "ns/wf-b", 60)  # another workflow: replay
    assert await store.claim(b"d2", "ns/wf-b", 0.05)
    time.sleep(0.06)
    assert await store.claim(b"d2", "ns/wf-c", 60)  # expired claims are free again


async def test_bounded_size_drops_the_oldest():
    store = InMemoryReplayStore(maxsize=10)
    for i in range(25):
        assert await store.claim(bytes([i]), f"wf-{i}", 60)
    assert "held=" in repr(store)
    assert len(store._held) <= 10
    assert await store.claim(bytes([24]), "wf-24", 60)  # the newest are kept


def test_claim_now_answers_like_claim_without_a_coroutine():
    store = InMemoryReplayStore()
    assert store.claim_now(b"d1", "ns/wf-a", 60)
    assert store.claim_now(b"d1", "ns/wf-a", 60)
    assert not store.claim_now(b"d1", "ns/wf-b", 60)
    assert store.claim_now(b"d2", "ns/wf-b", 0.05)
    time.sleep(0.06)
    assert store.claim_now(b"d2", "ns/wf-c", 60)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_clock(monkeypatch) -> FakeClock:
    return FakeClock()


def test_expired_claims_leave_from_the_front_without_a_scan(monkeypatch):
    clock = fake_clock(monkeypatch)
    store = InMemoryReplayStore(clock=clock)
    for i in range(1000):
        assert store.claim_now(i.to_bytes(4, "big"), "ns/a", 10)
    clock.now += 5
    for i in range(1000, 1500):
        assert store.claim_now(i.to_bytes(4, "big"), "ns/a", 10)
    assert store.size == 1500
    clock.now += 6  # the first 1000 expired, the next 500 did not
    assert store.claim_now(b"new", "ns/b", 10)
    assert store.size == 501
    assert not store.claim_now((1200).to_bytes(4, "big"), "ns/b", 10)  # still held


def test_a_full_store_drops_the_oldest_claims(monkeypatch):
    store = InMemoryReplayStore(maxsize=1000, clock=fake_clock(monkeypatch))
    for i in range(10_000):
        assert store.claim_now(i.to_bytes(4, "big"), "ns/a", 600)
        assert store.size <= 1000
    assert store.size > 1000 - 1000 // 64 - 1  # a batch at a time, never more
    assert not store.claim_now((9_999).to_bytes(4, "big"), "ns/b", 600)  # newest kept
    assert not store.claim_now((9_100).to_bytes(4, "big"), "ns/b", 600)
    assert store.claim_now((8_000).to_bytes(4, "big"), "ns/b", 600)  # oldest dropped


def test_a_pop_claimed_again_after_it_expired_moves_to_the_back(monkeypatch):
    clock = fake_clock(monkeypatch)
    store = InMemoryReplayStore(clock=clock)
    assert store.claim_now(b"long", "ns/a", 15)  # at the front
    assert store.claim_now(b"k", "ns/a", 10)
    clock.now += 11  # k expired
    assert store.claim_now(b"k", "ns/b", 10)  # claimed again, until +21
    assert list(store._held) == [b"long", b"k"]
    clock.now += 5  # "long" expired and leaves; k is live behind it
    assert store.claim_now(b"other", "ns/c", 10)
    assert not store.claim_now(b"k", "ns/c", 10)  # b still owns k
    assert store.claim_now(b"k", "ns/b", 10)


def test_a_longer_lived_claim_in_front_never_lets_an_expired_one_count(monkeypatch):
    clock = fake_clock(monkeypatch)
    store = InMemoryReplayStore(maxsize=50, clock=clock)
    assert store.claim_now(b"long", "ns/a", 10_000)
    for i in range(1_000):  # shorter claims expire behind it
        clock.now += 2
        assert store.claim_now(b"short", f"ns/{i}", 1)  # the last owner's claim expired
        assert store.size <= 50
    assert not store.claim_now(b"long", "ns/b", 10)


def test_maxsize_must_be_positive():
    with pytest.raises(ValueError, match="maxsize"):
        InMemoryReplayStore(maxsize=0)


def test_an_empty_store_is_truthy():
    assert InMemoryReplayStore()  # `store or default` must never drop a configured store


def test_claims_of_different_lifetimes_leave_when_each_expires():
    clock = FakeClock()
    store = InMemoryReplayStore(clock=clock)
    assert store.claim_now(b"hour", "ns/a", 3600)  # at the front, a long-lived warrant
    for i in range(100):
        assert store.claim_now(i.to_bytes(4, "big"), "ns/a", 10)
    clock.now += 11
    assert store.claim_now(b"next", "ns/a", 10)
    assert store.size == 2  # the short ones left from behind the long one
    assert not store.claim_now(b"hour", "ns/b", 10)


def test_a_full_store_warns_that_live_claims_were_dropped(caplog):
    store = InMemoryReplayStore(maxsize=10, clock=FakeClock())
    with caplog.at_level("WARNING", logger="tenuo_temporal"):
        for i in range(30):
            store.claim_now(bytes([i]), "ns/a", 600)
    assert [r for r in caplog.records if "replay store is full" in r.getMessage()]


def test_keys_of_any_kind_expiring_together_never_compare(monkeypatch):
    # A PoP (strict mode) and a PoP with an attempt's identity ("run" mode) in
    # one store, expiring at the same instant: the heap must not compare them.
    clock = fake_clock(monkeypatch)
    store = InMemoryReplayStore(clock=clock)
    assert store.claim_now(b"p" * 64, "owner", 10)
    assert store.claim_now((b"p" * 64, "default", "wf", "run", "1", 1), 7, 10)
    assert store.claim_now(b"q" * 64, "owner", 10)
    clock.now += 11
    assert store.claim_now(b"r" * 64, "owner", 10)  # sweeps the three at once
    assert store.size == 1


def test_the_redis_store_needs_one_source_and_names_its_extra():
    import subprocess
    import sys

    from tenuo_temporal import RedisReplayStore

    with pytest.raises(ValueError, match="url= or client="):
        RedisReplayStore()
    code = ("import sys; sys.modules['redis'] = None; sys.modules['redis.asyncio'] = None\n"
            "from tenuo_temporal import RedisReplayStore\n"
            "try:\n    RedisReplayStore('redis://127.0.0.1:1/0')\n"
            "except ImportError as e:\n    print(type(e).__name__, e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert "MissingExtraError" in done.stdout and "tenuo-keys[redis]" in done.stdout, done


def test_a_store_outage_is_a_retryable_failure_not_a_denial():
    from tenuo_temporal.errors import ReplayStoreUnavailable, WarrantMissing, denial

    assert denial(ReplayStoreUnavailable("down")).non_retryable is False
    assert denial(WarrantMissing("none")).non_retryable is True
    assert denial(ReplayStoreUnavailable("down"), non_retryable=True).non_retryable is True
