"""A small but real gRPC Secret Manager server, for tests (GCP ships no emulator).

It speaks the real wire protocol of ``google.cloud.secretmanager.v1.SecretManagerService``
with the request/response message classes that ``google.cloud.secretmanager_v1``
ships, so the real ``SecretManagerServiceClient`` talks to it over a loopback
insecure channel::

    client = SecretManagerServiceClient(
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": "127.0.0.1:P"},
        transport=<a SecretManagerServiceGrpcTransport on grpc.insecure_channel>,
    )

Implemented: CreateSecret, GetSecret, ListSecrets (``name:``/``name=``,
``labels.K=V``/``labels.K:V``/``labels.K:*`` terms joined by spaces or AND;
paging), DeleteSecret, AddSecretVersion (checks a client CRC32C), GetSecretVersion,
AccessSecretVersion (``latest`` = the most recently created version; numbers;
``data_crc32c`` computed with google-crc32c), ListSecretVersions (newest first;
``state:``/``state=`` filter; paging), Disable/Enable/DestroySecretVersion.
Status codes follow GCP: NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT,
FAILED_PRECONDITION (a disabled or destroyed version), PERMISSION_DENIED,
UNAUTHENTICATED. Names in responses carry a project *number*, as GCP's do,
whether the request named the project by id or by number.

Test hooks, set at start-up by flags or at run time through a second gRPC
service (``tenuo_keys.testing.SecretManagerControl``, JSON in and out, see
:class:`ControlClient`):

* ``deny``: secret ids that answer PERMISSION_DENIED;
* ``corrupt_crc``: ``"secret_id/version"`` entries served with a wrong CRC32C;
* ``omit_crc``: secret ids served without ``data_crc32c``;
* ``fail``: ``{"code": "UNAVAILABLE", "count": 2}`` fails the next calls.

Plus the hooks of every test server (``token``, ``latency_ms``), the
``--state`` file and the command line, all from
``integration/support/grpc_test_server.py``. Run it as a process (the fault
tests stop and restart it by PID)::

    python -m integration.support.gcp_sm_server --port 8085 [--state state.json]
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import google_crc32c
import grpc
from google.cloud import secretmanager_v1 as sm
from google.protobuf import empty_pb2

from integration.support.grpc_test_server import (
    Abort,
    HandlerTable,
    HookedStore,
    JsonControlClient,
    page,
    run_main,
    start_server,
    timestamp,
)

__all__ = ["CONTROL_SERVICE", "SERVICE", "ControlClient", "FakeSecretManager", "serve"]

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"
CONTROL_SERVICE = "tenuo_keys.testing.SecretManagerControl"

_SECRET_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
_SECRET_NAME = re.compile(r"projects/([^/]+)/secrets/([^/]+)")
_VERSION_NAME = re.compile(r"projects/([^/]+)/secrets/([^/]+)/versions/([^/]+)")
_PROJECT_NAME = re.compile(r"projects/([^/]+)")
MAX_PAYLOAD = 64 * 1024
MAX_PAGE = 500


@dataclass
class _Version:
    number: int
    data: bytes
    state: str = "ENABLED"
    created: float = field(default_factory=time.time)
    destroyed: float | None = None
    client_crc: bool = False


@dataclass
class _Secret:
    project: str
    secret_id: str
    labels: dict[str, str]
    created: float = field(default_factory=time.time)
    versions: list[_Version] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"projects/{self.project}/secrets/{self.secret_id}"


def project_number(project: str) -> str:
    """The number GCP would show for ``project`` (stable; numbers map to themselves)."""
    if project.isdigit():
        return project
    return str(100_000_000_000 + zlib.crc32(project.encode()) % 900_000_000_000)


def _parent_project(parent: str) -> str:
    """The project number of a ``projects/P`` parent."""
    match = _PROJECT_NAME.fullmatch(parent)
    if not match:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid parent {parent!r}")
    return project_number(match[1])


class FakeSecretManager(HookedStore):
    """The Secret Manager state and behaviour behind the gRPC handlers (thread-safe).

    The hooks, call counters and state file come from
    :class:`integration.support.grpc_test_server.HookedStore`.

    Args:
        state_file: JSON file to load at start and rewrite after each change.
    """

    state_prefix = ".gcp-sm-state-"

    def __init__(self, state_file: str | None = None) -> None:
        self._secrets: dict[tuple[str, str], _Secret] = {}
        super().__init__(state_file)

    # -- hooks -------------------------------------------------------------

    def _default_faults(self) -> dict[str, Any]:
        return {"deny": [], "token": None, "corrupt_crc": [], "omit_crc": [],
                "latency_ms": 0.0, "fail": None}

    def _counts(self) -> dict[str, int]:
        """The number of secrets held."""
        return {"secrets": len(self._secrets)}

    def _check_access(self, secret_id: str, resource: str, permission: str) -> None:
        if secret_id in self.faults["deny"]:
            raise Abort(grpc.StatusCode.PERMISSION_DENIED,
                        f"Permission '{permission}' denied for resource '{resource}' "
                        "(or it may not exist).")

    # -- lookups -----------------------------------------------------------

    def _secret(self, name: str, permission: str) -> _Secret:
        match = _SECRET_NAME.fullmatch(name)
        if not match:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret name {name!r}")
        project, secret_id = project_number(match[1]), match[2]
        self._check_access(secret_id, name, permission)
        secret = self._secrets.get((project, secret_id))
        if secret is None:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"Secret [{name}] not found.")
        return secret

    def _version(self, name: str, permission: str) -> tuple[_Secret, _Version]:
        match = _VERSION_NAME.fullmatch(name)
        if not match:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid version name {name!r}")
        secret = self._secret(f"projects/{match[1]}/secrets/{match[2]}", permission)
        wanted = match[3]
        if wanted == "latest":
            if not secret.versions:
                raise Abort(grpc.StatusCode.NOT_FOUND,
                            f"Secret [{secret.name}] not found or has no versions.")
            return secret, secret.versions[-1]
        if not wanted.isdigit():
            raise Abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")
        for version in secret.versions:
            if version.number == int(wanted):
                return secret, version
        raise Abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")

    @staticmethod
    def _secret_msg(secret: _Secret) -> sm.Secret:
        return sm.Secret(
            name=secret.name,
            replication=sm.Replication(automatic=sm.Replication.Automatic()),
            create_time=timestamp(secret.created),
            labels=secret.labels,
            etag=f'"{int(secret.created * 1e6):x}"',
        )

    @staticmethod
    def _version_msg(secret: _Secret, version: _Version) -> sm.SecretVersion:
        return sm.SecretVersion(
            name=f"{secret.name}/versions/{version.number}",
            create_time=timestamp(version.created),
            destroy_time=timestamp(version.destroyed),
            state=sm.SecretVersion.State[version.state],
            etag=f'"{int(version.created * 1e6):x}"',
            client_specified_payload_checksum=version.client_crc,
        )

    # -- the API -----------------------------------------------------------

    def create_secret(self, req: sm.CreateSecretRequest) -> sm.Secret:
        """CreateSecret."""
        project = _parent_project(req.parent)
        if not _SECRET_ID.fullmatch(req.secret_id):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        "secret_id must match [a-zA-Z_0-9-]{1,255}")
        if "replication" not in req.secret:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "Secret.replication is required")
        self._check_access(req.secret_id, req.parent, "secretmanager.secrets.create")
        with self._lock:
            if (project, req.secret_id) in self._secrets:
                raise Abort(grpc.StatusCode.ALREADY_EXISTS,
                            f"Secret [projects/{project}/secrets/{req.secret_id}] already exists.")
            secret = _Secret(project, req.secret_id, dict(req.secret.labels))
            self._secrets[(project, req.secret_id)] = secret
            self._save()
            return self._secret_msg(secret)

    def get_secret(self, req: sm.GetSecretRequest) -> sm.Secret:
        """GetSecret."""
        with self._lock:
            return self._secret_msg(self._secret(req.name, "secretmanager.secrets.get"))

    def delete_secret(self, req: sm.DeleteSecretRequest) -> empty_pb2.Empty:
        """DeleteSecret."""
        with self._lock:
            secret = self._secret(req.name, "secretmanager.secrets.delete")
            del self._secrets[(secret.project, secret.secret_id)]
            self._save()
        return empty_pb2.Empty()

    def list_secrets(self, req: sm.ListSecretsRequest) -> sm.ListSecretsResponse:
        """ListSecrets: sorted by name, filtered, paged."""
        project = _parent_project(req.parent)
        test = _secret_filter(req.filter)
        with self._lock:
            found = sorted(
                (s for (p, _), s in self._secrets.items() if p == project and test(s)),
                key=lambda s: s.secret_id,
            )
            page, token = _page(found, req.page_size, req.page_token)
            return sm.ListSecretsResponse(
                secrets=[self._secret_msg(s) for s in page],
                next_page_token=token, total_size=len(found),
            )

    def add_secret_version(self, req: sm.AddSecretVersionRequest) -> sm.SecretVersion:
        """AddSecretVersion: checks the client's CRC32C when it sends one."""
        data = bytes(req.payload.data)
        if len(data) > MAX_PAYLOAD:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "payload is larger than 64 KiB")
        client_crc = "data_crc32c" in req.payload
        if client_crc and google_crc32c.value(data) != req.payload.data_crc32c:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        "Checksum mismatch: the payload was corrupted in transit.")
        with self._lock:
            secret = self._secret(req.parent, "secretmanager.versions.add")
            number = max((v.number for v in secret.versions), default=0) + 1
            version = _Version(number, data, client_crc=client_crc)
            secret.versions.append(version)
            self._save()
            return self._version_msg(secret, version)

    def get_secret_version(self, req: sm.GetSecretVersionRequest) -> sm.SecretVersion:
        """GetSecretVersion."""
        with self._lock:
            return self._version_msg(*self._version(req.name, "secretmanager.versions.get"))

    def access_secret_version(
        self, req: sm.AccessSecretVersionRequest
    ) -> sm.AccessSecretVersionResponse:
        """AccessSecretVersion: the payload and its CRC32C (unless a hook says otherwise)."""
        with self._lock:
            secret, version = self._version(req.name, "secretmanager.versions.access")
            name = f"{secret.name}/versions/{version.number}"
            if version.state != "ENABLED":
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION,
                            f"Secret Version [{name}] is in {version.state} state.")
            payload = sm.SecretPayload(data=version.data)
            if secret.secret_id not in self.faults["omit_crc"]:
                crc = google_crc32c.value(version.data)
                if f"{secret.secret_id}/{version.number}" in self.faults["corrupt_crc"]:
                    crc ^= 0x5A5A5A5A
                payload.data_crc32c = crc
            return sm.AccessSecretVersionResponse(name=name, payload=payload)

    def list_secret_versions(
        self, req: sm.ListSecretVersionsRequest
    ) -> sm.ListSecretVersionsResponse:
        """ListSecretVersions: newest first, filtered by state, paged."""
        test = _version_filter(req.filter)
        with self._lock:
            secret = self._secret(req.parent, "secretmanager.versions.list")
            found = [v for v in reversed(secret.versions) if test(v)]
            page, token = _page(found, req.page_size, req.page_token)
            return sm.ListSecretVersionsResponse(
                versions=[self._version_msg(secret, v) for v in page],
                next_page_token=token, total_size=len(found),
            )

    def _set_state(self, name: str, state: str, permission: str) -> sm.SecretVersion:
        with self._lock:
            secret, version = self._version(name, permission)
            if version.state == "DESTROYED" and state != "DESTROYED":
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION,
                            f"Secret Version [{name}] is in DESTROYED state.")
            version.state = state
            if state == "DESTROYED":
                version.data = b""
                version.destroyed = time.time()
            self._save()
            return self._version_msg(secret, version)

    def disable_secret_version(self, req: sm.DisableSecretVersionRequest) -> sm.SecretVersion:
        """DisableSecretVersion."""
        return self._set_state(req.name, "DISABLED", "secretmanager.versions.disable")

    def enable_secret_version(self, req: sm.EnableSecretVersionRequest) -> sm.SecretVersion:
        """EnableSecretVersion."""
        return self._set_state(req.name, "ENABLED", "secretmanager.versions.enable")

    def destroy_secret_version(self, req: sm.DestroySecretVersionRequest) -> sm.SecretVersion:
        """DestroySecretVersion: the payload is wiped."""
        return self._set_state(req.name, "DESTROYED", "secretmanager.versions.destroy")

    # -- persistence -------------------------------------------------------

    def _dump(self) -> Any:
        return [
            {
                "project": s.project, "secret_id": s.secret_id, "labels": s.labels,
                "created": s.created,
                "versions": [
                    {"number": v.number, "data": base64.b64encode(v.data).decode(),
                     "state": v.state, "created": v.created, "destroyed": v.destroyed,
                     "client_crc": v.client_crc}
                    for v in s.versions
                ],
            }
            for s in self._secrets.values()
        ]

    def _restore(self, doc: Any) -> None:
        for s in doc:
            secret = _Secret(s["project"], s["secret_id"], s["labels"], s["created"])
            secret.versions = [
                _Version(v["number"], base64.b64decode(v["data"]), v["state"], v["created"],
                         v["destroyed"], v["client_crc"])
                for v in s["versions"]
            ]
            self._secrets[(secret.project, secret.secret_id)] = secret


