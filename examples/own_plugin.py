"""Tenuo's interceptors in your own plugin, next to temporalio's OpenTelemetry plugin.

``TenuoTemporalPlugin`` is the one-line way in. A platform team that already
ships its own ``SimplePlugin`` composes Tenuo into it instead: the worker
interceptor (with its local activities and the sandbox passthrough) and the
client interceptor, beside any other plugin the workers use.

Run: ``python examples/own_plugin.py``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio import activity, workflow
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin, create_tracer_provider
from temporalio.plugin import SimplePlugin
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    import tenuo_core

    from tenuo_keys import StaticKeyResolver
    from tenuo_temporal import (
        TenuoClientInterceptor,
        TenuoPluginConfig,
        TenuoWorkerInterceptor,
        execute_workflow_authorized,
        workflow_runner,
    )
    from tenuo_temporal.testing import decide, exit_with_verdict, local_server


@activity.defn
async def read_file(path: str) -> str:
    return f"contents of {path}"


@workflow.defn
class Reader:
    @workflow.run
    async def run(self, path: str) -> str:
        return await workflow.execute_activity(
            read_file, path, start_to_close_timeout=timedelta(seconds=30))


class PlatformPlugin(SimplePlugin):
    """The platform team's plugin: Tenuo's authorization plus whatever else it ships."""

    def __init__(self, config: TenuoPluginConfig, task_queue: str) -> None:
        tenuo = TenuoWorkerInterceptor(config, task_queue=task_queue)
        super().__init__(
            "example.PlatformPlugin",
            interceptors=[TenuoClientInterceptor(), tenuo],
            activities=tenuo.local_activities(),
            workflow_runner=lambda runner: workflow_runner(runner),
        )


async def attempt(label: str, run: Awaitable[Any]) -> bool:
    """Run one workflow, print what Tenuo decided, and return whether it was allowed."""
    return (await decide(label, run)).allowed


async def main() -> list[bool]:
    issuer, holder = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    warrant = tenuo_core.Warrant.issue(
        keypair=issuer, ttl_seconds=600, holder=holder.public_key,
        capabilities={"read_file": {"path": tenuo_core.Subpath("/data/reports")}})
    config = TenuoPluginConfig(key_resolver=StaticKeyResolver({"agent": holder}),
                               trusted_roots=[issuer.public_key])
    queue = f"own-plugin-{uuid.uuid4().hex[:6]}"
    spans = InMemorySpanExporter()
    provider = create_tracer_provider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    plugins = [OpenTelemetryPlugin(add_temporal_spans=True), PlatformPlugin(config, queue)]
    async with local_server() as server:
        print(server)
        print("plugins: " + ", ".join(p.name() for p in plugins))
        client = await server.connect(plugins=plugins)

        def run(path: str) -> Awaitable[Any]:
            return execute_workflow_authorized(
                client, Reader.run, workflow_id=f"reader-{uuid.uuid4().hex[:8]}",
                warrant=warrant, key_id="agent", args=[path], task_queue=queue)

        async with Worker(client, task_queue=queue, workflows=[Reader],
                          activities=[read_file]):
            outcomes = [
                await attempt("read /data/reports/q3.csv", run("/data/reports/q3.csv")),
                await attempt("read /etc/passwd", run("/etc/passwd")),
            ]
    ran = [s.name for s in spans.get_finished_spans() if s.name.startswith("RunActivity")]
    print(f"OpenTelemetry traced {len(ran)} activity run(s) beside Tenuo: {sorted(set(ran))}")
    return outcomes


if __name__ == "__main__":
    # The SDK logs each denial with a traceback; the account above says it all.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    exit_with_verdict(asyncio.run(main()), expected=[True, False])
