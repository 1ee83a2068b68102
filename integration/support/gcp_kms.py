"""Fixtures for the Cloud KMS test server (``integration/support/gcp_kms_server.py``).

GCP has no KMS emulator, so the suite runs the project's own small gRPC server
as a subprocess on a free loopback port, and the real
``KeyManagementServiceClient`` talks to it over an insecure channel. Starting,
stopping and restarting the process is shared with the Secret Manager fixtures
(``integration/_svc_grpc.py``).

Fixtures:
    gcp_kms: one server for the whole session (a :class:`KMSServer`), started
        with ``--token`` so a client that sends another bearer token is refused.
    gcp_kms_factory: starts extra servers (own port, optional ``--state`` file)
        for tests that stop and restart one, or set server-wide fault hooks;
        all are stopped at the end of the test.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from integration.support.grpc_servers import (
    LoopbackServer,
    insecure_client,
    server_factory,
    session_server,
)

__all__ = ["KMS_TOKEN", "KMSServer", "gcp_kms", "gcp_kms_factory", "make_kms_client",
           "wrap_for_import"]

PROJECT = "tenuo-test"
LOCATION = "global"
KEY_RING = "tenuo"
TEMPLATE = "tenuo-{key_id}"
KMS_TOKEN = "ya29.tenuo-kms-test-token"  # what the session server insists on, if sent


def make_kms_client(endpoint: str, token: str | None = None) -> Any:
    """A real ``KeyManagementServiceClient`` on an insecure channel to ``endpoint``.

    Args:
        endpoint: ``127.0.0.1:PORT``.
        token: Send ``authorization: Bearer <token>`` on every call, as real
            credentials would (to exercise the server's token check).
    """
    from google.cloud import kms_v1
    from google.cloud.kms_v1.services.key_management_service.transports import (
        KeyManagementServiceGrpcTransport,
    )

    return insecure_client(kms_v1.KeyManagementServiceClient,
                           KeyManagementServiceGrpcTransport, endpoint, token)

def wrap_for_import(wrapping_pem: str, private_der: bytes) -> bytes:
    """Cloud KMS ``rsa_aes_wrapped_key`` for RSA_OAEP_*_SHA256_AES_256 import jobs.

    RSA-OAEP (SHA-256) of an ephemeral AES-256 key, then AES-KWP (RFC 5649) of
    the PKCS#8 DER private key (the construction Vault Transit's BYOK uses too).
    """
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

    wrapping = serialization.load_pem_public_key(wrapping_pem.encode())
    assert isinstance(wrapping, RSAPublicKey)
    ephemeral = os.urandom(32)
    wrapped = wrapping.encrypt(ephemeral, padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    return wrapped + aes_key_wrap_with_padding(ephemeral, private_der)


class KMSServer(LoopbackServer):
    """One running test server: its endpoint, clients, hooks, keys and stop/restart.

    Stop, kill, restart, ``pid``, ``client`` and ``close`` come from
    :class:`_svc_grpc.LoopbackServer`.

    Attributes:
        port: The loopback port (kept across restarts).
        endpoint: ``127.0.0.1:PORT``.
        project, location, key_ring: Where tests keep their keys.
        state: The ``--state`` file, or None (in-memory).
        control: The server's ``gcp_kms_server.ControlClient``.
    """

    server_module = "integration.support.gcp_kms_server"
    project = PROJECT
    location = LOCATION
    key_ring = KEY_RING
    _import_job: str | None = None

    def _new_client(self) -> Any:
        return make_kms_client(self.endpoint)

    def start(self, timeout: float = 20.0) -> KMSServer:
        """Start the process, wait until it answers, and make sure the key ring exists."""
        from google.api_core import exceptions

        super().start(timeout)
        with contextlib.suppress(exceptions.AlreadyExists):
            self.client.create_key_ring(request={
                "parent": f"projects/{self.project}/locations/{self.location}",
                "key_ring_id": self.key_ring, "key_ring": {}})
        return self

    # -- names -----------------------------------------------------------------

    @property
    def ring_name(self) -> str:
        """``projects/P/locations/L/keyRings/R``."""
        return f"projects/{self.project}/locations/{self.location}/keyRings/{self.key_ring}"

    def key_path(self, crypto_key_id: str) -> str:
        """The CryptoKey resource name."""
        return f"{self.ring_name}/cryptoKeys/{crypto_key_id}"

    def version_path(self, crypto_key_id: str, number: int) -> str:
        """The CryptoKeyVersion resource name."""
        return f"{self.key_path(crypto_key_id)}/cryptoKeyVersions/{number}"

    def url(self, template: str = TEMPLATE, **params: Any) -> str:
        """A ``gcpkms://`` URL for this server."""
        return (f"gcpkms://{self.project}/{self.location}/{self.key_ring}/{template}"
                f"?{self._query(params)}")

    def signer(self, key_id: str, template: str = TEMPLATE, **options: Any) -> Any:
        """A ``GCPKMSSigner`` for ``key_id`` on this server."""
        from tenuo_keys.backends.gcp_kms import GCPKMSSigner

        options.setdefault("timeout", 5.0)
        if "client" not in options:
            options.setdefault("api_endpoint", self.endpoint)
            options.setdefault("insecure", True)
        return GCPKMSSigner(key_id, self.project, self.location, self.key_ring, template,
                            **options)

    # -- keys --------------------------------------------------------------------

    def create_key(self, crypto_key_id: str, algorithm: str = "EC_SIGN_ED25519", *,
                   purpose: str = "ASYMMETRIC_SIGN", skip_initial: bool = False,
                   import_only: bool = False, destroy_after: float | None = None) -> str:
        """Create a CryptoKey (version 1 generated here unless ``skip_initial``)."""
        key: dict[str, Any] = {"purpose": purpose,
                               "version_template": {"algorithm": algorithm},
                               "import_only": import_only}
        if destroy_after is not None:
            key["destroy_scheduled_duration"] = {"seconds": int(destroy_after),
                                                 "nanos": int(destroy_after % 1 * 1e9)}
        return str(self.client.create_crypto_key(request={
            "parent": self.ring_name, "crypto_key_id": crypto_key_id, "crypto_key": key,
            "skip_initial_version_creation": skip_initial}).name)

    def rotate(self, crypto_key_id: str) -> int:
        """Add a generated version; returns its number."""
        version = self.client.create_crypto_key_version(request={
            "parent": self.key_path(crypto_key_id), "crypto_key_version": {}})
        return int(version.name.rsplit("/", 1)[1])

    def set_state(self, crypto_key_id: str, number: int, state: str) -> None:
        """UpdateCryptoKeyVersion: ``ENABLED`` or ``DISABLED``."""
        self.client.update_crypto_key_version(request={
            "crypto_key_version": {"name": self.version_path(crypto_key_id, number),
                                   "state": state},
            "update_mask": {"paths": ["state"]}})

    def destroy(self, crypto_key_id: str, number: int) -> str:
        """DestroyCryptoKeyVersion; returns the new state."""
        version = self.client.destroy_crypto_key_version(
            request={"name": self.version_path(crypto_key_id, number)})
        return str(version.state.name)

    def import_job(self) -> str:
        """This server's RSA_OAEP_3072_SHA256_AES_256 import job (created once)."""
        if self._import_job is None:
            name = f"{self.ring_name}/importJobs/tenuo-tests"
            from google.api_core import exceptions

            with contextlib.suppress(exceptions.AlreadyExists):
                self.client.create_import_job(request={
                    "parent": self.ring_name, "import_job_id": "tenuo-tests",
                    "import_job": {"import_method": "RSA_OAEP_3072_SHA256_AES_256",
                                   "protection_level": "SOFTWARE"}})
            self._import_job = name
        return self._import_job

    def import_der(self, crypto_key_id: str, private_der: bytes,
                   algorithm: str = "EC_SIGN_ED25519") -> int:
        """Import a PKCS#8 private key as a new version; returns its number."""
        job = self.client.get_import_job(request={"name": self.import_job()})
        version = self.client.import_crypto_key_version(request={
            "parent": self.key_path(crypto_key_id), "algorithm": algorithm,
            "import_job": job.name,
            "rsa_aes_wrapped_key": wrap_for_import(job.public_key.pem, private_der)})
        return int(version.name.rsplit("/", 1)[1])

    def import_key(self, crypto_key_id: str, key: Any, *, create: bool = True) -> int:
        """Import a ``tenuo_core.SigningKey`` (creating an import-only key first)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if create:
            self.create_key(crypto_key_id, skip_initial=True, import_only=True)
        der = Ed25519PrivateKey.from_private_bytes(bytes(key.secret_key_bytes())).private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        return self.import_der(crypto_key_id, der)


@pytest.fixture(scope="session")
def gcp_kms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KMSServer]:
    """The session's Cloud KMS test server (in-memory, insisting on ``KMS_TOKEN`` if sent)."""
    yield from session_server(KMSServer, tmp_path_factory, "gcp-kms", args=("--token", KMS_TOKEN))


@pytest.fixture
def gcp_kms_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., KMSServer]]:
    """Start dedicated servers: ``gcp_kms_factory(state=True)``; stopped after the test."""
    yield from server_factory(KMSServer, tmp_path_factory, "gcp-kms-own")
