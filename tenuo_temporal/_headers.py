"""The wire format: Tenuo headers on Temporal workflows and activities.

Names and encodings match ``tenuo.temporal`` 0.3.3, so mixed fleets interoperate:

* ``x-tenuo-warrant``: raw CBOR (``Warrant.to_bytes()``), gzip-compressed when
  ``x-tenuo-compressed`` is ``1``;
* ``x-tenuo-wire-format``: ``2``;
* ``x-tenuo-key-id``: UTF-8 key id of the holder key;
* ``x-tenuo-warrant-chain``: ``encode_warrant_stack`` base64, only for a
  delegated chain (root first, leaf last);
* on activities, ``x-tenuo-pop`` (base64 of 64 bytes) and
  ``x-tenuo-arg-keys`` (comma-joined argument names of the signed view);
* ``x-tenuo-approvals``, only when approvals were pre-supplied: a UTF-8 JSON
  list of base64 ``SignedApproval.to_bytes()``.

Values are ``Payload.data`` bytes with no metadata. Decoding is defensive:
sizes are capped before any parsing, gzip output is capped at 64 KiB, trailing
data after a gzip stream, a warrant or a chain is refused, and anything
malformed is a :class:`~tenuo_temporal.errors.HeaderError`, never a crash.

**What a sender can make this process keep.** Headers are unauthenticated
until the verifier has checked them, so the decoded-context map is keyed by SHA-256
digests of the warrant and chain headers (the three small headers beside them
go in as they are, capped), bounded by the bytes its entries hold
(:data:`CONTEXT_CACHE_BYTES`), and filled only with small contexts: on activity
workers only once the verifier has checked them against ``trusted_roots``
(:func:`remember`), on workflow workers (which start the runs their clients
asked for) when they are small. Argument-name lists are remembered only when
small.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from hashlib import sha256
from typing import Any, Final

import tenuo_core
from temporalio.api.common.v1 import Payload

from ._args import WORKFLOW_ID_ARG, WORKFLOW_NAMESPACE_ARG, workflow_scoped
from ._bounded import BoundedMap
from .errors import HeaderError, InvalidApproval

WARRANT: Final = "x-tenuo-warrant"
COMPRESSED: Final = "x-tenuo-compressed"
WIRE_FORMAT: Final = "x-tenuo-wire-format"
KEY_ID: Final = "x-tenuo-key-id"
CHAIN: Final = "x-tenuo-warrant-chain"
POP: Final = "x-tenuo-pop"
ARG_KEYS: Final = "x-tenuo-arg-keys"
APPROVALS: Final = "x-tenuo-approvals"

WIRE_FORMAT_VERSION: Final = b"2"
MAX_WARRANT_BYTES: Final = 64 * 1024
"""Cap on a decompressed warrant (``tenuo_core.MAX_WARRANT_SIZE``)."""
MAX_HEADER_BYTES: Final = 256 * 1024
"""Cap on any one raw header value, checked before decoding."""
MAX_KEY_ID_BYTES: Final = 256
POP_LEN: Final = 64
MAX_APPROVALS_BYTES: Final = 64 * 1024
"""Cap on ``x-tenuo-approvals``, checked before any parsing (an approval is about 430 bytes)."""
MAX_APPROVALS: Final = 32
"""Most approvals decoded from one header (``tenuo_core`` accepts twice the approvers)."""
MAX_APPROVAL_BYTES: Final = 4096
"""Cap on one approval's base64 text, checked before decoding it."""

TENUO_HEADERS: Final = frozenset({WARRANT, COMPRESSED, WIRE_FORMAT, KEY_ID, CHAIN, POP, ARG_KEYS,
                                  APPROVALS})


class ContextMarks:
    """Process-local marks on a :class:`WarrantContext`, read on the hot path.

    Attributes:
        held: The context is in the context map.
        noted_at: Per plugin interceptor (its serial number), when it last noted
            the context's key as in use (contexts are shared by every worker of
            the process; each worker keeps its own keys warm).
    """

    __slots__ = ("held", "noted_at")

    def __init__(self) -> None:
        self.held = False
        self.noted_at: dict[int, float] = {}


