"""What the GCP backends share: the Secret Manager resolver and the Cloud KMS signer.

Project ids, clients (Application Default Credentials, another endpoint, or
plaintext gRPC to a loopback test server), resource names and the mapping of
the status codes that mean the same for every GCP API onto our errors.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import grpc  # type: ignore[import-untyped]  # grpcio ships no type hints
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.auth.credentials import AnonymousCredentials, Credentials

from .._transport import GRPC_SIZE_OPTIONS, MAX_RESPONSE_BYTES, check_transport
from ..errors import (
    BackendUnavailable,
    KeyAccessDenied,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
)

__all__ = [
    "PROJECT",
    "SHARED_CODES",
    "bounded_options",
    "build_client",
    "check_client_options",
    "check_insecure",
    "check_project",
    "code_name",
    "detail",
    "insecure_channel",
    "map_error",
    "project_from_url",
    "version_number",
]

ClientT = TypeVar("ClientT")

PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
"""A GCP project id or number."""
DETAIL_MAX: Final = 200
_UNAVAILABLE: Final = (gexc.ServerError, gexc.TooManyRequests, gexc.Aborted, gexc.Cancelled,
                       gexc.DeadlineExceeded)
SHARED_CODES: Final = (gexc.NotFound, gexc.PermissionDenied, gexc.Unauthenticated,
                       *_UNAVAILABLE)
"""Status codes whose meaning is the same for every GCP API (:func:`map_error` maps them)."""


def bounded_options(options: Any = ()) -> list[tuple[str, Any]]:
    """``options`` with the shared response size cap in place of any receive limit.

    gapic transports ask for unlimited messages (``-1``); every channel we
    build caps what it receives at :data:`~tenuo_keys._transport.MAX_RESPONSE_BYTES`.
    """
    capped = {name for name, _ in GRPC_SIZE_OPTIONS}
    return [*(o for o in options or () if o[0] not in capped), *GRPC_SIZE_OPTIONS]


def insecure_channel(host: str, **kwargs: Any) -> grpc.Channel:
    """A plaintext gRPC channel to a loopback test server that reconnects quickly."""
    # A loopback test server comes and goes (the fault tests restart it), so
    # reconnect quickly instead of gRPC's default backoff of up to two minutes.
    options = [
        *bounded_options(kwargs.get("options", ())),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]
    return grpc.insecure_channel(host, options=options)


def _secure_channel(transport_type: Any) -> Callable[..., grpc.Channel]:
    """The transport's own channel factory (TLS, credentials), with the size cap."""

    def create(host: str, **kwargs: Any) -> grpc.Channel:
        kwargs["options"] = bounded_options(kwargs.get("options", ()))
        return transport_type.create_channel(host, **kwargs)

    return create


def check_project(project: str) -> None:
    """Refuse what cannot be a GCP project id or number.

    Raises:
        ResolverConfigError: It cannot.
    """
    if not isinstance(project, str) or not PROJECT.fullmatch(project):
        raise ResolverConfigError(f"invalid GCP project {project!r}")


PROJECT_VARS: Final = ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT")
"""Where Google's libraries (``google.auth.default``) find the project id."""


def project_from_url(host: str, scheme: str, example: str) -> str:
    """The URL's project (its host), else ``$GOOGLE_CLOUD_PROJECT`` (or ``$GCLOUD_PROJECT``).

    Args:
        host: The URL's host ('' when it has none).
        scheme: The scheme, for the message.
        example: An example URL, for the message.

    Raises:
        ResolverConfigError: Neither gives one.
    """
    project = host or next((os.environ[v] for v in PROJECT_VARS if os.environ.get(v)), "")
    if not project:
        raise ResolverConfigError(
            f"{scheme}:// needs a project: the authority is the project id ({example}); "
            "or leave it empty and set GOOGLE_CLOUD_PROJECT")
    return project


