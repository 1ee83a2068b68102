"""Delegation: attenuate the parent warrant in a local activity (recorded in history).

Minting is not deterministic (a warrant carries its issue time and a fresh id),
so it happens outside the workflow sandbox, in a local activity whose result
the history records: replay reads the recorded child warrant, never re-mints.

Constraint objects are not data-converter friendly, so the request is parked
in this process under a token; a local activity always runs in the worker
process of the workflow task that scheduled it.

The activity acts only for the run that scheduled it: workflow code can park
any request and call the activity itself, so the parent warrant is never taken
from the request. It must be the calling run's own (its state in this
process), and the token must be one that run parked.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, cast

import temporalio.workflow
import tenuo  # noqa: F401 - installs tenuo's IssuanceBuilder (Warrant.issue_execution)
import tenuo_core
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tenuo_keys import KeyResolutionError

from ._bounded import BoundedMap
from ._config import TenuoPluginConfig
from ._headers import WarrantContext
from ._ids import MINT_ACTIVITY
from ._state import run_state_of
from .errors import KeyResolutionFailed, TemporalConstraintViolation, denial

__all__ = ["MintRequest", "make_mint_activity", "mint_parked", "park", "request_mint", "take"]


@dataclass(frozen=True)
class MintRequest:
    """What a narrower warrant should be: never wider than its parent.

    Attributes:
        parent: The calling run's own warrant context.
        tools: The tools the new warrant grants.
        constraints: Per tool, the constraints (default: the parent's).
        ttl_seconds: Its life (default: as tenuo_core decides, never past the parent).
        child_key_id: The new holder's key id (default: the parent's).
        kind: ``"attenuate"`` (a narrower copy of an execution warrant) or
            ``"issue_execution"`` (an execution warrant from an issuer warrant,
            held by another key).
    """

    parent: WarrantContext
    tools: Sequence[str]
    constraints: Mapping[str, Mapping[str, Any]]
    ttl_seconds: int | None
    child_key_id: str | None
    kind: Literal["attenuate", "issue_execution"] = "attenuate"


# Bounded and short-lived: a replayed workflow parks again but its recorded
# local activity never runs, so unclaimed requests must age out.
_parked: BoundedMap[str, MintRequest] = BoundedMap(10_000, ttl=600)
_counter = itertools.count()


def park(token_base: str, request: MintRequest) -> str:
    """Park a request for the mint activity; returns its token."""
    token = f"{token_base}:{next(_counter)}"
    _parked[token] = request
    return token


def take(token: str) -> MintRequest | None:
    """Remove and return a parked request."""
    return cast(MintRequest | None, _parked.pop(token))


def make_mint_activity(config: TenuoPluginConfig) -> Any:
    """The local activity that attenuates a warrant for a child workflow."""

    @activity.defn(name=MINT_ACTIVITY)
    async def mint_child_warrant(token: str) -> dict[str, Any]:
        request = take(token)
        if request is None:
            raise ApplicationError(
                "delegation request not found in this worker process", non_retryable=True)
        run_id = activity.info().workflow_run_id
        state = run_state_of(run_id)
        own = state.context if state is not None else None
        if (own is None or not token.startswith(f"{run_id}:")
                or request.parent.key_id != own.key_id
                or bytes(request.parent.warrant.to_bytes()) != bytes(own.warrant.to_bytes())):
            raise _widening("the request is not for the calling workflow's own warrant")
        resolver = config.key_resolver
        if resolver is None:
            raise denial(KeyResolutionFailed(
                "this worker has no key_resolver; it cannot delegate"))
        parent = request.parent
        if parent.key_id is None:
            raise denial(KeyResolutionFailed("the parent warrant has no key id"))
        try:
            parent_key = await resolver.resolve_for_holder(parent.key_id,
                                                           parent.warrant.authorized_holder)
            child_holder = (parent_key.public_key if request.child_key_id is None else
                            (await resolver.resolve(request.child_key_id)).public_key)
        except KeyResolutionError as error:
            raise denial(KeyResolutionFailed(str(error)),
                         non_retryable=not error.retryable) from None
        issuing = request.kind == "issue_execution"
        granted = ({tool: {} for tool in parent.warrant.issuable_tools or ()} if issuing
                   else parent.warrant.capabilities or {})
        capabilities: dict[str, Any] = {}
        for tool in request.tools:
            if tool not in granted:
                raise _widening(f"tool {tool!r} is not granted to the parent")
            capabilities[tool] = dict(request.constraints.get(tool, granted[tool]))
        extra = set(request.constraints) - set(request.tools)
        if extra:
            raise _widening(f"constraints for tools not delegated: {sorted(extra)}")
        remaining = _remaining_seconds(parent.warrant)
        if request.ttl_seconds is not None and request.ttl_seconds > remaining:
            raise _widening(f"ttl_seconds={request.ttl_seconds} outlives the parent "
                            f"(expires in {remaining}s)")
        try:
            if issuing:
                child = _issue_execution(parent.warrant, capabilities, parent_key,
                                         request.ttl_seconds, child_holder)
            else:
                child = parent.warrant.attenuate(
                    capabilities, signing_key=parent_key, ttl_seconds=request.ttl_seconds,
                    holder=child_holder)
        except Exception as exc:  # tenuo_core refuses any widening
            raise _widening(f"{type(exc).__name__}: {exc}") from None
        chain = [*parent.chain, child]
        return {
            "chain": tenuo_core.encode_warrant_stack(chain),
            "key_id": request.child_key_id or parent.key_id,
        }

    return mint_child_warrant


def _issue_execution(issuer: Any, capabilities: Mapping[str, Mapping[str, Any]],
                     signing_key: Any, ttl_seconds: int | None, holder: Any) -> Any:
    """An execution warrant from ``issuer`` (tenuo_core checks it against the issuer's bounds).

    ``Warrant.issue_execution()`` returns the ``tenuo`` package's
    ``IssuanceBuilder`` (``import tenuo`` installs it over tenuo_core's own).
    """
    builder = issuer.issue_execution()
    for tool, constraints in capabilities.items():
        builder.capability(tool, dict(constraints))
    if ttl_seconds is not None:
        builder.ttl(ttl_seconds)
    builder.holder(holder)
    return builder.build(signing_key)


async def request_mint(request: MintRequest, mint_timeout: timedelta) -> WarrantContext:
    """Mint in the plugin's local activity (from workflow code); the new warrant's context.

    The local activity's result is recorded in history: replay reads it and
    never mints again.
    """
    return await mint_parked(park(temporalio.workflow.info().run_id, request), mint_timeout)


async def mint_parked(token: str, mint_timeout: timedelta) -> WarrantContext:
    """Run the minting local activity for a parked request; the new warrant's context."""
    minted: dict[str, Any] = await temporalio.workflow.execute_local_activity(
        MINT_ACTIVITY, token, start_to_close_timeout=mint_timeout)
    chain = tenuo_core.decode_warrant_stack_base64(minted["chain"])
    return WarrantContext.build(chain[-1], minted["key_id"], chain)


def _remaining_seconds(warrant: Any) -> int:
    expires = datetime.fromisoformat(str(warrant.expires_at()).replace("Z", "+00:00"))
    return max(0, int((expires - datetime.now(timezone.utc)).total_seconds()))


def _widening(reason: str) -> ApplicationError:
    return denial(TemporalConstraintViolation(f"delegation refused: {reason}"))
