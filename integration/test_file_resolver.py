"""``FileKeyResolver`` on what a pod sees: Kubernetes' atomic writer, and a Temporal run.

* Kubernetes' atomic-writer sequence (``integration.support.k8s_volume``) is
  replayed 1,000 times while 8 threads read: every read returns one published
  version whole (its key and its ``.previous`` from the same version), never a
  torn file, a mixed pair or a wrong key.
* A Temporal workflow started under the old key keeps running after the
  volume rotates to a new key (the replaced key is held for its holder), and a
  new warrant for the new key works, on a real dev server.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import tenuo_core

from integration import _plugin_workflows as wf
from integration.support.k8s_volume import AtomicWriterVolume
from integration.support.temporal_helpers import connect, uid, worker
from tenuo_keys import CachePolicy, FileKeyResolver, decode_signing_key, encode_signing_key
from tenuo_temporal import TenuoPluginConfig, start_workflow_authorized

pytestmark = pytest.mark.integration

SWAPS = 1000
READERS = 8


def payload(current: Any, previous: Any) -> dict[str, bytes]:
    return {"agent1.key": encode_signing_key(current).encode(),
            "agent1.key.previous": encode_signing_key(previous).encode()}


def test_atomic_writer_swaps_never_show_a_torn_or_mixed_version(tmp_path: Path) -> None:
    # Version i holds key i and, as its .previous, key i - 1: a read that mixed two
    # published versions would pair keys that are not neighbours.
    keys = [tenuo_core.SigningKey.generate() for _ in range(SWAPS + 2)]
    index = {bytes(k.public_key_bytes()): i for i, k in enumerate(keys)}
    volume = AtomicWriterVolume(tmp_path / "secret")
    volume.publish(payload(keys[1], keys[0]))
    resolver = FileKeyResolver(volume.directory)
    done = threading.Event()
    reads, problems = [0] * READERS, []

    def read(slot: int) -> None:
        while not done.is_set():
            try:
                versions = resolver.fetch("agent1")
                # [current file, its .previous file, values remembered from earlier reads]
                current = index[bytes(decode_signing_key(
                    versions[0].material).public_key_bytes())]
                previous = index[bytes(decode_signing_key(
                    versions[1].material).public_key_bytes())]
            except Exception as exc:  # a torn file, or a key of no version: a failure
                problems.append(f"{type(exc).__name__}: {exc}")
                continue
            if previous != current - 1:
                problems.append(f"mixed: current {current} with previous {previous}")
            reads[slot] += 1

    threads = [threading.Thread(target=read, args=(slot,)) for slot in range(READERS)]
    for thread in threads:
        thread.start()
    try:
        for i in range(2, SWAPS + 2):
            volume.publish(payload(keys[i], keys[i - 1]))
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert problems == []
    assert all(n > 0 for n in reads), reads
    final = resolver.fetch("agent1")
    assert bytes(decode_signing_key(final[0].material).public_key_bytes()) == \
        bytes(keys[SWAPS + 1].public_key_bytes())


@pytest.mark.asyncio(loop_scope="session")
async def test_a_workflow_keeps_running_through_a_rotation_of_the_volume(temporal_env,
                                                                           tmp_path: Path):
    root = tenuo_core.SigningKey.generate()
    old, new = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    volume = AtomicWriterVolume(tmp_path / "secret")
    volume.publish({"agent1.key": encode_signing_key(old).encode()})
    resolver = FileKeyResolver(volume.directory, cache=CachePolicy(ttl=0.5, max_staleness=5))
    client = await connect(temporal_env, TenuoPluginConfig(
        key_resolver=resolver, trusted_roots=[root.public_key]))

    def warrant(holder: Any) -> Any:
        return tenuo_core.Warrant.issue(
            keypair=root, capabilities={"read_file": {"path": tenuo_core.Subpath("/data")}},
            ttl_seconds=600, holder=holder.public_key)

    queue = uid("file-rotation")
    async with worker(client, queue, [wf.InteractiveWorkflow], [wf.read_file]):
        in_flight = await start_workflow_authorized(
            client, wf.InteractiveWorkflow.run, workflow_id=uid("in-flight"),
            warrant=warrant(old), key_id="agent1", task_queue=queue)
        # Kubernetes publishes the rotated Secret: only the new key is in it.
        volume.publish({"agent1.key": encode_signing_key(new).encode()})
        for _ in range(100):  # until a refresh has read the new version
            if bytes((await resolver.resolve("agent1")).public_key_bytes()) == \
                    bytes(new.public_key_bytes()):
                break
            await asyncio.sleep(0.1)
        await in_flight.signal(wf.InteractiveWorkflow.choose, "/data/before.csv")
        assert await in_flight.result() == "contents of /data/before.csv"
        fresh = await start_workflow_authorized(
            client, wf.InteractiveWorkflow.run, workflow_id=uid("fresh"), warrant=warrant(new),
            key_id="agent1", task_queue=queue)
        await fresh.signal(wf.InteractiveWorkflow.choose, "/data/after.csv")
        assert await fresh.result() == "contents of /data/after.csv"
        # The replaced key is still held for warrants that name it.
        held = await resolver.resolve_for_holder("agent1", old.public_key)
        assert bytes(held.public_key_bytes()) == bytes(old.public_key_bytes())
