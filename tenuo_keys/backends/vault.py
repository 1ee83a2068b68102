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
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import hvac.exceptions

from .._cache import CacheObserver, CachePolicy
from .._resolver import BackendKeyResolver, KeyMaterial, StoredKey, check_key_id
from .._template import NO_BRACES, PLACEHOLDER, KeyTemplate, TemplateError
from .._url import ResolverURL
from ..errors import (
    KeyAccessDenied,
    KeyFormatError,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
)

# AUTH_METHODS, DEFAULT_K8S_JWT_PATH and DEFAULT_PORT were first defined in this
# module; the redundant aliases keep them importable from it.
from ._vault_common import AUTH_METHODS as AUTH_METHODS
from ._vault_common import (
    BACKEND,
    DEFAULT_ADDR,
    TRANSIT_NAME,
    VaultArguments,
    VaultConnection,
    check_addr,
    check_arguments,
    clean_mount,
    url_options,
)
from ._vault_common import DEFAULT_K8S_JWT_PATH as DEFAULT_K8S_JWT_PATH
from ._vault_common import DEFAULT_PORT as DEFAULT_PORT

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["VaultKeyResolver"]

logger = logging.getLogger("tenuo_keys.vault")

MAX_PREVIOUS_VERSIONS: Final = 20
_KEY_ID_PART = re.compile(r"[A-Za-z0-9._@:+=,~-]+")


