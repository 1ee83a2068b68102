"""Which plugin configuration serves each task queue in this process.

Filled as workers are configured (``TenuoTemporalPlugin`` and
``TenuoWorkerInterceptor(config, task_queue=...)``), read by helpers that run
outside any worker but must verify as a given worker does
(``tenuo_complete_async_activity(task_queue=...)``).
"""

from __future__ import annotations

import threading

from ._config import TenuoPluginConfig

__all__ = ["config_for", "only_config", "register"]

_lock = threading.Lock()
_by_queue: dict[str, TenuoPluginConfig] = {}


def register(task_queue: str, config: TenuoPluginConfig) -> None:
    """Record that the worker of ``task_queue`` runs under ``config`` (the latest wins)."""
    with _lock:
        _by_queue[task_queue] = config


def config_for(task_queue: str) -> TenuoPluginConfig | None:
    """The configuration of ``task_queue``'s worker in this process, or None."""
    with _lock:
        return _by_queue.get(task_queue)


def only_config() -> tuple[TenuoPluginConfig | None, int]:
    """The one configuration registered, if exactly one; and how many there are."""
    with _lock:
        configs = {id(config): config for config in _by_queue.values()}
    if len(configs) == 1:
        return next(iter(configs.values())), 1
    return None, len(configs)