_SCOPED_HELD: Final = 1024  # tools per context: a warrant grants a handful


@dataclass(frozen=True)
class WarrantContext:
    """The warrant a workflow runs under, decoded once and encoded once.

    Attributes:
        warrant: The leaf ``tenuo_core.Warrant``.
        chain: Root first, leaf last (just ``[warrant]`` when not delegated).
        key_id: The holder key id, or None.
        payloads: The encoded headers, ready to copy onto each activity.
    """

    warrant: Any
    chain: tuple[Any, ...]
    key_id: str | None
    payloads: Mapping[str, Payload] = field(repr=False)
    _scoped: BoundedMap[str, bool] = field(default_factory=lambda: BoundedMap(_SCOPED_HELD),
                                           repr=False, compare=False)
    digest: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)
    """The context map's key for the headers it was decoded from (None: never kept)."""
    cost: int = field(default=0, repr=False, compare=False)
    """Bytes it holds, as charged to the context map."""
    local: ContextMarks = field(default_factory=lambda: ContextMarks(), repr=False,
                                compare=False)
    """What this process noted about the context (kept in the map; last used to sign)."""

    @cached_property
    def holder(self) -> Any:
        """The leaf warrant's ``authorized_holder`` (read once)."""
        return self.warrant.authorized_holder

    def workflow_scoped(self, tool: str) -> bool:
        """Whether calls of ``tool`` are bound to the running workflow (memoized).

        A context is immutable signed content, so the answer never changes.

        Raises:
            TemporalConstraintViolation: The capability constrains only one of
                the two workflow-scope arguments.
        """
        found = self._scoped.get(tool)
        if found is None:
            found = workflow_scoped(self.warrant.capabilities, tool)
            self._scoped[tool] = found
        return found

    def bound_to_workflow(self, tool: str) -> bool:
        """Whether ``tool`` is bound to one workflow by ``Exact`` namespace and id (memoized).

        Raises:
            TemporalConstraintViolation: The capability constrains only one of
                the two workflow-scope arguments.
        """
        key = "\0exact\0" + tool
        found = self._scoped.get(key)
        if found is None:
            found = self.workflow_scoped(tool) and _exact_scope(self.warrant.capabilities, tool)
            self._scoped[key] = found
        return found

    @cached_property
    def expires_at(self) -> float:
        """The earliest expiry of the chain's links, in epoch seconds (read once)."""
        return min(_epoch(link.expires_at()) for link in self.chain)

    @classmethod
    def build(
        cls, warrant: Any, key_id: str | None, chain: Sequence[Any] | None = None,
        *, compress: bool = True,
    ) -> WarrantContext:
        """Encode a warrant (and its chain) into headers.

        Args:
            warrant: The leaf warrant.
            key_id: The holder key id.
            chain: Root-first chain ending with ``warrant``; omit when not delegated.
            compress: Gzip the warrant (level 9), as the reference does.
        """
        links = tuple(chain) if chain else (warrant,)
        if _id(links[-1]) != _id(warrant):
            raise HeaderError("the chain must end with the warrant")
        raw = bytes(warrant.to_bytes())
        payloads: dict[str, Payload] = {
            WIRE_FORMAT: Payload(data=WIRE_FORMAT_VERSION),
            WARRANT: Payload(data=gzip.compress(raw, compresslevel=9) if compress else raw),
            COMPRESSED: Payload(data=b"1" if compress else b"0"),
        }
        if key_id is not None:
            payloads[KEY_ID] = Payload(data=key_id.encode("utf-8"))
        if len(links) > 1:
            payloads[CHAIN] = Payload(data=tenuo_core.encode_warrant_stack(list(links)).encode())
        return cls(warrant=warrant, chain=links, key_id=key_id, payloads=payloads)


