"""Workflows that choose their warrants inside the workflow (per dispatch, grants, issuance, CAN).

Kept in their own module because the workflow sandbox re-imports the module
that defines a workflow. ``CALLS`` records each activity run.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    import tenuo_core

    from tenuo_temporal.workflow import (
        current_key_id,
        tenuo_continue_as_new,
        tenuo_execute_activity,
        workflow_grant,
        workflow_issue_execution,
    )

CALLS: list[tuple[str, tuple[object, ...]]] = []
FAST: dict[str, Any] = {"start_to_close_timeout": timedelta(seconds=20),
                        "retry_policy": RetryPolicy(maximum_attempts=1)}


@activity.defn
async def read_file(path: str) -> str:
    CALLS.append(("read_file", (path,)))
    return f"contents of {path}"


async def _outcome(call: Any) -> str:
    """The activity's result, or the Tenuo denial type that stopped it."""
    try:
        return str(await call)
    except ActivityError as error:
        cause = error.cause
        return cause.type or "" if isinstance(cause, ApplicationError) else repr(cause)
    except ApplicationError as error:  # refused in the workflow, before scheduling
        return error.type or ""


@workflow.defn
class GrantedReads:
    """Reads under a grant narrowed to ``narrow_to``, and once under its own warrant."""

    @workflow.run
    async def run(self, narrow_to: str, paths: list[str]) -> list[str]:
        grant = await workflow_grant(
            "read_file", {"path": tenuo_core.Subpath(narrow_to)}, ttl_seconds=120)
        key_id = current_key_id()
        outcomes = [await _outcome(tenuo_execute_activity(
            read_file, args=[path], warrant=grant, key_id=key_id, **FAST)) for path in paths]
        # The workflow's own warrant is unchanged by the grant.
        outcomes.append(await _outcome(tenuo_execute_activity(read_file, args=[paths[-1]],
                                                              **FAST)))
        return outcomes


@workflow.defn
class WideGrant:
    """Asks for a grant wider than its warrant (a tool it lacks, or a wider path)."""

    @workflow.run
    async def run(self, tool: str, path: str) -> str:
        return await _outcome(workflow_grant(tool, {"path": tenuo_core.Subpath(path)}))


@workflow.defn
class IssuedReads:
    """Runs under an issuer warrant; issues execution warrants to another key."""

    @workflow.run
    async def run(self, executor_key_id: str, narrow_to: str, paths: list[str]) -> list[str]:
        issued = await workflow_issue_execution(
            "read_file", {"path": tenuo_core.Subpath(narrow_to)}, ttl_seconds=120,
            key_id=executor_key_id)
        return [await _outcome(tenuo_execute_activity(
            read_file, args=[path], warrant=issued, key_id=executor_key_id, **FAST))
            for path in paths]


@workflow.defn
class DispatchedRoot:
    """Uses a root warrant handed in as input, for one dispatch."""

    @workflow.run
    async def run(self, warrant_b64: str, key_id: str, path: str) -> list[str]:
        warrant = tenuo_core.Warrant.from_base64(warrant_b64)
        return [
            await _outcome(tenuo_execute_activity(read_file, args=[path], warrant=warrant,
                                                  key_id=key_id, **FAST)),
            await _outcome(tenuo_execute_activity(read_file, args=[path], **FAST)),
        ]


@workflow.defn
class Continuing:
    """Reads, then continues as new (narrowed when asked) until ``rounds`` is done."""

    @workflow.run
    async def run(self, paths: list[str], rounds: int, narrow_to: str | None) -> list[str]:
        outcomes = [await _outcome(workflow.execute_activity(read_file, path, **FAST))
                    for path in paths]
        if rounds > 1:
            attenuation = None if narrow_to is None else {
                "constraints": {"read_file": {"path": tenuo_core.Subpath(narrow_to)}},
                "ttl_seconds": 120}
            tenuo_continue_as_new(args=[paths, rounds - 1, None], tenuo_attenuation=attenuation)
        return outcomes


WORKFLOWS = [GrantedReads, WideGrant, IssuedReads, DispatchedRoot, Continuing]
ACTIVITIES = [read_file]
