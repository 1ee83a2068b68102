"""Interceptors that copy one workflow's Tenuo headers onto another's activity.

The attack replay protection answers: a PoP and warrant captured from a
victim's activity, presented by a thief's workflow (which itself runs with no
warrant, or its own).

* :class:`CopyHeaders`: on one activity worker, copies the victim's headers
  onto the thief's activity as it arrives.
* :class:`Deliveries`: on an activity worker, records (and may rewrite) what
  each workflow's activities arrive with; :class:`OutboundHeaders`: on a rogue
  workflow worker, schedules activities with chosen headers (e.g. recorded
  ones), so the copy can land on any worker of a fleet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

__all__ = ["CopyHeaders", "Deliveries", "OutboundHeaders"]


class CopyHeaders(ClientInterceptor, Interceptor):
    """Copies the Tenuo headers of one workflow's activity onto another's."""

    def __init__(self, victim: str, thief: str) -> None:
        self.victim, self.thief = victim, thief
        self.captured: dict[str, Any] | None = None
        self.ready = asyncio.Event()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        outer = self

        class Copy(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                from temporalio import activity

                workflow_id = activity.info().workflow_id
                if workflow_id == outer.victim:
                    outer.captured = {k: v for k, v in input.headers.items()
                                      if k.startswith("x-tenuo-")}
                    outer.ready.set()
                elif workflow_id == outer.thief:
                    await outer.ready.wait()
                    assert outer.captured is not None
                    input.headers = {**input.headers, **outer.captured}
                return await super().execute_activity(input)

        return Copy(next)


class OutboundHeaders(Interceptor):
    """A rogue worker's interceptor: sets the headers of every activity it schedules."""

    def __init__(self, headers_for: Callable[[StartActivityInput], dict[str, Payload]]) -> None:
        self.headers_for = headers_for

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        outer = self

        class Outbound(WorkflowOutboundInterceptor):
            def start_activity(self, input: StartActivityInput) -> Any:
                input.headers = outer.headers_for(input)
                return super().start_activity(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

        return Inbound


class Deliveries(ClientInterceptor, Interceptor):
    """Runs before the plugin on an activity worker: records, and may rewrite, deliveries.

    Also a client interceptor: a plugin keeps only those on the client, and
    workers inherit them from it.
    """

    def __init__(self) -> None:
        self.headers: dict[str, dict[str, Payload]] = {}
        self.plans: dict[str, Callable[[ExecuteActivityInput], None]] = {}

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        outer = self

        class Inbound(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                wid = activity.info().workflow_id
                outer.headers.setdefault(wid, {k: Payload(data=bytes(v.data))
                                               for k, v in input.headers.items()})
                plan = outer.plans.get(wid)
                if plan is not None:
                    plan(input)
                return await super().execute_activity(input)

        return Inbound(next)
