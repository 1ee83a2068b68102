"""Least privilege by stage: a pipeline delegates narrower warrants to child workflows.

The orchestrator's warrant may read anything under /data and write under
/data/out. Each stage runs as a child workflow on its own key with only what
it needs: the extractor may only read /data/raw, the publisher may only write
/data/out/published. A stage that reaches outside its slice is denied, and an
attempt to delegate a tool the parent does not hold is refused at mint time.

Run: ``python examples/delegation.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    import tenuo_core

    from tenuo_keys import StaticKeyResolver
    from tenuo_temporal import (
        TenuoPluginConfig,
        TenuoTemporalPlugin,
        execute_workflow_authorized,
        tenuo_execute_child_workflow,
    )
    from tenuo_temporal.testing import decide, exit_with_verdict, local_server

TIMEOUT = {"start_to_close_timeout": timedelta(seconds=30)}


@activity.defn
async def read_file(path: str) -> str:
    return f"rows of {path}"


@activity.defn
async def write_file(path: str, body: str) -> int:
    return len(body)


@workflow.defn
class Extract:
    @workflow.run
    async def run(self, path: str) -> str:
        return await workflow.execute_activity(read_file, path, **TIMEOUT)


@workflow.defn
class Publish:
    @workflow.run
    async def run(self, path: str, body: str) -> int:
        return await workflow.execute_activity(write_file, args=[path, body], **TIMEOUT)


@workflow.defn
class Pipeline:
    @workflow.run
    async def run(self, source: str, target: str) -> str:
        wid = workflow.info().workflow_id
        rows = await tenuo_execute_child_workflow(
            Extract.run, tools=["read_file"], ttl_seconds=120, child_key_id="extractor",
            constraints={"read_file": {"path": tenuo_core.Subpath("/data/raw")}},
            args=[source], id=f"{wid}-extract")
        size = await tenuo_execute_child_workflow(
            Publish.run, tools=["write_file"], ttl_seconds=120, child_key_id="publisher",
            constraints={"write_file": {"path": tenuo_core.Subpath("/data/out/published"),
                                        "body": tenuo_core.Wildcard()}},
            args=[target, rows], id=f"{wid}-publish")
        return f"published {size} bytes to {target}"


@workflow.defn
class GreedyPipeline:
    """Tries to hand a stage a tool the orchestrator was never granted."""

    @workflow.run
    async def run(self) -> str:
        return await tenuo_execute_child_workflow(
            Extract.run, tools=["read_file", "drop_table"], args=["/data/raw/a.csv"],
            id=f"{workflow.info().workflow_id}-greedy")


async def attempt(label: str, run: Awaitable[Any]) -> bool:
    """Run one workflow, print what Tenuo decided, and return whether it was allowed."""
    return (await decide(label, run)).allowed


async def main() -> list[bool]:
    issuer = tenuo_core.SigningKey.generate()
    keys = {name: tenuo_core.SigningKey.generate()
            for name in ("orchestrator", "extractor", "publisher")}
    warrant = tenuo_core.Warrant.issue(
        keypair=issuer, ttl_seconds=600, holder=keys["orchestrator"].public_key,
        capabilities={
            "read_file": {"path": tenuo_core.Subpath("/data")},
            "write_file": {"path": tenuo_core.Subpath("/data/out"), "body": tenuo_core.Wildcard()},
        })
    os.environ.setdefault("TENUO_ENV", "development")
    plugin = TenuoTemporalPlugin(TenuoPluginConfig(
        key_resolver=StaticKeyResolver(keys), trusted_roots=[issuer.public_key]))
    async with local_server() as server:
        print(server)
        client = await server.connect(plugins=[plugin])
        queue = f"pipeline-{uuid.uuid4().hex[:6]}"
        worker = Worker(client, task_queue=queue,
                        workflows=[Pipeline, GreedyPipeline, Extract, Publish],
                        activities=[read_file, write_file])

        def run(fn, *args):
            return execute_workflow_authorized(
                client, fn, workflow_id=f"pipeline-{uuid.uuid4().hex[:8]}", warrant=warrant,
                key_id="orchestrator", args=list(args), task_queue=queue)

        async with worker:
            return [
                await attempt("pipeline /data/raw/sales.csv -> /data/out/published/sales.csv",
                              run(Pipeline.run, "/data/raw/sales.csv",
                                  "/data/out/published/sales.csv")),
                await attempt("extract stage reading /data/hr/salaries.csv (outside /data/raw)",
                              run(Pipeline.run, "/data/hr/salaries.csv",
                                  "/data/out/published/x.csv")),
                await attempt("publish stage writing /data/out/internal.csv",
                              run(Pipeline.run, "/data/raw/sales.csv", "/data/out/internal.csv")),
                await attempt("delegating drop_table, which the orchestrator never held",
                              run(GreedyPipeline.run)),
            ]


if __name__ == "__main__":
    # The SDK logs each denial with a traceback; the account above says it all.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    exit_with_verdict(asyncio.run(main()), expected=[True, False, False, False])
