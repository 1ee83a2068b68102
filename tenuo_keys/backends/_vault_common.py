"""What the Vault backends share: connection, login and token upkeep, and error mapping.

:class:`~tenuo_keys.backends.vault.VaultKeyResolver` (KV and Transit export)
and :class:`~tenuo_keys.backends.vault_transit.VaultTransitSigner` (Transit
signing) reach Vault/OpenBao the same way: the address, credentials, TLS,
namespace and timeout come from arguments, then the environment (as the
vault/bao CLI reads it) and URLs, settled once into a :class:`VaultConnection`
(:func:`url_options` reads the rest of a URL);
one :class:`Session` holds the ``hvac`` client and its token (lazy login,
re-login after a rejected token, background renewal); :func:`map_error`
turns hvac and requests failures into our errors. No message or repr here
carries a token, secret id, JWT or key material.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypedDict, TypeVar
from urllib.parse import urljoin, urlsplit

import hvac
import hvac.exceptions
import requests
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    from typing_extensions import Unpack

from .._transport import (
    INSECURE_OPT_IN,
    MAX_RESPONSE_BYTES,
    bounded_pools,
    check_transport,
    origin,
    read_bounded,
    total_deadline,
)
from .._url import ResolverURL
from ..errors import (
    BackendUnavailable,
    KeyAccessDenied,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
)

__all__ = [
    "AUTH_METHODS",
    "BACKEND",
    "DEFAULT_ADDR",
    "DEFAULT_K8S_JWT_PATH",
    "DEFAULT_PORT",
    "TRANSIT_NAME",
    "Connection",
    "Credentials",
    "Session",
    "VaultArguments",
    "VaultConnection",
    "check_addr",
    "check_arguments",
    "clean_mount",
    "map_error",
    "summary",
    "url_options",
]

# The KV resolver's logger: token upkeep logs here for every Vault backend.
logger = logging.getLogger("tenuo_keys.vault")

T = TypeVar("T")

BACKEND: Final = "vault"
"""The KV resolver's backend name; the one errors carry unless told another."""
DEFAULT_ADDR: Final = "https://127.0.0.1:8200"
"""What the vault/bao CLI uses when ``VAULT_ADDR`` is unset."""
DEFAULT_PORT: Final = 8200
DEFAULT_K8S_JWT_PATH: Final = "/var/run/secrets/kubernetes.io/serviceaccount/token"
AUTH_METHODS: Final = ("token", "approle", "kubernetes", "jwt")
TRANSIT_NAME: Final = re.compile(r"[A-Za-z0-9._-]+")
"""A valid Transit key name."""
_RENEWER_IDLE: Final = 60.0
"""Longest sleep of the renewer thread between checks."""


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credentials:
    """How to get a token. Holds secrets: never logged, never in a repr."""

    method: str
    mount: str
    token: str | None = None
    role_id: str | None = None
    secret_id: str | None = None
    role: str | None = None
    jwt: str | None = None
    jwt_path: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(method={self.method!r}, mount={self.mount!r})"

    @property
    def can_login(self) -> bool:
        """Whether a new token can be had by logging in (every method but ``token``)."""
        return self.method != "token"

    @classmethod
    def build(
        cls, auth: str | None, *, token: str | None, role_id: str | None,
        secret_id: str | None, role: str | None, jwt: str | None, jwt_path: str | None,
        mount: str | None, env: Mapping[str, str],
    ) -> Credentials:
        """Settle the method and its secrets from the arguments, then ``env``.

        Without ``auth``: an explicit ``token``, else an explicit ``role_id``,
        else ``$VAULT_TOKEN``, else ``$VAULT_ROLE_ID``, else the token file
        ``$HOME/.vault-token`` that ``vault login``, ``bao login`` and a dev
        server write (and hvac reads). That file is the only I/O, and is read
        only when nothing else gives credentials.

        Raises:
            ResolverConfigError: No credentials, an unknown method, or a
                method without what it needs.
        """
        if auth is None:
            if token:
                auth = "token"
            elif role_id:
                auth = "approle"
            elif env.get("VAULT_TOKEN"):
                auth = "token"
            elif env.get("VAULT_ROLE_ID"):
                auth = "approle"
            elif (token := token_file(env)) is not None:
                auth = "token"
            else:
                raise ResolverConfigError(
                    "no Vault credentials: set VAULT_TOKEN (or VAULT_ROLE_ID and "
                    "VAULT_SECRET_ID), log in with 'vault login' / 'bao login' (which writes "
                    "~/.vault-token), or pass auth='token'|'approle'|'kubernetes'|'jwt'"
                )
        auth = auth.lower()
        if auth not in AUTH_METHODS:
            raise ResolverConfigError(
                f"unknown Vault auth method {auth!r}; use one of {', '.join(AUTH_METHODS)}"
            )
        mount = clean_mount(mount or auth) if auth != "token" else "token"
        if role is not None and auth not in ("kubernetes", "jwt"):
            raise ResolverConfigError(
                f"role is for kubernetes or jwt login, not {auth!r} (AppRole uses role_id)"
            )
        if auth == "token":
            token = token or env.get("VAULT_TOKEN") or token_file(env)
            if not token:
                raise ResolverConfigError(
                    "auth='token' needs token=, $VAULT_TOKEN or ~/.vault-token")
            return cls("token", mount, token=token)
        if auth == "approle":
            role_id = role_id or env.get("VAULT_ROLE_ID") or None
            secret_id = secret_id or env.get("VAULT_SECRET_ID") or None
            if not role_id:
                raise ResolverConfigError("auth='approle' needs role_id= or $VAULT_ROLE_ID")
            return cls("approle", mount, role_id=role_id, secret_id=secret_id)
        if not role:
            raise ResolverConfigError(f"auth={auth!r} needs role=")
        if auth == "kubernetes":
            return cls("kubernetes", mount, role=role, jwt=jwt,
                       jwt_path=None if jwt else (jwt_path or DEFAULT_K8S_JWT_PATH))
        if not (jwt or jwt_path):
            raise ResolverConfigError("auth='jwt' needs jwt= or jwt_path=")
        return cls("jwt", mount, role=role, jwt=jwt, jwt_path=None if jwt else jwt_path)

    def read_jwt(self) -> str:
        """The JWT: the given one, else the file's current content.

        Raises:
            KeyAccessDenied: The file cannot be read or is empty.
        """
        if self.jwt:
            return self.jwt
        assert self.jwt_path is not None
        try:
            with open(self.jwt_path, encoding="utf-8") as handle:
                value = handle.read().strip()
        except OSError as exc:
            raise KeyAccessDenied(
                f"{self.method} login: cannot read the JWT file {self.jwt_path} "
                f"({exc.strerror or type(exc).__name__})",
            ) from None
        if not value:
            raise KeyAccessDenied(f"{self.method} login: the JWT file {self.jwt_path} is empty")
        return value

    def login(self, client: Any) -> Any:
        """Log in; returns the response's ``auth`` block. Raises hvac/requests errors."""
        if self.method == "approle":
            response = client.auth.approle.login(
                self.role_id, self.secret_id, use_token=False, mount_point=self.mount)
        elif self.method == "kubernetes":
            response = client.auth.kubernetes.login(
                self.role, self.read_jwt(), use_token=False, mount_point=self.mount)
        else:
            response = client.auth.jwt.jwt_login(
                self.role, self.read_jwt(), use_token=False, path=self.mount)
        return response["auth"]


