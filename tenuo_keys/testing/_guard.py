"""Detect I/O on the current thread: sockets, files, subprocesses and ``os.environ``."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["IOGuard", "io_guard"]

IO_EVENTS = frozenset({
    "socket.__new__", "socket.bind", "socket.connect", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.sendto", "socket.sendmsg", "open", "os.listdir",
    "os.scandir", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
    "urllib.Request", "http.client.connect", "http.client.send",
})

_state = threading.local()
_hook_lock = threading.Lock()
_hook_installed = False
_environ_lock = threading.Lock()
_environ_guards = 0
_originals: dict[str, Callable[..., Any]] = {}


class IOGuard:
    """What a guarded block did: the I/O events seen on its own thread."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def record(self, event: str) -> None:
        """Note one event."""
        self.events.append(event)

    def __repr__(self) -> str:
        return f"IOGuard(events={self.events!r})"


def _audit(event: str, _args: tuple[Any, ...]) -> None:
    guard = getattr(_state, "guard", None)
    if guard is not None and event in IO_EVENTS:
        guard.record(event)


def _install_hook() -> None:
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_audit)  # audit hooks cannot be removed; it is a no-op unguarded
            _hook_installed = True


def _patch_environ() -> None:
    global _environ_guards
    environ_cls = type(os.environ)
    with _environ_lock:
        _environ_guards += 1
        if _environ_guards > 1:
            return
        for name in ("__getitem__", "__iter__", "__len__"):
            original = getattr(environ_cls, name)
            _originals[name] = original

            def wrapper(self: Any, *args: Any, __name: str = name,
                        __original: Callable[..., Any] = original) -> Any:
                guard = getattr(_state, "guard", None)
                if guard is not None:
                    guard.record(f"os.environ.{__name}")
                return __original(self, *args)

            setattr(environ_cls, name, wrapper)


def _unpatch_environ() -> None:
    global _environ_guards
    environ_cls = type(os.environ)
    with _environ_lock:
        _environ_guards -= 1
        if _environ_guards:
            return
        for name, original in _originals.items():
            setattr(environ_cls, name, original)
        _originals.clear()


@contextmanager
def io_guard() -> Iterator[IOGuard]:
    """Record I/O done by the current thread inside the block.

    Other threads (a resolver's background loaders) are not watched: the
    contract is that the *calling* thread, which in Temporal is the workflow
    sandbox, does none.

    Yields:
        An :class:`IOGuard` whose ``events`` list what was seen.

    Example:
        >>> with io_guard() as seen:
        ...     _ = 1 + 1
        >>> seen.events
        []
    """
    _install_hook()
    _patch_environ()
    guard = IOGuard()
    previous = getattr(_state, "guard", None)
    _state.guard = guard
    try:
        yield guard
    finally:
        _state.guard = previous
        _unpatch_environ()
