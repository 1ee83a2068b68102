"""AWS Secrets Manager resolver on a real ``moto_server``: cold, preload and warm paths.

Everything runs in one process and one run, against one ``moto_server`` the
script starts on loopback (and stops by PID):

* ``cold.resolve``: ``await resolve(key_id)`` of a key not in memory, one key
  after another (``DescribeSecret`` + ``GetSecretValue``); and, for scale, one
  plain ``get_secret_value`` on a bare boto3 client.
* ``preload``: N keys (1,000; 200 with ``--quick``) loaded into an empty
  resolver, each variant on a fresh resolver, best of R rounds:

  - ``ours.preload_all``: ``ListSecrets`` (100 per page) + ``BatchGetSecretValue``
    (20 per call); the listing's stage maps replace per-key ``DescribeSecret``;
  - ``ours.preload``: ``preload(ids)``: ``BatchGetSecretValue`` + one
    ``DescribeSecret`` per key (parallel), the path without a listing;
  - ``ours.preload.no_batch_api``: the fallback when the endpoint answers that
    ``BatchGetSecretValue`` is unknown: parallel per-key loads;
  - ``baseline.sequential_get``: one ``get_secret_value`` per key, one after
    another, on a plain client (what a resolver without batching does at start-up).

  API calls per operation are counted with botocore ``before-call`` hooks.
* ``warm``: ``resolve_sync`` and ``resolve_for_holder_sync`` on a held key,
  timed in batches (median ns per call).

moto_server is a single Python process on loopback: a call costs it a few
milliseconds of CPU, where AWS costs 5-30 ms of network in-region. Absolute
latencies are moto's; call counts and the batched/sequential ratio carry over
(on AWS the ratio grows, since round trips dominate).

Usage:
    python -m bench.bench_aws [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import tenuo_core
from botocore.awsrequest import AWSResponse

from bench._util import exit_with, finish, parser, run_meta, spread, time_1, time_2, without_gc
from integration.support.aws import MotoServer
from tenuo_keys import CachePolicy, encode_signing_key
from tenuo_keys.backends.aws import AWSSecretsManagerKeyResolver

TEMPLATE = "bench/keys/{key_id}"
POLICY = CachePolicy(ttl=3600, jitter=0, maxsize=4096)


class Calls:
    """API calls made through one client, by operation."""

    def __init__(self, client: Any) -> None:
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        client.meta.events.register("before-call.secrets-manager", self._on)

    def _on(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.counts[model.name] += 1


def client_of(moto: MotoServer) -> Any:
    """A Secrets Manager client as the bench had it: botocore's timeouts, 1 attempt, 16 pools."""
    return moto.client(connect_timeout=60, read_timeout=60, max_pool_connections=16)


def _fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.2f} µs"
    return f"{seconds * 1e9:.0f} ns"


def seed(moto: MotoServer, count: int) -> dict[str, Any]:
    admin = client_of(moto)
    keys = {f"k{i:05d}": tenuo_core.SigningKey.generate() for i in range(count)}

    def put(item: tuple[str, Any]) -> None:
        admin.create_secret(Name=TEMPLATE.replace("{key_id}", item[0]),
                            SecretString=encode_signing_key(item[1]))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys.items()))
    return keys