# --------------------------------------------------------------------------- connection


def token_file(env: Mapping[str, str]) -> str | None:
    """The token in ``$HOME/.vault-token``, or None when there is none.

    ``HOME`` is read from ``env``, so a resolver given its own ``environ``
    without ``HOME`` reads no file.

    Raises:
        ResolverConfigError: The file exists but cannot be read.
    """
    home = env.get("HOME")
    if not home:
        return None
    path = os.path.join(home, ".vault-token")
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ResolverConfigError(
            f"cannot read the Vault token file {path}: {exc.strerror}") from None
    return token or None


def check_arguments(arguments: Mapping[str, object], owner: str) -> None:
    """Refuse a keyword that is no Vault connection argument, as Python would.

    Raises:
        TypeError: ``arguments`` holds a name :class:`VaultArguments` does not declare.
    """
    unknown = sorted(set(arguments) - set(VaultArguments.__annotations__))
    if unknown:
        raise TypeError(f"{owner}() got an unexpected keyword argument {unknown[0]!r}")


def check_addr(addr: str) -> str:
    """``addr`` without a trailing slash.

    Raises:
        ResolverConfigError: It is not an ``http://`` or ``https://`` URL.
    """
    addr = addr.rstrip("/")
    if not addr.startswith(("http://", "https://")):
        raise ResolverConfigError(
            f"Vault address must start with http:// or https://, got {addr[:80]!r}"
        )
    return addr


class VaultArguments(TypedDict, total=False):
    """The connection arguments of the Vault resolver and signer, declared once.

    :class:`~tenuo_keys.backends.vault.VaultKeyResolver` documents them;
    :meth:`VaultConnection.from_arguments` gives their defaults and settles them.
    """

    auth: str | None
    token: str | None
    role_id: str | None
    secret_id: str | None
    role: str | None
    jwt: str | None
    jwt_path: str | None
    auth_mount: str | None
    namespace: str | None
    verify: bool | None
    ca_cert: str | None
    client_cert: str | None
    client_key: str | None
    timeout: float
    renew: bool
    environ: Mapping[str, str] | None
    dangerously_allow_insecure_transport: bool


