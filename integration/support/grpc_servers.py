"""Fixture scaffolding shared by the loopback gRPC test servers' fixtures.

``gcp.py`` (Secret Manager) and ``gcp_kms.py`` (Cloud KMS) each run a
server module from this package (``gcp_sm_server.py``, ``gcp_kms_server.py``)
as a subprocess on a free loopback port and talk to it with the real Google
client over an insecure channel. What they have in common lives here:

* :func:`insecure_client`: a real Google API client on an insecure channel,
  optionally sending ``authorization: Bearer <token>`` as real credentials would;
* :class:`LoopbackServer`: one server process: start (wait until its control
  service answers), stop and kill by PID, restart on the same port, a shared
  client, close;
* :func:`start_server`, :func:`session_server` and :func:`server_factory`: the
  bodies of the session fixture and of the factory fixture each module defines.

It defines no fixtures itself; ``conftest.py`` registers those of the modules
that use it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import pytest

from integration.support.procs import (
    REPO_ROOT,
    ManagedProcess,
    free_port,
    module_argv,
    stopped_after,
)

if TYPE_CHECKING:
    from integration.support.grpc_test_server import JsonControlClient

__all__ = ["LoopbackServer", "bearer_interceptor", "insecure_client", "server_factory",
           "session_server", "start_server"]

S = TypeVar("S", bound="LoopbackServer")


def insecure_client(client_class: Any, transport_class: Any, endpoint: str,
                    token: str | None = None) -> Any:
    """A real Google API client with anonymous credentials on an insecure channel.

    Args:
        client_class: The client, e.g. ``SecretManagerServiceClient``.
        transport_class: Its gRPC transport, e.g. ``SecretManagerServiceGrpcTransport``.
        endpoint: ``127.0.0.1:PORT``.
        token: Send ``authorization: Bearer <token>`` on every call, as real
            credentials would (to exercise the server's token check).
    """
    import grpc
    from google.auth.credentials import AnonymousCredentials

    def channel(host: str, **kwargs: Any) -> Any:
        plain = grpc.insecure_channel(host, options=kwargs.get("options"))
        if token is None:
            return plain
        return grpc.intercept_channel(plain, bearer_interceptor(token))

    return client_class(
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
        transport=functools.partial(transport_class, channel=channel),
    )


def bearer_interceptor(token: str) -> Any:
    """A unary-unary client interceptor adding ``authorization: Bearer <token>``."""
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
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            metadata = [*(details.metadata or ()), ("authorization", f"Bearer {token}")]
            return continuation(CallDetails(details, metadata), request)

    return Bearer()


class LoopbackServer:
    """One running test server process: its endpoint, control client and stop/restart.

    Subclasses name the server module in :attr:`server_module` (the script
    ``integration/<server_module>.py``, whose ``ControlClient`` drives the
    hooks) and implement :meth:`_new_client`.

    Args:
        port: The loopback port.
        log: File that receives the server's output.
        state: The ``--state`` file, or None (in-memory).
        args: More command-line arguments for the server.

    Attributes:
        port: The loopback port (kept across restarts).
        endpoint: ``127.0.0.1:PORT``.
        state: The ``--state`` file, or None (in-memory).
        control: The server's control client (hooks and call counters).
    """

    server_module: ClassVar[str]
    """The server's module, e.g. ``integration.support.gcp_sm_server``."""

    def __init__(self, port: int, log: Path, state: Path | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.port = port
        self.endpoint = f"127.0.0.1:{port}"
        self.state = state
        argv = module_argv(self.server_module, "--port", str(port), *args)
        if state is not None:
            argv += ["--state", str(state)]
        self._process = ManagedProcess(argv, f"{self.server_module}:{port}", log, cwd=REPO_ROOT)
        server = importlib.import_module(self.server_module)
        self.control: JsonControlClient = server.ControlClient(self.endpoint)
        self._client: Any = None

    def _new_client(self) -> Any:
        """A new real client for this server (see :attr:`client`)."""
        raise NotImplementedError

    def _ready(self) -> bool:
        import grpc

        try:
            self.control.stats(timeout=0.5)
        except grpc.RpcError:
            return False
        return True

    def start(self: S, timeout: float = 20.0) -> S:
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
            self._client = self._new_client()
        return self._client

    def _query(self, params: dict[str, Any]) -> str:
        """The query of a resolver URL for this server: endpoint, insecure, ``params``."""
        return "&".join([f"api_endpoint={self.endpoint}", "insecure=1",
                         *(f"{k}={v}" for k, v in params.items())])

    def close(self) -> None:
        """Stop the process and close the clients."""
        try:
            self.stop()
        finally:
            self.control.close()
            if self._client is not None:
                self._client.transport.close()


def start_server(server_class: type[S], tmp: Path, name: str, state: bool = False,
                 args: tuple[str, ...] = ()) -> S:
    """Start a ``server_class`` on a free port; its log (and state file) go in ``tmp``.

    Args:
        server_class: The server to start.
        tmp: Directory for ``<name>-<port>.log`` and ``<name>-<port>.json``.
        name: Prefix of those file names.
        state: Keep state in ``<name>-<port>.json`` (survives restarts).
        args: More command-line arguments for the server.
    """
    port = free_port()
    server = server_class(port, tmp / f"{name}-{port}.log",
                          tmp / f"{name}-{port}.json" if state else None, args)
    return server.start()


def session_server(server_class: type[S], tmp_path_factory: pytest.TempPathFactory,
                   name: str, args: tuple[str, ...] = ()) -> Iterator[S]:
    """Body of a session fixture: one in-memory server, closed at the end.

    Use as ``yield from session_server(...)``.
    """
    server = start_server(server_class, tmp_path_factory.mktemp(name), name, args=args)
    try:
        yield server
    finally:
        server.close()


def server_factory(server_class: type[S], tmp_path_factory: pytest.TempPathFactory,
                   name: str) -> Iterator[Callable[..., S]]:
    """Body of a factory fixture: ``start(state=False, args=())`` starts one more server.

    Every server started is closed at the end. Use as ``yield from server_factory(...)``.
    """
    tmp = tmp_path_factory.mktemp(name)

    def start(state: bool = False, args: tuple[str, ...] = ()) -> S:
        return start_server(server_class, tmp, name, state, args)

    yield from stopped_after(start, server_class.close)
