"""Temporal Schedules whose runs carry a warrant.

:func:`create_scheduled_workflow_with_warrant` puts the warrant headers on the
Schedule's start-workflow action (``ScheduleActionStartWorkflow(headers=...)``),
so the server copies them onto every run it starts; the workflow worker then
signs each activity's PoP under that warrant, as for a run started by
``start_workflow_authorized``. Same names, parameters and wire format as
``tenuo.temporal`` 0.3.3, so Schedules created by either run on either worker.

One warrant serves every run: it must outlive the Schedule. Creation is
refused when it expires before the Schedule's first action, as the server
computes it from the spec (``ListScheduleMatchingTimes``), delayed by the
spec's whole ``jitter``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import temporalio.client
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest

from tenuo_keys import ResolverConfigError

from ._headers import WarrantContext, chain_ending_with
from .errors import WarrantExpired

__all__ = ["create_scheduled_workflow_with_warrant"]

#: Action fields the helper sets itself; ``action_options`` may not override them.
RESERVED_ACTION_OPTIONS = frozenset({"args", "id", "task_queue", "memo", "headers"})


async def first_action_before(client: temporalio.client.Client, schedule_id: str,
                              deadline: float) -> datetime | None:
    """The Schedule's first action time from now up to ``deadline`` (epoch s), or None.

    Asks the server, which evaluates the spec exactly as it will fire it
    (calendars, intervals, cron, start/end, skips and time zones).
    """
    start, end = Timestamp(), Timestamp()
    start.FromSeconds(int(time.time()))
    end.FromSeconds(int(deadline))
    response = await client.workflow_service.list_schedule_matching_times(
        ListScheduleMatchingTimesRequest(namespace=client.namespace, schedule_id=schedule_id,
                                         start_time=start, end_time=end))
    times = [stamp.ToDatetime(tzinfo=timezone.utc) for stamp in response.start_time]
    return min(times) if times else None


async def create_scheduled_workflow_with_warrant(
    client: temporalio.client.Client,
    schedule_id: str,
    workflow: Any,
    warrant: Any,
    key_id: str,
    schedule_spec: temporalio.client.ScheduleSpec,
    *,
    workflow_args: Sequence[Any] | None = None,
    workflow_kwargs: Mapping[str, Any] | None = None,
    task_queue: str = "default",
    compress: bool = True,
    memo: Mapping[str, Any] | None = None,
    action_options: Mapping[str, Any] | None = None,
    warrant_chain: Sequence[Any] | None = None,
    **schedule_kwargs: Any,
) -> temporalio.client.ScheduleHandle:
    """Create a Schedule whose every run executes under ``warrant``.

    The warrant headers ride on the Schedule's action, so every run the
    server starts (on the spec, by ``handle.trigger()`` or by a backfill)
    carries them, and its activities are authorized as for a run started by
    ``start_workflow_authorized``. The warrant is reused by every run: its
    TTL must cover the Schedule's life. For an unbounded Schedule, give it
    a long-lived issuer warrant and mint short-lived ones inside each run
    (``workflow_grant`` / ``workflow_issue_execution``).

    Args:
        client: A client on the Schedule's namespace.
        schedule_id: The Schedule id; runs are ``<schedule_id>-run-<time>``.
        workflow: The workflow's run method (or its type name).
        warrant: The warrant every run executes under.
        key_id: Id of the holder key the workflow workers' resolver serves.
        schedule_spec: When the Schedule fires (``temporalio.client.ScheduleSpec``).
        workflow_args: The workflow's arguments.
        workflow_kwargs: The reference's deprecated name for ``action_options``.
        task_queue: The workflow task queue.
        compress: Gzip the warrant header, as the reference does.
        memo: Memo of each run.
        action_options: More ``ScheduleActionStartWorkflow`` options
            (``execution_timeout``, ``retry_policy``, ...), not those above.
        warrant_chain: For a delegated warrant: its parents, root first, or
            the whole chain ending with it.
        **schedule_kwargs: Passed to ``Client.create_schedule``
            (``trigger_immediately``, ``backfill``, ``search_attributes``...).

    Returns:
        The Schedule's handle.

    Raises:
        WarrantExpired: The warrant (or a link of its chain) expires before the
            Schedule's first action; nothing is left on the server.
        ResolverConfigError: ``action_options`` names a field the helper sets.
        HeaderError: A delegated warrant came without its chain.
    """
    if workflow_kwargs is not None:
        if action_options is not None:
            raise ResolverConfigError(
                "give action_options= only (workflow_kwargs= is its deprecated name)")
        warnings.warn("workflow_kwargs= holds Schedule action options, not workflow "
                      "arguments: pass them as action_options=", DeprecationWarning,
                      stacklevel=2)
        action_options = workflow_kwargs
    options = dict(action_options or {})
    clashes = sorted(RESERVED_ACTION_OPTIONS.intersection(options))
    if clashes:
        raise ResolverConfigError(
            f"action_options cannot set {', '.join(clashes)}: pass them as this helper's "
            "own parameters (workflow_args=, task_queue=, memo=); the id and headers are "
            "the helper's")
    chain = chain_ending_with(warrant, warrant_chain, "create_scheduled_workflow_with_warrant")
    context = WarrantContext.build(warrant, key_id, chain, compress=compress)
    expires_at = context.expires_at
    if expires_at <= time.time():
        raise WarrantExpired(f"the warrant for schedule {schedule_id!r} expired at "
                             f"{_iso(expires_at)}")
    action = temporalio.client.ScheduleActionStartWorkflow(
        workflow, args=list(workflow_args or []), id=f"{schedule_id}-run",
        task_queue=task_queue, memo=memo, **options)
    # A public field of the action, copied onto every run it starts (the
    # constructor's overloads do not list it).
    action.headers = dict(context.payloads)
    schedule = temporalio.client.Schedule(action=action, spec=schedule_spec)
    handle = await client.create_schedule(schedule_id, schedule, **schedule_kwargs)
    if schedule_kwargs.get("trigger_immediately"):
        return handle  # its first action is now, within the warrant's life
    # Jitter delays an action by up to its length past the matching time.
    jitter = schedule_spec.jitter.total_seconds() if schedule_spec.jitter else 0.0
    try:
        first = await first_action_before(client, schedule_id, expires_at - jitter)
    except BaseException:
        await handle.delete()
        raise
    if first is None:
        # Nothing fires before the expiry, so no run has started: deleting
        # leaves no trace but the create and delete in the namespace's audit.
        await handle.delete()
        raise WarrantExpired(
            f"the warrant for schedule {schedule_id!r} expires at {_iso(expires_at)}, before "
            "the schedule's first action: every run would be denied. Mint a warrant that "
            "covers the schedule, or schedule runs under a long-lived issuer warrant that "
            "mints short-lived ones inside each run")
    return handle


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")
