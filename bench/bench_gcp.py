"""GCP Secret Manager resolver: cold resolve, preload of 1,000 keys, warm resolve_sync.

Runs against the project's own gRPC Secret Manager test server
(``integration/support/gcp_sm_server.py``), started here as a subprocess on a free
loopback port and stopped by PID at the end. The resolver is the real one, with
the real ``SecretManagerServiceClient`` over an insecure loopback channel.

Measured, all in one run:

* ``cold``: ``await resolver.resolve(key_id)`` of a key not in memory (each
  sample invalidates first): one ``AccessSecretVersion`` plus, with the default
  ``previous_versions=1``, one ``ListSecretVersions``. Median, p10, p90.
* ``preload``: loading N keys (1,000; 200 with ``--quick``) into a fresh resolver,
  in parallel on the cache's worker threads (``resolver.preload(ids)``; 8 and 32
  workers) versus one by one (``resolve`` of each key in turn, one in flight).
* ``warm``: ``resolve_sync(key_id)`` on a held key (memory only): ns per call.

Loopback costs far less than a real network hop, where parallel preloading
matters most, so the cold and preload rows run twice: with no added latency
and with ``--rtt-ms`` (default 5 ms) added per call by the server.

Usage:
    python -m bench.bench_gcp [--quick] [--json PATH] [--rtt-ms 5]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tenuo_core

from bench._util import exit_with, finish, parser, run_meta, spread
from integration.support.gcp_sm_server import ControlClient
from integration.support.procs import REPO_ROOT, ManagedProcess, free_port, module_argv
from tenuo_keys import CachePolicy, encode_signing_key
from tenuo_keys.backends.gcp import GCPSecretManagerKeyResolver

PROJECT = "bench-project"


@contextmanager
def server() -> Iterator[tuple[str, ControlClient]]:
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="gcp-sm-bench-") as tmp:
        proc = ManagedProcess(
            module_argv("integration.support.gcp_sm_server", "--port", str(port)),
            "GCP Secret Manager test server", Path(tmp) / "server.log", cwd=REPO_ROOT)
        control = ControlClient(endpoint)
        try:
            proc.start(lambda: control.stats(timeout=0.5) is not None)
            yield endpoint, control
        finally:
            control.close()
            proc.stop()  # exactly the process we started, by PID


def _resolver(endpoint: str, workers: int = 8) -> GCPSecretManagerKeyResolver:
    return GCPSecretManagerKeyResolver(
        PROJECT, api_endpoint=endpoint, insecure=True,
        cache=CachePolicy(ttl=3600, maxsize=4096, max_workers=workers),
    )


def _pct(samples: list[float]) -> dict[str, float]:
    median, p10, p90 = spread(samples)
    return {"median": median, "p10": p10, "p90": p90, "n": len(samples)}


def store_keys(endpoint: str, n: int) -> dict[str, bytes]:
    """Create N secrets (one version each) through the resolver's own ``store_key``."""
    keys = {f"bench{i:05d}": tenuo_core.SigningKey.generate() for i in range(n)}
    with _resolver(endpoint) as writer, ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda item: writer.store_key(item[0], encode_signing_key(item[1])),
                      keys.items()))
    return {k: bytes(v.public_key_bytes()) for k, v in keys.items()}


def bench_cold(endpoint: str, ids: list[str], publics: dict[str, bytes]) -> dict[str, float]:
    loop = asyncio.new_event_loop()
    samples: list[float] = []
    with _resolver(endpoint) as resolver:
        loop.run_until_complete(resolver.resolve(ids[0]))  # connect, warm the channel
        for key_id in ids:
            resolver.invalidate(key_id)
            t0 = time.perf_counter()
            key = loop.run_until_complete(resolver.resolve(key_id))
            samples.append((time.perf_counter() - t0) * 1e3)
            assert bytes(key.public_key_bytes()) == publics[key_id]
    loop.close()
    return _pct(samples)


