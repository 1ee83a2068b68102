"""What every backend's transport obeys: the plaintext/TLS policy and per-request bounds.

**Transport policy.** Plaintext (``http://``, ``tls=0``, plaintext gRPC) and
TLS without certificate verification (``verify=0``, ``$VAULT_SKIP_VERIFY``)
are allowed towards loopback (``127.0.0.0/8``, ``::1``, ``localhost``)
only. Towards any other host they are refused at construction, before any
connection, unless the caller passes the loudly named opt-in
:data:`INSECURE_OPT_IN` (a keyword argument and a URL query option of the
same name); an accepted opt-in is logged as a warning and shown by the
resolver's ``repr``.

**Request bounds.** Each HTTP request has a total deadline (not a limit on
each read, which a server dripping one byte at a time never trips) and a
cap on the response size checked before the body is read
(``Content-Length``) and while it is read. :func:`read_bounded` enforces
both on a ``urllib3`` response, which ``requests`` (Vault) and ``botocore``
(AWS) both use; gRPC (GCP) has per-call deadlines and a receive-size
channel option of its own (:data:`GRPC_SIZE_OPTIONS`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from typing import Any, Final
from urllib.parse import urlsplit

from .errors import BackendUnavailable, ResolverConfigError

__all__ = [
    "GRPC_SIZE_OPTIONS",
    "INSECURE_OPT_IN",
    "MAX_RESPONSE_BYTES",
    "check_transport",
    "is_loopback",
    "origin",
    "read_bounded",
]

logger = logging.getLogger("tenuo_keys.transport")

INSECURE_OPT_IN: Final = "dangerously_allow_insecure_transport"
"""The opt-in that allows plaintext or unverified TLS to a host that is not loopback."""
MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024
"""Largest response body any backend accepts (a key is < 1 KiB; a large LIST fits)."""
GRPC_SIZE_OPTIONS: Final = (("grpc.max_receive_message_length", MAX_RESPONSE_BYTES),)
"""gRPC channel options that cap a received message at :data:`MAX_RESPONSE_BYTES`."""
_CHUNK: Final = 64 * 1024


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or an address in 127.0.0.0/8 or ``::1``.

    Args:
        host: A host name or IP address, with or without IPv6 brackets.
    """
    bare = host.strip().strip("[]").lower().rstrip(".")
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def check_transport(
    *, host: str, plaintext: bool, unverified: bool, allowed: bool, what: str,
) -> None:
    """Apply the transport policy to one configured endpoint; no I/O.

    Args:
        host: The endpoint's host.
        plaintext: The connection would be unencrypted.
        unverified: TLS without verifying the server's certificate.
        allowed: The caller passed :data:`INSECURE_OPT_IN`.
        what: The setting, for the message, e.g. ``"vault:// address"``.

    Raises:
        ResolverConfigError: Plaintext or unverified TLS to a host that is
            not loopback, without the opt-in.
    """
    if not (plaintext or unverified) or is_loopback(host):
        return
    kind = "plaintext HTTP" if plaintext else "TLS without certificate verification"
    if not allowed:
        raise ResolverConfigError(
            f"{what}: {kind} to {host!r}, which is not loopback, is refused: tokens and keys "
            f"would be exposed on the network. Use verified TLS, or pass "
            f"{INSECURE_OPT_IN}=True (URL: ?{INSECURE_OPT_IN}=1) to accept the risk"
        )
    logger.warning("tenuo_keys: INSECURE TRANSPORT: %s uses %s to %r (%s is set)",
                   what, kind, host, INSECURE_OPT_IN)


def origin(url: str) -> tuple[str, str, int | None]:
    """The origin (scheme, host, port with the scheme's default filled in) of ``url``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def read_bounded(
    raw: Any, *, deadline: float, max_bytes: int, where: str, decode_content: bool,
    backend: str | None = None,
) -> bytes:
    """Read a ``urllib3`` response body within a total deadline and a size cap.

    The declared ``Content-Length`` is checked before anything is read; then
    the body is read a chunk at a time, each read limited to the time left,
    so neither a huge nor a dripping body holds the caller past ``deadline``.
    On failure the connection is closed, not returned to the pool.

    Args:
        raw: A ``urllib3.HTTPResponse`` opened without preloading.
        deadline: ``time.monotonic()`` value by which the body must be in.
        max_bytes: Largest body accepted (after content decoding).
        where: Who answered, for messages (an address, no secrets).
        decode_content: Undo ``Content-Encoding`` while reading.
        backend: The backend name errors carry.

    Returns:
        The body.

    Raises:
        BackendUnavailable: The body is too large (not retryable) or did not
            arrive in time (retryable).
    """
    try:
        declared = raw.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
            raise _too_large(where, max_bytes, backend)
        sock = _socket_of(raw)
        chunks: list[bytes] = []
        total = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _too_slow(where, backend)
            if sock is not None:
                sock.settimeout(remaining)
            try:
                chunk = raw.read1(_CHUNK, decode_content=decode_content)
            except Exception as exc:
                if _is_timeout(exc):
                    raise _too_slow(where, backend) from None
                raise
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise _too_large(where, max_bytes, backend)
            chunks.append(chunk)
    except BaseException:
        raw.close()
        raise
    raw.release_conn()
    return b"".join(chunks)


def _socket_of(raw: Any) -> socket.socket | None:
    connection = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _is_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (TimeoutError, socket.timeout)) or "Timeout" in type(seen).__name__:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _too_large(where: str, max_bytes: int, backend: str | None) -> BackendUnavailable:
    return BackendUnavailable(
        f"response from {where} is larger than {max_bytes} bytes; refused", backend=backend,
        retryable=False)


def _too_slow(where: str, backend: str | None) -> BackendUnavailable:
    return BackendUnavailable(f"response from {where} did not complete within its deadline",
                              backend=backend)
