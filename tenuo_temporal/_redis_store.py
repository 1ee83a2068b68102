"""A replay store a fleet shares: Redis or Valkey, one atomic round trip per claim.

The default :class:`~tenuo_temporal.InMemoryReplayStore` is per process: a
copy of a PoP that lands on another activity worker is not seen there.
:class:`RedisReplayStore` keeps the claims in Redis or Valkey (same protocol),
so every activity worker of a fleet sees every claim, in either replay mode.

A claim is one Lua script, run atomically by the server: set the key to the
owner with a TTL when it is absent, answer yes when it already holds this
owner, no otherwise. When the server cannot be reached the claim raises
:class:`~tenuo_temporal.errors.ReplayStoreUnavailable`, a retryable failure of
the activity attempt: Temporal retries it, and it never runs unclaimed.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from tenuo_keys import MissingExtraError
from tenuo_keys._url import redact_url

from .errors import ReplayStoreUnavailable

__all__ = ["CLAIM_SCRIPT", "RedisReplayStore"]

CLAIM_SCRIPT = """
local held = redis.call('GET', KEYS[1])
if not held then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if held == ARGV[1] then return 1 end
return 0
"""
"""Claim ``KEYS[1]`` for owner ``ARGV[1]`` for ``ARGV[2]`` ms; 1 when claimed or already ours."""


class RedisReplayStore:
    """Claims in Redis or Valkey, shared by every activity worker that uses the same server.

    Args:
        url: ``redis://[user:password@]host:port/db`` or ``rediss://`` for TLS
            (``?ssl_cert_reqs=...`` and the other options redis-py reads from a
            URL). Credentials belong in the URL or the environment, never in code.
        prefix: Prepended to every key, so one server can serve several fleets.
        timeout: Seconds a claim may take (connect and answer); past it the
            attempt fails retryably.
        max_connections: The connection pool's bound.
        client: A ready ``redis.asyncio.Redis`` (or Valkey) client instead of ``url``.

    Raises:
        MissingExtraError: ``redis`` is not installed (``pip install 'tenuo-keys[redis]'``).
    """

    def __init__(self, url: str | None = None, *, prefix: str = "tenuo:pop:",
                 timeout: float = 2.0, max_connections: int = 64,
                 client: Any = None) -> None:
        if (url is None) == (client is None):
            raise ValueError("RedisReplayStore needs url= or client=, not both")
        try:
            import redis.asyncio as redis_asyncio
            from redis.exceptions import RedisError
        except ImportError:
            raise MissingExtraError("redis", "redis", "redis",
                                    subject="RedisReplayStore") from None
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError,
                                                         asyncio.TimeoutError)
        if url is not None:
            self._url = redact_url(url)
            client = redis_asyncio.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout,
                max_connections=max_connections)
        else:
            self._url = type(client).__name__
        self._client = client
        self._claim = self._client.register_script(CLAIM_SCRIPT)
        self._prefix = prefix
        self._timeout = timeout

    async def claim(self, pop_digest: bytes, owner: str, ttl_seconds: float) -> bool:
        """See :meth:`ReplayStore.claim <tenuo_temporal.ReplayStore.claim>`.

        Raises:
            ReplayStoreUnavailable: The server did not answer (retryable).
        """
        key = self._prefix + pop_digest.hex()
        ttl_ms = max(1, math.ceil(ttl_seconds * 1000))
        try:
            answer = await asyncio.wait_for(self._claim(keys=[key], args=[owner, ttl_ms]),
                                            self._timeout)
        except self._errors as exc:
            raise ReplayStoreUnavailable(
                f"{self._url} did not answer ({type(exc).__name__}); the attempt is retried "
                "and never runs unclaimed") from None
        return int(answer) == 1

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"RedisReplayStore({self._url!r}, prefix={self._prefix!r})"
