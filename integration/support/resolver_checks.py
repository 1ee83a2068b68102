"""Outage checks shared by the resolver backends' integration tests (Vault, GCP, AWS).

A resolver in front of a stopped backend must fail closed on every path, and
must recover by itself once the backend is back; these helpers poll for both.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tenuo_keys import BackendUnavailable, KeyResolutionError

__all__ = ["fails_closed_for", "retry_sync"]


async def fails_closed_for(resolver: Any, key_ids: Any, seconds: float) -> None:
    """For ``seconds``, every key id fails with ``BackendUnavailable``, sync and async."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key_id in key_ids:
            with pytest.raises(BackendUnavailable):
                resolver.resolve_sync(key_id)
            with pytest.raises(BackendUnavailable):
                await resolver.resolve(key_id)
        await asyncio.sleep(0.05)


def retry_sync(resolver: Any, key_id: str, timeout: float,
               errors: tuple[type[KeyResolutionError], ...] = (BackendUnavailable,)) -> Any:
    """``resolve_sync(key_id)``, retried on ``errors`` for up to ``timeout`` seconds.

    After an outage the negative cache may answer with the remembered error for
    up to ``negative_ttl``.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return resolver.resolve_sync(key_id)
        except errors:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
