"""``tenuo_complete_async_activity``: complete an async activity after checking a warrant.

An activity that raises ``temporalio.activity.CompleteAsyncError`` is finished
later by whoever holds its task token, through ``AsyncActivityHandle.complete``.
That RPC carries no headers, so no PoP can travel with it and no worker
verifies it. This helper is a caller-side guard: it checks the warrant chain
the caller presents (trust, linkage, signatures, expiry, chain depth) with
the verifying configuration of the activity's worker, then completes.

It does not check capability scope (the RPC names neither the activity type
nor its arguments), does not prove the caller holds the holder key (there is
nowhere to put a PoP), and does not stop code that calls
``AsyncActivityHandle.complete()`` directly.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import temporalio.client
import tenuo.exceptions as tx

from tenuo_keys import ResolverConfigError

from ._config import TenuoPluginConfig
from ._headers import chain_ending_with
from ._interceptors import TenuoWorkerInterceptor
from ._worker_configs import config_for, only_config
from .errors import ChainValidationError, WarrantExpired

__all__ = ["tenuo_complete_async_activity"]

_OPERATION = "tenuo_complete_async_activity"


def _client_config(client: temporalio.client.Client | None) -> TenuoPluginConfig | None:
    if client is None:
        return None
    for interceptor in client.config(active_config=True).get("interceptors", []):
        if isinstance(interceptor, TenuoWorkerInterceptor) and interceptor.config.verifies:
            return interceptor.config
    return None


def _choose_config(config: TenuoPluginConfig | None, task_queue: str | None,
                   client: temporalio.client.Client | None) -> TenuoPluginConfig:
    """The verifying configuration: given; the task queue's worker's; the client's; the only one."""
    if config is not None:
        return config
    if task_queue is not None:
        found = config_for(task_queue)
        if found is None:
            raise ResolverConfigError(
                f"{_OPERATION}: no Tenuo worker for task queue {task_queue!r} was configured "
                "in this process; pass config= (a TenuoPluginConfig with trusted_roots)")
        return found
    found = _client_config(client)
    if found is not None:
        return found
    only, count = only_config()
    if only is None:
        raise ResolverConfigError(
            f"{_OPERATION}: {count} Tenuo worker configurations in this process; pass "
            "task_queue= (the activity's task queue) or config=")
    warnings.warn(f"{_OPERATION}: pass task_queue= (the activity's task queue) or config=; "
                  "the one configured worker is used while there is only one",
                  DeprecationWarning, stacklevel=3)
    return only


def check_warrant(config: TenuoPluginConfig, chain: Sequence[Any]) -> None:
    """Trust, linkage, signatures, expiry and depth of ``chain`` under ``config``.

    Raises:
        WarrantExpired: A link has expired.
        ChainValidationError: Untrusted, broken, revoked or too deep; or ``config``
            cannot verify (no trusted roots).
    """
    if not config.verifies:
        raise ChainValidationError(f"{_OPERATION}: the configuration has no trusted_roots")
    if len(chain) > config.max_chain_depth:
        raise ChainValidationError(f"{_OPERATION}: chain of {len(chain)} warrants exceeds the "
                                   f"maximum {config.max_chain_depth}")
    for link in chain:
        if link.is_expired():
            raise WarrantExpired(f"{_OPERATION}: warrant {link.id} expired at "
                                 f"{link.expires_at()}")
    if callable(config.trusted_roots) and not config.refresh_trusted_roots():
        raise ChainValidationError(f"{_OPERATION}: the trusted_roots provider failed")
    try:
        config.authorizer(config.pop_max_windows).verify_chain(list(chain))
    except tx.ExpiredError as exc:
        raise WarrantExpired(f"{_OPERATION}: {exc}") from None
    except tx.TenuoError as exc:
        raise ChainValidationError(f"{_OPERATION}: {type(exc).__name__}: {exc}") from None
    except RuntimeError as exc:  # no roots loaded
        raise ChainValidationError(f"{_OPERATION}: {exc}") from None


async def tenuo_complete_async_activity(
    handle_or_task_token: temporalio.client.AsyncActivityHandle | bytes,
    result: Any,
    warrant: Any,
    key_id: str | None = None,
    *,
    client: temporalio.client.Client | None = None,
    task_queue: str | None = None,
    warrant_chain: Sequence[Any] | None = None,
    config: TenuoPluginConfig | None = None,
) -> None:
    """Complete an async activity once ``warrant`` checks out; see the module for the limits.

    Checks, with the verifying configuration chosen below: the chain is at
    most ``max_chain_depth`` long, no link has expired, every link is signed
    by its issuer, the chain links up to one of the ``trusted_roots``, and
    each link only narrows its parent. Then calls ``complete(result)``.

    Does **not** check that the warrant grants the activity (its type and
    arguments are not in the RPC), that the caller holds the holder key, or
    anything for code that calls ``AsyncActivityHandle.complete()`` itself.

    Args:
        handle_or_task_token: The activity's ``AsyncActivityHandle``, or its
            task token (then ``client`` is required).
        result: The activity's result.
        warrant: The warrant the caller acts under.
        key_id: Accepted for the reference's signature and ignored: no PoP
            can travel with the completion, so no key is loaded.
        client: The client to complete through, for a task token; its Tenuo
            plugin's configuration verifies when neither ``config`` nor
            ``task_queue`` is given.
        task_queue: The activity's task queue: the configuration of the worker
            configured for it in this process verifies.
        warrant_chain: For a delegated warrant: its parents, root first, or the
            whole chain ending with it.
        config: The verifying configuration (ours; not in the reference).

    Raises:
        ResolverConfigError: No configuration to verify with; a task token
            without ``client``.
        WarrantExpired: A link of the chain has expired.
        ChainValidationError: Untrusted, broken or too deep chain.
        HeaderError: A delegated warrant without ``warrant_chain``.
    """
    if key_id is not None:
        warnings.warn(f"{_OPERATION}: key_id is ignored (a completion carries no PoP)",
                      DeprecationWarning, stacklevel=2)
    if isinstance(handle_or_task_token, (bytes, bytearray)):
        if client is None:
            raise ResolverConfigError(f"{_OPERATION}: client= is required with a task token")
        handle = client.get_async_activity_handle(task_token=bytes(handle_or_task_token))
    else:
        handle = handle_or_task_token
    chosen = _choose_config(config, task_queue, client)
    check_warrant(chosen, chain_ending_with(warrant, warrant_chain, _OPERATION))
    await handle.complete(result)
