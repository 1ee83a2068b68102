"""A workflow-only (signing) worker in its own process, for crash tests.

Usage, from the repository root::

    python -m integration._fault_worker_proc TARGET NAMESPACE TASK_QUEUE ENV_PREFIX RECORD_FILE

Holder keys come from environment variables ``ENV_PREFIX<key_id>``
(``EnvKeyResolver``), loaded before the worker polls. Every PoP this process
signs is appended to ``RECORD_FILE`` as one JSON line
``{"pid", "workflow_id", "run_id", "path", "pop", "replaying"}``, flushed at
once, so the record survives a ``kill -9``. The recorder is a client
interceptor given before the plugin, so its workflow outbound interceptor runs
after Tenuo's and sees the signed headers.

Prints ``ready <pid>`` once polling, and runs until SIGTERM (or SIGKILL).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import timedelta
from typing import Any, TextIO

import temporalio.client
import temporalio.worker
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from integration import _fault_workflows as fw
from tenuo_keys import EnvKeyResolver
from tenuo_temporal import TenuoPluginConfig, TenuoTemporalPlugin

POP = "x-tenuo-pop"


class _RecordOutbound(temporalio.worker.WorkflowOutboundInterceptor):
    def __init__(self, next: temporalio.worker.WorkflowOutboundInterceptor, out: TextIO) -> None:
        super().__init__(next)
        self._out = out

    def start_activity(self, input: temporalio.worker.StartActivityInput) -> Any:
        pop = input.headers.get(POP)
        info = workflow.info()
        line = json.dumps({
            "pid": os.getpid(),
            "workflow_id": info.workflow_id,
            "run_id": info.run_id,
            "path": input.args[0] if input.args else None,
            "pop": pop.data.decode() if pop is not None else None,
            "replaying": workflow.unsafe.is_replaying(),
        })
        with workflow.unsafe.sandbox_unrestricted():
            self._out.write(line + "\n")
            self._out.flush()
        return super().start_activity(input)


class PopRecorder(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    """Records the PoP header of every activity this worker schedules."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        out = self.out

        class Inbound(temporalio.worker.WorkflowInboundInterceptor):
            def init(self, outbound: temporalio.worker.WorkflowOutboundInterceptor) -> None:
                super().init(_RecordOutbound(outbound, out))

        return Inbound


async def main(target: str, namespace: str, queue: str, prefix: str, record: str) -> None:
    resolver = EnvKeyResolver(prefix)
    if resolver.preload_all(strict=True) < 1:
        raise SystemExit(f"no keys under {prefix!r}")
    plugin = TenuoTemporalPlugin(TenuoPluginConfig(key_resolver=resolver))
    out = open(record, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    client = await Client.connect(target, namespace=namespace, interceptors=[PopRecorder(out)],
                                  plugins=[plugin])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    # A dead worker's sticky queue is abandoned after this long; 1 s keeps
    # the hand-over to the next process quick (the SDK default is 10 s).
    async with Worker(client, task_queue=queue, workflows=[fw.StagedWorkflow],
                      sticky_queue_schedule_to_start_timeout=timedelta(seconds=1)):
        print(f"ready {os.getpid()}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    status = 0
    try:
        asyncio.run(main(*sys.argv[1:6]))
    except BaseException as exc:  # report, then leave without interpreter teardown
        print(f"worker failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
