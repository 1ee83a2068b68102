"""Preloading a fleet: every key a preload loads is held and served from memory.

Issue 14.6: with the old 1,024-key default, ``preload_all()`` over 5,000
keys reported 5000 while 1,024 were held, and a ``resolve_sync`` pass over
them then failed for most ids (each miss evicting another held key).
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import tenuo_core

from tenuo_keys import CachePolicy, CacheStats, ResolverConfigError, encode_signing_key
from tenuo_keys.backends.vault import VaultKeyResolver
from tenuo_keys.testing import io_guard

pytestmark = pytest.mark.integration

FLEET = 5_000


def write_fleet(server: Any, directory: str, count: int) -> dict[str, bytes]:
    """Write ``count`` KV v2 secrets concurrently, one hvac client per thread."""
    keys = {f"agent-{i:05d}": tenuo_core.SigningKey.generate() for i in range(count)}
    items = list(keys.items())
    shards = [items[i::16] for i in range(16)]

    def write(shard: list[tuple[str, Any]]) -> None:
        client = server.client()
        try:
            for key_id, key in shard:
                client.secrets.kv.v2.create_or_update_secret(
                    path=f"{directory}/{key_id}", secret={"key": encode_signing_key(key)},
                    mount_point="secret")
        finally:
            client.adapter.close()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, shards))
    return {key_id: bytes(key.public_key_bytes()) for key_id, key in keys.items()}


@pytest.fixture(scope="module")
def fleet(vault_server: Any) -> tuple[str, dict[str, bytes]]:
    directory = f"tenuo/fleet-{uuid.uuid4().hex[:10]}"
    started = time.perf_counter()
    public = write_fleet(vault_server, directory, FLEET)
    print(f"\nwrote {FLEET} secrets in {time.perf_counter() - started:.1f}s")
    return directory, public


def make(server: Any, directory: str, **kwargs: Any) -> VaultKeyResolver:
    return VaultKeyResolver(server.addr, mount="secret", path_template=f"{directory}/{{key_id}}",
                            kv_version=2, token=server.token, environ={}, **kwargs)


def test_vault_preload_all_of_5000_keys_serves_every_id_from_memory(
    vault_server: Any, fleet: tuple[str, dict[str, bytes]]
) -> None:
    directory, public = fleet
    stats = CacheStats()
    with make(vault_server, directory, observers=[stats]) as resolver:
        started = time.perf_counter()
        assert resolver.preload_all() == FLEET
        print(f"preload_all of {FLEET} Vault keys: {time.perf_counter() - started:.2f}s")
        assert len(resolver.cache) == FLEET
        reads = stats.backend_calls
        assert reads == FLEET
        with io_guard() as seen:
            for key_id, public_key in public.items():
                assert bytes(resolver.resolve_sync(key_id).public_key_bytes()) == public_key
                resolver.resolve_for_holder_sync(key_id, public_key)
        assert seen.events == []
        assert stats.backend_calls == reads, "a preloaded key had to be read again"


def test_vault_preload_all_beyond_an_explicit_maxsize_is_refused(
    vault_server: Any, fleet: tuple[str, dict[str, bytes]]
) -> None:
    directory, _ = fleet
    stats = CacheStats()
    with make(vault_server, directory, observers=[stats],
              cache=CachePolicy(maxsize=1_024)) as resolver:
        with pytest.raises(ResolverConfigError) as info:
            resolver.preload_all()
        assert "maxsize=1024" in str(info.value) and str(FLEET) in str(info.value)
        assert stats.backend_calls == 0