def header_bytes(headers: Mapping[str, Payload] | None) -> dict[str, bytes]:
    """The Tenuo headers' raw bytes, size-capped."""
    out: dict[str, bytes] = {}
    for name, payload in (headers or {}).items():
        if name in TENUO_HEADERS:
            out[name] = _capped(name, payload.data)
    return out


def _capped(name: str, data: Any) -> bytes:
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > MAX_HEADER_BYTES:
        raise _oversized(name, len(data))
    return data  # type: ignore[no-any-return]


def _oversized(name: str, size: int) -> HeaderError:
    return HeaderError(f"header {name} is {size} bytes (limit {MAX_HEADER_BYTES})")


def _values(headers: Mapping[str, Payload] | None, names: tuple[str, ...]
            ) -> tuple[bytes | None, ...]:
    # One lookup per name: on the protobuf map a worker hands over, this is
    # several times cheaper than iterating every header.
    if not headers:
        return (None,) * len(names)
    get = headers.get
    out: list[bytes | None] = []
    for name in names:
        payload = get(name)
        out.append(None if payload is None else _capped(name, payload.data))
    return tuple(out)


def decode_context(
    headers: Mapping[str, Payload] | None, raw: Mapping[str, bytes] | None = None
) -> WarrantContext | None:
    """Decode the warrant context from Temporal headers.

    Every activity of a workflow carries byte-identical warrant headers, so
    decoded contexts are kept in a small bounded map keyed by those bytes:
    the same bytes always decode to the same signed warrant. Expiry and trust
    are not cached; the verifier checks them on every call.

    Args:
        headers: The Temporal headers.
        raw: Their Tenuo values from :func:`header_bytes`, when already read.

    Returns:
        The context, or None when no warrant header is present.

    Raises:
        HeaderError: Headers are present but malformed, oversized, or of an
            unknown wire format.
    """
    if raw is not None:
        values = tuple(raw.get(name) for name in _CONTEXT_HEADERS)
    else:
        values = _values(headers, _CONTEXT_HEADERS)
    return _context_of(values)


def activity_headers(
    headers: Mapping[str, Payload] | None,
) -> tuple[WarrantContext | None, bytes | None, bytes | None]:
    """What an activity carries: its warrant context, raw PoP and raw argument names.

    The verifier's single read of the headers (decode the last two with
    :func:`pop_of` and :func:`arg_keys_of`). Runs once per activity, so it is
    written flat: one lookup per header on the protobuf map the worker hands
    over, and one dict probe for the decoded context.

    Raises:
        HeaderError: Malformed or oversized headers.
    """
    if not headers:
        return None, None, None
    get = headers.get
    # Unrolled on purpose: this runs between two Ed25519 operations, whose
    # tables push the interpreter's working set out of the CPU caches, so
    # every step saved here counts two to three times. No size checks here:
    # the context map only ever holds values that passed them (a bigger value
    # cannot hit, and a miss checks before decoding), and :func:`pop_of` and
    # :func:`arg_keys_of` check theirs before decoding.
    warrant, compressed, wire, key_id, chain, pop, arg_keys = (
        get(WARRANT), get(COMPRESSED), get(WIRE_FORMAT), get(KEY_ID), get(CHAIN), get(POP),
        get(ARG_KEYS))
    pop_value = None if pop is None else pop.data
    arg_keys_value = None if arg_keys is None else arg_keys.data
    if warrant is None:
        return None, pop_value, arg_keys_value
    values = (warrant.data,
              None if compressed is None else compressed.data,
              None if wire is None else wire.data,
              None if key_id is None else key_id.data,
              None if chain is None else chain.data)
    digest = _digest(values)
    context = None if digest is None else _context_get(digest)
    if context is None:
        context = _decode_values(values, digest)
    return context, pop_value, arg_keys_value


def remember(context: WarrantContext) -> None:
    """Keep a context the verifier has checked against ``trusted_roots``.

    Activity workers decode every unknown context afresh and keep it only
    once it was trusted, so an unauthenticated sender cannot fill the map;
    a context over :data:`SMALL_CONTEXT_BYTES` has no digest and is never kept.
    """
    digest = context.digest
    if digest is None or context.local.held:
        return
    _context_cache.setdefault(digest, context)
    context.local.held = True


