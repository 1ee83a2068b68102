"""Diagnostic variants of ``bench_e2e`` (``--diagnose``): what splits ours' end-to-end overhead.

* ``diag.summary``, ``diag.transport``, ``diag.headers``: no plugin, with the
  activity summary and/or Tenuo-sized headers added by thin interceptors
  (what the wire format and label cost Temporal, without any crypto);
* ``diag.floor``: raw ``tenuo_core`` sign and check in the thinnest
  interceptors on the same headers (the end-to-end floor of any plugin with
  this wire format);
* ``diag.ours_timed``: ours, sandwiched between two timing plugins in the
  real worker chain (:func:`timing_plugins`): the plugin's own thread CPU at
  each hook is the time between the two timers, measured through Temporal's
  interceptor API; nothing of the plugin is replaced;
* ``diag.sdk_skip.*``: a what-if for the SDK (not for the plugin): the
  ceiling and ours again, with temporalio's ``encode_completion`` returning
  at once when no payload codec or external storage is configured. This one
  replaces an SDK function (temporalio's, never the plugin's) for the
  variant's runs and restores it after.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import time
from collections.abc import Callable
from typing import Any

from bench._temporal_bench_workflows import KEY_ID, TOOL
from tenuo_keys._pop import POP_WINDOW_SECS

__all__ = ["diagnostic_variants", "timing_plugins"]

# Bound outside the workflow sandbox: the timers run inside workflow code.
thread_ns = time.thread_time_ns


# Where each timed hook entered its first timer (thread CPU ns), per call.
_entered: contextvars.ContextVar[int] = contextvars.ContextVar("bench_hook_entered", default=0)


def timing_plugins() -> tuple[Any, Any, Callable[[], None], Callable[[], dict[str, int]]]:
    """Two plugins to place on either side of ours: ``[first, ours, last]``.

    Temporal orders plugin interceptors as the plugins are listed, and the
    first interceptor of a worker is the outermost: an activity inbound call
    runs first → ours → last, while a workflow's outbound calls run last →
    ours → first (each inbound wraps the outbound it is handed). So the
    plugin's share of a hook is the thread CPU between the timer that sees
    the call first and the one that sees it next; neither suspends in
    between (the in-memory replay store answers without awaiting).

    Returns:
        ``(first, last, reset, probe)``: ``reset`` clears the totals, ``probe``
        returns CPU ns per hook since the reset, and ``total``.
    """
    import temporalio.client
    import temporalio.plugin
    import temporalio.worker

    totals: dict[str, int] = {}

    def enter() -> None:
        _entered.set(thread_ns())

    def leave(hook: str) -> None:
        totals[hook] = totals.get(hook, 0) + thread_ns() - _entered.get()

    sign, verify, start = ("sign (start_activity, workflow side)",
                           "verify (execute_activity, activity side)",
                           "execute_workflow (warrant headers read)")

    class Timer(temporalio.client.Interceptor, temporalio.worker.Interceptor):
        """Notes thread CPU at each hook; ``outer`` says which side of ours it is."""

        def __init__(self, outer: bool) -> None:
            self.outer = outer

        def intercept_activity(
            self, next: temporalio.worker.ActivityInboundInterceptor
        ) -> temporalio.worker.ActivityInboundInterceptor:
            outer = self.outer

            class Inbound(temporalio.worker.ActivityInboundInterceptor):
                async def execute_activity(
                    self, input: temporalio.worker.ExecuteActivityInput
                ) -> Any:
                    enter() if outer else leave(verify)
                    return await super().execute_activity(input)

            return Inbound(next)

        def workflow_interceptor_class(
            self, input: temporalio.worker.WorkflowInterceptorClassInput
        ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
            outer = self.outer

            class Outbound(temporalio.worker.WorkflowOutboundInterceptor):
                def start_activity(self, input: temporalio.worker.StartActivityInput) -> Any:
                    leave(sign) if outer else enter()
                    return super().start_activity(input)

            class Inbound(temporalio.worker.WorkflowInboundInterceptor):
                def init(self, next: temporalio.worker.WorkflowOutboundInterceptor) -> None:
                    super().init(Outbound(next))

                async def execute_workflow(self, input: temporalio.worker.ExecuteWorkflowInput
                                           ) -> Any:
                    enter() if outer else leave(start)
                    return await super().execute_workflow(input)

            return Inbound

    def reset() -> None:
        totals.clear()

    def probe() -> dict[str, int]:
        return {**totals, "total": sum(totals.values())}

    first = temporalio.plugin.SimplePlugin("bench-timer-first", interceptors=[Timer(True)])
    last = temporalio.plugin.SimplePlugin("bench-timer-last", interceptors=[Timer(False)])
    return first, last, reset, probe


def diagnostic_variants(issuer: Any, holder: Any, warrant: Any, summary: str,
                        ours_plugins: Callable[[], list[Any]],
                        start_plain: Callable[..., Any], start_summary: Callable[..., Any],
                        start_ours: Callable[..., Any]) -> list[Any]:
    """The ``--diagnose`` variants, after the four that are always run."""
    from bench.bench_e2e import E2EVariant

    headers = _tenuo_sized_headers(issuer, holder, warrant)
    skip_enter, skip_exit = _sdk_visitor_skipped()
    first, last, reset, probe = timing_plugins()
    return [
        E2EVariant("diag.summary", "no plugin + the plugin's activity summary", list,
                   start_summary, diagnostic=True),
        E2EVariant("diag.transport", "no plugin + Tenuo headers + summary, no crypto",
                   list, start_plain, diagnostic=True,
                   interceptors=lambda: [header_only_interceptor(headers, summary)]),
        E2EVariant("diag.headers", "no plugin + Tenuo headers, no summary, no crypto",
                   list, start_plain, diagnostic=True,
                   interceptors=lambda: [header_only_interceptor(headers, None)]),
        E2EVariant("diag.floor", "raw tenuo_core sign + check_chain, same headers",
                   list, start_plain, diagnostic=True,
                   interceptors=lambda: [_make_floor_interceptor()(issuer, holder, warrant)]),
        E2EVariant("diag.sdk_skip.ceiling",
                   "no plugin; SDK what-if: no payload visitor when nothing encodes",
                   list, start_plain, diagnostic=True, enter=skip_enter, exit=skip_exit),
        E2EVariant("diag.sdk_skip.ours",
                   "tenuo_temporal defaults; the same SDK what-if", ours_plugins,
                   start_ours, diagnostic=True, enter=skip_enter, exit=skip_exit),
        E2EVariant("diag.ours_timed",
                   "tenuo_temporal between two timing plugins (its thread CPU per hook)",
                   lambda: [first, *ours_plugins(), last], start_ours, diagnostic=True,
                   enter=reset, probe=probe),
    ]


def _tenuo_sized_headers(issuer: Any, holder: Any, warrant: Any
                         ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The headers ours puts on an activity (one fixed PoP) and on a workflow start."""
    from temporalio.api.common.v1 import Payload

    from tenuo_temporal import _headers as H

    context = H.WarrantContext.build(warrant, KEY_ID)
    pop = warrant.sign(holder, TOOL, {"path": "/data/x"}, int(time.time()))
    activity = {**context.payloads, H.POP: Payload(data=base64.b64encode(bytes(pop))),
                H.ARG_KEYS: Payload(data=b"path")}
    return activity, dict(context.payloads)


