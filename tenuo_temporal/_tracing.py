"""The ``tenuo.authorize`` span: one per activity decision, when OpenTelemetry records.

``opentelemetry-api`` is optional (the ``otel`` extra). Without it, or with it
installed but no SDK ``TracerProvider`` set globally, :meth:`Tracing.start`
returns None and a decision costs one global read and one identity check. With a
provider set, the span starts as a child of the current span, which is the
activity's ``RunActivity`` span when temporalio's OpenTelemetry interceptor
runs outside this plugin's (``OpenTelemetryPlugin`` listed before it).

Attributes carry the tool, the decision, the denial type and the warrant id:
never arguments, reasons (which may quote argument values) or key material.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from types import ModuleType
from typing import Any

__all__ = ["SPAN_NAME", "Tracing"]

SPAN_NAME = "tenuo.authorize"
_TRACER_NAME = "tenuo_temporal"


def _opentelemetry_trace() -> ModuleType | None:
    """``opentelemetry.trace`` when ``opentelemetry-api`` is installed, else None."""
    if importlib.util.find_spec("opentelemetry") is None:
        return None
    return importlib.import_module("opentelemetry.trace")


class Tracing:
    """Opens and closes ``tenuo.authorize`` spans on the global tracer provider."""

    def __init__(self) -> None:
        self._trace = _opentelemetry_trace()
        self._provider: Any = None
        self._tracer: Any = None
        self._silent: tuple[type, ...] = ()
        if self._trace is not None:
            self._silent = (self._trace.ProxyTracerProvider, self._trace.NoOpTracerProvider)

    @property
    def available(self) -> bool:
        """Whether ``opentelemetry-api`` is installed."""
        return self._trace is not None

    def start(self) -> Any:
        """The tracer a decision starting now records to, or None when nothing records.

        The provider is looked up on every call (so one set after the worker
        started is used), the tracer only when the provider changes. The span
        itself is opened by :meth:`finish`, back-dated to when this was
        called: one contiguous stretch of SDK work after the decision costs
        less than two either side of its signature checks.

        Returns:
            ``(tracer, start time in ns since the epoch)``, or None.
        """
        trace = self._trace
        if trace is None:
            return None
        provider = trace.get_tracer_provider()
        if provider is not self._provider:
            self._provider = provider
            self._tracer = (None if isinstance(provider, self._silent)
                            else provider.get_tracer(_TRACER_NAME))
        tracer = self._tracer
        if tracer is None:
            return None
        return tracer, time.time_ns()

    def finish(self, started: Any, tool: str, decision: str, denial_type: str | None,
               warrant_id: str | None) -> None:
        """Record the ``tenuo.authorize`` span of one decision.

        Args:
            started: What :meth:`start` returned (not None).
            tool: The tool checked.
            decision: ``"allow"``, ``"deny"`` or ``"shadow-deny"``.
            denial_type: The denial's wire type (``TENUO_...``), None when allowed.
            warrant_id: The presented leaf warrant's id, when known.
        """
        tracer, start_time = started
        attributes = {"tenuo.tool": tool, "tenuo.decision": decision}
        if denial_type is not None:
            attributes["tenuo.denial_type"] = denial_type
        if warrant_id is not None:
            attributes["tenuo.warrant_id"] = warrant_id
        span = tracer.start_span(SPAN_NAME, start_time=start_time, attributes=attributes)
        trace = self._trace
        if decision == "deny" and denial_type is not None and trace is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, denial_type))
        span.end()