def bench_cold(moto: MotoServer, keys: dict[str, Any], count: int) -> dict[str, Any]:
    ids = list(keys)[:count]
    client = client_of(moto)
    calls = Calls(client)
    samples: list[float] = []
    loop = asyncio.new_event_loop()
    try:
        with AWSSecretsManagerKeyResolver(TEMPLATE, client=client, cache=POLICY) as resolver:
            loop.run_until_complete(resolver.resolve(ids[-1]))  # warm the connection pool
            for key_id in ids[:-1]:
                t0 = time.perf_counter()
                found = loop.run_until_complete(resolver.resolve(key_id))
                samples.append(time.perf_counter() - t0)
                if bytes(found.public_key_bytes()) != bytes(keys[key_id].public_key_bytes()):
                    raise SystemExit(f"cold resolve of {key_id} returned the wrong key")
    finally:
        loop.close()
    plain = client_of(moto)
    bare: list[float] = []
    for key_id in ids:
        t0 = time.perf_counter()
        plain.get_secret_value(SecretId=TEMPLATE.replace("{key_id}", key_id))
        bare.append(time.perf_counter() - t0)
    ours_p50, _, ours_p90 = spread(samples)
    bare_p50, _, bare_p90 = spread(bare)
    return {
        "ours.resolve": {"p50_s": ours_p50, "p90_s": ours_p90, "n": len(samples),
                         "calls_per_key": {k: v / len(ids) for k, v in calls.counts.items()}},
        "baseline.get_secret_value": {"p50_s": bare_p50, "p90_s": bare_p90, "n": len(bare)},
    }


def _unsupported(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
    return AWSResponse("http://127.0.0.1", 400, {}, None), {
        "Error": {"Code": "UnknownOperationException", "Message": "Unknown operation"},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }


def bench_preload(moto: MotoServer, keys: dict[str, Any], rounds: int) -> dict[str, Any]:
    ids = list(keys)
    expected = {k: bytes(v.public_key_bytes()) for k, v in keys.items()}

    def ours(name: str) -> tuple[float, dict[str, int]]:
        client = client_of(moto)
        calls = Calls(client)
        if name == "ours.preload.no_batch_api":
            client.meta.events.register(
                "before-call.secrets-manager.BatchGetSecretValue", _unsupported)
        with AWSSecretsManagerKeyResolver(TEMPLATE, client=client, cache=POLICY) as resolver:
            t0 = time.perf_counter()
            loaded = resolver.preload_all() if name == "ours.preload_all" else \
                resolver.preload(ids)
            elapsed = time.perf_counter() - t0
            if loaded != len(ids):
                raise SystemExit(f"{name} loaded {loaded} of {len(ids)} keys")
            for key_id in ids:
                if resolver.resolve_versions_sync(key_id).current_public != expected[key_id]:
                    raise SystemExit(f"{name}: wrong key for {key_id}")
        counts = dict(calls.counts)
        if name == "ours.preload.no_batch_api":
            counts["BatchGetSecretValue (refused)"] = 1
        return elapsed, counts

    def sequential() -> tuple[float, dict[str, int]]:
        client = client_of(moto)
        calls = Calls(client)
        t0 = time.perf_counter()
        for key_id in ids:
            value = client.get_secret_value(SecretId=TEMPLATE.replace("{key_id}", key_id))
            tenuo_core.SigningKey.from_bytes(base64.b64decode(value["SecretString"]))
        return time.perf_counter() - t0, dict(calls.counts)

    variants = {
        "ours.preload_all": lambda: ours("ours.preload_all"),
        "ours.preload": lambda: ours("ours.preload"),
        "ours.preload.no_batch_api": lambda: ours("ours.preload.no_batch_api"),
        "baseline.sequential_get": sequential,
    }
    results: dict[str, dict[str, Any]] = {}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):  # interleaved, so every variant sees the same noise
        for name, run in variants.items():
            elapsed, counts = run()
            times[name].append(elapsed)
            results[name] = {"calls": counts}
    for name in variants:
        best = min(times[name])
        results[name].update({"best_s": best, "all_s": times[name],
                              "per_key_s": best / len(ids)})
    base = results["baseline.sequential_get"]["best_s"]
    for name in variants:
        results[name]["speedup_vs_sequential"] = base / results[name]["best_s"]
    return results


