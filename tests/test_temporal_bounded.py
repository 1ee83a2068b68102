"""``BoundedMap``: the one eviction rule every plugin cache follows."""

from __future__ import annotations

import threading

import pytest

from tenuo_temporal._bounded import BoundedMap


def test_when_full_the_entry_set_longest_ago_goes_first() -> None:
    m: BoundedMap[str, int] = BoundedMap(3)
    for key, value in (("a", 1), ("b", 2), ("c", 3)):
        m[key] = value
    m["a"] = 10  # set again: now the newest
    m["d"] = 4
    assert sorted(m.keys()) == ["a", "c", "d"]
    assert m.get("b") is None and m["a"] == 10
    assert len(m) == 3 and m.currsize == 3 and m.maxsize == 3


def test_reads_are_the_view_s_dict_get_and_the_view_mirrors_the_cache() -> None:
    m: BoundedMap[int, int] = BoundedMap(100)
    assert m.get == m.view.get  # the hot path: one plain dict read, no lock
    for i in range(1000):
        m[i] = i
    assert set(m.view) == set(m.keys()) == set(range(900, 1000))
    assert 950 in m and 5 not in m
    with pytest.raises(KeyError):
        m[5]
    assert m.pop(950) == 950 and 950 not in m.view and m.pop(950, "gone") == "gone"
    m.clear()
    assert not m.view and len(m) == 0


def test_a_size_bound_charges_each_value() -> None:
    m: BoundedMap[str, bytes] = BoundedMap(10, getsizeof=len)
    m["a"] = b"xxxx"
    m["b"] = b"yyyy"
    m["c"] = b"zzzz"  # 12 > 10: "a" goes
    assert sorted(m.view) == ["b", "c"] and m.currsize == 8
    with pytest.raises(ValueError):
        m["huge"] = b"x" * 11
    assert "huge" not in m.view


def test_setdefault_keeps_what_is_held() -> None:
    m: BoundedMap[str, int] = BoundedMap(4)
    assert m.setdefault("a", 1) == 1
    assert m.setdefault("a", 2) == 1
    assert m.items() == [("a", 1)] and m.values() == [1]


def test_with_a_ttl_entries_go_that_long_after_they_were_set() -> None:
    now = [0.0]
    m: BoundedMap[str, int] = BoundedMap(10, ttl=5, timer=lambda: now[0])
    m["a"] = 1
    now[0] = 3
    m["b"] = 2
    assert m.get("a") == 1 and m["b"] == 2
    now[0] = 6
    assert m.get("a") is None and "a" not in m  # never returned once expired
    assert m.get("b", "missing") == 2
    m["b"] = 3  # set again: lives 5 s from now
    now[0] = 10
    assert m.pop("b") == 3
    now[0] = 20
    m.expire()
    assert m.keys() == [] and not m.view


def test_with_a_ttl_the_size_bound_still_holds() -> None:
    m: BoundedMap[int, int] = BoundedMap(2, ttl=60)
    for i in range(5):
        m[i] = i
    assert sorted(m.view) == [3, 4] == sorted(m.keys())


def test_concurrent_writers_keep_the_bound_and_the_mirror() -> None:
    m: BoundedMap[tuple[int, int], int] = BoundedMap(64)

    def write(t: int) -> None:
        for i in range(2000):
            m[t, i] = i

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(m) == 64 and set(m.view) == set(m.keys())