def no_credentials_reason(environ: Mapping[str, str]) -> str:
    """Why Application Default Credentials found nothing, naming a bad credentials file."""
    path = environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not path:
        return ("access denied: no Google credentials found; set GOOGLE_APPLICATION_CREDENTIALS "
                "to a credentials file, run 'gcloud auth application-default login', or run "
                "where the metadata server gives them (in Python, pass credentials=)")
    where = f"GOOGLE_APPLICATION_CREDENTIALS={path!r}"
    if not os.path.exists(path):
        problem = "does not exist"
    elif os.path.isdir(path):
        problem = "is a directory, not a credentials file"
    elif not os.access(path, os.R_OK):
        problem = "cannot be read by this user"
    else:
        problem = "is not a credentials file google-auth accepts (a service account or "
        problem += "authorized-user JSON file)"
    return f"access denied: {where} {problem}"


def check_client_options(client: object | None, api_endpoint: str | None, insecure: bool,
                         credentials: Credentials | None, *,
                         allow_insecure_transport: bool = False) -> None:
    """Refuse a client given with settings for building one, and an unsafe ``insecure``.

    Raises:
        ResolverConfigError: ``client=`` with ``api_endpoint``, ``insecure`` or
            ``credentials``; or ``insecure`` refused by :func:`check_insecure`.
    """
    if client is not None and (api_endpoint or insecure or credentials is not None):
        raise ResolverConfigError(
            "pass either client= or api_endpoint/insecure/credentials, not both")
    if insecure:
        check_insecure(api_endpoint, credentials, allowed=allow_insecure_transport)


def check_insecure(api_endpoint: str | None, credentials: Credentials | None, *,
                   allowed: bool = False) -> None:
    """Allow ``insecure=True`` only without credentials, and to loopback unless ``allowed``.

    The loopback rule is the shared transport policy
    (:func:`~tenuo_keys._transport.check_transport`); ``allowed`` is the
    ``dangerously_allow_insecure_transport`` opt-in.

    Raises:
        ResolverConfigError: No endpoint, credentials given, or not loopback
            without the opt-in.
    """
    if not api_endpoint:
        raise ResolverConfigError("insecure=True needs api_endpoint (a loopback test server)")
    if credentials is not None:
        raise ResolverConfigError("insecure=True sends no credentials; do not pass credentials=")
    host = api_endpoint.rsplit(":", 1)[0].strip("[]") if ":" in api_endpoint else api_endpoint
    check_transport(host=host, plaintext=True, unverified=False, allowed=allowed,
                    what=f"insecure=True (plaintext gRPC, for a test server) to {api_endpoint!r}")


def build_client(client_type: Callable[..., ClientT], transport_type: Callable[..., Any], *,
                 api_endpoint: str | None, insecure: bool, credentials: Credentials | None,
                 key_id: str | None, backend: str) -> ClientT:
    """A gapic client: plaintext to a loopback ``api_endpoint`` when ``insecure``, else TLS.

    Either way its channel refuses a message larger than
    :data:`~tenuo_keys._transport.MAX_RESPONSE_BYTES`; every call passes its
    own ``timeout``, which gRPC enforces as a deadline for the whole call.

    Args:
        client_type: The client class (``SecretManagerServiceClient``...).
        transport_type: Its gRPC transport class (used when ``insecure``).
        api_endpoint: ``host:port`` of another endpoint, or None for Google's.
        insecure: Plaintext gRPC without credentials (checked by :func:`check_insecure`).
        credentials: ``google.auth`` credentials; None for Application Default Credentials.
        key_id: The key id, for the error.
        backend: The backend name, for the error.

    Raises:
        KeyAccessDenied: No credentials given and none found, or
            ``$GOOGLE_APPLICATION_CREDENTIALS`` names no usable file.
    """
    try:
        if insecure:
            transport = functools.partial(transport_type, channel=insecure_channel)
            return client_type(
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options={"api_endpoint": api_endpoint},
                transport=transport,
            )
        options = {"api_endpoint": api_endpoint} if api_endpoint else None
        return client_type(
            credentials=credentials, client_options=options,
            transport=functools.partial(transport_type, channel=_secure_channel(transport_type)),
        )
    except auth_exc.DefaultCredentialsError:
        raise KeyAccessDenied(no_credentials_reason(os.environ), key_id=key_id,
                              backend=backend) from None
    except OSError as exc:
        # google-auth opens $GOOGLE_APPLICATION_CREDENTIALS unguarded (a directory).
        if not exc.filename or exc.filename != os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
            raise
        raise KeyAccessDenied(no_credentials_reason(os.environ), key_id=key_id,
                              backend=backend) from None