def bench_warm(moto: MotoServer, keys: dict[str, Any], batches: int, n: int) -> dict[str, Any]:
    key_id, key = next(iter(keys.items()))
    holder = key.public_key
    out: dict[str, Any] = {}
    with AWSSecretsManagerKeyResolver(TEMPLATE, client=client_of(moto), cache=POLICY) as resolver:
        resolver.preload([key_id])
        held = resolver.resolve_versions_sync(key_id)
        floor = {key_id: key}
        variants = {  # name -> n calls -> elapsed ns
            "floor.dict_get": partial(time_1, floor.get, key_id),
            "ours.resolve_sync": partial(time_1, resolver.resolve_sync, key_id),
            "ours.resolve_for_holder_sync": partial(
                time_2, resolver.resolve_for_holder_sync, key_id, holder),
        }
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(batches):
            for name, batch in variants.items():
                samples[name].append(without_gc(batch, n) / n)
        if resolver.resolve_versions_sync(key_id) is not held:
            raise SystemExit("the warm entry was reloaded during timing")
    for name, values in samples.items():
        median, p10, p90 = spread(values)
        out[name] = {"median_ns": median, "p10_ns": p10, "p90_ns": p90,
                     "calls_per_batch": n, "batches": batches}
    return out


def report(results: dict[str, Any], meta: dict[str, Any]) -> None:
    print(f"AWS Secrets Manager resolver on moto_server {meta['moto']} ({meta['endpoint']}), "
          f"python {meta['python']}, {meta['cpus']} CPU(s), {meta['keys']} keys")
    print()
    cold = results["cold"]
    print(f"{'cold path':<44} {'p50':>10} {'p90':>10}  calls per key")
    print("-" * 90)
    ours = cold["ours.resolve"]
    per_key = ", ".join(f"{k} {v:g}" for k, v in sorted(ours["calls_per_key"].items()))
    print(f"  {'ours: await resolve(key_id), cold':<42} {_fmt(ours['p50_s']):>10} "
          f"{_fmt(ours['p90_s']):>10}  {per_key}")
    bare = cold["baseline.get_secret_value"]
    print(f"  {'bare boto3 get_secret_value':<42} {_fmt(bare['p50_s']):>10} "
          f"{_fmt(bare['p90_s']):>10}  GetSecretValue 1")
    print()
    print(f"{'preload of ' + str(meta['keys']) + ' keys (best of ' + str(meta['rounds']) + ')':<44}"
          f" {'wall':>10} {'per key':>10} {'vs seq.':>8}  API calls")
    print("-" * 90)
    for name, r in results["preload"].items():
        calls = ", ".join(f"{k} {v}" for k, v in sorted(r["calls"].items()))
        print(f"  {name:<42} {_fmt(r['best_s']):>10} {_fmt(r['per_key_s']):>10} "
              f"{r['speedup_vs_sequential']:>7.1f}x  {calls}")
    print()
    print(f"{'warm (memory only)':<44} {'median':>10} {'p10':>10} {'p90':>10}")
    print("-" * 90)
    for name, r in results["warm"].items():
        print(f"  {name:<42} {_fmt(r['median_ns'] / 1e9):>10} {_fmt(r['p10_ns'] / 1e9):>10} "
              f"{_fmt(r['p90_ns'] / 1e9):>10}")


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, "short run for CI smoke tests").parse_args(argv)
    # The no-batch variant triggers the (expected) fallback warning once per round.
    logging.getLogger("tenuo_keys").setLevel(logging.ERROR)
    started = time.perf_counter()
    count = 200 if args.quick else 1000
    rounds = 1 if args.quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-aws-") as tmp:
        moto = MotoServer(Path(tmp)).start()
        try:
            keys = seed(moto, count)
            results = {
                "cold": bench_cold(moto, keys, 21 if args.quick else 101),
                "preload": bench_preload(moto, keys, rounds),
                "warm": bench_warm(moto, keys, 11 if args.quick else 31,
                                   20_000 if args.quick else 100_000),
            }
        finally:
            moto.stop()
    meta = run_meta(started, "moto", "boto3", "tenuo_keys",
                    quick=args.quick, keys=count, rounds=rounds, endpoint=moto.endpoint)
    report(results, meta)
    return finish(args.json, meta, results)


if __name__ == "__main__":
    exit_with(main)