def _make_header_only_interceptor() -> type:
    import temporalio.client
    import temporalio.worker

    class HeaderOnly(temporalio.client.Interceptor, temporalio.worker.Interceptor):
        """Adds Tenuo-sized headers and the summary to workflows and activities; checks nothing."""

        def __init__(self, headers: dict[str, Any], start_headers: dict[str, Any],
                     summary: str | None) -> None:
            self.headers = headers
            self.start_headers = start_headers
            self.summary = summary

        def intercept_client(
            self, next: temporalio.client.OutboundInterceptor
        ) -> temporalio.client.OutboundInterceptor:
            return _with_start_headers(next, self.start_headers)

        def workflow_interceptor_class(
            self, input: temporalio.worker.WorkflowInterceptorClassInput
        ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
            headers, summary = self.headers, self.summary

            class Outbound(temporalio.worker.WorkflowOutboundInterceptor):
                def start_activity(self, input: temporalio.worker.StartActivityInput) -> Any:
                    input.headers = {**input.headers, **headers}
                    if summary is not None:
                        input.summary = summary
                    return super().start_activity(input)

            return _inbound_with(Outbound)

    return HeaderOnly


def _with_start_headers(next: Any, start_headers: dict[str, Any]) -> Any:
    """A client outbound interceptor adding ``start_headers`` to each workflow start."""
    import temporalio.client

    class Client(temporalio.client.OutboundInterceptor):
        async def start_workflow(self, input: temporalio.client.StartWorkflowInput) -> Any:
            input.headers = {**input.headers, **start_headers}
            return await super().start_workflow(input)

    return Client(next)


def _inbound_with(outbound: type) -> type:
    """A workflow inbound interceptor class that installs ``outbound`` around the next one."""
    import temporalio.worker

    class Inbound(temporalio.worker.WorkflowInboundInterceptor):
        def init(self, next: temporalio.worker.WorkflowOutboundInterceptor) -> None:
            super().init(outbound(next))

    return Inbound


def _make_floor_interceptor() -> type:
    import temporalio.client
    import temporalio.worker
    import temporalio.workflow
    import tenuo_core
    from temporalio.api.common.v1 import Payload

    from tenuo_temporal import _headers as H

    class Floor(temporalio.client.Interceptor, temporalio.worker.Interceptor):
        """Raw ``tenuo_core`` calls in the thinnest interceptors, on the same wire format.

        The workflow side signs with ``warrant.sign`` and adds the same headers as
        ours; the activity side reads the PoP and calls ``Authorizer.check_chain``
        on the warrant object it already holds. No header decoding, argument
        naming, replay store, summary, metrics or audit: the end-to-end floor of
        any plugin that signs and verifies every activity with this wire format.
        """

        def __init__(self, issuer: Any, holder: Any, warrant: Any) -> None:
            context = H.WarrantContext.build(warrant, KEY_ID)
            self.start_headers = dict(context.payloads)
            self.holder, self.warrant = holder, warrant
            self.authorizer = tenuo_core.Authorizer(
                trusted_roots=[issuer.public_key], clock_tolerance_secs=30,
                pop_window_secs=POP_WINDOW_SECS, pop_max_windows=5)

        def intercept_client(
            self, next: temporalio.client.OutboundInterceptor
        ) -> temporalio.client.OutboundInterceptor:
            return _with_start_headers(next, self.start_headers)

        def intercept_activity(
            self, next: temporalio.worker.ActivityInboundInterceptor
        ) -> temporalio.worker.ActivityInboundInterceptor:
            check, warrant = self.authorizer.check_chain, self.warrant

            class Inbound(temporalio.worker.ActivityInboundInterceptor):
                async def execute_activity(
                    self, input: temporalio.worker.ExecuteActivityInput
                ) -> Any:
                    pop = binascii.a2b_base64(input.headers[H.POP].data)
                    check([warrant], TOOL, {"path": input.args[0]}, signature=pop)
                    return await super().execute_activity(input)

            return Inbound(next)

        def workflow_interceptor_class(
            self, input: temporalio.worker.WorkflowInterceptorClassInput
        ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
            headers, holder, warrant = self.start_headers, self.holder, self.warrant
            arg_keys = Payload(data=b"path")

            class Outbound(temporalio.worker.WorkflowOutboundInterceptor):
                def start_activity(self, input: temporalio.worker.StartActivityInput) -> Any:
                    pop = warrant.sign(holder, TOOL, {"path": input.args[0]},
                                       int(temporalio.workflow.now().timestamp()))
                    input.headers = {**input.headers, **headers,
                                     H.POP: Payload(data=base64.b64encode(bytes(pop))),
                                     H.ARG_KEYS: arg_keys}
                    return super().start_activity(input)

            return _inbound_with(Outbound)

    return Floor


def header_only_interceptor(headers: tuple[dict[str, Any], dict[str, Any]],
                            summary: str | None) -> Any:
    """A client + worker interceptor adding Tenuo-sized headers and ``summary`` (diagnostic)."""
    return _make_header_only_interceptor()(headers[0], headers[1], summary)


def _sdk_visitor_skipped() -> tuple[Callable[[], None], Callable[[], None]]:
    """Enter/exit for a what-if: the SDK skips its payload visitor when nothing encodes.

    ``temporalio.bridge.worker.encode_completion`` walks every payload of a
    workflow completion three times, and each walk enters the workflow sandbox
    to build a serialization context, even when the data converter has no
    payload codec and no external storage, where every walk returns each
    payload unchanged. The what-if returns at once in that case (and defers
    to the SDK otherwise): what an upstream change would give, measured for
    the ceiling and for ours alike (diagnostic variants ``diag.sdk_skip.*``).
    """
    import temporalio.bridge.worker as bridge_worker
    from temporalio.converter import _extstore

    original = bridge_worker.encode_completion

    async def encode_completion(completion: Any, data_converter: Any, encode_headers: bool,
                                storage_concurrency_limit: int) -> Any:
        if data_converter.payload_codec is None and data_converter.external_storage is None:
            return _extstore.StorageOperationMetrics()
        return await original(completion, data_converter, encode_headers=encode_headers,
                              storage_concurrency_limit=storage_concurrency_limit)

    def enter() -> None:
        bridge_worker.encode_completion = encode_completion

    def exit_() -> None:
        bridge_worker.encode_completion = original

    return enter, exit_
