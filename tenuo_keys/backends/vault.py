"""``VaultKeyResolver``: holder keys in HashiCorp Vault or OpenBao.

Keys live in a KV secrets engine (version 2, with versions for rotation, or
version 1), one secret per key id, or are exported from an exportable
Transit ``ed25519`` key. One ``hvac`` client is shared by every fetch;
caching, decoding and rotation handling come from the shared base class.

Example::

    from tenuo_keys import VaultKeyResolver, resolver_from_url

    # $VAULT_ADDR and $VAULT_TOKEN, like the vault/bao CLI:
    resolver = VaultKeyResolver()              # secret/ (KV v2), tenuo/keys/{key_id}, field "key"
    # the same as a URL, here over plain HTTP to a local dev server:
    resolver = resolver_from_url("vault://127.0.0.1:8200/secret/tenuo/keys/{key_id}?tls=0")
    resolver.preload_all()
    key = resolver.resolve_sync("agent1")
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import hvac
import hvac.exceptions
import requests
from requests.adapters import HTTPAdapter

from .._cache import CacheObserver, CachePolicy
from .._resolver import BackendKeyResolver, KeyMaterial, StoredKey, check_key_id
from .._url import ResolverURL
from ..errors import (
    BackendUnavailable,
    KeyAccessDenied,
    KeyFormatError,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
)

__all__ = ["VaultKeyResolver"]

logger = logging.getLogger("tenuo_keys.vault")

T = TypeVar("T")

BACKEND: Final = "vault"
DEFAULT_ADDR: Final = "https://127.0.0.1:8200"
"""What the vault/bao CLI uses when ``VAULT_ADDR`` is unset."""
DEFAULT_PORT: Final = 8200
DEFAULT_K8S_JWT_PATH: Final = "/var/run/secrets/kubernetes.io/serviceaccount/token"
AUTH_METHODS: Final = ("token", "approle", "kubernetes", "jwt")
MAX_PREVIOUS_VERSIONS: Final = 20
_EXTRA_PROBES: Final = 8
"""Deleted or destroyed KV versions skipped, at most, while looking for previous versions."""
_RENEWER_IDLE: Final = 60.0
"""Longest sleep of the renewer thread between checks."""
_KEY_ID_PART = re.compile(r"[A-Za-z0-9._@:+=,~-]+")
_TRANSIT_NAME = re.compile(r"[A-Za-z0-9._-]+")


class VaultKeyResolver(BackendKeyResolver):
    """Reads holder keys from Vault/OpenBao KV v2, KV v1 or an exportable Transit key.

    **Where keys are.** Key ``agent1`` is the secret ``<mount>/<path_template>``
    with ``{key_id}`` replaced, e.g. ``secret/tenuo/keys/agent1``; the key is
    the secret's field ``field`` (default ``key``), in any format the shared
    decoder accepts. A key id may hold letters, digits and ``-_.@:+=,~``;
    ``/`` only with ``allow_slash=True`` (then ``.``/``..``/empty segments are
    still refused), so an id can never escape the template.

    **Versions.** On KV v2 the current version and up to ``previous_versions``
    earlier ones are read (deleted and destroyed versions are skipped), so a
    warrant minted before a rotation still finds its holder key; version
    labels are the KV version numbers. The current version number comes from
    the metadata that the data endpoint returns with the latest version, so
    reads need only ``read`` on ``<mount>/data/...`` (``list`` on
    ``<mount>/metadata/...`` for :meth:`list_key_ids`). A deleted current
    version reads as not found: deleting it is how a key is revoked.

    **Transit.** With ``transit=True`` the key id names a Transit key (mount
    default ``transit``, template default ``{key_id}``) created with
    ``type=ed25519 exportable=true``; its ``signing-key`` export (seed and
    public half, checked against each other) is the key, Transit versions are
    the versions and the latest one is current. Transit keys are created and
    rotated inside Vault, so :meth:`store_key` is not available.

    **Authentication** (``auth``): ``"token"`` (``token`` or ``$VAULT_TOKEN``),
    ``"approle"`` (``role_id``/``secret_id`` or ``$VAULT_ROLE_ID``/
    ``$VAULT_SECRET_ID``), ``"kubernetes"`` (``role`` plus the service-account
    token file ``jwt_path``, default the in-pod path) or ``"jwt"`` (``role``
    plus ``jwt`` or ``jwt_path``). Without ``auth``: an explicit ``token``,
    else an explicit ``role_id``, else ``$VAULT_TOKEN``, else
    ``$VAULT_ROLE_ID``. Logins happen on first use (never in the
    constructor) and again when the token expires or Vault rejects it (the
    request is then retried once). A renewable token is renewed at two
    thirds of its TTL by a small daemon thread, which :meth:`close` stops; a
    login token that cannot be renewed further is replaced by a new login.

    **Connection.** ``addr`` defaults to ``$VAULT_ADDR``, then
    ``https://127.0.0.1:8200`` (as the CLI does); ``namespace`` to
    ``$VAULT_NAMESPACE``; ``ca_cert`` to ``$VAULT_CACERT``/``$VAULT_CAPATH``;
    ``verify`` to ``not $VAULT_SKIP_VERIFY``; ``client_cert``/``client_key``
    to ``$VAULT_CLIENT_CERT``/``$VAULT_CLIENT_KEY``. Explicit arguments win.
    ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` are read once, at construction.
    One ``hvac`` client and its connection pool are shared by the cache's
    worker threads: requests run concurrently (urllib3's pool is
    thread-safe) and the only shared state that changes, the token, is
    swapped under a lock.

    **URL** (``resolver_from_url``)::

        vault://HOST[:PORT]/MOUNT/PATH/TEMPLATE/{key_id}?param=value&...

    The first path segment is the mount and the rest the template (both
    optional); ``mount=a/b`` names a nested mount, and the whole path is
    then the template. ``vault:///...`` with no host uses ``$VAULT_ADDR``.
    HTTPS is the default; ``tls=0`` means plain HTTP (development only).
    Other parameters map one-to-one onto the arguments below: ``kv`` (1 or
    2), ``field``, ``transit``, ``previous_versions``, ``allow_slash``,
    ``auth``, ``auth_mount``, ``role``, ``jwt_path``, ``namespace``,
    ``verify``, ``ca_cert``, ``client_cert``, ``client_key``, ``timeout``,
    ``renew``, plus the shared cache parameters (``ttl``, ``max_staleness``,
    ...). Secrets (tokens, secret ids, JWTs) never go in URLs: they come
    from the environment or from keyword arguments of ``resolver_from_url``.

    Errors: 403 is :class:`~tenuo_keys.errors.KeyAccessDenied`; a missing
    secret, version or Transit key is ``KeyNotFound``; a secret without the
    field is ``KeyFormatError`` naming the field; connection failures,
    timeouts, 429, 5xx and a sealed Vault (503) are ``BackendUnavailable``
    (retryable, so the cache keeps serving the last good key within
    ``max_staleness``). No message carries a token or key material.

    Args:
        addr: Vault address, e.g. ``https://vault.example.com:8200``.
        mount: Secrets engine mount (default ``secret``, or ``transit``).
        path_template: Secret path with one ``{key_id}`` (default
            ``tenuo/keys/{key_id}``, or ``{key_id}`` for Transit).
        field: Field of the KV secret that holds the key.
        kv_version: 1 or 2, the KV engine version of ``mount``.
        transit: Read exportable Transit keys instead of KV secrets.
        previous_versions: Versions before the current one to hold (KV v2
            and Transit) for rotation; 0 holds only the current one.
        allow_slash: Let key ids contain ``/`` (sub-paths of the template).
        auth: ``"token"``, ``"approle"``, ``"kubernetes"`` or ``"jwt"``.
        token: Vault token (``auth="token"``).
        role_id: AppRole role id.
        secret_id: AppRole secret id (omit for roles without ``bind_secret_id``).
        role: Role name for Kubernetes or JWT login.
        jwt: The JWT for JWT login.
        jwt_path: File holding the JWT (read at each login, so rotated
            projected tokens are picked up).
        auth_mount: Mount of the auth method (default: the method's name).
        namespace: Vault Enterprise / OpenBao namespace.
        verify: Verify the server's TLS certificate.
        ca_cert: CA bundle file (or directory) to verify it with.
        client_cert: Client certificate file for TLS client authentication.
        client_key: Its private key file.
        timeout: Seconds to wait for each Vault request.
        renew: Renew renewable tokens in the background before they expire.
        cache: The cache policy.
        observers: Cache event observers.
        environ: Mapping read instead of ``os.environ`` (for tests).

    Raises:
        ResolverConfigError: Inconsistent or missing settings (no credentials,
            a template without ``{key_id}``, an unknown auth method, ...).
    """

    backend = BACKEND

    def __init__(
        self,
        addr: str | None = None,
        *,
        mount: str | None = None,
        path_template: str | None = None,
        field: str = "key",
        kv_version: int = 2,
        transit: bool = False,
        previous_versions: int = 1,
        allow_slash: bool = False,
        auth: str | None = None,
        token: str | None = None,
        role_id: str | None = None,
        secret_id: str | None = None,
        role: str | None = None,
        jwt: str | None = None,
        jwt_path: str | None = None,
        auth_mount: str | None = None,
        namespace: str | None = None,
        verify: bool | None = None,
        ca_cert: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        timeout: float = 5.0,
        renew: bool = True,
        cache: CachePolicy | None = None,
        observers: Iterable[CacheObserver] = (),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env: Mapping[str, str] = os.environ if environ is None else environ
        _check_addr(addr or env.get("VAULT_ADDR") or DEFAULT_ADDR)
        if kv_version not in (1, 2):
            raise ResolverConfigError(f"kv_version must be 1 or 2, got {kv_version!r}")
        if not 0 <= previous_versions <= MAX_PREVIOUS_VERSIONS:
            raise ResolverConfigError(
                f"previous_versions must be 0 to {MAX_PREVIOUS_VERSIONS}, got {previous_versions!r}"
            )
        if transit and allow_slash:
            raise ResolverConfigError("Transit key names cannot contain '/': drop allow_slash")
        if not field:
            raise ResolverConfigError("field must not be empty")
        self.transit = transit
        self.kv_version = kv_version
        self.mount = _clean_mount(mount or ("transit" if transit else "secret"))
        self.path_template = _check_template(
            path_template or ("{key_id}" if transit else "tenuo/keys/{key_id}"), transit
        )
        self.field = field
        self.previous_versions = previous_versions
        self.allow_slash = allow_slash
        connection = _Connection.build(
            addr, auth=auth, token=token, role_id=role_id, secret_id=secret_id, role=role,
            jwt=jwt, jwt_path=jwt_path, auth_mount=auth_mount, namespace=namespace,
            verify=verify, ca_cert=ca_cert, client_cert=client_cert, client_key=client_key,
            timeout=timeout, renew=renew, env=env,
        )
        self.addr = connection.addr
        self.namespace = connection.namespace
        self.timeout = connection.timeout
        self._credentials = connection.credentials
        self.auth_method = self._credentials.method
        super().__init__(cache=cache, observers=observers, field=field)
        self._session = connection.open_session(pool_size=self.cache.policy.max_workers + 2)

    # -- construction from a URL -------------------------------------------

    @classmethod
    def from_url(cls, url: ResolverURL, **kwargs: Any) -> VaultKeyResolver:
        """Build from ``vault://host:port/mount/path/{key_id}?auth=approle&...``.

        See the class docstring for the parameters. Keyword arguments are
        passed to the constructor (secrets, observers, a base ``cache``
        policy that URL cache parameters then adjust); naming the same
        setting in both is an error.

        Raises:
            ResolverConfigError: A malformed URL, an unknown parameter or a conflict.
        """
        options = _url_options(url, "path_template")
        field = url.pop_optional("field")
        if field is not None:
            options["field"] = field
        for name in ("transit", "allow_slash"):
            flag = _pop_opt_bool(url, name)
            if flag is not None:
                options[name] = flag
        kv = url.pop_optional("kv")
        if kv is not None:
            if kv not in ("1", "2"):
                raise ResolverConfigError(f"vault:// parameter kv={kv!r} must be 1 or 2")
            options["kv_version"] = int(kv)
        previous = url.pop_optional("previous_versions")
        if previous is not None:
            options["previous_versions"] = _parse_int("previous_versions", previous)
        options["cache"] = url.pop_cache_policy(kwargs.pop("cache", None))
        url.finish()
        clash = sorted(set(options).intersection(kwargs))
        if clash:
            raise ResolverConfigError(
                f"vault:// setting {clash[0]!r} given both in the URL and as an argument"
            )
        return cls(**options, **kwargs)

    # -- fetching ------------------------------------------------------------

    def fetch(self, key_id: str) -> KeyMaterial | Sequence[KeyMaterial]:
        """Read the current (and previous) version(s) of ``key_id`` from Vault."""
        target = self._target(key_id)
        if self.transit:
            return self._fetch_transit(key_id, target)
        if self.kv_version == 1:
            where = f"{self.mount}/{target}"
            data = self._session.call(
                lambda: self._kv1_read(target), key_id=key_id, what="read", where=where
            )
            return self._material(key_id, data, where)
        return self._fetch_kv2(key_id, target)

    def _fetch_kv2(self, key_id: str, path: str) -> list[StoredKey]:
        where = f"{self.mount}/data/{path}"
        current, data, gone = self._session.call(
            lambda: self._kv2_read(path, None), key_id=key_id, what="read", where=where
        )
        if data is None:
            raise KeyNotFound(
                f"not found: the current version ({current}) of {where} is {gone}",
                key_id=key_id, backend=self.backend,
            )
        versions = [StoredKey(self._material(key_id, data, where), str(current))]
        version = current - 1
        probes = self.previous_versions + _EXTRA_PROBES
        while version >= 1 and len(versions) <= self.previous_versions and probes > 0:
            probes -= 1
            wanted = version
            try:
                _, old, gone = self._session.call(
                    functools.partial(self._kv2_read, path, wanted), key_id=key_id, what="read",
                    where=f"{where}?version={wanted}",
                )
            except KeyNotFound:
                break  # pruned by max_versions: nothing older is left either
            except KeyAccessDenied as exc:
                # The current version is authoritative; older ones are a courtesy for
                # warrants minted before a rotation.
                logger.warning("tenuo_keys: cannot read older versions of key %r: %s",
                               key_id, exc.reason)
                break
            version -= 1
            if old is None:
                logger.debug("tenuo_keys: %s version %d is %s; skipped", where, wanted, gone)
                continue
            try:
                versions.append(StoredKey(self._material(key_id, old, where), str(wanted)))
            except KeyFormatError as exc:
                logger.warning("tenuo_keys: skipping version %d of key %r: %s", wanted, key_id,
                               exc.reason)
        return versions

    def _fetch_transit(self, key_id: str, name: str) -> list[StoredKey]:
        where = f"{self.mount}/export/signing-key/{name}"
        data = self._session.call(
            lambda: self._session.client.secrets.transit.export_key(
                name=name, key_type="signing-key", mount_point=self.mount
            )["data"],
            key_id=key_id, what="export", where=where,
        )
        kind = data.get("type")
        if kind != "ed25519":
            raise KeyFormatError(
                f"Transit key {name!r} has type {kind!r}; a holder key must be ed25519",
                key_id=key_id, backend=self.backend,
            )
        keys = data.get("keys")
        if not isinstance(keys, dict) or not keys:
            raise KeyFormatError(f"Transit export of {name!r} holds no key versions",
                                 key_id=key_id, backend=self.backend)
        numbered = sorted(((int(v), m) for v, m in keys.items()), reverse=True)
        return [StoredKey(m, str(v)) for v, m in numbered[: 1 + self.previous_versions]]

    def _kv1_read(self, path: str) -> Any:
        return self._session.client.secrets.kv.v1.read_secret(
            path=path, mount_point=self.mount)["data"]

    def _kv2_read(self, path: str, version: int | None) -> tuple[int, Any, str | None]:
        """One KV v2 read: (version number, data or None when gone, why it is gone)."""
        try:
            response = self._session.client.secrets.kv.v2.read_secret_version(
                path=path, version=version, mount_point=self.mount,
                raise_on_deleted_version=False,
            )
        except hvac.exceptions.InvalidPath as exc:
            # Destroyed versions come back as 404s that still carry their metadata.
            meta = _gone_metadata(exc.json)
            if meta is None:
                raise
            return int(meta["version"]), None, "destroyed" if meta.get("destroyed") else "deleted"
        body = response["data"]
        meta = body.get("metadata") or {}
        number = int(meta.get("version") or version or 0)
        if body.get("data") is None:
            return number, None, "destroyed" if meta.get("destroyed") else "deleted"
        return number, body["data"], None

    def _material(self, key_id: str, data: Any, where: str) -> str:
        if not isinstance(data, dict):
            raise KeyFormatError(f"secret at {where} is not a map of fields",
                                 key_id=key_id, backend=self.backend)
        if self.field not in data:
            # Other field names are not echoed: a misfiled secret could sit in a name.
            raise KeyFormatError(
                f"secret at {where} has no field {self.field!r} ({len(data)} other field(s))",
                key_id=key_id, backend=self.backend,
            )
        value = data[self.field]
        if not isinstance(value, str):
            raise KeyFormatError(
                f"field {self.field!r} of {where} is {type(value).__name__}; expected a string",
                key_id=key_id, backend=self.backend,
            )
        return value

    def _target(self, key_id: str) -> str:
        """The secret path (or Transit key name) of ``key_id``; refuses ids that escape."""
        check_key_id(key_id, self.backend)
        parts = key_id.split("/")
        if len(parts) > 1 and not self.allow_slash:
            raise KeyResolutionError(
                "invalid key id: '/' is not allowed (allow_slash=True maps ids onto sub-paths)",
                key_id=key_id, backend=self.backend,
            )
        pattern = _TRANSIT_NAME if self.transit else _KEY_ID_PART
        for part in parts:
            if part in ("", ".", "..") or not pattern.fullmatch(part):
                allowed = "-_." if self.transit else "-_.@:+=,~"
                raise KeyResolutionError(
                    f"invalid key id: use letters, digits and {allowed!r}"
                    + (" with '/' between non-empty segments other than '.' and '..'"
                       if self.allow_slash else ""),
                    key_id=key_id, backend=self.backend,
                )
        return self.path_template.replace("{key_id}", key_id)

    # -- listing and writing -------------------------------------------------

    def list_key_ids(self) -> list[str]:
        """Key ids found by one LIST of the template's directory (not recursive).

        Returns:
            The ids whose names fit the template, sorted; empty when the
            directory does not exist.

        Raises:
            KeyAccessDenied: The token may not list it.
            BackendUnavailable: Vault could not be reached.
        """
        prefix, _, suffix = self.path_template.partition("{key_id}")
        cut = prefix.rfind("/") + 1
        directory, stem = prefix[:cut], prefix[cut:]
        folder = "/" in suffix
        tail = suffix.split("/", 1)[0]
        if self.transit:
            where = f"{self.mount}/keys"
            listing = lambda: self._session.client.secrets.transit.list_keys(  # noqa: E731
                mount_point=self.mount)
        elif self.kv_version == 1:
            where = f"{self.mount}/{directory}"
            listing = lambda: self._session.client.secrets.kv.v1.list_secrets(  # noqa: E731
                path=directory, mount_point=self.mount)
        else:
            where = f"{self.mount}/metadata/{directory}"
            listing = lambda: self._session.client.secrets.kv.v2.list_secrets(  # noqa: E731
                path=directory, mount_point=self.mount)
        try:
            names = self._session.call(listing, key_id=None, what="list", where=where)
        except KeyNotFound:
            return []
        found: list[str] = []
        for entry in names["data"].get("keys") or []:
            if not isinstance(entry, str) or entry.endswith("/") != folder:
                continue
            name = entry.rstrip("/")
            if not (name.startswith(stem) and name.endswith(tail)
                    and len(name) > len(stem) + len(tail)):
                continue
            key_id = name[len(stem): len(name) - len(tail)]
            try:
                self._target(key_id)
            except KeyResolutionError:
                continue
            found.append(key_id)
        return sorted(found)

    def store_key(self, key_id: str, material: str) -> str | None:
        """Write ``material`` into the field of ``key_id``'s secret, keeping other fields.

        On KV v2 this adds a version (the previous one stays readable) with
        check-and-set, so a concurrent writer is detected rather than
        overwritten. On KV v1 the secret is replaced in place.

        Returns:
            The new KV v2 version number as a string; None on KV v1.

        Raises:
            NotImplementedError: Transit keys are made and rotated inside Vault.
            KeyResolutionError: The write failed (denied, unreachable, raced).
        """
        if self.transit:
            raise NotImplementedError(
                "Transit keys are created and rotated inside Vault "
                f"(bao write -f {self.mount}/keys/<name>/rotate); store_key is not available"
            )
        path = self._target(key_id)
        try:
            if self.kv_version == 1:
                self._store_kv1(key_id, path, material)
                return None
            return self._store_kv2(key_id, path, material)
        finally:
            self.invalidate(key_id)

    def _store_kv1(self, key_id: str, path: str, material: str) -> None:
        where = f"{self.mount}/{path}"
        try:
            data = self._session.call(lambda: self._kv1_read(path), key_id=key_id, what="read",
                                      where=where)
        except KeyNotFound:
            data = {}
        secret = {**(data if isinstance(data, dict) else {}), self.field: material}
        self._session.call(
            lambda: self._session.client.secrets.kv.v1.create_or_update_secret(
                path=path, secret=secret, mount_point=self.mount),
            key_id=key_id, what="write", where=where,
        )

    def _store_kv2(self, key_id: str, path: str, material: str) -> str:
        where = f"{self.mount}/data/{path}"
        try:
            current, data, _ = self._session.call(
                lambda: self._kv2_read(path, None), key_id=key_id, what="read", where=where)
        except KeyNotFound:
            current, data = 0, None
        secret = {**(data or {}), self.field: material}
        try:
            response = self._session.call(
                lambda: self._session.client.secrets.kv.v2.create_or_update_secret(
                    path=path, secret=secret, cas=current, mount_point=self.mount),
                key_id=key_id, what="write", where=where,
            )
        except KeyResolutionError as exc:
            if "check-and-set" in exc.reason:
                raise KeyResolutionError(
                    f"{where} changed while it was being written (check-and-set); try again",
                    key_id=key_id, backend=self.backend, retryable=True,
                ) from None
            raise
        return str(response["data"]["version"])

    # -- lifecycle -------------------------------------------------------------

    def _close_backend(self) -> None:
        self._session.close()

    def __repr__(self) -> str:
        source = "transit" if self.transit else f"kv-v{self.kv_version}"
        return (
            f"VaultKeyResolver(addr={self.addr!r}, source={source!r}, mount={self.mount!r}, "
            f"template={self.path_template!r}, field={self.field!r}, auth={self.auth_method!r}, "
            f"namespace={self.namespace!r}, held={len(self.cache)})"
        )


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class _Credentials:
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
        return f"_Credentials(method={self.method!r}, mount={self.mount!r})"

    @property
    def can_login(self) -> bool:
        return self.method != "token"

    @classmethod
    def build(
        cls, auth: str | None, *, token: str | None, role_id: str | None,
        secret_id: str | None, role: str | None, jwt: str | None, jwt_path: str | None,
        mount: str | None, env: Mapping[str, str],
    ) -> _Credentials:
        if auth is None:
            if token:
                auth = "token"
            elif role_id:
                auth = "approle"
            elif env.get("VAULT_TOKEN"):
                auth = "token"
            elif env.get("VAULT_ROLE_ID"):
                auth = "approle"
            else:
                raise ResolverConfigError(
                    "no Vault credentials: set VAULT_TOKEN (or VAULT_ROLE_ID and "
                    "VAULT_SECRET_ID), or pass auth='token'|'approle'|'kubernetes'|'jwt'"
                )
        auth = auth.lower()
        if auth not in AUTH_METHODS:
            raise ResolverConfigError(
                f"unknown Vault auth method {auth!r}; use one of {', '.join(AUTH_METHODS)}"
            )
        mount = _clean_mount(mount or auth) if auth != "token" else "token"
        if role is not None and auth not in ("kubernetes", "jwt"):
            raise ResolverConfigError(
                f"role is for kubernetes or jwt login, not {auth!r} (AppRole uses role_id)"
            )
        if auth == "token":
            token = token or env.get("VAULT_TOKEN") or None
            if not token:
                raise ResolverConfigError("auth='token' needs token= or $VAULT_TOKEN")
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
# Shared by VaultKeyResolver and VaultTransitSigner (backends/vault_transit.py):
# where Vault is, how to log in, TLS, namespace and timeout, from arguments,
# the environment (as the vault/bao CLI reads it) and URLs.


def _check_addr(addr: str) -> str:
    addr = addr.rstrip("/")
    if not addr.startswith(("http://", "https://")):
        raise ResolverConfigError(
            f"Vault address must start with http:// or https://, got {addr[:80]!r}"
        )
    return addr


@dataclass(frozen=True)
class _Connection:
    """Settled connection settings. Holds credentials: never logged, never in a repr."""

    addr: str
    credentials: _Credentials
    namespace: str | None
    verify: bool | str
    cert: str | tuple[str, str] | None
    timeout: float
    renew: bool

    def __repr__(self) -> str:
        return (f"_Connection(addr={self.addr!r}, auth={self.credentials.method!r}, "
                f"namespace={self.namespace!r})")

    @classmethod
    def build(
        cls, addr: str | None, *, auth: str | None, token: str | None, role_id: str | None,
        secret_id: str | None, role: str | None, jwt: str | None, jwt_path: str | None,
        auth_mount: str | None, namespace: str | None, verify: bool | None,
        ca_cert: str | None, client_cert: str | None, client_key: str | None, timeout: float,
        renew: bool, env: Mapping[str, str],
    ) -> _Connection:
        """Settle the arguments against the environment; no I/O.

        Raises:
            ResolverConfigError: A bad address or timeout, missing credentials, ...
        """
        checked_addr = _check_addr(addr or env.get("VAULT_ADDR") or DEFAULT_ADDR)
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ResolverConfigError(
                f"timeout must be a positive number of seconds, got {timeout!r}")
        credentials = _Credentials.build(
            auth, token=token, role_id=role_id, secret_id=secret_id, role=role, jwt=jwt,
            jwt_path=jwt_path, mount=auth_mount, env=env,
        )
        if verify is None:
            verify = env.get("VAULT_SKIP_VERIFY", "").strip().lower() not in (
                "1", "true", "yes", "on", "t")
        ca_cert = ca_cert or env.get("VAULT_CACERT") or env.get("VAULT_CAPATH") or None
        client_cert = client_cert or env.get("VAULT_CLIENT_CERT") or None
        client_key = client_key or env.get("VAULT_CLIENT_KEY") or None
        if client_key and not client_cert:
            raise ResolverConfigError("client_key needs client_cert")
        cert: str | tuple[str, str] | None = client_cert
        if client_cert and client_key:
            cert = (client_cert, client_key)
        return cls(
            addr=checked_addr,
            credentials=credentials,
            namespace=namespace if namespace is not None else (
                env.get("VAULT_NAMESPACE") or None),
            verify=(ca_cert or True) if verify else False,
            cert=cert,
            timeout=float(timeout),
            renew=renew,
        )

    def open_session(self, *, pool_size: int, backend: str = BACKEND) -> _Session:
        """A new client and token upkeep; errors name ``backend``."""
        return _Session(
            addr=self.addr, credentials=self.credentials, namespace=self.namespace,
            verify=self.verify, cert=self.cert, timeout=self.timeout, renew=self.renew,
            pool_size=pool_size, backend=backend,
        )


def _connection_options(url: ResolverURL) -> dict[str, Any]:
    """Pop the connection part of a Vault URL: host, port, ``tls`` and auth/TLS parameters.

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
    tls = _pop_opt_bool(url, "tls")
    if url.host:
        host = f"[{url.host}]" if ":" in url.host else url.host
        protocol = "http" if tls is False else "https"
        options["addr"] = f"{protocol}://{host}:{url.port or DEFAULT_PORT}"
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
    for name in ("verify", "renew"):
        flag = _pop_opt_bool(url, name)
        if flag is not None:
            options[name] = flag
    timeout = url.pop_float("timeout", None)
    if timeout is not None:
        options["timeout"] = timeout
    return options


def _url_options(url: ResolverURL, template_option: str) -> dict[str, Any]:
    """Pop the connection part of a Vault URL, then its mount and template.

    The first path segment is the mount and the rest the template (both
    optional); with ``mount=`` (a nested mount) the whole path is the template.

    Args:
        url: The URL.
        template_option: The constructor argument the template goes to.

    Returns:
        Constructor keyword arguments (``addr``, ``mount``, the template, ...).

    Raises:
        ResolverConfigError: As :func:`_connection_options`.
    """
    options = _connection_options(url)
    explicit_mount = url.pop_optional("mount")
    path = url.path.strip("/")
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


# --------------------------------------------------------------------------- session


@dataclass
class _TokenState:
    generation: int
    expires_at: float  # monotonic; inf when the token does not expire (or is unknown)
    renew_at: float  # monotonic; when the renewer acts next; inf for never
    ttl: float  # the TTL the token was issued (or last renewed) with, 0 when none
    renewable: bool
    capped: bool = False  # a renewal came back shorter than asked: max TTL is near


class _Session:
    """One hvac client, its token, and the token's upkeep (login, renewal, retry)."""

    def __init__(
        self, *, addr: str, credentials: _Credentials, namespace: str | None,
        verify: bool | str, cert: str | tuple[str, str] | None, timeout: float, renew: bool,
        pool_size: int, backend: str = BACKEND,
    ) -> None:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(10, pool_size))
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
                                  namespace=namespace, session=session)
        self._credentials = credentials
        self._renew = renew
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
            except KeyResolutionError:
                raise
            except Exception as exc:
                raise _map_error(exc, key_id=key_id, what=what, where=where, addr=self.addr,
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
                raise _map_error(exc, key_id=key_id, what="lookup-self",
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
                + (f": {_summary(exc)}" if _summary(exc) else ""),
                key_id=key_id, backend=self.backend,
            ) from None
        except Exception as exc:
            raise _map_error(exc, key_id=key_id, what="login", where=where, addr=self.addr,
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
            raise _map_error(exc, key_id=None, what="renew", where="auth/token/renew-self",
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


def _renew_loop(ref: weakref.ref[_Session], wake: threading.Event) -> None:
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


def _map_error(
    exc: BaseException, *, key_id: str | None, what: str, where: str, addr: str, timeout: float,
    backend: str = BACKEND,
) -> KeyResolutionError:
    """Turn an hvac or requests failure into our error, without its (possibly long) text."""

    def make(cls: type[KeyResolutionError], reason: str, **extra: Any) -> KeyResolutionError:
        return cls(reason, key_id=key_id, backend=backend, **extra)

    if isinstance(exc, KeyResolutionError):
        return exc.with_context(key_id=key_id, backend=backend)
    detail = _summary(exc)
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
        return make(BackendUnavailable, f"TLS with Vault at {addr} failed (check ca_cert / "
                                        "VAULT_CACERT, verify)", retryable=False)
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


def _summary(exc: BaseException) -> str:
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


def _gone_metadata(body: Any) -> dict[str, Any] | None:
    """The metadata of a deleted/destroyed KV v2 version from a 404 body, else None."""
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    meta = data.get("metadata") if isinstance(data, dict) else None
    if not isinstance(meta, dict) or "version" not in meta:
        return None
    if not (meta.get("deletion_time") or meta.get("destroyed")):
        return None
    return meta


def _clean_mount(mount: str) -> str:
    cleaned = mount.strip("/")
    if not cleaned or any(p in ("", ".", "..") for p in cleaned.split("/")) or any(
        c in cleaned for c in "?#%{} "
    ):
        raise ResolverConfigError(f"invalid Vault mount {mount!r}")
    return cleaned


def _check_template(template: str, transit: bool) -> str:
    cleaned = template.strip("/")
    if cleaned.count("{key_id}") != 1 or "{" in cleaned.replace("{key_id}", "") or (
        "}" in cleaned.replace("{key_id}", "")
    ):
        raise ResolverConfigError(
            f"path template must contain '{{key_id}}' exactly once and no other braces, "
            f"got {template!r}"
        )
    parts = cleaned.split("/")
    if any(p in ("", ".", "..") for p in parts) or any(c in cleaned for c in "?#% "):
        raise ResolverConfigError(f"invalid Vault path template {template!r}")
    if transit and len(parts) > 1:
        raise ResolverConfigError(
            f"a Transit key name cannot contain '/', so the template {template!r} cannot work"
        )
    return cleaned


def _pop_opt_bool(url: ResolverURL, name: str) -> bool | None:
    """A boolean parameter, or None when absent (so the constructor default applies)."""
    raw = url.pop_optional(name)
    if raw is None:
        return None
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ResolverConfigError(f"{url.scheme}:// parameter {name}={raw!r} is not a boolean")


def _parse_int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ResolverConfigError(
            f"vault:// parameter {name}={value!r} is not an integer") from None
