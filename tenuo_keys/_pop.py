"""Our own builder of the bytes a Tenuo Proof-of-Possession signs.

A PoP is a pure Ed25519 signature (RFC 8032: no prehash, no context) over::

    b"tenuo-warrant-v1" + b"tenuo-pop-v1" + CBOR([warrant_id_hex, tool, [[k, v]...], window])

where ``warrant_id_hex`` is ``warrant.id`` without its ``tnu_wrt_`` prefix,
the argument pairs are sorted by the UTF-8 bytes of their names, and
``window = trunc(ts / 30) * 30``. CBOR values: shortest-form integers (an int
outside i64 becomes a float), the smallest of f16/f32/f64 that round-trips
a float exactly (so ``1.0`` is not ``1``), booleans as true/false, ``None``
as null, lists and tuples as arrays, dicts as maps with keys in UTF-8 byte
order (not RFC 7049's length-first order).

Building the message ourselves is what lets a key that never leaves a KMS
sign a PoP: ``signer.sign(pop_message(...))`` equals ``warrant.sign(...)``
byte for byte. :func:`self_test` proves that against ``tenuo_core`` with a
throwaway key, so a future tenuo release that changes the format disables
remote signing with a clear error instead of producing denials.
"""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Mapping
from typing import Any, Final

import tenuo_core

from .errors import ResolverConfigError

__all__ = ["POP_WINDOW_SECS", "PopFormatChanged", "pop_message", "self_test"]

POP_WINDOW_SECS: Final = 30
"""The PoP time window of ``tenuo_core`` 0.3: a PoP signs ``(ts // 30) * 30``."""
DOMAIN: Final = b"tenuo-warrant-v1" + b"tenuo-pop-v1"
_WARRANT_PREFIX: Final = "tnu_wrt_"
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


class PopFormatChanged(ResolverConfigError):
    """``tenuo_core`` no longer signs the PoP format this builder produces."""


def pop_message(warrant: Any, tool: str, args: Mapping[str, Any], timestamp: int) -> bytes:
    """The exact bytes ``warrant.sign(key, tool, args, timestamp)`` signs.

    Args:
        warrant: A ``tenuo_core.Warrant`` (or anything with its ``id``).
        tool: The tool name.
        args: Argument name to value (str, int, float, bool, None, list, tuple, dict).
        timestamp: Unix seconds; only its 30-second window is signed.

    Returns:
        The message to sign with pure Ed25519.

    Raises:
        TypeError: A value of a type the format does not define.
    """
    warrant_id = str(warrant.id)
    if warrant_id.startswith(_WARRANT_PREFIX):
        warrant_id = warrant_id[len(_WARRANT_PREFIX):]
    pairs = [[name, args[name]] for name in sorted(args, key=_utf8)]
    window = int(timestamp / POP_WINDOW_SECS) * POP_WINDOW_SECS
    return DOMAIN + _encode([warrant_id, tool, pairs, window])


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    if n < 0x100:
        return bytes([major << 5 | 24, n])
    if n < 0x10000:
        return bytes([major << 5 | 25]) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes([major << 5 | 26]) + n.to_bytes(4, "big")
    return bytes([major << 5 | 27]) + n.to_bytes(8, "big")


def _float(value: float) -> bytes:
    if math.isnan(value):
        return b"\xf9\x7e\x00"  # the canonical half-precision NaN
    for fmt, info in (("e", 25), ("f", 26)):
        try:
            packed = struct.pack(">" + fmt, value)
        except OverflowError:
            continue
        if struct.unpack(">" + fmt, packed)[0] == value:
            return bytes([0xE0 | info]) + packed
    return b"\xfb" + struct.pack(">d", value)


def _encode(value: Any) -> bytes:
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        if _I64_MIN <= value <= _I64_MAX:
            return _head(0, value) if value >= 0 else _head(1, -1 - value)
        return _float(float(value))
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _head(3, len(raw)) + raw
    if isinstance(value, (list, tuple)):
        return _head(4, len(value)) + b"".join(_encode(item) for item in value)
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: _utf8(str(kv[0])))
        return _head(5, len(items)) + b"".join(
            _encode(str(key)) + _encode(item) for key, item in items
        )
    raise TypeError(f"a PoP argument cannot be of type {type(value).__name__}")


_self_test_lock = threading.Lock()
_self_test_result: bool | None = None

_PROBES: tuple[dict[str, Any], ...] = (
    {},
    {"path": "/data/ümlaut", "n": -1, "big": 2**70, "f": 1.0, "g": 0.1, "b": True, "z": None},
    {"nested": {"b": [1, 2.5, "x", {"k": False}], "a": []}, "tuple": (1, 2)},
)


def self_test() -> None:
    """Check, once per process, that this builder matches ``tenuo_core``.

    Raises:
        PopFormatChanged: The installed tenuo signs different bytes; remote
            signing must stay off until this builder is updated.
    """
    global _self_test_result
    with _self_test_lock:
        if _self_test_result is None:
            _self_test_result = _probe()
        if not _self_test_result:
            raise PopFormatChanged(
                "the installed tenuo_core signs PoPs in a format this tenuo-keys release does "
                "not build; remote signers are disabled (local keys keep working)"
            )


def _probe() -> bool:
    issuer = tenuo_core.SigningKey.generate()
    holder = tenuo_core.SigningKey.generate()
    warrant = tenuo_core.Warrant.issue(keypair=issuer, capabilities={"probe": {}},
                                       ttl_seconds=60, holder=holder.public_key)
    for args in _PROBES:
        for ts in (1_700_000_000, 1_700_000_029, 1_700_000_030):
            expected = bytes(warrant.sign(holder, "probe", args, ts))
            if bytes(holder.sign_raw(pop_message(warrant, "probe", args, ts))) != expected:
                return False
    return True
