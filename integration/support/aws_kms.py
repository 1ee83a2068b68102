"""Fixtures for the AWS KMS test server (``integration/support/aws_kms_server.py``).

moto has no Ed25519 KMS keys, so the suite runs the project's own small
server as a process on a free loopback port; the real boto3 ``kms`` client
talks to it through ``endpoint_url=``.

Fixtures:
    aws_kms: one server for the whole session (an :class:`AWSKMSServer`).
    aws_kms_factory: starts extra servers (own port, optional ``--state`` file,
        so keys survive a restart) for tests that stop and start one or set
        fault hooks; all are stopped at the end of the test.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.support.gcp_kms import wrap_for_import
from integration.support.procs import (
    REPO_ROOT,
    ManagedProcess,
    free_port,
    module_argv,
    stopped_after,
)

__all__ = ["REGION", "TEMPLATE", "AWSKMSServer", "aws_kms", "aws_kms_factory"]

REGION = "us-east-1"
TEMPLATE = "alias/tenuo-{key_id}"
_ENV_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class AWSKMSServer:
    """One running test server: its endpoint, a boto3 client, hooks, keys and stop/start.

    Attributes:
        port: The loopback port (kept across restarts).
        endpoint_url: ``http://127.0.0.1:PORT``.
        state: The ``--state`` file, or None (in-memory).
    """

    def __init__(self, port: int, log: Path, state: Path | None = None) -> None:
        self.port = port
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self.state = state
        argv = module_argv("integration.support.aws_kms_server", "--port", str(port),
                           "--region", REGION)
        if state is not None:
            argv += ["--state", str(state)]
        self._process = ManagedProcess(argv, f"aws-kms:{port}", log, cwd=REPO_ROOT)
        self._client: Any = None

    def _ready(self) -> bool:
        with urllib.request.urlopen(self.endpoint_url + "/", timeout=1) as answer:
            return bool(answer.status == 200)

    def start(self, timeout: float = 20.0) -> AWSKMSServer:
        """Start the process and wait until it answers."""
        self._process.start(self._ready, timeout)
        return self

    def stop(self) -> None:
        """Stop the process (by PID)."""
        self._process.stop()

    @property
    def pid(self) -> int:
        """The server's PID."""
        return self._process.pid

    @property
    def client(self) -> Any:
        """A boto3 ``kms`` client on this server (an administrator's)."""
        if self._client is None:
            import boto3

            self._client = boto3.client("kms", region_name=REGION,
                                        endpoint_url=self.endpoint_url, **_CREDENTIALS)
        return self._client

    def control(self, **faults: Any) -> dict[str, Any]:
        """Set fault hooks (``deny=[...]``, ``throttle=N``...); returns hooks and call counts."""
        request = urllib.request.Request(
            self.endpoint_url + "/_control", data=json.dumps({"faults": faults}).encode(),
            method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            result: dict[str, Any] = json.loads(answer.read())
        return result

    # -- signers -------------------------------------------------------------------

    def url(self, template: str = TEMPLATE, **params: Any) -> str:
        """An ``awskms://`` URL for this server."""
        query = "&".join(f"{k}={v}" for k, v in {"endpoint_url": self.endpoint_url,
                                                  **params}.items())
        return f"awskms://{REGION}/{template}?{query}"

    def signer(self, key_id: str, template: str = TEMPLATE, **options: Any) -> Any:
        """An ``AWSKMSSigner`` for ``key_id`` on this server (test credentials)."""
        from botocore.config import Config

        from tenuo_keys.backends.aws_kms import AWSKMSSigner

        if "client" in options:
            return AWSKMSSigner(key_id, template, **options)
        options.setdefault("endpoint_url", self.endpoint_url)
        options.setdefault("region_name", REGION)
        return AWSKMSSigner(key_id, template, config=Config(), **options)

    # -- keys ----------------------------------------------------------------------

    def create_key(self, alias: str | None = None, *, origin: str = "AWS_KMS") -> str:
        """Create an Ed25519 key (and point ``alias`` at it); returns its key ARN."""
        meta = self.client.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY",
                                      Origin=origin)["KeyMetadata"]
        if alias is not None:
            self.client.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
        return str(meta["Arn"])

    def import_key(self, alias: str | None, key: Any) -> str:
        """Import a ``tenuo_core.SigningKey`` into a new EXTERNAL key; returns its key ARN."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        arn = self.create_key(alias, origin="EXTERNAL")
        params = self.client.get_parameters_for_import(
            KeyId=arn, WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256", WrappingKeySpec="RSA_2048")
        pem = serialization.load_der_public_key(params["PublicKey"]).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        der = Ed25519PrivateKey.from_private_bytes(bytes(key.secret_key_bytes())).private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        self.client.import_key_material(
            KeyId=arn, ImportToken=params["ImportToken"],
            EncryptedKeyMaterial=wrap_for_import(pem.decode(), der),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
        return arn

    def rotate(self, alias: str) -> str:
        """Rotate as documented: ``alias/previous`` to the old key, ``alias`` to a new one.

        Returns:
            The new key ARN.
        """
        from tenuo_keys.backends.aws_kms import previous_alias

        old = self.target(alias)
        previous = previous_alias(alias)
        names = {a["AliasName"] for a in self.client.list_aliases()["Aliases"]}
        move = self.client.update_alias if previous in names else self.client.create_alias
        move(AliasName=previous, TargetKeyId=old)
        arn = self.create_key()
        self.client.update_alias(AliasName=alias, TargetKeyId=arn)
        return arn

    def public_raw(self, key: str) -> bytes:
        """The raw public key of ``key`` (any key id form)."""
        from tenuo_keys.backends.aws_kms import raw_public_key

        return raw_public_key(self.client.get_public_key(KeyId=key)["PublicKey"])

    def target(self, alias: str) -> str:
        """The key ARN ``alias`` names."""
        return str(self.client.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])


def _start(tmp: pytest.TempPathFactory, name: str, state: bool = False) -> AWSKMSServer:
    base = tmp.mktemp(name)
    return AWSKMSServer(free_port(), base / "server.log",
                        base / "state.json" if state else None).start()


@pytest.fixture(scope="session")
def aws_kms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AWSKMSServer]:
    """The session's AWS KMS test server (in-memory).

    Signers take credentials from the AWS chain, so test credentials are put
    in the environment (unless some are set) while the session lasts; the
    server does not check them.
    """
    added = [name for name in _ENV_CREDENTIALS if name not in os.environ]
    os.environ.update({name: "testing" for name in added})
    server = _start(tmp_path_factory, "aws-kms")
    try:
        yield server
    finally:
        server.stop()
        for name in added:
            os.environ.pop(name, None)


@pytest.fixture
def aws_kms_factory(
    tmp_path_factory: pytest.TempPathFactory, aws_kms: AWSKMSServer,
) -> Iterator[Callable[..., AWSKMSServer]]:
    """Start dedicated servers: ``aws_kms_factory(state=True)``; stopped after the test."""
    yield from stopped_after(lambda state=False: _start(tmp_path_factory, "aws-kms-own", state),
                             AWSKMSServer.stop)

