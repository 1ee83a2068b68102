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
(``Content-Length``) and while it is read. Both HTTP stacks we use,
``requests`` (Vault) and ``botocore`` (AWS), sit on ``urllib3``, so the
mechanism is shared: :func:`total_deadline` opens a request's deadline,
:func:`bounded_pools` makes a ``urllib3`` pool manager's pools arm one
watchdog thread for the connect/send/headers phase (at the deadline the
socket is shut down), and :func:`read_bounded` reads the body with each
read limited to the time left and the size capped. gRPC (GCP) has
deadlines per call and a receive-size channel option of its own
(:data:`GRPC_SIZE_OPTIONS`).
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any, Final
from urllib.parse import urlsplit

from .errors import BackendUnavailable, ResolverConfigError

__all__ = [
    "GRPC_SIZE_OPTIONS",
    "INSECURE_OPT_IN",
    "MAX_RESPONSE_BYTES",
    "bounded_pools",
    "check_transport",
    "is_loopback",
    "origin",
    "read_bounded",
    "total_deadline",
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
    kind = "plaintext" if plaintext else "TLS without certificate verification"
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
    backend: str | None = None, budget: float | None = None,
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
        budget: The request's whole budget in seconds, for the message.

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
                raise _too_slow(where, backend, budget)
            if sock is not None:
                sock.settimeout(remaining)
            try:
                chunk = raw.read1(_CHUNK, decode_content=decode_content)
            except Exception as exc:
                if _is_timeout(exc):
                    raise _too_slow(where, backend, budget) from None
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


# --------------------------------------------------------------------------- deadlines


class _Expiry:
    """One request's deadline, and the connection the watchdog may cut."""

    __slots__ = ("conn", "deadline", "fired")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.conn: Any = None
        self.fired = False


_current: ContextVar[_Expiry | None] = ContextVar("tenuo_keys_request_deadline", default=None)
_RECHECK: Final = 0.05
"""Seconds before looking again at an expired request that has no socket yet."""


class _Watchdog:
    """One daemon thread that shuts down the sockets of requests past their deadline.

    Arming and disarming cost a heap push and a flag; entries of requests
    that finished are dropped lazily when their time comes. Cutting happens
    under the lock that disarming takes, so a socket already handed back to
    the pool is never touched.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Expiry]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, expiry: _Expiry, conn: Any) -> None:
        with self._cond:
            expiry.conn = conn
            heapq.heappush(self._heap, (expiry.deadline, next(self._order), expiry))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="tenuo-keys-deadline")
                self._thread.start()
            if self._heap[0][2] is expiry:
                self._cond.notify()

    def disarm(self, expiry: _Expiry) -> None:
        with self._cond:
            expiry.conn = None

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, _, expiry = self._heap[0]
                now = time.monotonic()
                if deadline > now:
                    self._cond.wait(deadline - now)
                    continue
                heapq.heappop(self._heap)
                conn = expiry.conn
                if conn is None:
                    continue
                sock = getattr(conn, "sock", None)
                if sock is None:  # still resolving or connecting (bounded by its timeout)
                    heapq.heappush(self._heap, (now + _RECHECK, next(self._order), expiry))
                    continue
                expiry.fired = True
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


_WATCHDOG: Final = _Watchdog()


@contextmanager
def total_deadline(seconds: float, *, where: str, backend: str | None = None,
                   ) -> Iterator[float]:
    """Run one HTTP request (and the reading of its body) under a total deadline.

    Pools made by :func:`bounded_pools` arm the watchdog with it while they
    connect, send and read the headers; pass the yielded deadline to
    :func:`read_bounded` for the body.

    Args:
        seconds: The request's whole budget.
        where: Who is asked, for the message (an address, no secrets).
        backend: The backend name errors carry.

    Yields:
        The ``time.monotonic()`` deadline.

    Raises:
        BackendUnavailable: The watchdog cut the request at its deadline
            (retryable); other failures pass through unchanged.
    """
    expiry = _Expiry(time.monotonic() + seconds)
    token = _current.set(expiry)
    try:
        yield expiry.deadline
    except Exception:
        if expiry.fired:
            raise _too_slow(where, backend, seconds) from None
        raise
    finally:
        _current.reset(token)
        _WATCHDOG.disarm(expiry)


class _DeadlinePool:
    """Mixin for ``urllib3`` connection pools: a request runs under its total deadline."""

    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        expiry = _current.get()
        if expiry is None:
            return super()._make_request(conn, *args, **kwargs)  # type: ignore[misc]
        _WATCHDOG.arm(expiry, conn)
        try:
            return super()._make_request(conn, *args, **kwargs)  # type: ignore[misc]
        finally:
            _WATCHDOG.disarm(expiry)


_BOUNDED: dict[type, type] = {}
_BOUNDED_LOCK = threading.Lock()


def bounded_pools(manager: Any) -> Any:
    """Make ``manager`` (a ``urllib3`` ``PoolManager``) build deadline-aware pools.

    Idempotent. Pools built before the call are unchanged, so call it before
    the first request.

    Returns:
        ``manager``.
    """
    if getattr(manager, "_tenuo_keys_bounded", False):
        return manager
    classes = {}
    with _BOUNDED_LOCK:
        for scheme, pool_class in manager.pool_classes_by_scheme.items():
            bounded = _BOUNDED.get(pool_class)
            if bounded is None:
                bounded = type(f"Bounded{pool_class.__name__}", (_DeadlinePool, pool_class), {})
                _BOUNDED[pool_class] = bounded
            classes[scheme] = bounded
    manager.pool_classes_by_scheme = classes
    manager._tenuo_keys_bounded = True
    return manager


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


def _too_slow(where: str, backend: str | None, budget: float | None) -> BackendUnavailable:
    within = f"within {budget:g}s" if budget is not None else "in time"
    return BackendUnavailable(f"{where} did not answer {within} (the request's total deadline)",
                              backend=backend)
