"""Nexus operations: the tool they are checked as, their headers, the handler's check.

Experimental, as Nexus is upstream. The wire format is ``tenuo.temporal``
0.3.3's, so a stock caller reaches our handler and ours reaches a stock one:

* the tool is ``nexus:<endpoint>:<service>:<operation>``
  (:func:`nexus_tool_name`);
* the arguments are the input's top-level fields: a dataclass's fields, a
  mapping's keys, anything else as ``{"input": value}``
  (:func:`nexus_input_args`), each value reduced as activity arguments are;
* Nexus headers are strings, so each Tenuo header travels as the base64 of the
  bytes an activity header would hold, next to
  ``x-tenuo-nexus-header-encoding: base64-v1``; ``x-tenuo-tool-name`` names
  the signed tool and ``x-tenuo-arg-keys`` the signed fields.

The handler checks chain, PoP and constraints at its own clock, for the tool
it serves (its configured ``nexus_endpoint``, the request's service and
operation), never the tool the caller names: a header naming another tool is
refused.
"""

from __future__ import annotations

import binascii
import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import nexusrpc
import temporalio.nexus

from . import _headers as H
from ._args import canonical
from ._config import TenuoPluginConfig
from ._headers import WarrantContext
from ._verify import Verifier
from .errors import (
    ChainValidationError,
    HeaderError,
    PopVerificationError,
    TemporalConstraintViolation,
    TenuoTemporalError,
    WarrantMissing,
)

__all__ = [
    "ENCODING_HEADER",
    "ENCODING_V1",
    "TOOL_HEADER",
    "NexusCheck",
    "decode_nexus_headers",
    "nexus_input_args",
    "nexus_tool_name",
    "sign_nexus_headers",
    "tenuo_nexus_headers",
    "unauthorized",
    "verify_nexus_operation",
]

