"""The in-memory replay store: ownership, expiry, bounds."""

from __future__ import annotations

import time

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