class VaultKeyResolver(BackendKeyResolver):
    """Reads holder keys from Vault/OpenBao KV v2, KV v1 or an exportable Transit key.

    **Where keys are.** Key ``agent1`` is the secret ``<mount>/<path_template>``
    with ``{key_id}`` replaced, e.g. ``secret/tenuo/keys/agent1``; the key is
    the secret's field ``field`` (default ``key``), in any format the shared
    decoder accepts. A key id may hold letters, digits and ``-_.@:+=,~``;
    ``/`` only with ``allow_slash=True`` (then ``.``/``..``/empty segments are
    still refused), so an id can never escape the template.

    **Versions.** On KV v2 the current version and the ``previous_versions``
    version numbers just below it are held, so a warrant minted before a
    rotation still finds its holder key. A deleted or destroyed version
    among those is a hole, not a reason to reach further back: deleting a
    previous version revokes it without bringing an older one back; version
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
    HTTPS is the default; ``tls=0`` means plain HTTP, accepted only to a
    loopback host (or with ``dangerously_allow_insecure_transport=1``);
    ``verify=0`` likewise. Redirects are followed only within the same
    origin (scheme, host and port): one to anywhere else is refused, since
    the token (and a key being written) would go with it.
    Other parameters map one-to-one onto the arguments below: ``kv`` (1 or
    2), ``field``, ``transit``, ``previous_versions``, ``allow_slash``,
    ``auth``, ``auth_mount``, ``role``, ``jwt_path``, ``namespace``,
    ``verify``, ``ca_cert``, ``client_cert``, ``client_key``, ``timeout``,
    ``renew``, ``dangerously_allow_insecure_transport``, plus the shared
    cache parameters (``ttl``, ``max_staleness``, ...). Secrets (tokens,
    secret ids, JWTs) never go in URLs: they come from the environment or
    from keyword arguments of ``resolver_from_url``.

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
        previous_versions: Versions just before the current one to hold (KV v2
            and Transit) for rotation; 0 holds only the current one. Deleted
            or destroyed versions among them count (they are holes).
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
        timeout: Total seconds each Vault request may take (connecting,
            the headers and the whole body, which is also capped at 4 MiB).
        renew: Renew renewable tokens in the background before they expire.
        cache: The cache policy.
        observers: Cache event observers.
        environ: Mapping read instead of ``os.environ`` (for tests).
        dangerously_allow_insecure_transport: Allow plaintext HTTP or an
            unverified certificate (``verify=False``, ``$VAULT_SKIP_VERIFY``)
            to a host that is not loopback. Without it that is refused:
            the token and keys would be exposed on the network. Loopback
            needs no opt-in. URL: ``?dangerously_allow_insecure_transport=1``.
        connection: A settled :class:`~tenuo_keys.backends._vault_common.VaultConnection`
            (``VaultConnection.from_env()``, ``.from_url(...)``, or another
            resolver's or signer's ``connection``) to use instead of the
            connection arguments above, which must then be left unset.

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
        cache: CachePolicy | None = None,
        observers: Iterable[CacheObserver] = (),
        connection: VaultConnection | None = None,
        **connection_arguments: Unpack[VaultArguments],
    ) -> None:
        check_arguments(connection_arguments, "VaultKeyResolver")
        if connection is None:
            environ = connection_arguments.get("environ")
            env: Mapping[str, str] = os.environ if environ is None else environ
            check_addr(addr or env.get("VAULT_ADDR") or DEFAULT_ADDR)
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
        self.mount = clean_mount(mount or ("transit" if transit else "secret"))
        self.path_template = _check_template(
            path_template or ("{key_id}" if transit else "tenuo/keys/{key_id}"), transit
        )
        self._names = KeyTemplate.parse(self.path_template)
        self.field = field
        self.previous_versions = previous_versions
        self.allow_slash = allow_slash
        connection = VaultConnection.given_or_built(connection, addr, **connection_arguments)
        self.connection = connection
        self._transport_note = connection.transport_note
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
        options = url_options(url, "path_template", kwargs.get("environ"))
        field = url.pop_optional("field")
        if field is not None:
            options["field"] = field
        options.update(url.pop_bools("transit", "allow_slash"))
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
        # Held versions are the `previous_versions` numbers just below the current one,
        # in Vault's own ordering. A deleted or destroyed one is a hole: looking further
        # back would bring a version rotated out earlier back to life (deleting a
        # compromised version must never resurrect an older one).
        for wanted in range(current - 1, max(0, current - 1 - self.previous_versions), -1):
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
            if old is None:
                logger.debug("tenuo_keys: %s version %d is %s; not held", where, wanted, gone)
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
        pattern = TRANSIT_NAME if self.transit else _KEY_ID_PART
        for part in parts:
            if part in ("", ".", "..") or not pattern.fullmatch(part):
                allowed = "-_." if self.transit else "-_.@:+=,~"
                raise KeyResolutionError(
                    f"invalid key id: use letters, digits and {allowed!r}"
                    + (" with '/' between non-empty segments other than '.' and '..'"
                       if self.allow_slash else ""),
                    key_id=key_id, backend=self.backend,
                )
        return self._names.render(key_id)

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
        prefix, suffix = self._names.prefix, self._names.suffix
        cut = prefix.rfind("/") + 1
        directory = prefix[:cut]
        folder = "/" in suffix
        # The entries of one LIST are the template's names cut to that directory level.
        entries = KeyTemplate.parse(prefix[cut:] + PLACEHOLDER + suffix.split("/", 1)[0])
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
            key_id = entries.key_id_of(entry.rstrip("/"))
            if key_id is None:
                continue
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
            f"namespace={self.namespace!r}{self._transport_note}, held={len(self.cache)})"
        )


# --------------------------------------------------------------------------- helpers


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


def _check_template(template: str, transit: bool) -> str:
    cleaned = template.strip("/")
    try:
        KeyTemplate.parse(cleaned, chars=NO_BRACES)
    except TemplateError:
        raise ResolverConfigError(
            f"path template must contain '{{key_id}}' exactly once and no other braces, "
            f"got {template!r}"
        ) from None
    parts = cleaned.split("/")
    if any(p in ("", ".", "..") for p in parts) or any(c in cleaned for c in "?#% "):
        raise ResolverConfigError(f"invalid Vault path template {template!r}")
    if transit and len(parts) > 1:
        raise ResolverConfigError(
            f"a Transit key name cannot contain '/', so the template {template!r} cannot work"
        )
    return cleaned


def _parse_int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ResolverConfigError(
            f"vault:// parameter {name}={value!r} is not an integer") from None