ENCODING_HEADER: Final = "x-tenuo-nexus-header-encoding"
ENCODING_V1: Final = "base64-v1"
TOOL_HEADER: Final = "x-tenuo-tool-name"
_PREFIX: Final = "x-tenuo-"
_CARRIED: Final = H.TENUO_HEADERS | {TOOL_HEADER}
# base64 grows 4/3: the encoded form of the largest header an activity accepts.
_MAX_ENCODED: Final = (H.MAX_HEADER_BYTES // 3 + 1) * 4


def _operation_name(operation: Any) -> str:
    if isinstance(operation, str):
        return operation
    if isinstance(operation, nexusrpc.Operation):
        return operation.name
    try:
        return nexusrpc.get_operation(operation).name  # type: ignore[union-attr]
    except Exception:  # not a decorated operation: its own name
        name = getattr(operation, "name", None) or getattr(operation, "__name__", None)
        return str(name or operation)


def nexus_tool_name(endpoint: str, operation: Any, *, service: str | None = None) -> str:
    """The tool a Nexus operation is checked as: ``nexus:<endpoint>[:<service>]:<operation>``.

    Args:
        endpoint: The Nexus endpoint's name (as ``temporal operator nexus
            endpoint create --name`` gave it).
        operation: The operation's name, or a ``nexusrpc`` operation (or its
            decorated method).
        service: The service's name.
    """
    prefix = f"nexus:{endpoint}:{service}" if service else f"nexus:{endpoint}"
    return f"{prefix}:{_operation_name(operation)}"


def nexus_input_args(input: Any) -> dict[str, Any]:
    """The arguments a Nexus operation's input is signed and constrained as.

    A dataclass's fields and a mapping's keys are the arguments, so
    constraints name them; any other input is the single argument ``input``.
    Values are reduced as activity arguments are.

    Raises:
        TemporalConstraintViolation: A value has no canonical form.
    """
    if dataclasses.is_dataclass(input) and not isinstance(input, type):
        fields = {f.name: getattr(input, f.name) for f in dataclasses.fields(input)}
    elif isinstance(input, Mapping):
        fields = {str(key): value for key, value in input.items()}
    else:
        fields = {"input": input}
    return {name: canonical(value) for name, value in fields.items()}


def sign_nexus_headers(context: WarrantContext, key: Any, tool: str, args: dict[str, Any],
                       timestamp: int, approvals: Sequence[Any] | None = None
                       ) -> dict[str, str]:
    """Sign ``tool(args)`` at ``timestamp`` and encode the Nexus headers for it.

    Args:
        context: The warrant (and chain) the call runs under.
        key: The holder's ``tenuo_core.SigningKey``.
        tool: From :func:`nexus_tool_name`.
        args: From :func:`nexus_input_args`.
        timestamp: Epoch seconds the PoP is signed at (the workflow's clock).
        approvals: ``SignedApproval`` objects for an approval-gated tool.
    """
    pop = bytes(context.warrant.sign(key, tool, args, timestamp))
    raw = {name: bytes(payload.data) for name, payload in context.payloads.items()}
    raw[TOOL_HEADER] = tool.encode("utf-8")
    raw[H.ARG_KEYS] = ",".join(args).encode("utf-8")
    raw[H.POP] = binascii.b2a_base64(pop, newline=False)
    if approvals:
        raw[H.APPROVALS] = H.encode_approvals(approvals)
    headers = {name: binascii.b2a_base64(value, newline=False).decode("ascii")
               for name, value in raw.items()}
    headers[ENCODING_HEADER] = ENCODING_V1
    return headers


def tenuo_nexus_headers(
    warrant: Any, key_id: str, signer: Any, *, endpoint: str, operation: Any, input: Any,
    service: str | None = None, warrant_chain: list[Any] | None = None,
    compress: bool = True, timestamp: int | None = None,
    approvals: Sequence[Any] | None = None,
) -> dict[str, str]:
    """Nexus headers carrying a warrant and a PoP for one operation call.

    For tests and hand wiring: inside a workflow under the plugin, every
    ``workflow.create_nexus_client(...)`` call is signed already. Pass the
    result as ``headers=`` of ``start_operation``/``execute_operation``; the
    plugin leaves headers that carry a PoP as they are.

    Args:
        warrant: The leaf warrant.
        key_id: The holder key id (a name, never the key).
        signer: The holder's ``tenuo_core.SigningKey``.
        endpoint: The endpoint name.
        operation: The operation (name or ``nexusrpc`` operation).
        input: The operation's input.
        service: The service name.
        warrant_chain: Root-first chain: ``warrant``'s parents, or the whole
            chain ending with it.
        compress: Gzip the warrant.
        timestamp: Epoch seconds to sign at (default: now).
        approvals: ``SignedApproval`` objects, for a tool the warrant gates
            behind approvals (0.3.3's ``approvals=``).

    Raises:
        TypeError: ``key_id`` is not a string.
        HeaderError: ``warrant_chain`` and ``warrant`` disagree.
        TemporalConstraintViolation: An input value has no canonical form.
    """
    if not isinstance(key_id, str):
        raise TypeError(f"key_id must be a key id (str), not {type(key_id).__name__}")
    chain = list(warrant_chain or [])
    if chain and bytes(chain[-1].to_bytes()) != bytes(warrant.to_bytes()):
        chain.append(warrant)
    context = WarrantContext.build(warrant, key_id, chain or None, compress=compress)
    if timestamp is None:
        timestamp = int(time.time())
    return sign_nexus_headers(context, signer, nexus_tool_name(endpoint, operation,
                                                               service=service),
                              nexus_input_args(input), timestamp, approvals)


def decode_nexus_headers(headers: Mapping[str, str]) -> dict[str, bytes]:
    """The Tenuo headers' bytes from a Nexus request's string headers.

    Header names are matched lower-case, as the reference sends them; a header
    that differs only in case is not read.

    Returns:
        Name to bytes; empty when the request carries no Tenuo header.

    Raises:
        HeaderError: Tenuo headers without the ``base64-v1`` marker, one that
            is not base64, or one over the size cap.
    """
    present = {name: value for name, value in headers.items()
               if name.startswith(_PREFIX) and name != ENCODING_HEADER}
    if not present:
        return {}
    if headers.get(ENCODING_HEADER) != ENCODING_V1:
        raise HeaderError(f"Nexus Tenuo headers need {ENCODING_HEADER}: {ENCODING_V1}")
    out: dict[str, bytes] = {}
    for name, value in present.items():
        if name not in _CARRIED:
            continue
        if len(value) > _MAX_ENCODED:
            raise HeaderError(f"header {name} is {len(value)} characters "
                              f"(limit {_MAX_ENCODED})")
        try:
            out[name] = binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise HeaderError(f"header {name} is not base64") from None
    return out


class NexusCheck:
    """The handler side's check of Nexus starts, for one plugin config.

    Args:
        config: The plugin configuration (its ``nexus_endpoint`` and roots).
        verifier: The plugin's verifier (made from ``config`` when omitted).
    """

    def __init__(self, config: TenuoPluginConfig, verifier: Verifier | None = None) -> None:
        self.config = config
        self.verifier = verifier or Verifier(config)

    def tool_for(self, service: str, operation: str, endpoint: str | None = None) -> str:
        """The tool a start is checked as (``nexus:?:...`` when no endpoint is configured)."""
        return nexus_tool_name(endpoint or self.config.nexus_endpoint or "?", operation,
                               service=service)

    def check(self, headers: Mapping[str, str], service: str, operation: str, input: Any,
              *, endpoint: str | None = None) -> WarrantContext | None:
        """Check one Nexus start before its handler runs.

        Args:
            headers: The request's headers.
            service: The service the request names.
            operation: The operation the request names.
            input: The deserialized input the handler will receive.
            endpoint: The endpoint this handler serves (default:
                ``config.nexus_endpoint``).

        Returns:
            The verified context, or None for a request without a warrant
            where ``require_warrant=False`` lets one through.

        Raises:
            TenuoTemporalError: The denial.
        """
        config = self.config
        raw = decode_nexus_headers(headers)
        endpoint = endpoint or config.nexus_endpoint
        tool = self.tool_for(service, operation, endpoint)
        if H.WARRANT not in raw:
            if config.require_warrant:
                raise WarrantMissing("the Nexus request carries no warrant", tool=tool)
            return None
        if not endpoint:
            raise ChainValidationError(
                "this worker handles Nexus operations but TenuoPluginConfig.nexus_endpoint "
                "is not set: name the endpoint it serves", tool=tool)
        observed = _served_endpoint()
        if observed and observed != endpoint:
            raise ChainValidationError(
                f"the request came through endpoint {observed!r}, but this worker is "
                f"configured for {endpoint!r}", tool=tool)
        if not config.verifies:
            raise ChainValidationError("this worker has no trusted_roots to verify with",
                                       tool=tool)
        signed_tool = raw.get(TOOL_HEADER)
        if signed_tool is None:
            raise PopVerificationError(f"the request carries no {TOOL_HEADER}", tool=tool)
        if signed_tool != tool.encode("utf-8"):
            raise PopVerificationError(
                "the caller signed for another endpoint, service or operation", tool=tool)
        try:
            args = nexus_input_args(input)
        except TenuoTemporalError as error:
            raise TemporalConstraintViolation(error.reason, tool=tool) from None
        signed_keys = H.arg_keys_of(raw.get(H.ARG_KEYS))
        if signed_keys is None:
            raise PopVerificationError(f"the request carries no {H.ARG_KEYS}", tool=tool)
        if set(signed_keys) != set(args):
            raise TemporalConstraintViolation(
                "the caller signed other input fields than this handler receives", tool=tool)
        try:
            context = H.decode_context(None, raw)
            pop = H.pop_of(raw.get(H.POP))
        except HeaderError as error:
            raise type(error)(error.reason, tool=tool) from None
        if context is None:  # pragma: no cover - the warrant header is present
            raise WarrantMissing("the Nexus request carries no warrant", tool=tool)
        if pop is None:
            raise PopVerificationError("the Nexus request carries no PoP", tool=tool)
        self.verifier.check_call(context, tool, args, pop, raw.get(H.APPROVALS))
        return context


def _served_endpoint() -> str | None:
    """The endpoint the running Nexus request was addressed to, when Temporal says."""
    if not temporalio.nexus.in_operation():
        return None
    return temporalio.nexus.info().endpoint or None


def unauthorized(error: TenuoTemporalError) -> nexusrpc.HandlerError:
    """The Nexus ``HandlerError`` (``UNAUTHORIZED``, not retried) a denial is raised as.

    Its message starts with the denial's wire type (``TENUO_POP_INVALID: ...``).
    """
    return nexusrpc.HandlerError(f"{error.type}: {error}",
                                 type=nexusrpc.HandlerErrorType.UNAUTHORIZED,
                                 retryable_override=False)


def verify_nexus_operation(
    ctx: Any, input: Any, config: TenuoPluginConfig, *, endpoint: str | None = None,
    service: str | None = None, operation: Any = None, raise_nexus_error: bool = False,
) -> Any:
    """Verify a Nexus start inside its handler; returns the verified warrant.

    The plugin's interceptor already checks every start on a worker whose
    config sets ``nexus_endpoint``; this is for hand wiring and for handlers
    that want the warrant.

    Args:
        ctx: The handler's ``StartOperationContext``.
        input: The handler's input.
        config: The plugin configuration.
        endpoint: The endpoint served (default: ``config.nexus_endpoint``).
        service: Overrides ``ctx.service``.
        operation: Overrides ``ctx.operation``.
        raise_nexus_error: Raise the denial as a Nexus ``HandlerError``
            (``UNAUTHORIZED``) rather than the typed ``TenuoTemporalError``.

    Returns:
        The leaf warrant, or None when no warrant came and ``require_warrant``
        is False.

    Raises:
        TenuoTemporalError: The denial.
        nexusrpc.HandlerError: The denial, with ``raise_nexus_error=True``.
    """
    try:
        context = NexusCheck(config).check(
            ctx.headers or {}, service or ctx.service,
            _operation_name(operation) if operation is not None else ctx.operation,
            input, endpoint=endpoint)
    except TenuoTemporalError as error:
        if raise_nexus_error:
            raise unauthorized(error) from None
        raise
    return None if context is None else context.warrant
