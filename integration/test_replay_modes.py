"""Replay protection's two modes on a real Temporal dev server.

Ed25519 is deterministic and a PoP names no workflow unless the warrant is
workflow-scoped, so two workflows that share one warrant and make the same
call within one 30-second PoP window present byte-identical PoPs.

* By default (``replay_protection=True``, i.e. ``"run"``) each attempt of
  each activity is authorized once: both workflows run, as with the 0.3.3
  reference. Headers copied onto another workflow are then not refused by
  the replay check; a workflow-scoped warrant (``require_workflow_binding``)
  is what refuses them.
* ``replay_protection="strict"``: a PoP belongs to the first workflow that
  presents it, so the second workflow's identical call is refused
  (``TENUO_POP_REPLAYED``), and so are copied headers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import tenuo_core
from tenuo_core import Exact, Subpath

from integration import _plugin_workflows as wf
from integration.support.copy_headers import CopyHeaders
from integration.support.temporal_helpers import connect, denial_of, uid, worker
from tenuo_keys import StaticKeyResolver
from tenuo_temporal import TenuoPluginConfig, execute_workflow_authorized

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
PATH = "/data/shared.csv"


def config(**overrides: Any) -> TenuoPluginConfig:
    return TenuoPluginConfig(key_resolver=StaticKeyResolver({"agent1": HOLDER}),
                             trusted_roots=[ROOT.public_key], **overrides)


def warrant(capabilities: dict[str, Any] | None = None) -> Any:
    return tenuo_core.Warrant.issue(
        keypair=ROOT, capabilities=capabilities or {"read_file": {"path": Subpath("/data")}},
        ttl_seconds=600, holder=HOLDER.public_key)


async def one_pop_window(margin: float = 6.0) -> None:
    """Wait, if needed, so the next ``margin`` seconds fall in one 30-second PoP window."""
    left = 30 - time.time() % 30
    if left < margin:
        await asyncio.sleep(left + 0.2)


async def outcome(run: Any) -> Any:
    try:
        return await run
    except Exception as error:  # the denial is the outcome
        cause = error
        while getattr(cause, "cause", None) is not None:
            cause = cause.cause  # type: ignore[attr-defined]
        return getattr(cause, "type", repr(error))


async def two_workflows_same_call(env: Any, mode: Any
                                  ) -> tuple[list[Any], list[tuple[str, Any]]]:
    client = await connect(env, config(replay_protection=mode))
    queue, shared = uid("replay-mode"), warrant()
    mark = len(wf.CALLS)
    async with worker(client, queue, [wf.ReadWorkflow], [wf.read_file]):
        await one_pop_window()
        results = await asyncio.gather(*(outcome(execute_workflow_authorized(
            client, wf.ReadWorkflow.run, workflow_id=uid(f"fleet-{i}"), warrant=shared,
            key_id="agent1", args=[PATH], task_queue=queue)) for i in range(2)))
    return list(results), wf.CALLS[mark:]


async def test_by_default_two_concurrent_workflows_under_one_warrant_both_run(
        temporal_env: Any) -> None:
    results, calls = await two_workflows_same_call(temporal_env, True)
    assert results == [f"contents of {PATH}"] * 2
    assert calls == [("read_file", (PATH,))] * 2


async def test_strict_mode_refuses_the_second_of_the_same_pair(temporal_env: Any) -> None:
    results, calls = await two_workflows_same_call(temporal_env, "strict")
    assert sorted(results, key=str) == sorted(
        [f"contents of {PATH}", "TENUO_POP_REPLAYED"], key=str), results
    assert calls == [("read_file", (PATH,))]


@pytest.mark.parametrize("mode", [True, "strict"], ids=["run", "strict"])
async def test_copied_headers_under_a_workflow_scoped_warrant_are_refused_in_both_modes(
        temporal_env: Any, mode: Any) -> None:
    victim, thief = uid("victim"), uid("thief")
    copier = CopyHeaders(victim, thief)
    client = await connect(temporal_env, config(replay_protection=mode,
                                                require_workflow_binding=True),
                           interceptors=[copier])
    queue = uid("scoped")
    scoped = warrant({"read_file": {"path": Subpath("/data"),
                                    "_workflow_namespace": Exact(client.namespace),
                                    "_workflow_id": Exact(victim)}})
    mark = len(wf.CALLS)
    async with worker(client, queue, [wf.ReadWorkflow], [wf.read_file]):
        ok = await execute_workflow_authorized(
            client, wf.ReadWorkflow.run, workflow_id=victim, warrant=scoped, key_id="agent1",
            args=[PATH], task_queue=queue)
        error = await denial_of(client.execute_workflow(
            wf.ReadWorkflow.run, PATH, id=thief, task_queue=queue))
    assert ok == f"contents of {PATH}"
    # The PoP was signed over the victim's workflow id; the thief's differs.
    assert error.type in ("TENUO_POP_INVALID", "TENUO_CONSTRAINT_VIOLATION") \
        and error.non_retryable, error
    assert wf.CALLS[mark:] == [("read_file", (PATH,))]


async def test_by_default_copied_headers_of_an_unscoped_warrant_are_not_a_replay(
        temporal_env: Any) -> None:
    """The trade-off of the default, shown: the threat strict mode covers.

    A warrant that names no workflow, copied with its PoP onto another
    workflow within the PoP's life, is the same call by the same holder as far
    as the PoP can tell. The default mode lets it run (as the 0.3.3 reference
    does); strict mode refuses it (``test_plugin.py``,
    ``test_pop_replayed_onto_another_workflow_is_refused``).
    """
    victim, thief = uid("victim"), uid("thief")
    copier = CopyHeaders(victim, thief)
    client = await connect(temporal_env, config(), interceptors=[copier])
    queue = uid("unscoped")
    mark = len(wf.CALLS)
    async with worker(client, queue, [wf.ReadWorkflow], [wf.read_file]):
        await one_pop_window(10.0)
        ok = await execute_workflow_authorized(
            client, wf.ReadWorkflow.run, workflow_id=victim, warrant=warrant(), key_id="agent1",
            args=[PATH], task_queue=queue)
        copied = await client.execute_workflow(wf.ReadWorkflow.run, PATH, id=thief,
                                               task_queue=queue)
    assert ok == copied == f"contents of {PATH}"
    assert wf.CALLS[mark:] == [("read_file", (PATH,))] * 2
