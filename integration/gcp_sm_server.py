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
* ``token``: when set, a request that *sends* ``authorization: Bearer X`` with
  another X gets UNAUTHENTICATED (requests without the header are served);
* ``corrupt_crc``: ``"secret_id/version"`` entries served with a wrong CRC32C;
* ``omit_crc``: secret ids served without ``data_crc32c``;
* ``latency_ms``: sleep this long in every Secret Manager call (a network RTT);
* ``fail``: ``{"code": "UNAVAILABLE", "count": 2}`` fails the next calls.

Run it as a process (the fault tests stop and restart it by PID)::

    python integration/gcp_sm_server.py --port 8085 [--state state.json]

With ``--state`` every change is written to that JSON file (atomically), and a
restarted server starts from it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import google_crc32c
import grpc
from google.cloud import secretmanager_v1 as sm
from google.protobuf import empty_pb2

__all__ = ["CONTROL_SERVICE", "SERVICE", "ControlClient", "FakeSecretManager", "serve"]

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"
CONTROL_SERVICE = "tenuo_keys.testing.SecretManagerControl"

_SECRET_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
_SECRET_NAME = re.compile(r"projects/([^/]+)/secrets/([^/]+)")
_VERSION_NAME = re.compile(r"projects/([^/]+)/secrets/([^/]+)/versions/([^/]+)")
_PROJECT_NAME = re.compile(r"projects/([^/]+)")
MAX_PAYLOAD = 64 * 1024
DEFAULT_PAGE = 50
MAX_PAGE = 500


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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


