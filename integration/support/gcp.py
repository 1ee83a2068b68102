"""Fixtures for the GCP Secret Manager test server (``integration/support/gcp_sm_server.py``).

GCP has no emulator, so the suite runs the project's own small gRPC server as a
subprocess on a free loopback port, and the real ``SecretManagerServiceClient``
talks to it over an insecure channel. Starting, stopping and restarting the
process is shared with the Cloud KMS fixtures (``integration/_svc_grpc.py``).

Fixtures:
    gcp_sm: one server for the whole session (a :class:`GCPServer`).
    gcp_sm_factory: starts extra servers (own port, optional ``--state`` file)
        for tests that stop and restart one; all are stopped at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from integration.support.grpc_servers import (
    LoopbackServer,
    insecure_client,
    server_factory,
    session_server,
)

__all__ = ["GCPServer", "gcp_sm", "gcp_sm_factory", "make_gcp_client"]

PROJECT = "tenuo-test"


def make_gcp_client(endpoint: str, token: str | None = None) -> Any:
    """A real ``SecretManagerServiceClient`` on an insecure channel to ``endpoint``.

    Args:
        endpoint: ``127.0.0.1:PORT``.
        token: Send ``authorization: Bearer <token>`` on every call, as real
            credentials would (to exercise the server's token check).
    """
    from google.cloud import secretmanager_v1
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
        SecretManagerServiceGrpcTransport,
    )

    return insecure_client(secretmanager_v1.SecretManagerServiceClient,
                           SecretManagerServiceGrpcTransport, endpoint, token)


class GCPServer(LoopbackServer):
    """One running test server: its endpoint, clients, hooks and stop/restart.

    Start, stop, kill, restart, ``pid``, ``client`` and ``close`` come from
    :class:`_svc_grpc.LoopbackServer`.

    Attributes:
        port: The loopback port (kept across restarts).
        endpoint: ``127.0.0.1:PORT``.
        project: The project id tests use.
        state: The ``--state`` file, or None (in-memory).
        control: The server's ``gcp_sm_server.ControlClient``.
    """

    server_module = "integration.support.gcp_sm_server"
    project = PROJECT

    def _new_client(self) -> Any:
        return make_gcp_client(self.endpoint)

    def url(self, template: str = "tenuo-keys-{key_id}", **params: Any) -> str:
        """A ``gcpsm://`` URL for this server."""
        return f"gcpsm://{self.project}/{template}?{self._query(params)}"

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


@pytest.fixture(scope="session")
def gcp_sm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GCPServer]:
    """The session's GCP Secret Manager test server (in-memory)."""
    yield from session_server(GCPServer, tmp_path_factory, "gcp-sm")


@pytest.fixture
def gcp_sm_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., GCPServer]]:
    """Start dedicated servers: ``gcp_sm_factory(state=True)``; stopped after the test."""
    yield from server_factory(GCPServer, tmp_path_factory, "gcp-sm-own")