# -- filters and paging ----------------------------------------------------

_TERM = re.compile(r'([A-Za-z_][A-Za-z0-9_.-]*)\s*(:|=)\s*("(?:[^"\\]|\\.)*"|[^\s"]+)')


def _terms(text: str) -> list[tuple[str, str, str]]:
    terms: list[tuple[str, str, str]] = []
    rest = text.strip()
    while rest:
        if rest.startswith("AND ") or rest.startswith("AND\t"):
            rest = rest[4:].lstrip()
            continue
        match = _TERM.match(rest)
        if not match or rest.startswith(("OR ", "NOT ")):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"unsupported filter {text!r} (this test server knows "
                        "name:, labels.K=V, labels.K:*, state: joined by AND)")
        value = match[3]
        if value.startswith('"'):
            value = json.loads(value)
        terms.append((match[1], match[2], value))
        rest = rest[match.end():].lstrip()
    return terms


def _secret_filter(text: str) -> Callable[[_Secret], bool]:
    tests: list[Callable[[_Secret], bool]] = []
    for name, op, value in _terms(text):
        if name == "name":
            if op == ":":
                tests.append(lambda s, v=value: v in s.name)
            else:
                tests.append(lambda s, v=value: v in (s.secret_id, s.name))
        elif name.startswith("labels."):
            label = name[len("labels."):]
            if op == ":" and value == "*":
                tests.append(lambda s, k=label: k in s.labels)
            elif op == ":":
                tests.append(lambda s, k=label, v=value: v in s.labels.get(k, "\0"))
            else:
                tests.append(lambda s, k=label, v=value: s.labels.get(k) == v)
        else:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported filter field {name!r}")
    return lambda s: all(t(s) for t in tests)