def _context_of(values: tuple[bytes | None, ...]) -> WarrantContext | None:
    # Workflow workers: a run's start headers, kept when small.
    if values[0] is None:  # no x-tenuo-warrant
        return None
    digest = _digest(values)
    if digest is not None:
        cached = _context_get(digest)
        if cached is not None:
            return cached
    context = _decode_values(values, digest)
    remember(context)
    return context


def _decode_values(values: tuple[bytes | None, ...], digest: tuple[Any, ...] | None
                   ) -> WarrantContext:
    values = tuple(None if value is None else _capped(name, value)
                   for name, value in zip(_CONTEXT_HEADERS, values, strict=True))
    return _decode_context({name: value for name, value in zip(_CONTEXT_HEADERS, values,
                                                                 strict=True)
                            if value is not None}, digest)


def _digest(values: tuple[bytes | None, ...]) -> tuple[Any, ...] | None:
    """The context map's key for these headers; None when too big to keep.

    SHA-256 of the warrant and of the chain (the parts a sender can make large);
    the wire-format, compression and key-id values as they are, each capped.
    """
    warrant, compressed, wire, key_id, chain = values
    assert warrant is not None
    size = len(warrant)
    if chain is not None:
        size += len(chain)
    if size > SMALL_CONTEXT_BYTES or (key_id is not None and len(key_id) > MAX_KEY_ID_BYTES) \
            or (compressed is not None and len(compressed) > 1) \
            or (wire is not None and len(wire) > 1):
        return None  # never kept: not worth hashing
    return (sha256(warrant).digest(), compressed, wire, key_id,
            None if chain is None else sha256(chain).digest())


_CONTEXT_HEADERS: Final = (WARRANT, COMPRESSED, WIRE_FORMAT, KEY_ID, CHAIN)
SMALL_CONTEXT_BYTES: Final = 32 * 1024
"""Largest context (raw header bytes) the map keeps; real warrants are a few KiB."""
CONTEXT_CACHE_BYTES: Final = 8 * 1024 * 1024
"""What the decoded-context map may hold in all, charged per context."""
_CONTEXT_OVERHEAD: Final = 4096  # the decoded objects beside the raw bytes
# Byte-bounded, charged per context: a hit is one plain dict read.
_context_cache: BoundedMap[tuple[Any, ...], WarrantContext] = BoundedMap(
    CONTEXT_CACHE_BYTES, getsizeof=lambda context: context.cost)
_context_get = _context_cache.get  # lock-free: the view's dict.get


def _decode_context(raw: Mapping[str, bytes], digest: tuple[Any, ...] | None = None
                    ) -> WarrantContext:
    wire = raw.get(WIRE_FORMAT, WIRE_FORMAT_VERSION)
    if wire != WIRE_FORMAT_VERSION:
        raise HeaderError(f"unknown wire format {wire[:16]!r}; this worker speaks 2")
    flag = raw.get(COMPRESSED, b"0")
    if flag not in (b"0", b"1"):
        raise HeaderError("x-tenuo-compressed must be 0 or 1")
    cbor = _gunzip(raw[WARRANT]) if flag == b"1" else raw[WARRANT]
    if len(cbor) > MAX_WARRANT_BYTES:
        raise HeaderError(f"warrant is {len(cbor)} bytes (limit {MAX_WARRANT_BYTES})")
    try:
        warrant = tenuo_core.Warrant.from_bytes(cbor)
    except Exception as exc:  # tenuo_core raises several types for garbage
        raise HeaderError(f"warrant does not decode ({type(exc).__name__})") from None
    if bytes(warrant.to_bytes()) != cbor:  # tenuo_core ignores trailing bytes
        raise HeaderError("x-tenuo-warrant holds bytes after the warrant")
    key_id = _key_id(raw.get(KEY_ID))
    chain: tuple[Any, ...] = (warrant,)
    if CHAIN in raw:
        try:
            links = tenuo_core.decode_warrant_stack_base64(raw[CHAIN].decode("ascii"))
        except Exception as exc:
            raise HeaderError(f"warrant chain does not decode ({type(exc).__name__})") from None
        if not links or _id(links[-1]) != _id(warrant):
            raise HeaderError("warrant chain does not end with the presented warrant")
        # tenuo_core ignores bytes after the stack: only its own encoding is accepted.
        if tenuo_core.encode_warrant_stack(list(links)).encode("ascii") != raw[CHAIN]:
            raise HeaderError("x-tenuo-warrant-chain holds bytes after the chain, or is "
                              "not in its canonical encoding")
        chain = tuple(links)
    payloads = {name: Payload(data=value) for name, value in raw.items()
                if name in _CONTEXT_HEADERS}
    payloads.setdefault(WIRE_FORMAT, Payload(data=WIRE_FORMAT_VERSION))
    cost = _CONTEXT_OVERHEAD + len(cbor) + sum(len(value) for value in raw.values())
    return WarrantContext(warrant=warrant, chain=chain, key_id=key_id, payloads=payloads,
                          digest=digest, cost=cost)