@dataclass(frozen=True)
class VaultConnection:
    """How to reach Vault/OpenBao: address, namespace, TLS, timeout and the auth method.

    Settled once (from arguments, a URL or ``$VAULT_*``) and shared: the KV
    resolver and the Transit signer each open their :class:`Session` from
    one. As in hvac, the client options (address, namespace, TLS, timeout)
    are kept apart from the auth method (:class:`Credentials`). Holds
    credentials: never logged, never in a repr.

    Attributes:
        addr: The address, without a trailing slash.
        credentials: The auth method and what it needs.
        namespace: Vault Enterprise / OpenBao namespace, or None.
        verify: False, True, or the CA bundle to verify the server with.
        cert: Client certificate file, or (certificate, key) files, or None.
        timeout: Total seconds of each request.
        renew: Renew renewable tokens in the background.
        insecure_allowed: The ``dangerously_allow_insecure_transport`` opt-in.
    """

    addr: str
    credentials: Credentials
    namespace: str | None
    verify: bool | str
    cert: str | tuple[str, str] | None
    timeout: float
    renew: bool
    insecure_allowed: bool = False

    def __repr__(self) -> str:
        return (f"VaultConnection(addr={self.addr!r}, auth={self.credentials.method!r}, "
                f"namespace={self.namespace!r}{self.transport_note})")

    @property
    def transport_note(self) -> str:
        """``", verify=False"`` (for a repr) when TLS certificates are not verified, else ''."""
        return ", verify=False" if self.verify is False and self.addr.startswith("https:") else ""

    @classmethod
    def from_arguments(cls, addr: str | None = None,
                       **arguments: Unpack[VaultArguments]) -> VaultConnection:
        """Settle the arguments against the environment, as the vault/bao CLI does; no I/O.

        The arguments are those of :class:`~tenuo_keys.backends.vault.VaultKeyResolver`
        (which documents them); unset ones come from ``$VAULT_ADDR``,
        ``$VAULT_TOKEN``, ``$VAULT_ROLE_ID``/``$VAULT_SECRET_ID``,
        ``$VAULT_NAMESPACE``, ``$VAULT_CACERT``/``$VAULT_CAPATH``,
        ``$VAULT_SKIP_VERIFY`` and ``$VAULT_CLIENT_CERT``/``$VAULT_CLIENT_KEY``
        in ``environ`` (default ``os.environ``). Plaintext (``http://``) or an
        unverified certificate to a host that is not loopback is refused
        unless ``dangerously_allow_insecure_transport`` (see
        :mod:`tenuo_keys._transport`).

        Raises:
            ResolverConfigError: A bad address or timeout, missing credentials,
                insecure transport to a remote host, ...
        """
        check_arguments(arguments, "VaultConnection.from_arguments")
        environ = arguments.get("environ")
        env: Mapping[str, str] = os.environ if environ is None else environ
        checked_addr = check_addr(addr or env.get("VAULT_ADDR") or DEFAULT_ADDR)
        timeout = arguments.get("timeout", 5.0)
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ResolverConfigError(
                f"timeout must be a positive number of seconds, got {timeout!r}")
        credentials = Credentials.build(
            arguments.get("auth"), token=arguments.get("token"),
            role_id=arguments.get("role_id"), secret_id=arguments.get("secret_id"),
            role=arguments.get("role"), jwt=arguments.get("jwt"),
            jwt_path=arguments.get("jwt_path"), mount=arguments.get("auth_mount"), env=env,
        )
        verify = arguments.get("verify")
        if verify is None:
            verify = env.get("VAULT_SKIP_VERIFY", "").strip().lower() not in (
                "1", "true", "yes", "on", "t")
        ca_cert = (arguments.get("ca_cert") or env.get("VAULT_CACERT")
                   or env.get("VAULT_CAPATH") or None)
        client_cert = arguments.get("client_cert") or env.get("VAULT_CLIENT_CERT") or None
        client_key = arguments.get("client_key") or env.get("VAULT_CLIENT_KEY") or None
        if client_key and not client_cert:
            raise ResolverConfigError("client_key needs client_cert")
        cert: str | tuple[str, str] | None = client_cert
        if client_cert and client_key:
            cert = (client_cert, client_key)
        insecure_allowed = arguments.get("dangerously_allow_insecure_transport", False)
        check_transport(
            host=urlsplit(checked_addr).hostname or "", plaintext=checked_addr.startswith("http:"),
            unverified=not verify and checked_addr.startswith("https:"),
            allowed=insecure_allowed, what="Vault address",
        )
        namespace = arguments.get("namespace")
        return cls(
            addr=checked_addr,
            credentials=credentials,
            namespace=namespace if namespace is not None else (
                env.get("VAULT_NAMESPACE") or None),
            verify=(ca_cert or True) if verify else False,
            cert=cert,
            timeout=float(timeout),
            renew=arguments.get("renew", True),
            insecure_allowed=insecure_allowed,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> VaultConnection:
        """Everything from ``$VAULT_*`` (``environ``, default ``os.environ``), as the CLI reads it.

        Raises:
            ResolverConfigError: As :meth:`from_arguments`.
        """
        return cls.from_arguments(environ=environ)

    @classmethod
    def from_url(cls, url: ResolverURL, **arguments: Any) -> VaultConnection:
        """Pop the connection part of a ``vault://`` or ``vault-transit://`` URL and settle it.

        The URL's host, port, ``tls`` and connection parameters (``auth``,
        ``namespace``, ``verify``, ``timeout``, ...) are taken; its path and
        other parameters are left for the caller, who also calls
        ``url.finish()``.

        Args:
            url: The URL.
            **arguments: Further :meth:`from_arguments` arguments (secrets,
                ``environ``); naming a setting both here and in the URL is an error.

        Raises:
            ResolverConfigError: A malformed URL, a conflict, or as :meth:`from_arguments`.
        """
        environ = arguments.get("environ")
        options = _connection_options(url, os.environ if environ is None else environ)
        clash = sorted(set(options).intersection(arguments))
        if clash:
            raise ResolverConfigError(
                f"{url.scheme}:// setting {clash[0]!r} given both in the URL and as an argument")
        return cls.from_arguments(**options, **arguments)

    @classmethod
    def given_or_built(cls, connection: VaultConnection | None, addr: str | None = None,
                       **arguments: Unpack[VaultArguments]) -> VaultConnection:
        """``connection``, or one built by :meth:`from_arguments`; never both.

        Raises:
            ResolverConfigError: ``connection`` and a connection argument were
                both given, or as :meth:`from_arguments`.
        """
        if connection is None:
            return cls.from_arguments(addr, **arguments)
        given = sorted(arguments) or (["addr"] if addr is not None else [])
        if given:
            raise ResolverConfigError(
                f"pass connection= or the connection arguments, not both (got {given[0]!r})")
        return connection

    def open_session(self, *, pool_size: int, backend: str = BACKEND) -> Session:
        """A new client and token upkeep; errors name ``backend``."""
        return Session(self, pool_size=pool_size, backend=backend)


Connection = VaultConnection
"""The earlier name of :class:`VaultConnection`."""

def _connection_options(url: ResolverURL, env: Mapping[str, str]) -> dict[str, Any]:
    """Pop the connection part of a Vault URL: host, port, ``tls`` and auth/TLS parameters.

    With a host and no ``tls``, the scheme is https, unless ``$VAULT_ADDR``
    (in ``env``) names the same host (and port, when the URL gives one): then
    its scheme and port are used, as the vault CLI would.

    Returns:
        Constructor keyword arguments (``addr``, ``auth``, ``namespace``, ...).

    Raises:
        ResolverConfigError: A user name, or ``tls``/a port without a host, or a bad value.
    """
    scheme = url.scheme
    if url.username is not None:
        raise ResolverConfigError(
            f"{scheme}:// URLs take no user name; credentials come from the environment "
            "or keyword arguments"
        )
    options: dict[str, Any] = {}
    tls = url.pop_opt_bool("tls")
    if url.host:
        host = f"[{url.host}]" if ":" in url.host else url.host
        protocol = "http" if tls is False else "https"
        port = url.port or DEFAULT_PORT
        if tls is None:
            protocol, port = _like_vault_addr(url, env.get("VAULT_ADDR") or "",
                                              protocol, port)
        options["addr"] = f"{protocol}://{host}:{port}"
    elif url.port or tls is not None:
        raise ResolverConfigError(
            f"{scheme}:// without a host uses $VAULT_ADDR, which carries its own scheme and "
            "port; give a host to use tls= or a port"
        )
    for name in ("auth", "auth_mount", "role", "jwt_path", "namespace", "ca_cert",
                 "client_cert", "client_key"):
        value = url.pop_optional(name)
        if value is not None:
            options[name] = value
    options.update(url.pop_bools("verify", "renew", INSECURE_OPT_IN))
    options.update(url.pop_floats("timeout"))
    return options


def _like_vault_addr(url: ResolverURL, vault_addr: str, protocol: str,
                     port: int) -> tuple[str, int]:
    """The scheme and port of ``$VAULT_ADDR`` when it names the URL's host; else as given."""
    try:
        parts = urlsplit(vault_addr)
        addr_port = parts.port
    except ValueError:
        return protocol, port  # a malformed $VAULT_ADDR is not ours to use here
    if (parts.scheme not in ("http", "https") or parts.hostname != url.host.lower()
            or (url.port is not None and url.port != (addr_port or DEFAULT_PORT))):
        return protocol, port
    return parts.scheme, addr_port or port


def url_options(url: ResolverURL, template_option: str,
                environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Pop the connection part of a Vault URL, then its mount and template.

    The first path segment is the mount and the rest the template (both
    optional); with ``mount=`` (a nested mount) the whole path is the template.

    Args:
        url: The URL.
        template_option: The constructor argument the template goes to.
        environ: Where ``$VAULT_ADDR`` is read (default ``os.environ``).

    Returns:
        Constructor keyword arguments (``addr``, ``mount``, the template, ...).

    Raises:
        ResolverConfigError: As :func:`_connection_options`.
    """
    options = _connection_options(url, os.environ if environ is None else environ)
    explicit_mount = url.pop_optional("mount")
    path = url.relative_path.rstrip("/")
    if explicit_mount:
        options["mount"] = explicit_mount
        if path:
            options[template_option] = path
    elif path:
        mount, _, template = path.partition("/")
        options["mount"] = mount
        if template:
            options[template_option] = template
    return options


# --------------------------------------------------------------------------- HTTP


class _SameOriginSession(requests.Session):
    """A ``requests`` session that follows redirects only within the same origin.

    ``requests`` strips ``Authorization`` on a cross-origin redirect but not
    ``X-Vault-Token``, and a 307/308 re-sends the body (a new key on a
    write). Vault's standby redirect points at the active node's address, so
    a redirect to another scheme, host or port is refused instead.
    """

    def __init__(self, backend: str) -> None:
        super().__init__()
        self._backend = backend

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target is None:
            return None
        here = resp.url or ""
        there = urljoin(here, target)
        if origin(there) != origin(here):
            scheme, host, port = origin(there)
            raise BackendUnavailable(
                f"Vault at {_origin_text(origin(here))} redirected to another origin "
                f"({scheme}://{host}:{port}); refused, since the token and any key being written "
                "would go with it (point addr at the active node)",
                backend=self._backend, retryable=False,
            )
        return target


def _origin_text(parts: tuple[str, str, int | None]) -> str:
    scheme, host, port = parts
    return f"{scheme}://{host}:{port}"


class _BoundedAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that gives each request a total deadline and a size cap.

    The shared mechanism of :mod:`tenuo_keys._transport`: its pools cut a
    request whose connect, send or headers outlast ``total``; the body is
    read by :func:`~tenuo_keys._transport.read_bounded` within what is left.
    """

    def __init__(self, *, total: float, max_bytes: int, backend: str, **kwargs: Any) -> None:
        self._total = total
        self._max_bytes = max_bytes
        self._backend = backend
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        bounded_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return bounded_pools(super().proxy_manager_for(proxy, **proxy_kwargs))

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: bool | str = True, cert: Any = None,
             proxies: dict[str, str] | None = None) -> requests.Response:
        parts = urlsplit(request.url or "")
        where = f"Vault at {parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        with total_deadline(self._total, where=where, backend=self._backend) as deadline:
            response = super().send(request, stream=True, timeout=(self._total, self._total),
                                    verify=verify, cert=cert, proxies=proxies)
            body = read_bounded(response.raw, deadline=deadline, max_bytes=self._max_bytes,
                                where=where, decode_content=True, backend=self._backend,
                                budget=self._total)
        response._content = body
        response._content_consumed = True
        return response


# --------------------------------------------------------------------------- session


@dataclass
class _TokenState:
    generation: int
    expires_at: float  # monotonic; inf when the token does not expire (or is unknown)
    renew_at: float  # monotonic; when the renewer acts next; inf for never
    ttl: float  # the TTL the token was issued (or last renewed) with, 0 when none
    renewable: bool
    capped: bool = False  # a renewal came back shorter than asked: max TTL is near


class Session:
    """One hvac client, its token, and the token's upkeep (login, renewal, retry)."""

    def __init__(self, connection: VaultConnection, *, pool_size: int,
                 backend: str = BACKEND) -> None:
        addr, verify, cert, timeout = (connection.addr, connection.verify, connection.cert,
                                       connection.timeout)
        session = _SameOriginSession(backend)
        adapter = _BoundedAdapter(total=timeout, max_bytes=MAX_RESPONSE_BYTES, backend=backend,
                                  pool_connections=2, pool_maxsize=max(10, pool_size))
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # hvac prefers a given session's verify/cert over its own arguments.
        session.verify = verify
        session.cert = cert
        # Proxies are read from the environment once, here, rather than by requests on
        # every call (two scans of os.environ per request, under the GIL); that also
        # keeps ~/.netrc from adding an Authorization header to Vault requests.
        session.proxies = dict(requests.utils.get_environ_proxies(addr))
        session.trust_env = False
        self.addr = addr
        self.timeout = timeout
        self.backend = backend
        # token="" (not None) stops hvac from reading $VAULT_TOKEN or ~/.vault-token itself.
        self.client = hvac.Client(url=addr, token="", verify=verify, cert=cert, timeout=timeout,
                                  namespace=connection.namespace, session=session)
        self._credentials = connection.credentials
        self._renew = connection.renew
        self._lock = threading.RLock()
        self._state: _TokenState | None = None
        self._generation = 0
        self._wake = threading.Event()
        self._closed = False
        self._renewer: threading.Thread | None = None
        self._renew_failures = 0

    # -- requests ------------------------------------------------------------

    def call(self, fn: Callable[[], T], *, key_id: str | None, what: str, where: str) -> T:
        """Run one Vault request with a valid token; maps every failure.

        A 403 is followed by a token check: when the token itself was
        rejected (expired, revoked, lost by a restarted server) a login
        method logs in again and the request is retried once.
        """
        for attempt in (0, 1):
            generation = self._ensure_token(key_id)
            try:
                return fn()
            except hvac.exceptions.Forbidden:
                rejected = self._token_rejected(generation)
                if rejected and attempt == 0 and self._credentials.can_login:
                    self._relogin(generation, key_id)
                    continue
                if rejected:
                    raise KeyAccessDenied(
                        "access denied: Vault rejected the token (invalid, expired or revoked)"
                        + ("" if self._credentials.can_login else
                           "; token auth cannot log in again, so renew or replace the token"),
                        key_id=key_id, backend=self.backend,
                    ) from None
                raise KeyAccessDenied(
                    f"access denied: Vault policy does not allow {what} on {where}",
                    key_id=key_id, backend=self.backend,
                ) from None
            except KeyResolutionError as exc:
                raise exc.with_context(key_id=key_id, backend=self.backend) from None
            except Exception as exc:
                raise map_error(exc, key_id=key_id, what=what, where=where, addr=self.addr,
                                 timeout=self.timeout, backend=self.backend) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _token_rejected(self, generation: int) -> bool:
        """After a 403: was it the token (True) or a policy (False)?"""
        if generation != self._generation:
            return True  # replaced meanwhile (by the renewer or another thread)
        # Vault answers "permission denied" both for a dead token and for a policy
        # that denies the path; a token with the default policy may always look
        # itself up, which tells the two apart. Failures are cached by KeyCache,
        # so this costs one extra request per denied key per negative_ttl.
        try:
            self.client.auth.token.lookup_self()
        except hvac.exceptions.Forbidden:
            return True
        except Exception:
            return False
        return False

    # -- the token -------------------------------------------------------------

    def _ensure_token(self, key_id: str | None) -> int:
        state = self._state
        if state is not None and (
            not self._credentials.can_login or time.monotonic() < state.expires_at
        ):
            return state.generation
        with self._lock:
            state = self._state
            if state is None and not self._credentials.can_login:
                self._adopt_static(key_id)
            elif state is None or time.monotonic() >= state.expires_at:
                self._login(key_id)
            assert self._state is not None
            return self._state.generation

    def _relogin(self, failed_generation: int, key_id: str | None) -> None:
        with self._lock:
            if self._generation == failed_generation:
                self._login(key_id)

    def _adopt_static(self, key_id: str | None) -> None:
        """Use the given token; learn its TTL (for renewal) when it may look itself up."""
        token = self._credentials.token
        assert token is not None
        self.client.token = token
        ttl, renewable = 0.0, False
        if self._renew:
            try:
                data = self.client.auth.token.lookup_self()["data"]
                ttl, renewable = float(data.get("ttl") or 0), bool(data.get("renewable"))
            except hvac.exceptions.Forbidden:
                pass  # invalid, or without the default policy: the request itself will tell
            except Exception as exc:
                raise map_error(exc, key_id=key_id, what="lookup-self",
                                 where="auth/token/lookup-self", addr=self.addr,
                                 timeout=self.timeout, backend=self.backend) from None
        self._install(ttl, renewable)

    def _login(self, key_id: str | None) -> None:
        """Log in with the configured method (caller holds the lock)."""
        creds = self._credentials
        where = f"auth/{creds.mount}/login"
        started = time.monotonic()
        try:
            auth = creds.login(self.client)
        except KeyResolutionError as exc:
            raise exc.with_context(key_id=key_id, backend=self.backend) from None
        except hvac.exceptions.InvalidPath:
            # Not KeyNotFound: a composite resolver would take that as "try the next one".
            raise KeyAccessDenied(
                f"access denied: {creds.method} login failed: nothing at {where} "
                "(is the auth method enabled at that mount?)",
                key_id=key_id, backend=self.backend,
            ) from None
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden,
                hvac.exceptions.Unauthorized) as exc:
            raise KeyAccessDenied(
                f"access denied: {creds.method} login at {where} failed"
                + (f": {summary(exc)}" if summary(exc) else ""),
                key_id=key_id, backend=self.backend,
            ) from None
        except Exception as exc:
            raise map_error(exc, key_id=key_id, what="login", where=where, addr=self.addr,
                             timeout=self.timeout, backend=self.backend) from None
        self.client.token = auth["client_token"]
        ttl = float(auth.get("lease_duration") or 0)
        self._install(ttl, bool(auth.get("renewable")), started=started)
        logger.info("tenuo_keys: logged in to Vault with %s (token TTL %.0fs)", creds.method, ttl)

    def _install(self, ttl: float, renewable: bool, started: float | None = None) -> None:
        now = time.monotonic() if started is None else started
        self._generation += 1
        if ttl > 0:
            # Treat the token as expired a little early so no request races its expiry.
            expires = now + ttl - min(5.0, ttl * 0.1)
            renew_at = now + ttl * 2 / 3 if (renewable or self._credentials.can_login) else math.inf
        else:
            expires = renew_at = math.inf
        self._state = _TokenState(self._generation, expires, renew_at, ttl, renewable)
        if self._renew and renew_at < math.inf:
            self._start_renewer()
        self._wake.set()

    # -- renewal -----------------------------------------------------------------

    def _start_renewer(self) -> None:
        if self._renewer is None and not self._closed:
            # The thread holds the session weakly: a resolver dropped without close()
            # does not keep a thread renewing its token forever.
            self._renewer = threading.Thread(
                target=_renew_loop, args=(weakref.ref(self), self._wake), daemon=True,
                name="tenuo-keys-vault-renew",
            )
            self._renewer.start()

    def _renew_delay(self) -> float:
        state = self._state
        if state is None or state.renew_at == math.inf:
            return _RENEWER_IDLE
        return min(_RENEWER_IDLE, max(0.0, state.renew_at - time.monotonic()))

    def _renew_due(self) -> None:
        """Renew or log in again if the token is due (runs on the renewer thread)."""
        state = self._state
        if self._closed or state is None or time.monotonic() < state.renew_at:
            return
        try:
            with self._lock:
                if self._state is state and not self._closed:
                    self._renew_now(state)
            self._renew_failures = 0
        except Exception as exc:  # the thread must outlive any one failure
            self._renew_failures += 1
            retry = min(30.0, 0.5 * 2 ** self._renew_failures)
            reason = exc.reason if isinstance(exc, KeyResolutionError) else type(exc).__name__
            logger.warning("tenuo_keys: Vault token upkeep failed (%s); retrying in %.1fs",
                           reason, retry)
            state.renew_at = time.monotonic() + retry

    def _renew_now(self, state: _TokenState) -> None:
        """Renew, or log in again, ahead of expiry (caller holds the lock)."""
        if self._credentials.can_login and not state.renewable:
            self._login(None)
            return
        if not state.renewable:
            state.renew_at = math.inf
            return
        started = time.monotonic()
        try:
            auth = self.client.auth.token.renew_self()["auth"]
        except Exception as exc:
            if self._credentials.can_login:
                self._login(None)
                return
            raise map_error(exc, key_id=None, what="renew", where="auth/token/renew-self",
                             addr=self.addr, timeout=self.timeout, backend=self.backend) from None
        ttl = float(auth.get("lease_duration") or 0)
        if ttl <= 0:
            state.renew_at = math.inf
            return
        state.expires_at = started + ttl - min(5.0, ttl * 0.1)
        if ttl < state.ttl * 0.9:
            # Capped by the token's max TTL: a login method gets a new token now;
            # a static token can only run out.
            if self._credentials.can_login:
                self._login(None)
                return
            logger.warning("tenuo_keys: the Vault token reaches its max TTL in %.0fs and "
                           "cannot be renewed further", ttl)
            state.capped = True
            state.renew_at = math.inf
            return
        state.ttl = ttl
        state.renew_at = started + ttl * 2 / 3
        logger.debug("tenuo_keys: renewed the Vault token (TTL %.0fs)", ttl)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._wake.set()
        renewer = self._renewer
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(5.0)
        self.client.adapter.close()


