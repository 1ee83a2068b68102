"""Tenuo authorization for Temporal, with holder keys from ``tenuo_keys``.

The plugin itself (``TenuoTemporalPlugin``, ``TenuoPluginConfig``) lands with
its own issue. Today this package re-exports the ``tenuo_keys`` resolvers, so
the seed documentation's import line already works with ``tenuo_temporal`` in
place of ``tenuo.temporal``::

    from tenuo_temporal import EnvKeyResolver, CompositeKeyResolver
"""

from __future__ import annotations

from tenuo_keys import (
    CompositeKeyResolver,
    EnvKeyResolver,
    KeyResolutionError,
    KeyResolver,
    StaticKeyResolver,
)

__all__ = [
    "CompositeKeyResolver",
    "EnvKeyResolver",
    "KeyResolutionError",
    "KeyResolver",
    "StaticKeyResolver",
]