def decode_pop(raw: Mapping[str, bytes]) -> bytes | None:
    """The 64-byte PoP from ``x-tenuo-pop``, None when absent.

    Raises:
        HeaderError: Not base64, or not 64 bytes.
    """
    return pop_of(raw.get(POP))


def pop_of(value: bytes | None) -> bytes | None:
    """Decode a raw ``x-tenuo-pop`` value (see :func:`decode_pop`)."""
    if value is None:
        return None
    if len(value) > MAX_HEADER_BYTES:  # before decoding
        raise _oversized(POP, len(value))
    try:
        pop = binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise HeaderError("x-tenuo-pop is not base64") from None
    if len(pop) != POP_LEN:
        raise HeaderError(f"x-tenuo-pop decodes to {len(pop)} bytes; expected {POP_LEN}")
    return pop


def decode_arg_keys(raw: Mapping[str, bytes]) -> list[str] | None:
    """Argument names of the signed view, None when absent."""
    names = arg_keys_of(raw.get(ARG_KEYS))
    return None if names is None else list(names)


def arg_keys_of(value: bytes | None) -> tuple[str, ...] | None:
    """Decode a raw ``x-tenuo-arg-keys`` value.

    Memoized when small (a handful of short values repeat); a long value is
    decoded every time and never kept.
    """
    if value is None:
        return None
    if len(value) <= SMALL_ARG_KEYS_BYTES:
        return _small_arg_keys(value)
    return _arg_keys(_capped(ARG_KEYS, value))


SMALL_ARG_KEYS_BYTES: Final = 512
"""Longest ``x-tenuo-arg-keys`` value remembered (1,024 of them at most: 512 KiB)."""


def _arg_keys(value: bytes) -> tuple[str, ...]:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise HeaderError("x-tenuo-arg-keys is not UTF-8") from None
    names = tuple(text.split(",")) if text else ()
    if len(set(names)) != len(names) or any(not n or not n.isprintable() for n in names):
        raise HeaderError("x-tenuo-arg-keys holds empty, duplicate or unprintable names")
    return names


_small_arg_keys = functools.lru_cache(maxsize=1024)(_arg_keys)  # errors are never cached


def encode_approvals(approvals: Sequence[Any]) -> bytes:
    """The ``x-tenuo-approvals`` value for ``SignedApproval`` objects (0.3.3's encoding)."""
    return json.dumps([base64.b64encode(bytes(approval.to_bytes())).decode("ascii")
                       for approval in approvals]).encode("utf-8")