def _renew_loop(ref: weakref.ref[Session], wake: threading.Event) -> None:
    """The renewer thread: sleeps until the token is due, renews, repeats; ends on close."""
    while True:
        session = ref()
        if session is None or session._closed:
            return
        delay = session._renew_delay()
        del session  # do not keep the session alive while sleeping
        wake.wait(delay)
        wake.clear()
        session = ref()
        if session is None:
            return
        session._renew_due()
        del session


# --------------------------------------------------------------------------- helpers


def map_error(
    exc: BaseException, *, key_id: str | None, what: str, where: str, addr: str, timeout: float,
    backend: str = BACKEND,
) -> KeyResolutionError:
    """Turn an hvac or requests failure into our error, without its (possibly long) text."""

    def make(cls: type[KeyResolutionError], reason: str, **extra: Any) -> KeyResolutionError:
        return cls(reason, key_id=key_id, backend=backend, **extra)

    if isinstance(exc, KeyResolutionError):
        return exc.with_context(key_id=key_id, backend=backend)
    detail = summary(exc)
    suffix = f": {detail}" if detail else ""
    if isinstance(exc, (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized)):
        return make(KeyAccessDenied, f"access denied: Vault refused {what} on {where}")
    if isinstance(exc, hvac.exceptions.InvalidPath):
        if "versioned K/V" in " ".join(_warnings(exc)):
            return make(KeyNotFound, f"not found: {where.split('/')[0]} is a KV version 2 mount; "
                                     "use kv_version=2 (kv=2)")
        return make(KeyNotFound, f"not found: nothing at {where}")
    if isinstance(exc, hvac.exceptions.RateLimitExceeded):
        return make(BackendUnavailable, f"Vault rate-limited {what} on {where} (429)")
    if isinstance(exc, hvac.exceptions.VaultDown):
        return make(BackendUnavailable, "Vault is sealed or unavailable (503)")
    if isinstance(exc, hvac.exceptions.VaultNotInitialized):
        return make(BackendUnavailable, "Vault is not initialized (501)")
    if isinstance(exc, (hvac.exceptions.InternalServerError, hvac.exceptions.BadGateway)):
        status = 500 if isinstance(exc, hvac.exceptions.InternalServerError) else 502
        return make(BackendUnavailable,
                    f"Vault server error ({status}) on {what} of {where}{suffix}")
    if isinstance(exc, hvac.exceptions.InvalidRequest):
        if "not exportable" in detail:
            return make(KeyAccessDenied, f"Transit key at {where} is not exportable "
                                         "(create it with exportable=true)")
        return make(KeyResolutionError, f"Vault rejected {what} on {where} (400){suffix}")
    if isinstance(exc, hvac.exceptions.VaultError):
        return make(BackendUnavailable, f"unexpected Vault response to {what} on {where}{suffix}")
    if isinstance(exc, requests.exceptions.SSLError):
        return make(BackendUnavailable, f"TLS with Vault at {addr} failed: for a plaintext "
                                        "server (such as a dev server) use tls=0 in the URL or "
                                        "an http:// VAULT_ADDR; else check ca_cert / "
                                        "VAULT_CACERT, verify", retryable=False)
    if isinstance(exc, requests.exceptions.Timeout):
        return make(BackendUnavailable, f"Vault at {addr} did not answer within {timeout:g}s")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return make(BackendUnavailable, f"backend unreachable: cannot connect to Vault at {addr}")
    if isinstance(exc, (requests.exceptions.RequestException, ValueError)):
        return make(BackendUnavailable,
                    f"request to Vault at {addr} failed ({type(exc).__name__})")
    if isinstance(exc, (KeyError, TypeError, AttributeError, IndexError)):
        return make(KeyResolutionError,
                    f"unexpected response shape from Vault for {what} on {where}")
    return make(KeyResolutionError, f"unexpected {type(exc).__name__} during {what} on {where}")


def summary(exc: BaseException) -> str:
    """Vault's own error strings, tidied and capped (they never echo secret values)."""
    errors = getattr(exc, "errors", None)
    if not errors or not isinstance(errors, list):
        return ""
    text = " ".join(str(e) for e in errors)
    text = re.sub(r"\d+ errors? occurred:", " ", text).replace("*", " ")
    text = " ".join(text.split())
    return text[:200]


def _warnings(exc: BaseException) -> list[str]:
    body = getattr(exc, "json", None)
    warnings = body.get("warnings") if isinstance(body, dict) else None
    return [str(w) for w in warnings] if isinstance(warnings, list) else []


def clean_mount(mount: str) -> str:
    """``mount`` without surrounding slashes.

    Raises:
        ResolverConfigError: An empty, ``.``/``..`` or otherwise unsafe mount path.
    """
    cleaned = mount.strip("/")
    if not cleaned or any(p in ("", ".", "..") for p in cleaned.split("/")) or any(
        c in cleaned for c in "?#%{} "
    ):
        raise ResolverConfigError(f"invalid Vault mount {mount!r}")
    return cleaned
