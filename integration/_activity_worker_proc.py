"""A verify-only activity worker in its own process, for split-deployment tests.

Usage, from the repository root::

    python -m integration._activity_worker_proc TARGET NAMESPACE TASK_QUEUE ROOT_PUBLIC_KEY_B64 \
        [REPLAY_STORE_URL REPLAY_PROTECTION]

``REPLAY_STORE_URL`` (``redis://...``) shares the replay store with other
workers (``-``: this process's own in-memory store); ``REPLAY_PROTECTION`` is
``run`` or ``strict``. Prints ``ready`` once polling, and runs until terminated.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys

import tenuo_core
from temporalio.client import Client
from temporalio.worker import Worker

from integration import _plugin_workflows as wf
from tenuo_temporal import RedisReplayStore, TenuoPluginConfig, TenuoTemporalPlugin


async def main(target: str, namespace: str, queue: str, root_b64: str,
               store_url: str | None = None, mode: str = "run") -> None:
    root = tenuo_core.PublicKey.from_bytes(base64.b64decode(root_b64))
    store = {"replay_store": RedisReplayStore(store_url)} if store_url not in (None, "-") \
        else {}
    replay = {"replay_protection": True if mode == "run" else mode}
    plugin = TenuoTemporalPlugin(TenuoPluginConfig(trusted_roots=[root], **store, **replay))
    client = await Client.connect(target, namespace=namespace, plugins=[plugin])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Worker(client, task_queue=queue, activities=[wf.read_file]):
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
    sys.stdout.flush()
    os._exit(0)
