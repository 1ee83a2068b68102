"""One decoder for key material, shared by every backend.

Accepted forms of an Ed25519 holder key:

* raw 32-byte seed;
* raw 64 bytes ``seed || public`` (Vault Transit's export), halves checked;
* hex of either (64 or 128 hex digits);
* base64 of either, standard or URL-safe, padded or not;
* PEM PKCS#8 (``-----BEGIN PRIVATE KEY-----``);
* a JSON object holding any of the text forms under a configurable field
  (an object that names any field twice, at any depth, is refused).

Surrounding whitespace is ignored. Anything else raises
:class:`~tenuo_keys.errors.KeyFormatError` that names the key id and the forms
tried, never the bytes; errors are raised ``from None`` so no library
exception that might echo the input rides along as a cause.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Final

import tenuo_core

from .errors import KeyFormatError

__all__ = ["FORMATS", "decode_signing_key", "encode_signing_key"]

SEED_LEN: Final = 32
PAIR_LEN: Final = 64
MAX_INPUT: Final = 64 * 1024
"""Inputs larger than this are refused before any parsing (a key is < 300 bytes)."""

FORMATS: Final[tuple[str, ...]] = (
    "raw-32",
    "raw-64 (seed||public)",
    "hex",
    "base64",
    "base64url",
    "pem-pkcs8",
    "json",
)

_HEX = re.compile(r"[0-9a-fA-F]+")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_TRIED = "tried raw, hex, base64, base64url, PEM PKCS#8 and JSON"


def decode_signing_key(
    material: bytes | bytearray | memoryview | str,
    *,
    key_id: str | None = None,
    backend: str | None = None,
    field: str = "key",
) -> Any:
    """Decode stored key material into a ``tenuo_core.SigningKey``.

    Args:
        material: The stored value, bytes or text, in any accepted form.
        key_id: The key id, used only to say where a bad value came from.
        backend: The backend name, likewise.
        field: The JSON field that holds the key when the value is a JSON object.

    Returns:
        The parsed ``tenuo_core.SigningKey``.

    Raises:
        KeyFormatError: The value is not a key in any accepted form. The message
            says what was wrong and names no byte of the value.
    """

    def fail(reason: str) -> KeyFormatError:
        return KeyFormatError(reason, key_id=key_id, backend=backend)

    if isinstance(material, str):
        if len(material) > MAX_INPUT:
            raise fail(f"value is {len(material)} characters; a key is far shorter")
        return _from_text(material, fail, field, allow_json=True)
    if not isinstance(material, (bytes, bytearray, memoryview)):
        raise fail(f"expected bytes or text, got {type(material).__name__}")
    raw = bytes(material)
    if len(raw) > MAX_INPUT:
        raise fail(f"value is {len(raw)} bytes; a key is far shorter")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    # Printable text is read as text first: 32 or 64 random bytes are never all
    # hex/base64 characters, while a hex or base64 string always is.
    if text is not None and (text.strip() == "" or text.isprintable() or _is_text_block(text)):
        if len(raw) in (SEED_LEN, PAIR_LEN) and not _looks_textual(text):
            return _from_raw(raw, fail, "raw")
        return _from_text(text, fail, field, allow_json=True)
    if len(raw) in (SEED_LEN, PAIR_LEN):
        return _from_raw(raw, fail, "raw")
    raise fail(f"binary value of {len(raw)} bytes; expected 32 (seed) or 64 (seed||public)")


def encode_signing_key(key: Any, fmt: str = "base64") -> str:
    """Encode a ``SigningKey`` in the canonical text form a backend stores.

    Args:
        key: A ``tenuo_core.SigningKey``.
        fmt: One of ``"base64"``, ``"base64url"``, ``"hex"`` or ``"pem"``.

    Returns:
        The encoded key. This is secret material: print or store it deliberately.

    Raises:
        ValueError: ``fmt`` is not one of the forms above.
    """
    seed = bytes(key.secret_key_bytes())
    if fmt == "base64":
        return base64.b64encode(seed).decode("ascii")
    if fmt == "base64url":
        return base64.urlsafe_b64encode(seed).decode("ascii")
    if fmt == "hex":
        return seed.hex()
    if fmt == "pem":
        return str(key.to_pem())
    raise ValueError(f"unknown key encoding {fmt!r}; use base64, base64url, hex or pem")


def _is_text_block(text: str) -> bool:
    # PEM and pretty-printed JSON carry newlines, which isprintable() rejects.
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def _looks_textual(text: str) -> bool:
    stripped = text.strip()
    return bool(
        stripped.startswith(("-----BEGIN", "{"))
        or _HEX.fullmatch(stripped)
        or _B64.fullmatch(stripped)
        or _B64URL.fullmatch(stripped)
    )


def _from_raw(raw: bytes, fail: Any, form: str) -> Any:
    if len(raw) == SEED_LEN:
        return _seed_to_key(raw, fail)
    if len(raw) == PAIR_LEN:
        key = _seed_to_key(raw[:SEED_LEN], fail)
        if bytes(key.public_key_bytes()) != raw[SEED_LEN:]:
            raise fail(f"{form} value is 64 bytes but its public half does not match its seed")
        return key
    raise fail(f"{form} value decoded to {len(raw)} bytes; expected 32 (seed) or 64")


def _seed_to_key(seed: bytes, fail: Any) -> Any:
    try:
        return tenuo_core.SigningKey.from_bytes(seed)
    except Exception:
        raise fail("tenuo_core rejected the 32-byte seed") from None


def _from_text(text: str, fail: Any, field: str, *, allow_json: bool) -> Any:
    s = text.strip()
    if not s:
        raise fail("value is empty")
    if s.startswith("-----BEGIN"):
        return _from_pem(s, fail)
    if s.startswith("{"):
        if not allow_json:
            raise fail(f"field {field!r} holds a nested JSON object; expected a key string")
        return _from_json(s, fail, field)
    if _HEX.fullmatch(s) and len(s) in (2 * SEED_LEN, 2 * PAIR_LEN):
        return _from_raw(bytes.fromhex(s), fail, "hex")
    if _HEX.fullmatch(s) and len(s) % 2 == 0 and len(s) >= 32:
        # All-hex text of even length is hex; base64 of a key is never all-hex.
        raise fail(f"hex value decodes to {len(s) // 2} bytes; expected 32 (seed) or 64")
    decoded = _b64(s)
    if decoded is not None:
        return _from_raw(decoded, fail, "base64")
    raise fail(f"text of {len(s)} characters is not a key ({_TRIED})")


def _b64(s: str) -> bytes | None:
    for alphabet, pattern in ((b"+/", _B64), (b"-_", _B64URL)):
        if not pattern.fullmatch(s):
            continue
        body = s.rstrip("=")
        if len(body) % 4 == 1:
            return None
        padded = body + "=" * (-len(body) % 4)
        try:
            return base64.b64decode(padded, altchars=alphabet, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def _from_pem(s: str, fail: Any) -> Any:
    if "PRIVATE KEY-----" not in s:
        raise fail("PEM block is not a PKCS#8 PRIVATE KEY")
    try:
        return tenuo_core.SigningKey.from_pem(s)
    except Exception:
        raise fail("PEM PKCS#8 block is not an Ed25519 private key") from None


class _DuplicateField(Exception):
    def __init__(self, name: str) -> None:
        super().__init__("duplicate JSON field")
        self.name = name


def _unique_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's fields, refusing a name given twice (``json`` keeps the last)."""
    doc: dict[str, Any] = {}
    for name, value in pairs:
        if name in doc:
            raise _DuplicateField(name)
        doc[name] = value
    return doc


def _from_json(s: str, fail: Any, field: str) -> Any:
    try:
        doc = json.loads(s, object_pairs_hook=_unique_fields)
    except _DuplicateField as exc:
        # Which field is not said when it is not the key field: a name could be a secret.
        named = f"field {field!r}" if exc.name == field else "a field"
        raise fail(f"JSON object gives {named} more than once; refused as ambiguous") from None
    except (ValueError, RecursionError):
        raise fail("value starts like JSON but is not valid JSON") from None
    if not isinstance(doc, dict):
        raise fail("JSON value is not an object")
    if field not in doc:
        # Field names are not echoed: a misfiled secret could sit in a name.
        raise fail(f"JSON object has no field {field!r} ({len(doc)} other fields)")
    inner = doc[field]
    if not isinstance(inner, str):
        raise fail(f"JSON field {field!r} is {type(inner).__name__}; expected a string")
    return _from_text(inner, fail, field, allow_json=False)

