"""One adapter per remote signer, so the remote-signer Temporal suite runs once per signer.

``integration/test_remote_signers.py`` writes each scenario once against
:class:`SignerBackend`; its ``signer_backend`` fixture is parametrized over
:data:`BACKENDS`. An adapter makes keys (generated inside the backend, or
imported when a test needs the private half to compare PoPs), builds signers,
rotates and retires versions, and takes the backend away and back for the
outage scenario. Adding a signer to the suite is one subclass here and one
entry in :data:`BACKENDS`.

Adapters pull the service fixtures they need from the test's
``pytest.FixtureRequest``, so a run of one parameter starts only its own
services.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import hvac.exceptions
import pytest

from integration.support.gate import Gate
from integration.support.procs import free_port
from integration.support.temporal_helpers import uid
from integration.support.vault import transit_sign_token
from tenuo_keys import Signer
from tenuo_keys.backends import vault_transit as vt
from tenuo_keys.backends.vault_transit import VaultTransitSigner

__all__ = ["BACKENDS", "AWSKMSBackend", "GCPKMSBackend", "Outage", "SignerBackend",
           "TransitBackend"]


@dataclass
class Outage:
    """A key on a backend of its own that the test may take away and bring back.

    Attributes:
        key_id: The key id (an imported key, so the test knows its private half).
        signer: A signer for it with a short timeout.
        stop: Make the backend unreachable.
        start: Bring it back with the same key, at the same address.
    """

    key_id: str
    signer: Signer
    stop: Callable[[], None]
    start: Callable[[], None]


class SignerBackend(abc.ABC):
    """What the remote-signer suite needs from one backend."""

    #: The parameter id in test names.
    param: ClassVar[str]
    #: The message of the failure for a warrant whose holder version was removed.
    removed_version_message: ClassVar[str]

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request

    @abc.abstractmethod
    def new_key(self, name: str) -> str:
        """Create a key generated inside the backend; returns its key id (``uid(name)``)."""

    @abc.abstractmethod
    def assert_sealed(self, key_id: str, signer: Signer) -> None:
        """Assert that ``key_id`` was generated inside the backend and cannot leave it."""

    @abc.abstractmethod
    def import_key(self, name: str, key: Any) -> str:
        """Import the ``tenuo_core.SigningKey`` ``key``; returns the new key id."""

    @abc.abstractmethod
    def signer(self, key_id: str) -> Signer:
        """A signer for ``key_id`` with the least privilege the backend allows."""

    @abc.abstractmethod
    def rotate(self, key_id: str) -> Any:
        """Add version 2 of ``key_id``; returns its public key, read as an issuer would."""

    @abc.abstractmethod
    def signing_versions(self, signer: Signer, *, refresh: bool = False) -> list[int]:
        """The version numbers ``signer`` signs with, newest first."""

    @abc.abstractmethod
    def retire(self, key_id: str, version: int) -> None:
        """Stop ``version`` of ``key_id`` from signing (it still exists)."""

    @abc.abstractmethod
    def remove(self, key_id: str, version: int) -> None:
        """Remove ``version`` of ``key_id`` (after :meth:`retire`)."""

    @abc.abstractmethod
    def outage(self, name: str, key: Any) -> contextlib.AbstractContextManager[Outage]:
        """Import ``key`` on a backend of the test's own, which the test may stop and start."""

    @abc.abstractmethod
    def unreachable_signer(self, key_id: str) -> Signer:
        """A lazy signer for ``key_id`` pointed at a port where nothing listens."""


# --------------------------------------------------------------------------- OpenBao Transit


PREFIX = "tenuo-remote-"
POLICY = "tenuo-remote-sign"
_sign_tokens: dict[str, str] = {}


