"""The two trust documents: a trusted-root set and a signed revocation list.

A root set is JSON, ``{"roots": ["<64 hex digits>", ...]}``: each an Ed25519
public key (hex, or base64/base64url of its 32 bytes). Rotating a root means
publishing an overlapping set (old and new), moving issuers to the new key,
then publishing the set without the old one.

A signed revocation list is stored as the base64 text of
``SignedRevocationList.to_bytes()``; its signature, not its storage, makes it
trustworthy.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Any

import tenuo_core

from .errors import KeyFormatError

__all__ = ["decode_roots", "decode_srl", "encode_roots", "encode_srl", "public_key_bytes"]

_MAX_ROOTS = 256


def public_key_bytes(text: str) -> bytes | None:
    """The 32 bytes a hex, base64 or base64url string encodes, or None."""
    compact = "".join(text.split())
    if len(compact) == 64:
        try:
            return bytes.fromhex(compact)
        except ValueError:
            pass
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(compact + "=" * (-len(compact) % 4))
        except (binascii.Error, ValueError):
            continue
        if len(raw) == 32:
            return raw
    return None


def encode_roots(roots: Iterable[Any]) -> bytes:
    """A root-set document of ``roots`` (``PublicKey`` or 32 raw bytes each)."""
    out = []
    for root in roots:
        raw = root.to_bytes() if hasattr(root, "to_bytes") and not isinstance(root, bytes) \
            else bytes(root)
        if len(raw) != 32:
            raise KeyFormatError(f"a root must be 32 bytes, got {len(raw)}")
        out.append(bytes(raw).hex())
    if not out:
        raise KeyFormatError("a root set needs at least one root")
    return (json.dumps({"roots": out}, indent=2) + "\n").encode("utf-8")


def decode_roots(content: bytes, where: str = "root set") -> list[Any]:
    """The ``tenuo_core.PublicKey`` list of a root-set document.

    Raises:
        KeyFormatError: Not such a document, or a root that is not a public key.
    """
    try:
        doc = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise KeyFormatError(f"{where} is not JSON ({{\"roots\": [...]}})") from None
    roots = doc.get("roots") if isinstance(doc, dict) else None
    if not isinstance(roots, list) or not roots or len(roots) > _MAX_ROOTS:
        raise KeyFormatError(
            f"{where} must be {{\"roots\": [...]}} with 1 to {_MAX_ROOTS} public keys")
    keys = []
    for index, item in enumerate(roots):
        raw = public_key_bytes(item) if isinstance(item, str) else None
        if raw is None:
            raise KeyFormatError(f"{where} roots[{index}] is not a 32-byte public key in "
                                 "hex, base64 or base64url")
        try:
            keys.append(tenuo_core.PublicKey.from_bytes(raw))
        except Exception:
            raise KeyFormatError(f"{where} roots[{index}] is not an Ed25519 public key") \
                from None
    return keys


def encode_srl(srl: Any) -> bytes:
    """The stored form of a ``SignedRevocationList``: base64 text."""
    return base64.b64encode(bytes(srl.to_bytes())) + b"\n"


def decode_srl(content: bytes, where: str = "revocation list") -> Any:
    """The ``tenuo_core.SignedRevocationList`` a stored document holds (not yet verified).

    Raises:
        KeyFormatError: Not a revocation list.
    """
    try:
        raw = base64.b64decode(b"".join(content.split()), validate=True)
        return tenuo_core.SignedRevocationList.from_bytes(raw)
    except Exception:
        raise KeyFormatError(f"{where} is not a signed revocation list (base64 of "
                             "SignedRevocationList.to_bytes())") from None
