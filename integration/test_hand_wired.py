"""Hand-composed wiring: the interceptors without the plugin authorize exactly as the plugin.

``TenuoWorkerInterceptor(config)`` on a worker (with ``local_activities()``
and ``workflow_runner()``) and ``TenuoClientInterceptor()`` on a client, with
no ``TenuoTemporalPlugin`` anywhere, run the same scenarios as the plugin on a
real dev server: allowed, denied by a constraint, denied for a missing
warrant, an ``AuthorizedWorkflow`` started without one, and delegation to a
child workflow. Each scenario's outcome, the activities that ran and the audit
decisions must be the same for both wirings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import tenuo_core
from temporalio.client import Client
from temporalio.worker import Worker
from tenuo_core import Subpath

from integration import _plugin_workflows as wf
from integration.support.temporal_helpers import uid
from tenuo_keys import StaticKeyResolver
from tenuo_temporal import (
    AuditEvent,
    TenuoClientInterceptor,
    TenuoPluginConfig,
    TenuoTemporalPlugin,
    TenuoWorkerInterceptor,
    execute_workflow_authorized,
    workflow_runner,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
CHILD = tenuo_core.SigningKey.generate()
WORKFLOWS = [wf.ReadWorkflow, wf.GuardedWorkflow, wf.ChildReader, wf.DelegatingWorkflow]
ACTIVITIES = [wf.read_file]


def read_warrant() -> Any:
    return tenuo_core.Warrant.issue(
        keypair=ROOT, capabilities={"read_file": {"path": Subpath("/data")}},
        ttl_seconds=600, holder=HOLDER.public_key)


@asynccontextmanager
async def wired(env: Any, how: str, events: list[AuditEvent]) -> AsyncIterator[tuple[Client, str]]:
    """A client and a running worker, wired by the plugin or by hand."""
    config = TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent1": HOLDER, "child1": CHILD}),
        trusted_roots=[ROOT.public_key], audit_callback=events.append)
    target = env.client.service_client.config.target_host
    queue = uid(f"wired-{how}")
    if how == "plugin":
        client = await Client.connect(target, namespace=env.client.namespace,
                                      plugins=[TenuoTemporalPlugin(config)])
        async with Worker(client, task_queue=queue, workflows=WORKFLOWS,
                          activities=ACTIVITIES):
            yield client, queue
        return
    client = await Client.connect(target, namespace=env.client.namespace,
                                  interceptors=[TenuoClientInterceptor()])
    tenuo = TenuoWorkerInterceptor(config, task_queue=queue)
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS,
                      activities=[*ACTIVITIES, *tenuo.local_activities()],
                      interceptors=[tenuo], workflow_runner=workflow_runner()):
        yield client, queue


async def outcome(run: Any) -> Any:
    try:
        return await run
    except Exception as error:  # the denial is the outcome
        cause: Any = error
        while getattr(cause, "cause", None) is not None:
            cause = cause.cause
        return getattr(cause, "type", repr(error))


async def scenarios(env: Any, how: str) -> tuple[list[Any], list[Any], list[tuple[str, Any]]]:
    events: list[AuditEvent] = []
    mark = len(wf.CALLS)
    async with wired(env, how, events) as (client, queue):
        def authorized(run_fn: Any, *args: Any, parent: str = "wf") -> Any:
            return outcome(execute_workflow_authorized(
                client, run_fn, workflow_id=uid(parent), warrant=read_warrant(),
                key_id="agent1", args=list(args), task_queue=queue))

        results = [
            await authorized(wf.ReadWorkflow.run, "/data/a.csv"),
            await authorized(wf.ReadWorkflow.run, "/etc/passwd"),
            await outcome(client.execute_workflow(wf.ReadWorkflow.run, "/data/a.csv",
                                                  id=uid("bare"), task_queue=queue)),
            await outcome(client.execute_workflow(wf.GuardedWorkflow.run, "/data/a.csv",
                                                  id=uid("guarded"), task_queue=queue)),
            await authorized(wf.DelegatingWorkflow.run, "/data/reports/q3.csv", "child1",
                             "/data/reports", parent="parent"),
            await authorized(wf.DelegatingWorkflow.run, "/data/private/x", "child1",
                             "/data/reports", parent="parent"),
        ]
    decisions = [(e.decision, e.tool, e.reason) for e in events if e.activity_id is not None]
    return results, decisions, wf.CALLS[mark:]


async def test_hand_wired_interceptors_authorize_and_deny_exactly_as_the_plugin(temporal_env):
    by_plugin = await scenarios(temporal_env, "plugin")
    by_hand = await scenarios(temporal_env, "hand")
    assert by_plugin[0] == [
        "contents of /data/a.csv", "TENUO_CONSTRAINT_VIOLATION", "TENUO_WARRANT_MISSING",
        "TENUO_WARRANT_MISSING", "contents of /data/reports/q3.csv",
        "TENUO_CONSTRAINT_VIOLATION"]
    assert by_plugin[2] == [("read_file", ("/data/a.csv",)),
                            ("read_file", ("/data/reports/q3.csv",))]
    assert by_hand == by_plugin


async def test_the_client_interceptor_alone_lets_the_helpers_start_workflows(temporal_env):
    target = temporal_env.client.service_client.config.target_host
    client = await Client.connect(target, namespace=temporal_env.client.namespace,
                                  interceptors=[TenuoClientInterceptor()])
    plain = await Client.connect(target, namespace=temporal_env.client.namespace)
    with pytest.raises(Exception, match="no TenuoTemporalPlugin"):
        await execute_workflow_authorized(
            plain, wf.ReadWorkflow.run, workflow_id=uid("nope"), warrant=read_warrant(),
            key_id="agent1", args=["/data/a.csv"], task_queue="unused")
    config = TenuoPluginConfig(key_resolver=StaticKeyResolver({"agent1": HOLDER}),
                               trusted_roots=[ROOT.public_key])
    tenuo, queue = TenuoWorkerInterceptor(config), uid("client-only")
    async with Worker(client, task_queue=queue, workflows=[wf.ReadWorkflow],
                      activities=ACTIVITIES, interceptors=[tenuo],
                      workflow_runner=workflow_runner()):
        assert await execute_workflow_authorized(
            client, wf.ReadWorkflow.run, workflow_id=uid("ok"), warrant=read_warrant(),
            key_id="agent1", args=["/data/a.csv"], task_queue=queue) == "contents of /data/a.csv"
