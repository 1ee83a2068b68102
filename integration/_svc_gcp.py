"""Fixtures for the GCP Secret Manager test server (``integration/gcp_sm_server.py``).

GCP has no emulator, so the suite runs the project's own small gRPC server as a
subprocess on a free loopback port, and the real ``SecretManagerServiceClient``
talks to it over an insecure channel.

Fixtures:
    gcp_sm: one server for the whole session (a :class:`GCPServer`).
    gcp_sm_factory: starts extra servers (own port, optional ``--state`` file)
        for tests that stop and restart one; all are stopped at the end.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _procs import ManagedProcess, free_port

__all__ = ["GCPServer", "gcp_sm", "gcp_sm_factory", "make_gcp_client"]

SERVER_SCRIPT = Path(__file__).with_name("gcp_sm_server.py")
PROJECT = "tenuo-test"


def make_gcp_client(endpoint: str, token: str | None = None) -> Any:
    """A real ``SecretManagerServiceClient`` on an insecure channel to ``endpoint``.

    Args:
        endpoint: ``127.0.0.1:PORT``.
        token: Send ``authorization: Bearer <token>`` on every call, as real
            credentials would (to exercise the server's token check).
    """
    import grpc
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import secretmanager_v1
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
        SecretManagerServiceGrpcTransport,
    )

    def channel(host: str, **kwargs: Any) -> Any:
        plain = grpc.insecure_channel(host, options=kwargs.get("options"))
        if token is None:
            return plain
        return grpc.intercept_channel(plain, _bearer_interceptor(token))

    return secretmanager_v1.SecretManagerServiceClient(
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
        transport=functools.partial(SecretManagerServiceGrpcTransport, channel=channel),
    )


def _bearer_interceptor(token: str) -> Any:
    import grpc

    class CallDetails(grpc.ClientCallDetails):
        def __init__(self, details: Any, metadata: list[tuple[str, str]]) -> None:
            self.method = details.method
            self.timeout = details.timeout
            self.metadata = metadata
            self.credentials = details.credentials
            self.wait_for_ready = getattr(details, "wait_for_ready", None)
            self.compression = getattr(details, "compression", None)

    class Bearer(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, details, request):
            metadata = [*(details.metadata or ()), ("authorization", f"Bearer {token}")]
            return continuation(CallDetails(details, metadata), request)

    return Bearer()


class GCPServer:
    """One running test server: its endpoint, clients, hooks and stop/restart.

    Attributes:
        port: The loopback port (kept across restarts).
        endpoint: ``127.0.0.1:PORT``.
        project: The project id tests use.
        state: The ``--state`` file, or None (in-memory).
    """

    def __init__(self, port: int, log: Path, state: Path | None = None,
                 args: tuple[str, ...] = ()) -> None:
        from gcp_sm_server import ControlClient

        self.port = port
        self.endpoint = f"127.0.0.1:{port}"
        self.project = PROJECT
        self.state = state
        argv = [sys.executable, str(SERVER_SCRIPT), "--port", str(port), *args]
        if state is not None:
            argv += ["--state", str(state)]
        self._process = ManagedProcess(argv, f"gcp_sm_server:{port}", log)
        self.control = ControlClient(self.endpoint)
        self._client: Any = None

    def _ready(self) -> bool:
        import grpc

        try:
            self.control.stats(timeout=0.5)
        except grpc.RpcError:
            return False
        return True

    def start(self, timeout: float = 20.0) -> GCPServer:
        """Start the process and wait until it answers a gRPC call."""
        self._process.start(self._ready, timeout)
        return self

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) by PID."""
        self._process.stop()

    def kill(self) -> None:
        """SIGKILL the process (a crash)."""
        self._process.kill()

    def restart(self) -> None:
        """Stop if running, then start again on the same port."""
        self.stop()
        self.start()

    @property
    def pid(self) -> int:
        """PID of the running server."""
        return self._process.pid

    @property
    def client(self) -> Any:
        """A shared real client for arranging data (created on first use)."""
        if self._client is None:
            self._client = make_gcp_client(self.endpoint)
        return self._client

    def url(self, template: str = "tenuo-keys-{key_id}", **params: Any) -> str:
        """A ``gcpsm://`` URL for this server."""
        query = "&".join(
            [f"api_endpoint={self.endpoint}", "insecure=1",
             *(f"{k}={v}" for k, v in params.items())]
        )
        return f"gcpsm://{self.project}/{template}?{query}"

    def secret_path(self, secret_id: str) -> str:
        """``projects/P/secrets/ID``."""
        return f"projects/{self.project}/secrets/{secret_id}"

    def put(self, secret_id: str, value: bytes | str, labels: dict[str, str] | None = None
            ) -> str:
        """Create the secret if missing and add ``value`` as a new version; returns it."""
        from google.api_core import exceptions

        data = value.encode() if isinstance(value, str) else value
        with contextlib.suppress(exceptions.AlreadyExists):
            self.client.create_secret(request={
                "parent": f"projects/{self.project}", "secret_id": secret_id,
                "secret": {"replication": {"automatic": {}}, "labels": labels or {}},
            })
        added = self.client.add_secret_version(
            request={"parent": self.secret_path(secret_id), "payload": {"data": data}}
        )
        return str(added.name.rsplit("/", 1)[1])

    def close(self) -> None:
        """Stop the process and close the clients."""
        try:
            self.stop()
        finally:
            self.control.close()
            if self._client is not None:
                self._client.transport.close()


def _start(tmp: Path, name: str, state: bool, args: tuple[str, ...] = ()) -> GCPServer:
    port = free_port()
    server = GCPServer(port, tmp / f"{name}-{port}.log",
                       tmp / f"{name}-{port}.json" if state else None, args)
    return server.start()


@pytest.fixture(scope="session")
def gcp_sm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GCPServer]:
    """The session's GCP Secret Manager test server (in-memory)."""
    server = _start(tmp_path_factory.mktemp("gcp-sm"), "gcp-sm", state=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def gcp_sm_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., GCPServer]]:
    """Start dedicated servers: ``gcp_sm_factory(state=True)``; stopped after the test."""
    started: list[GCPServer] = []
    tmp = tmp_path_factory.mktemp("gcp-sm-own")

    def start(state: bool = False, args: tuple[str, ...] = ()) -> GCPServer:
        server = _start(tmp, "gcp-sm-own", state, args)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.close()
