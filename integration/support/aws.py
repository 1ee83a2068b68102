"""Fixtures for AWS Secrets Manager: a real ``moto_server`` on loopback.

``moto_server`` (PyPI ``moto[server]``) speaks the Secrets Manager and IAM wire
protocols. Its state is in memory: a restart loses every secret, so tests that
restart it seed again.

Fixtures:
    moto_server: one server for the whole session (unique secret names per test).
    moto_factory: starts private servers for a test (fault and IAM scenarios,
        which stop the server or switch on access control); stopped at teardown.

Clients get dummy credentials and the region through explicit arguments
(:meth:`MotoServer.client`), so nothing leaks into ``os.environ``.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from integration.support.procs import (
    ManagedProcess,
    find_binary,
    free_port,
    port_open,
    stopped_after,
)

__all__ = ["MotoServer", "moto_factory", "moto_server"]

REGION = "us-east-1"
DUMMY_KEY_ID = "testing"
DUMMY_SECRET = "testing"  # moto's conventional dummy credential


class MotoServer:
    """A ``moto_server`` process we started, with helpers to reach and control it.

    Args:
        log_dir: Where the server's log goes.
        port: Port to listen on (default: a free one). Kept across restarts.
    """

    def __init__(self, log_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"moto_server-{self.port}.log"
        self._proc: ManagedProcess | None = None

    def start(self, timeout: float = 30.0) -> MotoServer:
        """Start the server and wait until its API answers."""
        argv = [find_binary("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        self._proc = ManagedProcess(argv, "moto_server", self.log).start(self._ready, timeout)
        return self

    def _ready(self) -> bool:
        if not port_open(self.port):
            return False
        with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1) as response:
            return bool(response.status == 200)

    @property
    def running(self) -> bool:
        """True while the process we started is alive."""
        return self._proc is not None and self._proc.proc is not None \
            and self._proc.proc.poll() is None

    @property
    def pid(self) -> int:
        """PID of the running server."""
        assert self._proc is not None
        return self._proc.pid

    def stop(self) -> None:
        """Stop the server (by PID); its state is lost."""
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def restart(self) -> MotoServer:
        """Stop and start again on the same port, with empty state."""
        self.stop()
        return self.start()

    def client(self, service: str = "secretsmanager", *, access_key: str = DUMMY_KEY_ID,
               secret_key: str = DUMMY_SECRET, **config: Any) -> Any:
        """A boto3 client for this server, with explicit dummy credentials.

        Args:
            service: AWS service name.
            access_key: Access key id (an IAM user's, for access-control tests).
            secret_key: Its secret.
            **config: ``botocore.config.Config`` options over fast test defaults.
        """
        options: dict[str, Any] = {
            "connect_timeout": 1.0, "read_timeout": 10.0,
            "retries": {"mode": "standard", "total_max_attempts": 1},
        }
        options.update(config)
        return boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=REGION,
        ).client(service, endpoint_url=self.endpoint, config=Config(**options))

    def enforce_iam(self) -> None:
        """Switch on moto's IAM access control: every later request is checked."""
        self._moto_api("reset-auth", b"0")

    def _moto_api(self, path: str, body: bytes) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/{path}", data=body, method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def __repr__(self) -> str:
        return f"MotoServer({self.endpoint!r}, running={self.running})"


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One ``moto_server`` for the session."""
    server = MotoServer(tmp_path_factory.mktemp("moto")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto_factory(tmp_path: Path) -> Iterator[Callable[[], MotoServer]]:
    """Start private ``moto_server`` processes for one test; all stop at teardown."""
    yield from stopped_after(lambda: MotoServer(tmp_path).start(), MotoServer.stop)
