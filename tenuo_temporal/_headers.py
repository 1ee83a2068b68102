"""The wire format: Tenuo headers on Temporal workflows and activities.

Names and encodings match ``tenuo.temporal`` 0.3.3, so mixed fleets interoperate:

* ``x-tenuo-warrant``: raw CBOR (``Warrant.to_bytes()``), gzip-compressed when
  ``x-tenuo-compressed`` is ``1``;
* ``x-tenuo-wire-format``: ``2``;
* ``x-tenuo-key-id``: UTF-8 key id of the holder key;
* ``x-tenuo-warrant-chain``: ``encode_warrant_stack`` base64, only for a
  delegated chain (root first, leaf last);
* on activities, ``x-tenuo-pop`` (base64 of 64 bytes) and
  ``x-tenuo-arg-keys`` (comma-joined argument names of the signed view).

Values are ``Payload.data`` bytes with no metadata. Decoding is defensive:
sizes are capped before any parsing, gzip output is capped at 64 KiB, and
anything malformed is a :class:`~tenuo_temporal.errors.HeaderError`, never a
crash.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import cachetools
import tenuo_core
from temporalio.api.common.v1 import Payload

from .errors import HeaderError

WARRANT: Final = "x-tenuo-warrant"
COMPRESSED: Final = "x-tenuo-compressed"
WIRE_FORMAT: Final = "x-tenuo-wire-format"
KEY_ID: Final = "x-tenuo-key-id"
CHAIN: Final = "x-tenuo-warrant-chain"
POP: Final = "x-tenuo-pop"
ARG_KEYS: Final = "x-tenuo-arg-keys"

WIRE_FORMAT_VERSION: Final = b"2"
MAX_WARRANT_BYTES: Final = 64 * 1024
"""Cap on a decompressed warrant (``tenuo_core.MAX_WARRANT_SIZE``)."""
MAX_HEADER_BYTES: Final = 256 * 1024
"""Cap on any one raw header value, checked before decoding."""
MAX_KEY_ID_BYTES: Final = 256
POP_LEN: Final = 64

TENUO_HEADERS: Final = frozenset({WARRANT, COMPRESSED, WIRE_FORMAT, KEY_ID, CHAIN, POP, ARG_KEYS})


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
            data = bytes(payload.data)
            if len(data) > MAX_HEADER_BYTES:
                raise HeaderError(f"header {name} is {len(data)} bytes (limit {MAX_HEADER_BYTES})")
            out[name] = data
    return out


def decode_context(
    headers: Mapping[str, Payload] | None, raw: Mapping[str, bytes] | None = None
) -> WarrantContext | None:
    """Decode the warrant context from Temporal headers.

    Every activity of a workflow carries byte-identical warrant headers, so
    decoded contexts are kept in a small LRU keyed by those bytes: the same
    bytes always decode to the same signed warrant. Expiry and trust are not
    cached; the verifier checks them on every call.

    Args:
        headers: The Temporal headers.
        raw: Their Tenuo values from :func:`header_bytes`, when already read.

    Returns:
        The context, or None when no warrant header is present.

    Raises:
        HeaderError: Headers are present but malformed, oversized, or of an
            unknown wire format.
    """
    if raw is None:
        raw = header_bytes(headers)
    if WARRANT not in raw:
        return None
    cache_key = tuple(raw.get(name, b"") for name in _CONTEXT_HEADERS)
    with _cache_lock:
        cached = _context_cache.get(cache_key)
    if cached is not None:
        return cached
    context = _decode_context(raw)
    with _cache_lock:
        _context_cache[cache_key] = context
    return context


_CONTEXT_HEADERS: Final = (WARRANT, COMPRESSED, WIRE_FORMAT, KEY_ID, CHAIN)
_cache_lock = threading.Lock()
_context_cache: cachetools.LRUCache[tuple[bytes, ...], WarrantContext] = cachetools.LRUCache(
    maxsize=1024
)


def _decode_context(raw: Mapping[str, bytes]) -> WarrantContext:
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
    key_id = _key_id(raw.get(KEY_ID))
    chain: tuple[Any, ...] = (warrant,)
    if CHAIN in raw:
        try:
            links = tenuo_core.decode_warrant_stack_base64(raw[CHAIN].decode("ascii"))
        except Exception as exc:
            raise HeaderError(f"warrant chain does not decode ({type(exc).__name__})") from None
        if not links or _id(links[-1]) != _id(warrant):
            raise HeaderError("warrant chain does not end with the presented warrant")
        chain = tuple(links)
    payloads = {name: Payload(data=value) for name, value in raw.items()
                if name in _CONTEXT_HEADERS}
    payloads.setdefault(WIRE_FORMAT, Payload(data=WIRE_FORMAT_VERSION))
    return WarrantContext(warrant=warrant, chain=chain, key_id=key_id, payloads=payloads)


def decode_pop(raw: Mapping[str, bytes]) -> bytes | None:
    """The 64-byte PoP from ``x-tenuo-pop``, None when absent.

    Raises:
        HeaderError: Not base64, or not 64 bytes.
    """
    value = raw.get(POP)
    if value is None:
        return None
    try:
        pop = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HeaderError("x-tenuo-pop is not base64") from None
    if len(pop) != POP_LEN:
        raise HeaderError(f"x-tenuo-pop decodes to {len(pop)} bytes; expected {POP_LEN}")
    return pop


def decode_arg_keys(raw: Mapping[str, bytes]) -> list[str] | None:
    """Argument names of the signed view, None when absent."""
    value = raw.get(ARG_KEYS)
    if value is None:
        return None
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise HeaderError("x-tenuo-arg-keys is not UTF-8") from None
    names = text.split(",") if text else []
    if len(set(names)) != len(names) or any(not n or not n.isprintable() for n in names):
        raise HeaderError("x-tenuo-arg-keys holds empty, duplicate or unprintable names")
    return names


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
    if len(out) > MAX_WARRANT_BYTES:
        raise HeaderError(f"decompressed warrant exceeds {MAX_WARRANT_BYTES} bytes")
    return out


def _id(warrant: Any) -> str:
    return str(warrant.id)