def version_number(name: str, collection: str) -> int | None:
    """The version number ending resource ``name`` (``.../versions/3``), or None.

    Args:
        name: The resource name.
        collection: The segment before the number, e.g. ``"/versions/"``.
    """
    tail = name.rpartition(collection)[2]
    return int(tail) if tail.isdigit() else None


def detail(exc: gexc.GoogleAPICallError) -> str:
    """The server's message, on one line and capped (our requests carry no key material)."""
    message = " ".join(str(exc.message or "").split())
    return message if len(message) <= DETAIL_MAX else message[:DETAIL_MAX] + "…"


def code_name(exc: gexc.GoogleAPICallError) -> str:
    """The gRPC status code's name (``UNAVAILABLE``), else the exception's class name."""
    return exc.grpc_status_code.name if exc.grpc_status_code else type(exc).__name__


def map_error(exc: BaseException, *, key_id: str | None, what: str, backend: str,
              service: str) -> KeyResolutionError:
    """Turn a google-api-core / google-auth exception into our error types.

    FAILED_PRECONDITION means something else for each API: callers map it
    first. Any other code that is not in :data:`SHARED_CODES` becomes a
    non-retryable ``KeyResolutionError`` naming it.

    Args:
        exc: What the client raised.
        key_id: The key id, for the error.
        what: What was being read or written, e.g. ``"secret 'x' version 3"``.
        backend: The backend name, for the error.
        service: The API's name, for errors (``"Secret Manager"``, ``"Cloud KMS"``).
    """
    if isinstance(exc, KeyResolutionError):
        return exc.with_context(key_id=key_id, backend=backend)
    if isinstance(exc, gexc.NotFound):
        return KeyNotFound(f"not found: {what} does not exist", key_id=key_id, backend=backend)
    if isinstance(exc, gexc.PermissionDenied):
        return KeyAccessDenied(f"access denied to {what}: {detail(exc)}",
                               key_id=key_id, backend=backend)
    if isinstance(exc, gexc.Unauthenticated):
        return KeyAccessDenied(
            f"access denied: the credentials were rejected (unauthenticated): {detail(exc)}",
            key_id=key_id, backend=backend,
        )
    if isinstance(exc, gexc.RetryError):
        return BackendUnavailable(f"backend unreachable: retries exhausted reading {what}",
                                  key_id=key_id, backend=backend)
    if isinstance(exc, gexc.MethodNotImplemented):
        return KeyResolutionError(
            f"the endpoint does not implement this call ({detail(exc)}); is api_endpoint "
            f"a {service}?", key_id=key_id, backend=backend,
        )
    if isinstance(exc, gexc.ResourceExhausted) and "larger than max" in str(exc.message or ""):
        return BackendUnavailable(
            f"response from {service} reading {what} is larger than {MAX_RESPONSE_BYTES} "
            "bytes; refused", key_id=key_id, backend=backend, retryable=False)
    if isinstance(exc, _UNAVAILABLE):
        return BackendUnavailable(
            f"backend unreachable: {code_name(exc)} reading {what}: {detail(exc)}",
            key_id=key_id, backend=backend)
    if isinstance(exc, gexc.GoogleAPICallError):
        return KeyResolutionError(f"{code_name(exc)} from {service}: {detail(exc)}",
                                  key_id=key_id, backend=backend, retryable=False)
    if isinstance(exc, auth_exc.TransportError) or (
        isinstance(exc, auth_exc.RefreshError) and getattr(exc, "retryable", False)
    ):
        return BackendUnavailable("backend unreachable: could not refresh Google credentials",
                                  key_id=key_id, backend=backend)
    if isinstance(exc, auth_exc.GoogleAuthError):
        return KeyAccessDenied(
            f"access denied: Google credentials failed ({type(exc).__name__})",
            key_id=key_id, backend=backend,
        )
    return KeyResolutionError(f"unexpected {type(exc).__name__} reading {what}",
                              key_id=key_id, backend=backend, retryable=False)