def approvals_of(value: bytes | None) -> list[Any] | None:
    """Decode a raw ``x-tenuo-approvals`` value into ``SignedApproval`` objects.

    Bounded before any work: the whole value (:data:`MAX_APPROVALS_BYTES`),
    the count (:data:`MAX_APPROVALS`) and each item (:data:`MAX_APPROVAL_BYTES`).
    Decoding checks structure only; ``tenuo_core`` judges each approval.

    Returns:
        The approvals, or None when the header is absent or empty.

    Raises:
        InvalidApproval: Oversized or malformed.
    """
    if not value:
        return None
    if len(value) > MAX_APPROVALS_BYTES:
        raise InvalidApproval(f"header {APPROVALS} is {len(value)} bytes "
                              f"(limit {MAX_APPROVALS_BYTES})")
    try:
        items = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidApproval(f"{APPROVALS} is not a JSON list") from None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise InvalidApproval(f"{APPROVALS} is not a JSON list of base64 strings")
    if len(items) > MAX_APPROVALS:
        raise InvalidApproval(f"{APPROVALS} holds {len(items)} approvals (limit {MAX_APPROVALS})")
    approvals = []
    for index, item in enumerate(items):
        if len(item) > MAX_APPROVAL_BYTES:
            raise InvalidApproval(f"{APPROVALS}[{index}] is {len(item)} characters "
                                  f"(limit {MAX_APPROVAL_BYTES})")
        try:
            approvals.append(tenuo_core.SignedApproval.from_bytes(
                binascii.a2b_base64(item.encode("ascii"), strict_mode=True)))
        except Exception as exc:  # tenuo_core raises several types for garbage
            raise InvalidApproval(f"{APPROVALS}[{index}] does not decode to a SignedApproval "
                                  f"({type(exc).__name__})") from None
    return approvals or None


def _key_id(value: bytes | None) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_KEY_ID_BYTES:
        raise HeaderError(f"x-tenuo-key-id is {len(value)} bytes (limit {MAX_KEY_ID_BYTES})")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise HeaderError("x-tenuo-key-id is not UTF-8") from None
    if not text or not text.isprintable():
        raise HeaderError("x-tenuo-key-id is empty or unprintable")
    return text


def _gunzip(data: bytes) -> bytes:
    try:
        stream = zlib.decompressobj(wbits=31)  # gzip framing
        out = stream.decompress(data, MAX_WARRANT_BYTES + 1)
    except zlib.error:
        raise HeaderError("x-tenuo-warrant is not valid gzip") from None
    if len(out) <= MAX_WARRANT_BYTES and not stream.eof:
        raise HeaderError("x-tenuo-warrant is not valid gzip (truncated)")
    if stream.unused_data:
        raise HeaderError("x-tenuo-warrant has data after its gzip stream")
    if len(out) > MAX_WARRANT_BYTES:
        raise HeaderError(f"decompressed warrant exceeds {MAX_WARRANT_BYTES} bytes")
    return out


def _exact_scope(capabilities: Mapping[str, Any], tool: str) -> bool:
    fields = capabilities.get(tool, capabilities.get("*")) or {}
    return all(isinstance(fields.get(name), tenuo_core.Exact)
               for name in (WORKFLOW_NAMESPACE_ARG, WORKFLOW_ID_ARG))


def _epoch(text: Any) -> float:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def _id(warrant: Any) -> str:
    return str(warrant.id)


def chain_ending_with(warrant: Any, warrant_chain: Sequence[Any] | None,
                      operation: str) -> list[Any]:
    """``warrant``'s chain, root first: ``warrant_chain`` may be its parents or end with it.

    The reference's convention for ``warrant_chain=`` on helpers called
    outside a workflow.

    Raises:
        HeaderError: A delegated warrant without its chain (a verifier trusts
            only the root).
    """
    if warrant_chain:
        chain = list(warrant_chain)
        if _id(chain[-1]) != _id(warrant):
            chain.append(warrant)
        return chain
    if getattr(warrant, "parent_hash", None) is not None:
        raise HeaderError(
            f"{operation}: a delegated warrant needs warrant_chain= (its parents, root first, "
            "or the whole chain ending with it): a verifier trusts only the root")
    return [warrant]
