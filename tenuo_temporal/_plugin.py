"""``TenuoTemporalPlugin``: one plugin for client, worker and replayer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import temporalio.client
import temporalio.runtime
import temporalio.worker
from temporalio.plugin import SimplePlugin

from tenuo_keys import CacheEvent, KeyResolutionError, KeyResolver, ResolverConfigError

from ._config import TenuoPluginConfig
from ._ids import PLUGIN_ID
from ._interceptors import TenuoInterceptor
from ._keep_warm import KEEP_WARM_SECONDS
from ._remote import warm_up
from ._sandbox import workflow_runner
from ._worker_configs import register as register_worker_config

__all__ = ["KEEP_WARM_SECONDS", "TenuoTemporalPlugin"]

logger = logging.getLogger("tenuo_temporal")

class _Configured(temporalio.worker.Interceptor):
    """A no-op marker: this worker's config already went through a Tenuo plugin."""


class TenuoTemporalPlugin(SimplePlugin):
    """Signs PoP on workflow workers and verifies it on activity workers.

    Pass it once, to ``Client.connect(plugins=[...])``: workers built from
    that client inherit it. Passing it to the ``Worker`` as well is refused
    with an explanation.

    Args:
        config: Keys, trusted roots and policy.
    """

    def __init__(self, config: TenuoPluginConfig) -> None:
        self.config = config
        self.interceptor = TenuoInterceptor(config)
        self.interceptor.hand_wired = False  # this plugin wires roots, meter and loop
        self._active_runs = 0
        self._observed: set[int] = set()
        super().__init__(
            PLUGIN_ID,
            interceptors=[self.interceptor],
            workflow_runner=workflow_runner,
            run_context=self._run_context,
        )

    def configure_worker(self, config: temporalio.worker.WorkerConfig) -> (
            temporalio.worker.WorkerConfig):
        """Wire the worker; refuse a second Tenuo plugin on the same worker."""
        if any(isinstance(i, _Configured) for i in config.get("interceptors", []) or []):
            raise ResolverConfigError(
                "TenuoTemporalPlugin is registered twice on this worker: once on the Client "
                "and again on the Worker. Workers inherit the client's plugins; pass it only "
                "to Client.connect(plugins=[...])."
            )
        config = super().configure_worker(config)
        activities = list(config.get("activities", []) or [])
        self.interceptor.register_activities(activities)
        register_worker_config(str(config.get("task_queue")), self.config)
        # The plugin's own local activities (delegation minting, remote signing)
        # go wherever workflows run. A worker without activities of its own would
        # then start polling its activity queue and take other workers' tasks, so
        # it is kept to local activities with no_remote_activities.
        internal = self.interceptor.local_activities()
        if internal and config.get("workflows"):
            config["activities"] = [*activities, *internal]
            if not activities:
                config["no_remote_activities"] = True
            if self.interceptor.mints:
                self.interceptor.mint_queues.add(str(config.get("task_queue")))
        client = config.get("client")
        runtime = None
        if client is not None:
            runtime = client.service_client.config.runtime
        runtime = runtime or temporalio.runtime.Runtime.default()
        self.interceptor.set_meter(runtime.metric_meter)
        self._export_cache_metrics()
        config["interceptors"] = [*(config.get("interceptors") or []), _Configured()]
        return config

    def configure_replayer(self, config: temporalio.worker.ReplayerConfig
                           ) -> temporalio.worker.ReplayerConfig:
        """A Replayer replays histories of any task queue: minting is known to it everywhere."""
        self.interceptor.replaying = True
        return super().configure_replayer(config)

    def _export_cache_metrics(self) -> None:
        counter = self.interceptor.recorder.cache_counter()
        resolver = self.config.key_resolver
        if counter is None or resolver is None:
            return
        for cache in resolver.caches():
            if id(cache) in self._observed:
                continue
            self._observed.add(id(cache))

            def observe(event: CacheEvent, _counter: Any = counter) -> None:
                _counter.add(1, {"kind": event.kind, "backend": event.backend})

            cache.add_observer(observe)

    @contextlib.asynccontextmanager
    async def _run_context(self) -> AsyncIterator[None]:
        """Preload keys and roots before polling; close resolvers after the last run."""
        config = self.config
        resolver = config.key_resolver
        self.interceptor.bind_loop(asyncio.get_running_loop())
        self.interceptor.announce()
        if callable(config.trusted_roots) and not config.refresh_trusted_roots():
            raise ResolverConfigError("the trusted_roots provider failed at start-up")
        revocation = config.revocation
        if revocation is not None:
            # Fail closed: a worker configured for revocation polls only with a list.
            outcome = await asyncio.to_thread(config.refresh_revocation_list)
            self.interceptor.recorder.revocation_refresh(outcome)
            if revocation.current is None:
                raise ResolverConfigError(
                    f"no valid revocation list at start-up ({outcome}); see the log")
        if config.signers:
            await asyncio.to_thread(warm_up, config)
        if resolver is not None:
            try:
                if config.preload_key_ids:
                    await asyncio.to_thread(resolver.preload, list(config.preload_key_ids))
                if config.preload_all:
                    loaded = await asyncio.to_thread(resolver.preload_all)
                    logger.info("tenuo_temporal: preloaded %s key(s)", loaded)
            except KeyResolutionError as error:
                if not error.retryable:
                    raise  # a configuration error: fail fast
                # An outage must not keep workers down: keys load on first use, and
                # a workflow task that finds none fails and is retried (fail closed).
                logger.warning("tenuo_temporal: preloading keys failed (%s); starting "
                               "anyway, keys load on first use", error.reason)
        refresher = (asyncio.create_task(self._refresh_roots())
                     if callable(config.trusted_roots) else None)
        keeper = (asyncio.create_task(self._keep_keys_warm(resolver))
                  if resolver is not None else None)
        revoker = (asyncio.create_task(self._refresh_revocation(revocation.refresh_secs))
                   if revocation is not None and revocation.refreshes else None)
        self._active_runs += 1
        try:
            yield
        finally:
            self._active_runs -= 1
            if refresher is not None:
                refresher.cancel()
            if keeper is not None:
                keeper.cancel()
            if revoker is not None:
                revoker.cancel()
            if self._active_runs == 0 and resolver is not None:
                await asyncio.to_thread(resolver.close)
            if self._active_runs == 0:
                for signer in config.signers.values():
                    await asyncio.to_thread(signer.close)

    async def _keep_keys_warm(self, resolver: KeyResolver) -> None:
        """Keep the keys workflow tasks need loaded between their tasks.

        Signing reads memory only. A key read less often than ttl +
        max_staleness expires in between, and the read that finds it expired
        fails its workflow task while it starts the reload; Temporal spaces
        such retries further and further apart (up to 10 min), so a workflow
        whose key nobody else reads can fail on every attempt. Touching the keys
        that recently signed (:meth:`TenuoWorkerInterceptor.keys_to_keep_warm`) through
        the async path (which refreshes or reloads in the background) keeps them
        loaded, and reloads them as soon as an outage ends.
        """
        interval = _keep_warm_interval(resolver)

        async def touch(key_id: str) -> None:
            with contextlib.suppress(Exception):  # the signing path reports failures
                await asyncio.wait_for(resolver.resolve(key_id), max(interval, 5.0))

        while True:
            await asyncio.sleep(interval)
            # Only ids that signed for their holder are here (bounded, aging out
            # after KEEP_WARM_SECONDS): a sender's made-up key ids cost nothing.
            await asyncio.gather(*(touch(key_id)
                                   for key_id in self.interceptor.keys_to_keep_warm()))

    async def _refresh_roots(self) -> None:
        while True:
            await asyncio.sleep(self.config.trusted_roots_refresh_seconds)
            await asyncio.to_thread(self.config.refresh_trusted_roots)

    async def _refresh_revocation(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            outcome = await asyncio.to_thread(self.config.refresh_revocation_list)
            self.interceptor.recorder.revocation_refresh(outcome)


def _keep_warm_interval(resolver: KeyResolver) -> float:
    """How often to touch keys in use: well within each cache's refresh window."""
    windows = [
        min(policy.ttl * max(policy.refresh_ahead, 0.1), policy.ttl + policy.max_staleness)
        for policy in (cache.policy for cache in resolver.caches())
        if policy.ttl is not None
    ]
    return max(0.25, min(windows, default=60.0) / 2)


