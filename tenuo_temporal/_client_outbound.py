"""The client outbound interceptor: warrant headers on workflows the client helpers start.

``start_workflow_authorized`` / ``execute_workflow_authorized`` set the
warrant context for the one call (a context variable); any other start is
left untouched.
"""

from __future__ import annotations

from typing import Any

import temporalio.client

from ._state import client_context

__all__ = ["ClientOutbound"]


class ClientOutbound(temporalio.client.OutboundInterceptor):
    """Adds the helper's warrant headers to the workflow it starts."""

    async def start_workflow(
        self, input: temporalio.client.StartWorkflowInput
    ) -> temporalio.client.WorkflowHandle[Any, Any]:
        context = client_context.get()
        if context is not None:
            input.headers = {**input.headers, **context.payloads}
        return await super().start_workflow(input)