def _ts(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


class FakeSecretManager:
    """The state and behaviour behind the gRPC handlers (thread-safe).

    Args:
        state_file: JSON file to load at start and rewrite after each change.
    """

    def __init__(self, state_file: str | None = None) -> None:
        self._lock = threading.RLock()
        self._secrets: dict[tuple[str, str], _Secret] = {}
        self.state_file = state_file
        self.faults: dict[str, Any] = {}
        self.calls: dict[str, int] = {}
        self.reset_faults()
        if state_file and os.path.exists(state_file):
            self._load(state_file)

    # -- hooks -------------------------------------------------------------

    def reset_faults(self) -> None:
        """Clear every fault hook."""
        with self._lock:
            self.faults = {"deny": [], "token": None, "corrupt_crc": [], "omit_crc": [],
                           "latency_ms": 0.0, "fail": None}

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Set the hooks named in ``changes``; return them all."""
        with self._lock:
            for name, value in changes.items():
                if name not in self.faults:
                    raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown hook {name!r}")
                self.faults[name] = value
            return dict(self.faults)

    def stats(self) -> dict[str, Any]:
        """Calls served per method and the number of secrets held."""
        with self._lock:
            return {"calls": dict(self.calls), "secrets": len(self._secrets)}

    def reset_stats(self) -> None:
        """Zero the call counters."""
        with self._lock:
            self.calls.clear()

    def _enter(self, method: str, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.calls[method] = self.calls.get(method, 0) + 1
            faults = self.faults
            latency = float(faults["latency_ms"] or 0)
            fail = faults["fail"]
            if fail and int(fail.get("count", 1)) > 0:
                methods = fail.get("methods")
                if not methods or method in methods:
                    fail["count"] = int(fail.get("count", 1)) - 1
                    code = grpc.StatusCode[str(fail.get("code", "UNAVAILABLE"))]
                    raise _Abort(code, f"injected failure ({code.name})")
            token = faults["token"]
        if latency:
            time.sleep(latency / 1000.0)
        if token:
            for key, value in context.invocation_metadata():
                if key == "authorization" and value != f"Bearer {token}":
                    raise _Abort(grpc.StatusCode.UNAUTHENTICATED,
                                 "Request had invalid authentication credentials.")

    def _check_access(self, secret_id: str, resource: str, permission: str) -> None:
        if secret_id in self.faults["deny"]:
            raise _Abort(grpc.StatusCode.PERMISSION_DENIED,
                         f"Permission '{permission}' denied for resource '{resource}' "
                         "(or it may not exist).")

    # -- lookups -----------------------------------------------------------

    def _secret(self, name: str, permission: str) -> _Secret:
        match = _SECRET_NAME.fullmatch(name)
        if not match:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret name {name!r}")
        project, secret_id = project_number(match[1]), match[2]
        self._check_access(secret_id, name, permission)
        secret = self._secrets.get((project, secret_id))
        if secret is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret [{name}] not found.")
        return secret

    def _version(self, name: str, permission: str) -> tuple[_Secret, _Version]:
        match = _VERSION_NAME.fullmatch(name)
        if not match:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid version name {name!r}")
        secret = self._secret(f"projects/{match[1]}/secrets/{match[2]}", permission)
        wanted = match[3]
        if wanted == "latest":
            if not secret.versions:
                raise _Abort(grpc.StatusCode.NOT_FOUND,
                             f"Secret [{secret.name}] not found or has no versions.")
            return secret, secret.versions[-1]
        if not wanted.isdigit():
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")
        for version in secret.versions:
            if version.number == int(wanted):
                return secret, version
        raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")

    @staticmethod
    def _secret_msg(secret: _Secret) -> sm.Secret:
        return sm.Secret(
            name=secret.name,
            replication=sm.Replication(automatic=sm.Replication.Automatic()),
            create_time=_ts(secret.created),
            labels=secret.labels,
            etag=f'"{int(secret.created * 1e6):x}"',
        )

    @staticmethod
    def _version_msg(secret: _Secret, version: _Version) -> sm.SecretVersion:
        return sm.SecretVersion(
            name=f"{secret.name}/versions/{version.number}",
            create_time=_ts(version.created),
            destroy_time=_ts(version.destroyed),
            state=sm.SecretVersion.State[version.state],
            etag=f'"{int(version.created * 1e6):x}"',
            client_specified_payload_checksum=version.client_crc,
        )

    # -- the API -----------------------------------------------------------

    def create_secret(self, req: sm.CreateSecretRequest) -> sm.Secret:
        """CreateSecret."""
        match = _PROJECT_NAME.fullmatch(req.parent)
        if not match:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid parent {req.parent!r}")
        if not _SECRET_ID.fullmatch(req.secret_id):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         "secret_id must match [a-zA-Z_0-9-]{1,255}")
        if "replication" not in req.secret:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Secret.replication is required")
        project = project_number(match[1])
        self._check_access(req.secret_id, req.parent, "secretmanager.secrets.create")
        with self._lock:
            if (project, req.secret_id) in self._secrets:
                raise _Abort(grpc.StatusCode.ALREADY_EXISTS,
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
        match = _PROJECT_NAME.fullmatch(req.parent)
        if not match:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid parent {req.parent!r}")
        project = project_number(match[1])
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
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "payload is larger than 64 KiB")
        client_crc = "data_crc32c" in req.payload
        if client_crc and google_crc32c.value(data) != req.payload.data_crc32c:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
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
                raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
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
                raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
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

    def _save(self) -> None:
        if not self.state_file:
            return
        doc = [
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
        directory = os.path.dirname(os.path.abspath(self.state_file))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".gcp-sm-state-")
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out)
        os.replace(tmp, self.state_file)

    def _load(self, path: str) -> None:
        with open(path) as f:
            doc = json.load(f)
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
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
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
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported filter field {name!r}")
    return lambda s: all(t(s) for t in tests)


def _version_filter(text: str) -> Callable[[_Version], bool]:
    states: list[str] = []
    for name, _op, value in _terms(text):
        if name != "state":
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported filter field {name!r}")
        states.append(value.upper())
    return lambda v: all(v.state == s for s in states)


def _page(items: list[Any], size: int, token: str) -> tuple[list[Any], str]:
    size = DEFAULT_PAGE if size <= 0 else min(size, MAX_PAGE)
    try:
        start = int(token) if token else 0
    except ValueError:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid page_token") from None
    end = start + size
    return items[start:end], (str(end) if end < len(items) else "")


# -- gRPC plumbing ---------------------------------------------------------


def _unary(
    store: FakeSecretManager, method: str, call: Callable[[Any], Any],
    request_type: Any, serialize: Callable[[Any], bytes],
) -> grpc.RpcMethodHandler:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            store._enter(method, context)
            return call(request)
        except _Abort as exc:
            context.abort(exc.code, exc.message)

    return grpc.unary_unary_rpc_method_handler(
        handler, request_deserializer=request_type.deserialize, response_serializer=serialize,
    )


def _handlers(store: FakeSecretManager) -> grpc.GenericRpcHandler:
    version = sm.SecretVersion.serialize
    table: dict[str, tuple[Callable[[Any], Any], Any, Callable[[Any], bytes]]] = {
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
    return grpc.method_handlers_generic_handler(SERVICE, {
        name: _unary(store, name, call, req, ser) for name, (call, req, ser) in table.items()
    })


def _control_handlers(store: FakeSecretManager) -> grpc.GenericRpcHandler:
    def wrap(fn: Callable[[dict[str, Any]], Any]) -> grpc.RpcMethodHandler:
        def handler(request: dict[str, Any], context: grpc.ServicerContext) -> Any:
            try:
                return fn(request)
            except _Abort as exc:
                context.abort(exc.code, exc.message)

        return grpc.unary_unary_rpc_method_handler(
            handler, request_deserializer=_json_load, response_serializer=_json_dump,
        )

    def reset(_: dict[str, Any]) -> dict[str, Any]:
        store.reset_faults()
        store.reset_stats()
        return {}

    def stats(req: dict[str, Any]) -> dict[str, Any]:
        out = store.stats()
        if req.get("reset"):
            store.reset_stats()
        return out

    return grpc.method_handlers_generic_handler(CONTROL_SERVICE, {
        "Configure": wrap(store.configure),
        "Stats": wrap(stats),
        "Reset": wrap(reset),
    })


def _json_load(data: bytes) -> Any:
    return json.loads(data or b"{}")


def _json_dump(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def serve(
    port: int, *, host: str = "127.0.0.1", state_file: str | None = None,
    max_workers: int = 32,
) -> tuple[grpc.Server, FakeSecretManager]:
    """Start the server in this process; returns it (already started) and its store."""
    store = FakeSecretManager(state_file)
    server = grpc.server(ThreadPoolExecutor(max_workers=max_workers))
    server.add_generic_rpc_handlers((_handlers(store), _control_handlers(store)))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    server.start()
    return server, store


class ControlClient:
    """Drive the test hooks of a running server.

    Args:
        target: ``host:port`` of the server.
    """

    def __init__(self, target: str) -> None:
        # Reconnect fast: readiness polling starts before the server listens.
        self._channel = grpc.insecure_channel(target, options=[
            ("grpc.initial_reconnect_backoff_ms", 50),
            ("grpc.min_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 250),
        ])

        def method(name: str) -> Callable[..., Any]:
            return self._channel.unary_unary(
                f"/{CONTROL_SERVICE}/{name}",
                request_serializer=_json_dump, response_deserializer=_json_load,
            )

        self._configure = method("Configure")
        self._stats = method("Stats")
        self._reset = method("Reset")

    def configure(self, timeout: float = 5.0, **hooks: Any) -> dict[str, Any]:
        """Set hooks (deny, token, corrupt_crc, omit_crc, latency_ms, fail)."""
        return dict(self._configure(hooks, timeout=timeout))

    def stats(self, reset: bool = False, timeout: float = 5.0) -> dict[str, Any]:
        """Calls per method since the last reset, and the secret count."""
        return dict(self._stats({"reset": reset}, timeout=timeout))

    def calls(self, method: str) -> int:
        """Calls of one Secret Manager method since the last reset."""
        return int(self.stats()["calls"].get(method, 0))

    def reset(self, timeout: float = 5.0) -> None:
        """Clear every hook and the call counters (the data stays)."""
        self._reset({}, timeout=timeout)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


def main(argv: Iterable[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state", default=None, help="JSON file that survives restarts")
    parser.add_argument("--deny", action="append", default=[], help="secret id to deny")
    parser.add_argument("--token", default=None, help="bearer token to insist on, if sent")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(list(argv) if argv is not None else None)
    server, store = serve(args.port, host=args.host, state_file=args.state)
    store.configure({"deny": args.deny, "token": args.token, "latency_ms": args.latency_ms})
    done = threading.Event()

    def stop(_signum: int, _frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"gcp_sm_server listening on {args.host}:{args.port}", flush=True)
    done.wait()
    server.stop(0).wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
