"""An interceptor that copies one workflow's Tenuo headers onto another's activity.

The attack replay protection answers: a PoP and warrant captured from a
victim's activity, presented by a thief's workflow (which itself runs with no
warrant, or its own). Register it on the activity worker's client.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import Interceptor as ClientInterceptor
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

__all__ = ["CopyHeaders"]


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
