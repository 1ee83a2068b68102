"""Every form a key could leak in, and a scanner that looks for them."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["MATERIAL_FORMS", "assert_no_secret", "find_secret", "material", "secret_forms"]


def _seed(key: Any) -> bytes:
    return bytes(key.secret_key_bytes())


def _pair(key: Any) -> bytes:
    return _seed(key) + bytes(key.public_key_bytes())


MATERIAL_FORMS: dict[str, Callable[[Any], bytes | str]] = {
    "raw-32": _seed,
    "raw-64": _pair,
    "hex": lambda k: _seed(k).hex(),
    "hex-upper": lambda k: _seed(k).hex().upper(),
    "hex-64": lambda k: _pair(k).hex(),
    "base64": lambda k: base64.b64encode(_seed(k)).decode(),
    "base64-nopad": lambda k: base64.b64encode(_seed(k)).decode().rstrip("="),
    "base64url": lambda k: base64.urlsafe_b64encode(_seed(k)).decode(),
    "base64url-nopad": lambda k: base64.urlsafe_b64encode(_seed(k)).decode().rstrip("="),
    "base64-64": lambda k: base64.b64encode(_pair(k)).decode(),
    "pem": lambda k: str(k.to_pem()),
    "json": lambda k: json.dumps({"key": base64.b64encode(_seed(k)).decode(), "note": "holder"}),
    "whitespace": lambda k: "\n  " + base64.b64encode(_seed(k)).decode() + " \r\n",
}
"""Name to encoder: every stored form the shared decoder must accept."""

BINARY_FORMS = frozenset({"raw-32", "raw-64"})


def material(key: Any, form: str) -> bytes | str:
    """Encode ``key`` in the named form of :data:`MATERIAL_FORMS`."""
    return MATERIAL_FORMS[form](key)


def secret_forms(key: Any) -> list[bytes]:
    """Byte strings whose presence anywhere means ``key`` leaked.

    Covers the raw seed, hex (both cases), base64 in both alphabets with and
    without padding, the PEM body, and a 16-character prefix of each text form,
    so a truncated leak is caught too.
    """
    seed = _seed(key)
    texts = [
        seed.hex(), seed.hex().upper(),
        base64.b64encode(seed).decode().rstrip("="),
        base64.urlsafe_b64encode(seed).decode().rstrip("="),
        base64.b64encode(_pair(key)).decode().rstrip("="),
        base64.urlsafe_b64encode(_pair(key)).decode().rstrip("="),
    ]
    pem_body = "".join(
        line for line in str(key.to_pem()).splitlines() if line and not line.startswith("-----")
    )
    # The PEM body opens with a fixed ASN.1 header shared by every Ed25519 key;
    # only the part after it is secret.
    texts.append(pem_body[24:].rstrip("="))
    forms = [seed]
    for text in texts:
        forms.append(text.encode())
        forms.append(text[:16].encode())
    return forms


def find_secret(haystack: str | bytes, keys: Iterable[Any]) -> str | None:
    """Return a description of the first leaked form of any key, or None."""
    data = haystack.encode("utf-8", "surrogateescape") if isinstance(haystack, str) else haystack
    for index, key in enumerate(keys):
        for form in secret_forms(key):
            if form in data:
                return f"key #{index} leaked in a form of {len(form)} bytes"
    return None


def assert_no_secret(haystack: str | bytes, keys: Iterable[Any], where: str = "output") -> None:
    """Fail when any form of any key occurs in ``haystack``.

    Raises:
        AssertionError: A leak was found (the message does not repeat it).
    """
    found = find_secret(haystack, keys)
    if found:
        raise AssertionError(f"secret key material in {where}: {found}")