def _version_filter(text: str) -> Callable[[_Version], bool]:
    states: list[str] = []
    for name, _op, value in _terms(text):
        if name != "state":
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported filter field {name!r}")
        states.append(value.upper())
    return lambda v: all(v.state == s for s in states)


def _page(items: list[Any], size: int, token: str) -> tuple[list[Any], str]:
    return page(items, size, token, max_size=MAX_PAGE)


# -- gRPC plumbing ---------------------------------------------------------


def _handlers(store: FakeSecretManager) -> HandlerTable:
    version = sm.SecretVersion.serialize
    return {
        "CreateSecret": (store.create_secret, sm.CreateSecretRequest, sm.Secret.serialize),
        "GetSecret": (store.get_secret, sm.GetSecretRequest, sm.Secret.serialize),
        "DeleteSecret": (store.delete_secret, sm.DeleteSecretRequest,
                         empty_pb2.Empty.SerializeToString),
        "ListSecrets": (store.list_secrets, sm.ListSecretsRequest,
                        sm.ListSecretsResponse.serialize),
        "AddSecretVersion": (store.add_secret_version, sm.AddSecretVersionRequest, version),
        "GetSecretVersion": (store.get_secret_version, sm.GetSecretVersionRequest, version),
        "AccessSecretVersion": (store.access_secret_version, sm.AccessSecretVersionRequest,
                                sm.AccessSecretVersionResponse.serialize),
        "ListSecretVersions": (store.list_secret_versions, sm.ListSecretVersionsRequest,
                               sm.ListSecretVersionsResponse.serialize),
        "DisableSecretVersion": (store.disable_secret_version, sm.DisableSecretVersionRequest,
                                 version),
        "EnableSecretVersion": (store.enable_secret_version, sm.EnableSecretVersionRequest,
                                version),
        "DestroySecretVersion": (store.destroy_secret_version, sm.DestroySecretVersionRequest,
                                 version),
    }


def serve(
    port: int, *, host: str = "127.0.0.1", state_file: str | None = None,
    max_workers: int = 32,
) -> tuple[grpc.Server, FakeSecretManager]:
    """Start the server in this process; returns it (already started) and its store."""
    store = FakeSecretManager(state_file)
    server = start_server(store, SERVICE, _handlers(store), CONTROL_SERVICE,
                          port=port, host=host, max_workers=max_workers)
    return server, store


class ControlClient(JsonControlClient):
    """Drive the test hooks of a running Secret Manager test server.

    ``configure`` sets deny, token, corrupt_crc, omit_crc, latency_ms or fail;
    ``stats`` counts the secrets held too; ``calls`` counts one Secret Manager
    method; ``reset`` clears the hooks and counters (the data stays).

    Args:
        target: ``host:port`` of the server.
    """

    service = CONTROL_SERVICE


def main(argv: Iterable[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT."""
    return run_main(argv, serve, name="gcp_sm_server", description=__doc__.splitlines()[0],
                    deny_help="secret id to deny")


if __name__ == "__main__":
    sys.exit(main())