class TransitBackend(SignerBackend):
    """OpenBao Transit (``VaultTransitSigner``) on ``vault_server``.

    Outages run on a ``vault_fault_server`` of their own.

    Signers use a token that may only read and sign ``transit/keys/tenuo-remote-*``.
    """

    param = "transit"
    removed_version_message = "holder mismatch"

    def __init__(self, request: pytest.FixtureRequest) -> None:
        super().__init__(request)
        self.server = request.getfixturevalue("vault_server")
        self.vault_client = request.getfixturevalue("vault_client")
        self._created: dict[str, Any] = {}

    @property
    def sign_token(self) -> str:
        """Least privilege: read and sign with ``transit/keys/tenuo-remote-*`` only."""
        if self.server.addr not in _sign_tokens:
            _sign_tokens[self.server.addr] = transit_sign_token(self.vault_client, POLICY,
                                                                PREFIX)
        return _sign_tokens[self.server.addr]

    @staticmethod
    def admin(server: Any) -> dict[str, Any]:
        """Root-token arguments of the ``vault_transit`` key helpers."""
        return {"addr": server.addr, "token": server.token, "environ": {},
                "name_template": PREFIX + "{key_id}"}

    @staticmethod
    def transit_signer(key_id: str, addr: str, token: str, **options: Any) -> VaultTransitSigner:
        """A ``VaultTransitSigner`` on the suite's key names."""
        return VaultTransitSigner(key_id, addr, token=token, environ={},
                                  name_template=PREFIX + "{key_id}", **options)

    def new_key(self, name: str) -> str:
        key_id = uid(name)
        self._created[key_id] = vt.create_key(key_id, **self.admin(self.server))
        return key_id

    def assert_sealed(self, key_id: str, signer: Signer) -> None:
        info = self._created[key_id]
        assert (info.exportable, info.imported) == (False, False)
        with pytest.raises(hvac.exceptions.InvalidRequest, match="not exportable"):
            self.vault_client.secrets.transit.export_key(PREFIX + key_id, key_type="signing-key")

    def import_key(self, name: str, key: Any) -> str:
        key_id = uid(name)
        vt.import_key(key_id, key, **self.admin(self.server))
        return key_id

    def signer(self, key_id: str) -> Signer:
        return self.transit_signer(key_id, self.server.addr, self.sign_token)

    def rotate(self, key_id: str) -> Any:
        self.vault_client.secrets.transit.rotate_key(PREFIX + key_id)
        v2 = vt.public(key_id, **self.admin(self.server))
        assert v2.version == 2
        return v2.public_key

    def signing_versions(self, signer: Signer, *, refresh: bool = False) -> list[int]:
        assert isinstance(signer, VaultTransitSigner)
        return [v.version for v in signer.key_info(refresh=refresh).versions]

    def retire(self, key_id: str, version: int) -> None:
        self.vault_client.secrets.transit.update_key_configuration(
            PREFIX + key_id, min_encryption_version=version + 1)

    def remove(self, key_id: str, version: int) -> None:
        transit = self.vault_client.secrets.transit
        transit.update_key_configuration(PREFIX + key_id, min_decryption_version=version + 1)
        transit.trim_key(PREFIX + key_id, min_version=version + 1)

    @contextlib.contextmanager
    def outage(self, name: str, key: Any) -> Iterator[Outage]:
        """A dev server of the test's own behind a :class:`Gate`.

        A dev server restarts empty, so ``start`` re-seeds it (Transit mount,
        the same imported key) before reopening the gate; a production Vault
        keeps its storage, so the signer never sees that moment.
        """
        server = self.request.getfixturevalue("vault_fault_server")
        server.setup_engines()
        key_id = uid(name)
        vt.import_key(key_id, key, **self.admin(server))
        gate = Gate(server.port)

        def stop() -> None:
            gate.close()
            server.stop()

        def start() -> None:
            server.start()
            server.setup_engines()
            vt.import_key(key_id, key, **self.admin(server))
            gate.open()

        signer = self.transit_signer(key_id, gate.addr, server.token, timeout=1.0)
        try:
            yield Outage(key_id, signer, stop, start)
        finally:
            gate.close()

    def unreachable_signer(self, key_id: str) -> Signer:
        return self.transit_signer(key_id, f"http://127.0.0.1:{free_port()}", "t", lazy=True)


# --------------------------------------------------------------------------- Cloud KMS


class GCPKMSBackend(SignerBackend):
    """Cloud KMS (``GCPKMSSigner``) on the ``gcp_kms`` test server; outages on ``gcp_kms_factory``.

    Key id ``K`` names the CryptoKey ``tenuo-K``.
    """

    param = "gcp-kms"
    removed_version_message = "DESTROY"

    def __init__(self, request: pytest.FixtureRequest) -> None:
        super().__init__(request)
        self.server = request.getfixturevalue("gcp_kms")

    def new_key(self, name: str) -> str:
        key_id = uid(name)
        self.server.create_key(f"tenuo-{key_id}")
        return key_id

    def assert_sealed(self, key_id: str, signer: Signer) -> None:
        assert self.signing_versions(signer) == [1]  # generated in KMS, never imported

    def import_key(self, name: str, key: Any) -> str:
        return self.import_key_on(self.server, name, key)

    def signer(self, key_id: str) -> Signer:
        signer: Signer = self.server.signer(key_id)
        return signer

    def rotate(self, key_id: str) -> Any:
        assert self.server.rotate(f"tenuo-{key_id}") == 2
        with self.server.signer(key_id) as issuer_view:
            assert self.signing_versions(issuer_view) == [2, 1]
            return issuer_view.public_key

    def signing_versions(self, signer: Signer, *, refresh: bool = False) -> list[int]:
        from tenuo_keys.backends.gcp_kms import GCPKMSSigner

        assert isinstance(signer, GCPKMSSigner)
        return [v.number for v in signer.key_info(refresh=refresh).signing]

    def retire(self, key_id: str, version: int) -> None:
        self.server.set_state(f"tenuo-{key_id}", version, "DISABLED")

    def remove(self, key_id: str, version: int) -> None:
        assert self.server.destroy(f"tenuo-{key_id}", version) == "DESTROY_SCHEDULED"

    @contextlib.contextmanager
    def outage(self, name: str, key: Any) -> Iterator[Outage]:
        """A server of the test's own with a state file: it restarts on its port, keys kept."""
        server = self.request.getfixturevalue("gcp_kms_factory")(state=True)
        key_id = self.import_key_on(server, name, key)
        yield Outage(key_id, server.signer(key_id, timeout=1.0), server.stop, server.start)

    @staticmethod
    def import_key_on(server: Any, name: str, key: Any) -> str:
        """Import ``key`` on ``server``; returns the new key id."""
        key_id = uid(name)
        server.import_key(f"tenuo-{key_id}", key)
        return key_id

    def unreachable_signer(self, key_id: str) -> Signer:
        signer: Signer = self.server.signer(key_id, api_endpoint=f"127.0.0.1:{free_port()}",
                                            lazy=True)
        return signer


