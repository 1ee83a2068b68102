"""``tenuo_complete_async_activity`` on a real dev server.

The activity is authorized like any other (its PoP is verified before it
runs), hands out its task token and raises ``CompleteAsyncError``. The test
then completes it from outside the worker through the helper: a good warrant
completes it; an untrusted, an expired, or a delegated warrant without its
chain is refused before the completion RPC, and the activity stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import tenuo_core
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from integration import _schedule_workflows as wf
from integration.support.temporal_helpers import connect, uid, worker
from tenuo_keys import ResolverConfigError, StaticKeyResolver
from tenuo_temporal import (
    ChainValidationError,
    HeaderError,
    TenuoPluginConfig,
    WarrantExpired,
    start_workflow_authorized,
    tenuo_complete_async_activity,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.from_bytes(bytes([91]) * 32)
STRANGER = tenuo_core.SigningKey.from_bytes(bytes([92]) * 32)
DELEGATOR = tenuo_core.SigningKey.from_bytes(bytes([93]) * 32)
HOLDER = tenuo_core.SigningKey.from_bytes(bytes([94]) * 32)


def mint(*, issuer: Any = ROOT, holder: Any = HOLDER, ttl: int = 600) -> Any:
    return tenuo_core.Warrant.issue(keypair=issuer, ttl_seconds=ttl, holder=holder.public_key,
                                    capabilities={"approve": {"request": tenuo_core.Wildcard()}})


@dataclass
class Pending:
    """A workflow waiting on its async activity, and that activity's task token."""

    client: Client
    queue: str
    handle: WorkflowHandle[Any, Any]
    token: bytes


@contextlib.asynccontextmanager
async def pending_approval(env: Any, request: str) -> AsyncIterator[Pending]:
    """Run ``AwaitApproval(request)`` on a plugin worker until its activity has gone async."""
    config = TenuoPluginConfig(key_resolver=StaticKeyResolver({"agent1": HOLDER}),
                               trusted_roots=[ROOT.public_key])
    client = await connect(env, config)
    queue = uid("async")
    workflow_id = uid("approval")
    token_ready = wf.TOKENS.setdefault(workflow_id, asyncio.get_running_loop().create_future())
    async with worker(client, queue, wf.WORKFLOWS, wf.ACTIVITIES):
        handle = await start_workflow_authorized(
            client, wf.AwaitApproval.run, request, id=workflow_id, warrant=mint(),
            key_id="agent1", task_queue=queue)
        token = await asyncio.wait_for(token_ready, 20)
        assert ("approve", (request,)) in wf.CALLS  # authorized, ran, went async
        yield Pending(client, queue, handle, token)


async def test_async_activity_completed_through_the_helper(temporal_env):
    async with pending_approval(temporal_env, "refund #7") as pending:
        client, queue, handle, token = (pending.client, pending.queue, pending.handle,
                                        pending.token)

        # Refused before the RPC: the activity stays open.
        with pytest.raises(ChainValidationError, match="UntrustedRoot"):
            await tenuo_complete_async_activity(token, "forged", mint(issuer=STRANGER),
                                                client=client, task_queue=queue)
        short = mint(ttl=1)
        await asyncio.sleep(2.1)
        assert short.is_expired()
        with pytest.raises(WarrantExpired):
            await tenuo_complete_async_activity(token, "late", short, client=client,
                                                task_queue=queue)
        parent = mint(holder=DELEGATOR)
        leaf = parent.attenuate({"approve": {"request": tenuo_core.Wildcard()}},
                                signing_key=DELEGATOR, ttl_seconds=300,
                                holder=HOLDER.public_key)
        with pytest.raises(HeaderError, match="warrant_chain"):
            await tenuo_complete_async_activity(token, "unchained", leaf, client=client,
                                                task_queue=queue)
        with pytest.raises(ResolverConfigError, match="no Tenuo worker for task queue"):
            await tenuo_complete_async_activity(token, "nowhere", mint(), client=client,
                                                task_queue=uid("unknown"))
        with pytest.raises(ResolverConfigError, match="client= is required"):
            await tenuo_complete_async_activity(token, "no client", mint(), task_queue=queue)
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

        # A delegated warrant with its chain (parents only) completes it.
        await tenuo_complete_async_activity(token, "approved", leaf, client=client,
                                            task_queue=queue, warrant_chain=[parent])
        assert await handle.result() == "approved"


async def test_completion_through_a_handle_uses_the_clients_plugin(temporal_env):
    """No task_queue, no config: the verifying config is the client's Tenuo plugin's."""
    async with pending_approval(temporal_env, "refund #8") as pending:
        activity = pending.client.get_async_activity_handle(task_token=pending.token)
        with pytest.raises(ChainValidationError, match="UntrustedRoot"):
            await tenuo_complete_async_activity(activity, "forged", mint(issuer=STRANGER),
                                                client=pending.client)
        await tenuo_complete_async_activity(activity, "approved", mint(), client=pending.client)
        assert await pending.handle.result() == "approved"
