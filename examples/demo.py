"""The tenuo-keys demo: Tenuo authorization on a real Temporal server.

Run ``make demo`` (or ``python examples/demo.py``). It uses a Temporal server
on localhost:7233 if one is running, otherwise starts an embedded dev server.
The holder key lives in ``TENUO_KEY_agent1`` and is served by
``EnvKeyResolver``; the workflow worker signs a Proof-of-Possession for every
activity, and the activity worker verifies it before the activity runs.

Shown:
* plain ``workflow.execute_activity()``, authorized transparently;
* ``AuthorizedWorkflow.execute_authorized_activity()``;
* denials: a path outside the warrant, a tool the warrant does not grant,
  and a workflow started without a warrant.
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

    from tenuo_keys import EnvKeyResolver, encode_signing_key
    from tenuo_temporal import (
        AuthorizedWorkflow,
        TenuoPluginConfig,
        TenuoTemporalPlugin,
        execute_workflow_authorized,
    )
    from tenuo_temporal.testing import decide, exit_with_verdict, local_server

TIMEOUT = {"start_to_close_timeout": timedelta(seconds=30)}


@activity.defn
async def read_file(path: str) -> str:
    return f"<contents of {path}>"


@activity.defn
async def delete_file(path: str) -> str:
    return f"deleted {path}"


@workflow.defn
class TransparentWorkflow:
    """Ordinary Temporal code: the plugin signs behind execute_activity()."""

    @workflow.run
    async def run(self, tool: str, path: str) -> str:
        return await workflow.execute_activity(tool, path, **TIMEOUT)


@workflow.defn
class ReportWorkflow(AuthorizedWorkflow):
    """Fails fast when started without a warrant."""

    @workflow.run
    async def run(self, path: str) -> str:
        return await self.execute_authorized_activity(read_file, path, summary="monthly report",
                                                      **TIMEOUT)


async def attempt(label: str, run: Awaitable[Any]) -> bool:
    """Run one workflow, print what Tenuo decided, and return whether it was allowed."""
    return (await decide(label, run)).allowed


async def main() -> list[bool]:
    issuer = tenuo_core.SigningKey.generate()   # the control plane's key
    holder = tenuo_core.SigningKey.generate()   # the agent's holder key
    os.environ.setdefault("TENUO_ENV", "development")
    os.environ["TENUO_KEY_agent1"] = encode_signing_key(holder)
    warrant = tenuo_core.Warrant.issue(
        keypair=issuer, ttl_seconds=600, holder=holder.public_key,
        capabilities={"read_file": {"path": tenuo_core.Subpath("/data/reports")}},
    )
    print(f"warrant {warrant.id}: read_file under /data/reports, held by key 'agent1'\n")
    plugin = TenuoTemporalPlugin(TenuoPluginConfig(
        key_resolver=EnvKeyResolver(), trusted_roots=[issuer.public_key]))
    async with local_server() as server:
        print(server)
        client = await server.connect(plugins=[plugin])
        queue = f"demo-{uuid.uuid4().hex[:6]}"
        worker = Worker(client, task_queue=queue, workflows=[TransparentWorkflow, ReportWorkflow],
                        activities=[read_file, delete_file])

        def run(workflow_fn, *args, authorized=True):
            wid = f"demo-{uuid.uuid4().hex[:8]}"
            if not authorized:
                return client.execute_workflow(workflow_fn, args=list(args), id=wid,
                                               task_queue=queue)
            return execute_workflow_authorized(
                client, workflow_fn, workflow_id=wid, warrant=warrant, key_id="agent1",
                args=list(args), task_queue=queue)

        async with worker:
            return [
                await attempt("execute_activity(read_file, /data/reports/2026-11.csv)",
                              run(TransparentWorkflow.run, "read_file",
                                  "/data/reports/2026-11.csv")),
                await attempt("execute_authorized_activity(read_file, /data/reports/q3.csv)",
                              run(ReportWorkflow.run, "/data/reports/q3.csv")),
                await attempt("execute_activity(read_file, /data/reports/../../etc/passwd)",
                              run(TransparentWorkflow.run, "read_file",
                                  "/data/reports/../../etc/passwd")),
                await attempt("execute_activity(delete_file, /data/reports/2026-11.csv)",
                              run(TransparentWorkflow.run, "delete_file",
                                  "/data/reports/2026-11.csv")),
                await attempt("ReportWorkflow started without a warrant",
                              run(ReportWorkflow.run, "/data/reports/q3.csv", authorized=False)),
            ]


if __name__ == "__main__":
    # The SDK logs each denial with a traceback; the account above says it all.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    exit_with_verdict(asyncio.run(main()), expected=[True, True, False, False, False])