# --------------------------------------------------------------------------- AWS KMS


class AWSKMSBackend(SignerBackend):
    """AWS KMS (``AWSKMSSigner``) on the ``aws_kms`` test server; outages on ``aws_kms_factory``.

    Key id ``K`` names the alias ``alias/tenuo-K``; version N is the N-th KMS key
    the alias named (a rotation creates a key and moves the alias, keeping the
    old key under ``alias/tenuo-K/previous``).
    """

    param = "aws-kms"
    removed_version_message = "PendingDeletion"

    def __init__(self, request: pytest.FixtureRequest) -> None:
        super().__init__(request)
        self.server = request.getfixturevalue("aws_kms")
        self._arns: dict[str, list[str]] = {}

    @staticmethod
    def alias(key_id: str) -> str:
        """The alias of ``key_id``."""
        return f"alias/tenuo-{key_id}"

    def new_key(self, name: str) -> str:
        key_id = uid(name)
        self._arns[key_id] = [self.server.create_key(self.alias(key_id))]
        return key_id

    def assert_sealed(self, key_id: str, signer: Signer) -> None:
        meta = self.server.client.describe_key(KeyId=self.alias(key_id))["KeyMetadata"]
        assert (meta["Origin"], meta["KeySpec"]) == ("AWS_KMS", "ECC_NIST_EDWARDS25519")
        assert self.signing_versions(signer) == [1]  # generated in KMS, never imported

    def import_key(self, name: str, key: Any) -> str:
        key_id = uid(name)
        self._arns[key_id] = [self.server.import_key(self.alias(key_id), key)]
        return key_id

    def signer(self, key_id: str) -> Signer:
        signer: Signer = self.server.signer(key_id)
        return signer

    def rotate(self, key_id: str) -> Any:
        self._arns[key_id].append(self.server.rotate(self.alias(key_id)))
        with self.server.signer(key_id) as issuer_view:
            assert self.signing_versions(issuer_view) == [2, 1]
            return issuer_view.public_key

    def signing_versions(self, signer: Signer, *, refresh: bool = False) -> list[int]:
        from tenuo_keys.backends.aws_kms import AWSKMSSigner

        assert isinstance(signer, AWSKMSSigner)
        return [v.number for v in signer.key_info(refresh=refresh).signing]

    def retire(self, key_id: str, version: int) -> None:
        self.server.client.disable_key(KeyId=self._arns[key_id][version - 1])

    def remove(self, key_id: str, version: int) -> None:
        answer = self.server.client.schedule_key_deletion(
            KeyId=self._arns[key_id][version - 1], PendingWindowInDays=7)
        assert answer["KeyState"] == "PendingDeletion"

    @contextlib.contextmanager
    def outage(self, name: str, key: Any) -> Iterator[Outage]:
        """A server of the test's own with a state file: it restarts on its port, keys kept."""
        server = self.request.getfixturevalue("aws_kms_factory")(state=True)
        key_id = uid(name)
        server.import_key(self.alias(key_id), key)
        signer = server.signer(key_id, connect_timeout=0.5, read_timeout=1.0, max_attempts=1)
        yield Outage(key_id, signer, server.stop, server.start)

    def unreachable_signer(self, key_id: str) -> Signer:
        signer: Signer = self.server.signer(
            key_id, endpoint_url=f"http://127.0.0.1:{free_port()}", lazy=True,
            connect_timeout=0.5, max_attempts=1)
        return signer


#: The suite's parameters, in order: ``param`` to adapter class.
BACKENDS: dict[str, type[SignerBackend]] = {
    backend.param: backend for backend in (TransitBackend, GCPKMSBackend, AWSKMSBackend)}