def bench_preload(endpoint: str, ids: list[str], publics: dict[str, bytes],
                  control: ControlClient) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def check(resolver: GCPSecretManagerKeyResolver) -> None:
        for key_id in ids:
            assert bytes(resolver.resolve_sync(key_id).public_key_bytes()) == publics[key_id]

    def timed(name: str, run: Callable[[GCPSecretManagerKeyResolver], None],
              workers: int = 8) -> None:
        with _resolver(endpoint, workers) as resolver:
            resolver.list_key_ids()  # connect first: time the loads, not the handshake
            control.stats(reset=True)
            t0 = time.perf_counter()
            run(resolver)
            elapsed = time.perf_counter() - t0
            calls = sum(control.stats()["calls"].values())
            check(resolver)
        out[name] = {"seconds": elapsed, "keys_per_s": len(ids) / elapsed,
                     "backend_calls": calls}

    def one_by_one(resolver: GCPSecretManagerKeyResolver) -> None:
        loop = asyncio.new_event_loop()
        for key_id in ids:
            loop.run_until_complete(resolver.resolve(key_id))
        loop.close()

    timed("sequential", one_by_one)
    timed("parallel_8", lambda r: r.preload(ids), 8)
    timed("parallel_32", lambda r: r.preload(ids), 32)
    timed("preload_all_8", lambda r: r.preload_all(strict=True) and None, 8)
    out["speedup_8"] = out["sequential"]["seconds"] / out["parallel_8"]["seconds"]
    out["speedup_32"] = out["sequential"]["seconds"] / out["parallel_32"]["seconds"]
    return out


def bench_warm(endpoint: str, key_id: str, publics: dict[str, bytes],
               batches: int) -> dict[str, float]:
    with _resolver(endpoint) as resolver:
        resolver.preload([key_id])
        fn = resolver.resolve_sync
        assert bytes(fn(key_id).public_key_bytes()) == publics[key_id]
        n = 20_000
        samples = []
        for _ in range(batches):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                fn(key_id)
            samples.append((time.perf_counter_ns() - t0) / n)
    return _pct(samples)


def _fmt_ms(ms: float) -> str:
    return f"{ms:.2f} ms" if ms >= 0.1 else f"{ms * 1e3:.0f} us"


def report(results: dict[str, Any], meta: dict[str, Any]) -> None:
    print(f"GCP Secret Manager resolver vs the gRPC test server (loopback), "
          f"{meta['keys']} keys, Python {meta['python']}, {meta['cpus']} CPUs")
    print()
    for rtt_name, section in results["runs"].items():
        print(f"[{rtt_name}]")
        cold = section["cold_ms"]
        print(f"  cold resolve (access + list)    median {_fmt_ms(cold['median']):>9}  "
              f"p10 {_fmt_ms(cold['p10']):>9}  p90 {_fmt_ms(cold['p90']):>9}  (n={cold['n']})")
        pre = section["preload"]
        for name in ("sequential", "parallel_8", "parallel_32", "preload_all_8"):
            row = pre[name]
            print(f"  preload {name:<23} {row['seconds']:>7.2f} s  "
                  f"{row['keys_per_s']:>8.0f} keys/s  {row['backend_calls']:>6} calls")
        print(f"  parallel speedup over one-by-one: {pre['speedup_8']:.1f}x (8 workers), "
              f"{pre['speedup_32']:.1f}x (32 workers)")
        print()
    warm = results["warm_resolve_sync_ns"]
    print(f"warm resolve_sync: median {warm['median']:.0f} ns  p10 {warm['p10']:.0f} ns  "
          f"p90 {warm['p90']:.0f} ns per call ({warm['n']} batches of 20,000)")


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__, "200 keys, fewer samples")
    options.add_argument("--rtt-ms", type=float, default=5.0,
                         help="latency the server adds per call in the second run (default 5)")
    args = options.parse_args(argv)
    started = time.perf_counter()
    n_keys = 200 if args.quick else 1000
    n_cold = 50 if args.quick else 200
    results: dict[str, Any] = {"runs": {}}
    with server() as (endpoint, control):
        publics = store_keys(endpoint, n_keys)
        ids = sorted(publics)
        for rtt in (0.0, args.rtt_ms):
            control.configure(latency_ms=rtt)
            name = "loopback" if rtt == 0 else f"loopback + {rtt:g} ms per call"
            results["runs"][name] = {
                "rtt_ms": rtt,
                "cold_ms": bench_cold(endpoint, ids[:n_cold], publics),
                "preload": bench_preload(endpoint, ids, publics, control),
            }
        control.configure(latency_ms=0)
        results["warm_resolve_sync_ns"] = bench_warm(endpoint, ids[0], publics,
                                                     11 if args.quick else 31)
    meta = run_meta(started, "google_cloud_secret_manager", "grpcio",
                    quick=args.quick, keys=n_keys, cold_samples=n_cold)
    report(results, meta)
    return finish(args.json, meta, results)


if __name__ == "__main__":
    exit_with(main)
