"""Tenant isolation: one workflow type, one worker, two tenants' warrants.

Each tenant's workflow carries its own warrant, held by its own key, scoped to
its own prefix. The same code reading the other tenant's data is denied, and
a tenant cannot borrow the other's key id to sign for its warrant.

Run: ``python examples/multi_warrant.py``.
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
    from tenuo_temporal import TenuoPluginConfig, TenuoTemporalPlugin, execute_workflow_authorized
    from tenuo_temporal.testing import decide, exit_with_verdict, local_server


@activity.defn
async def fetch_invoice(tenant_path: str) -> str:
    return f"invoice at {tenant_path}"


@workflow.defn
class Billing:
    @workflow.run
    async def run(self, path: str) -> str:
        return await workflow.execute_activity(
            fetch_invoice, path, start_to_close_timeout=timedelta(seconds=30))


async def attempt(label: str, run: Awaitable[Any]) -> bool:
    """Run one workflow, print what Tenuo decided, and return whether it was allowed."""
    return (await decide(label, run)).allowed


async def main() -> list[bool]:
    issuer = tenuo_core.SigningKey.generate()
    os.environ.setdefault("TENUO_ENV", "development")
    warrants = {}
    for tenant in ("acme", "globex"):
        key = tenuo_core.SigningKey.generate()
        os.environ[f"TENUO_KEY_{tenant}"] = encode_signing_key(key)
        warrants[tenant] = tenuo_core.Warrant.issue(
            keypair=issuer, ttl_seconds=600, holder=key.public_key,
            capabilities={"fetch_invoice": {
                "tenant_path": tenuo_core.Subpath(f"/tenants/{tenant}")}})
    plugin = TenuoTemporalPlugin(TenuoPluginConfig(
        key_resolver=EnvKeyResolver(), trusted_roots=[issuer.public_key]))
    async with local_server() as server:
        print(server)
        client = await server.connect(plugins=[plugin])
        queue = f"billing-{uuid.uuid4().hex[:6]}"
        worker = Worker(client, task_queue=queue, workflows=[Billing],
                        activities=[fetch_invoice])

        def run(tenant, key_id, path):
            return execute_workflow_authorized(
                client, Billing.run, workflow_id=f"{tenant}-{uuid.uuid4().hex[:8]}",
                warrant=warrants[tenant], key_id=key_id, args=[path], task_queue=queue)

        async with worker:
            return list(await asyncio.gather(
                attempt("acme reads /tenants/acme/2026-11.pdf",
                        run("acme", "acme", "/tenants/acme/2026-11.pdf")),
                attempt("globex reads /tenants/globex/2026-11.pdf",
                        run("globex", "globex", "/tenants/globex/2026-11.pdf")),
                attempt("acme's workflow reads /tenants/globex/2026-11.pdf",
                        run("acme", "acme", "/tenants/globex/2026-11.pdf")),
                attempt("acme's warrant signed with globex's key id",
                        run("acme", "globex", "/tenants/acme/2026-11.pdf")),
            ))


if __name__ == "__main__":
    # The SDK logs each denial with a traceback; the account above says it all.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    exit_with_verdict(asyncio.run(main()), expected=[True, True, False, False])
