"""``GCPSecretManagerKeyResolver``: holder keys in Google Cloud Secret Manager.

Key ``agent1`` lives in secret ``tenuo-keys-agent1`` of one project; its
versions are the key's rotations. The resolver reads the current version
(``latest``, or a pinned number) and, for rotation, the previous ENABLED
versions, so a warrant minted for the key before a rotation still finds its
holder. Caching, decoding, refresh-ahead and stale-if-error come from
:class:`~tenuo_keys.BackendKeyResolver`.

Example::

    from tenuo_keys import resolver_from_url

    resolver = resolver_from_url("gcpsm://my-project/tenuo-keys-{key_id}")
    resolver.preload_all()            # lists the secrets, then loads every key
    resolver.resolve_sync("agent1")   # memory only: safe in the workflow sandbox

Backend calls per load or refresh of one key:

* ``AccessSecretVersion`` of the current version, always (it also re-checks
  IAM access at every refresh, so a revoked grant is noticed);
* with ``previous_versions > 0``, one ``ListSecretVersions`` (state ENABLED)
  and one ``AccessSecretVersion`` per previous version *not seen before*.
  Version payloads are immutable in Secret Manager, so a previous version
  already read (same number and create time) is reused from memory; a steady
  refresh therefore costs two calls. ``previous_versions=0`` costs one.

Listing versions needs ``secretmanager.versions.list`` (for example
``roles/secretmanager.viewer``), which ``roles/secretmanager.secretAccessor``
does not grant; without it the resolver logs one warning and holds the current
version only.

Retries: none by default. Every call has a deadline (``timeout``) and the shared
cache does the retrying: a held key keeps serving within ``max_staleness``
while refreshes back off, and a failed cold load is asked again after
``negative_ttl``. Client-side retries would only hold a cache worker thread
longer, and a retried ``AddSecretVersion`` could write two versions.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import cachetools
import google_crc32c
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth.credentials import Credentials
from google.cloud import secretmanager_v1
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)

from .._cache import CacheObserver, CachePolicy, sized_like
from .._formats import decode_signing_key
from .._resolver import BackendKeyResolver, KeyMaterial, StoredKey
from .._template import PLACEHOLDER, KeyTemplate, TemplateError
from .._url import ResolverURL
from ..errors import (
    KeyFormatError,
    KeyNotFound,
    KeyResolutionError,
    ResolverClosed,
    ResolverConfigError,
)
from ._gcp_common import (
    build_client,
    check_client_options,
    check_project,
    detail,
    map_error,
    project_from_url,
    version_number,
)

__all__ = ["GCPSecretManagerKeyResolver"]

logger = logging.getLogger("tenuo_keys.gcp")

DEFAULT_TEMPLATE = "tenuo-keys-{key_id}"
DEFAULT_TIMEOUT = 10.0
DEFAULT_ENDPOINT = "secretmanager.googleapis.com"
MAX_SECRET_ID = 255
MAX_PREVIOUS = 10
_SECRET_ID_CHARS = re.compile(r"[A-Za-z0-9_-]*")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_LIST_PAGE = 250
_VERSIONS_PAGE = 100

# The gapic transport logs whole requests and responses, secret payloads
# included, in a record's ``extra`` fields whenever its logger is enabled for
# DEBUG (for example, a root logger at DEBUG). Those records are dropped here,
# for the two calls that carry a payload.
_TRANSPORT_LOGGERS = tuple(
    f"google.cloud.secretmanager_v1.services.secret_manager_service.transports.{name}"
    for name in ("grpc", "grpc_asyncio", "rest")
)
_PAYLOAD_RPCS = ("AccessSecretVersion", "AddSecretVersion")


def _drop_payload_records(record: logging.LogRecord) -> bool:
    rpc = str(getattr(record, "rpcName", "") or record.msg)
    carries = hasattr(record, "request") or hasattr(record, "response")
    return not (carries and rpc.rstrip(".").endswith(_PAYLOAD_RPCS))


for _name in _TRANSPORT_LOGGERS:
    _transport_logger = logging.getLogger(_name)
    if _drop_payload_records not in _transport_logger.filters:
        _transport_logger.addFilter(_drop_payload_records)


class _Template:
    """Maps key ids to secret ids (``tenuo-keys-{key_id}``) and back."""

    def __init__(self, template: str) -> None:
        try:
            self._names = KeyTemplate.parse(template, chars=_SECRET_ID_CHARS)
        except TemplateError as exc:
            if not exc.chars:
                raise ResolverConfigError(
                    f"GCP secret template {template!r} must contain {PLACEHOLDER} exactly once"
                ) from None
            raise ResolverConfigError(
                f"GCP secret template {template!r} may hold only letters, digits, '_' and '-' "
                f"around {PLACEHOLDER} (GCP secret ids allow no other characters)"
            ) from None
        self.prefix, self.suffix = self._names.prefix, self._names.suffix
        self.template = template

    def secret_id(self, key_id: str) -> str | None:
        secret_id = self._names.render(key_id)
        if not key_id or len(secret_id) > MAX_SECRET_ID:
            return None
        return secret_id if _SECRET_ID_CHARS.fullmatch(key_id) else None

    def key_id(self, secret_id: str) -> str | None:
        return self._names.key_id_of(secret_id)

    def list_filter(self) -> str:
        # ``name:`` is a substring match; the mapping back is checked client-side.
        literal = self.prefix or self.suffix
        return f'name:"{literal}"' if literal else ""


class GCPSecretManagerKeyResolver(BackendKeyResolver):
    """Reads holder keys from Google Cloud Secret Manager.

    Key ids map to secret ids through ``template``. GCP secret ids allow only
    ``[A-Za-z0-9_-]`` (up to 255 characters), so a key id with any other
    character is refused (``KeyNotFound`` saying why) rather than rewritten:
    a lossy mapping would let two key ids share one secret.

    One client is built on first use and reused; it is closed by
    :meth:`close` unless it was injected. Credentials never go in URLs: the
    client uses Application Default Credentials or ``credentials=``.

    Args:
        project: Project id or number.
        template: Secret id of a key, with ``{key_id}`` where the id goes.
        version: ``"latest"`` or a version number to pin (``"3"``).
        previous_versions: How many version numbers just below the current
            one to hold for rotation (those that are ENABLED; a disabled or
            destroyed one is a hole, not replaced by an older one); 0 saves a
            list call per refresh.
        label: ``"key=value"``: :meth:`list_key_ids` lists secrets with this
            label instead of by name prefix, and :meth:`store_key` sets it on
            the secrets it creates.
        api_endpoint: ``host:port`` of another endpoint (regional, private, test).
        insecure: Talk plaintext gRPC to ``api_endpoint`` without credentials.
            Only for a test server on loopback; other hosts are refused
            unless ``dangerously_allow_insecure_transport``.
        timeout: Deadline in seconds of each backend call.
        retry: A ``google.api_core.retry.Retry`` for reads; default none (the
            cache retries). Writes are never retried.
        client: A ``SecretManagerServiceClient`` to use (not closed by us).
        credentials: ``google.auth`` credentials (default: ADC).
        cache: Cache policy.
        observers: Cache event observers.
        field: JSON field holding the key when a payload is a JSON object.
        dangerously_allow_insecure_transport: Allow ``insecure`` towards a
            host that is not loopback (e.g. an emulator on another host);
            keys then cross the network in plaintext. URL:
            ``?dangerously_allow_insecure_transport=1``.

    Raises:
        ResolverConfigError: An argument is invalid or two conflict.
    """

    backend = "gcp"

    def __init__(
        self,
        project: str,
        template: str = DEFAULT_TEMPLATE,
        *,
        version: str = "latest",
        previous_versions: int = 1,
        label: str | None = None,
        api_endpoint: str | None = None,
        insecure: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        retry: Retry | None = None,
        client: secretmanager_v1.SecretManagerServiceClient | None = None,
        credentials: Credentials | None = None,
        cache: CachePolicy | None = None,
        observers: Iterable[CacheObserver] = (),
        field: str = "key",
        dangerously_allow_insecure_transport: bool = False,
    ) -> None:
        check_project(project)
        version = str(version)
        if version != "latest" and not (version.isdigit() and int(version) > 0):
            raise ResolverConfigError(
                f"GCP secret version must be 'latest' or a number, got {version!r}"
            )
        if not 0 <= previous_versions <= MAX_PREVIOUS:
            raise ResolverConfigError(
                f"previous_versions must be 0 to {MAX_PREVIOUS}, got {previous_versions!r}"
            )
        if not timeout > 0:
            raise ResolverConfigError(f"timeout must be > 0 seconds, got {timeout!r}")
        self._template = _Template(template)
        self._label = _parse_label(label)
        check_client_options(client, api_endpoint, insecure, credentials,
                             allow_insecure_transport=dangerously_allow_insecure_transport)
        super().__init__(cache=cache, observers=observers, field=field)
        self.project = project
        self.template = template
        self.version = version
        self.previous_versions = previous_versions
        self.label = label
        self.api_endpoint = api_endpoint
        self.insecure = insecure
        self.timeout = float(timeout)
        self._retry = retry
        self._credentials = credentials
        self._client = client
        self._owns_client = client is None
        self._client_lock = threading.Lock()
        self._closed = False
        # Previous versions already read, by key id: {(number, create time): SigningKey}.
        self._seen_lock = threading.Lock()
        self._seen: cachetools.LRUCache[str, dict[tuple[int, str], Any]] = (
            cachetools.LRUCache(maxsize=self.cache.policy.maxsize)
        )
        self._warned: set[str] = set()

    @classmethod
    def from_url(cls, url: ResolverURL, **kwargs: Any) -> GCPSecretManagerKeyResolver:
        """Build from ``gcpsm://PROJECT/TEMPLATE?version=latest&previous_versions=1``.

        With no PROJECT (``gcpsm:///TEMPLATE``) the project is
        ``$GOOGLE_CLOUD_PROJECT`` (or ``$GCLOUD_PROJECT``), as for Google's libraries.

        Query parameters, one per constructor argument: ``field``, ``version``,
        ``previous_versions``, ``label``, ``api_endpoint``, ``insecure``,
        ``dangerously_allow_insecure_transport``, ``timeout``, plus the shared
        cache parameters (``ttl``, ``max_staleness``...). The template defaults
        to ``tenuo-keys-{key_id}``. Clients and credentials are passed as
        keyword arguments, never in the URL; keyword arguments override the
        URL's values.
        """
        if url.port is not None or url.username is not None:
            raise ResolverConfigError(
                "gcpsm:// URLs look like gcpsm://PROJECT/tenuo-keys-{key_id}: the authority "
                "is the project id (or empty, for $GOOGLE_CLOUD_PROJECT), with no port or user"
            )
        project = project_from_url(url.host, "gcpsm", "gcpsm://my-project/tenuo-keys-{key_id}")
        template = url.relative_path or DEFAULT_TEMPLATE
        timeout = url.pop_float("timeout", DEFAULT_TIMEOUT)
        if timeout is None:
            raise ResolverConfigError("gcpsm:// parameter timeout must be a number of seconds")
        options: dict[str, Any] = {
            "field": url.pop("field", "key"),
            "version": url.pop("version", "latest"),
            "previous_versions": url.pop_int("previous_versions", 1),
            "label": url.pop_optional("label"),
            "api_endpoint": url.pop_optional("api_endpoint"),
            "insecure": url.pop_bool("insecure", False),
            "dangerously_allow_insecure_transport": url.pop_bool(
                "dangerously_allow_insecure_transport", False),
            "timeout": timeout,
            "cache": url.pop_cache_policy(),
        }
        url.finish()
        if "cache" in kwargs and options["cache"] != CachePolicy():
            raise ResolverConfigError(
                "gcpsm:// got cache parameters in the URL and cache= as an argument; use one"
            )
        options.update(kwargs)
        return cls(project, template, **options)

    # -- names -------------------------------------------------------------

    def secret_id(self, key_id: str) -> str:
        """The secret id that holds ``key_id``.

        Raises:
            KeyNotFound: No GCP secret id can hold this key id.
        """
        secret_id = self._template.secret_id(key_id)
        if secret_id is None:
            raise KeyNotFound(
                "not found: this key id cannot name a GCP secret (secret ids allow only "
                f"letters, digits, '_' and '-', at most {MAX_SECRET_ID} characters with "
                f"the template {self.template!r})",
                key_id=key_id, backend=self.backend,
            )
        return secret_id

    def _secret_path(self, secret_id: str) -> str:
        return f"projects/{self.project}/secrets/{secret_id}"

    # -- reads -------------------------------------------------------------

    def fetch(self, key_id: str) -> KeyMaterial | Sequence[KeyMaterial]:
        """Read the current version and the previous ENABLED ones, checksums verified."""
        secret_id = self.secret_id(key_id)
        secret = self._secret_path(secret_id)
        client = self._get_client()
        try:
            response = client.access_secret_version(
                request={"name": f"{secret}/versions/{self.version}"},
                retry=self._retry, timeout=self.timeout,
            )
        except Exception as exc:
            error = _map_error(exc, key_id=key_id, what=f"secret {secret_id!r} version "
                               f"{self.version}")
            if not error.retryable:
                with self._seen_lock:
                    self._seen.pop(key_id, None)
            raise error from None
        current = _version_of(response.name)
        label = None if current is None else str(current)
        versions: list[KeyMaterial] = [
            StoredKey(self._verified(key_id, current, response.payload), label)
        ]
        if self.previous_versions and current is not None:
            versions.extend(self._previous(key_id, secret, current))
        return versions

    def _previous(self, key_id: str, secret: str, current: int) -> list[StoredKey]:
        client = self._get_client()
        try:
            listed = [
                (number, v)
                for v in client.list_secret_versions(
                    request={"parent": secret, "filter": "state:ENABLED",
                             "page_size": _VERSIONS_PAGE},
                    retry=self._retry, timeout=self.timeout,
                )
                # The held window is the `previous_versions` numbers just below the
                # current one: a disabled or destroyed version in it is a hole, never a
                # reason to reach further back (that would revive a rotated-out key).
                if (number := _version_of(v.name)) is not None
                and current - self.previous_versions <= number < current
            ]
        except gexc.PermissionDenied:
            self._warn_once(
                "list",
                "tenuo_keys: cannot list versions of GCP secrets (needs "
                "secretmanager.versions.list, e.g. roles/secretmanager.viewer); holding the "
                "current version only. Set previous_versions=0 to stop asking.",
            )
            return []
        except Exception as exc:
            raise _map_error(exc, key_id=key_id, what="versions of the secret") from None
        listed.sort(key=lambda item: item[0], reverse=True)
        with self._seen_lock:
            seen = dict(self._seen.get(key_id) or {})
        held: dict[tuple[int, str], Any] = {}
        out: list[StoredKey] = []
        for number, meta in listed:
            if len(out) >= self.previous_versions:
                break
            stamp = (number, str(meta.create_time))
            key = seen.get(stamp)
            if key is None:
                key = self._read_previous(key_id, secret, number)
                if key is None:
                    continue
            held[stamp] = key
            out.append(StoredKey(key, str(number)))
        with self._seen_lock:
            self._seen = sized_like(self._seen, self.cache)
            self._seen[key_id] = held
        return out

    def _read_previous(self, key_id: str, secret: str, number: int) -> Any:
        """Read and decode one previous version; None when it must be skipped."""
        try:
            response = self._get_client().access_secret_version(
                request={"name": f"{secret}/versions/{number}"},
                retry=self._retry, timeout=self.timeout,
            )
            data = self._verified(key_id, number, response.payload)
            return decode_signing_key(data, key_id=key_id, backend=self.backend,
                                      field=self._field)
        except (gexc.NotFound, gexc.FailedPrecondition):
            # Disabled or destroyed between the list and the read: not held.
            logger.debug("tenuo_keys: previous version %s of key %r went away", number, key_id)
            return None
        except KeyFormatError as exc:
            logger.warning("tenuo_keys: skipping previous version %s of key %r: %s",
                           number, key_id, exc.reason)
            return None
        except Exception as exc:
            raise _map_error(exc, key_id=key_id, what=f"version {number}") from None

    def _verified(self, key_id: str, version: int | None, payload: Any) -> bytes:
        data = bytes(payload.data)
        if "data_crc32c" not in payload:
            # GCP always sets it; an endpoint that does not cannot be checked.
            self._warn_once(
                "crc",
                "tenuo_keys: GCP Secret Manager returned a payload without data_crc32c "
                "(key %r, version %s); its integrity was not verified", key_id, version,
            )
            return data
        if google_crc32c.value(data) != int(payload.data_crc32c):
            raise KeyFormatError(
                f"payload checksum mismatch: version {version} does not match its CRC32C "
                "(corrupted in transit or at rest); the value was rejected",
                key_id=key_id, backend=self.backend, retryable=True,
            )
        return data

    def list_key_ids(self) -> list[str]:
        """Key ids of the secrets matching the template (and ``label``, if set).

        Raises:
            KeyResolutionError: Listing failed (denied, unreachable).
        """
        query = (f"labels.{self._label[0]}={self._label[1]}" if self._label
                 else self._template.list_filter())
        client = self._get_client()
        ids: set[str] = set()
        try:
            for secret in client.list_secrets(
                request={"parent": f"projects/{self.project}", "filter": query,
                         "page_size": _LIST_PAGE},
                retry=self._retry, timeout=self.timeout,
            ):
                key_id = self._template.key_id(secret.name.rpartition("/")[2])
                if key_id is not None and self._template.secret_id(key_id) is not None:
                    ids.add(key_id)
        except Exception as exc:
            raise _map_error(exc, key_id=None, what=f"secrets of project {self.project!r}"
                             ) from None
        return sorted(ids)

    # -- writes ------------------------------------------------------------

    def store_key(self, key_id: str, material: str) -> str | None:
        """Add ``material`` as the new version of the key's secret, creating it if missing.

        The secret is created with automatic replication (and ``label``). The
        previous version stays ENABLED, so it is still held for rotation.

        Returns:
            The new version number.

        Raises:
            KeyResolutionError: The key id cannot name a secret, or the write failed.
        """
        try:
            secret_id = self.secret_id(key_id)
        except KeyNotFound as exc:
            raise KeyResolutionError(exc.reason.removeprefix("not found: "), key_id=key_id,
                                     backend=self.backend) from None
        secret = self._secret_path(secret_id)
        data = material.encode("utf-8")
        request = {"parent": secret,
                   "payload": {"data": data, "data_crc32c": google_crc32c.value(data)}}
        client = self._get_client()
        try:
            try:
                added = client.add_secret_version(request=request, retry=None,
                                                  timeout=self.timeout)
            except gexc.NotFound:
                self._create_secret(secret_id)
                added = client.add_secret_version(request=request, retry=None,
                                                  timeout=self.timeout)
        except Exception as exc:
            raise _map_error(exc, key_id=key_id, what=f"write to secret {secret_id!r}") from None
        number = _version_of(added.name)
        return None if number is None else str(number)

    def _create_secret(self, secret_id: str) -> None:
        secret: dict[str, Any] = {"replication": {"automatic": {}}}
        if self._label:
            secret["labels"] = {self._label[0]: self._label[1]}
        # AlreadyExists: created concurrently; the version is added to it.
        with contextlib.suppress(gexc.AlreadyExists):
            self._get_client().create_secret(
                request={"parent": f"projects/{self.project}", "secret_id": secret_id,
                         "secret": secret},
                retry=None, timeout=self.timeout,
            )

    # -- client ------------------------------------------------------------

    def _get_client(self) -> secretmanager_v1.SecretManagerServiceClient:
        client = self._client
        if client is not None and not self._closed:
            return client
        with self._client_lock:
            if self._closed:
                raise ResolverClosed(backend=self.backend)
            if self._client is None:
                self._client = build_client(
                    secretmanager_v1.SecretManagerServiceClient,
                    SecretManagerServiceGrpcTransport, api_endpoint=self.api_endpoint,
                    insecure=self.insecure, credentials=self._credentials, key_id=None,
                    backend=self.backend,
                )
            return self._client

    def _close_backend(self) -> None:
        with self._client_lock:
            self._closed = True
            client, self._client = self._client, None
        with self._seen_lock:
            self._seen.clear()
        if client is not None and self._owns_client:
            client.transport.close()  # type: ignore[no-untyped-call]

    def _warn_once(self, topic: str, message: str, *args: Any) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            logger.warning(message, *args)

    def __repr__(self) -> str:
        endpoint = self.api_endpoint or DEFAULT_ENDPOINT
        return (
            f"GCPSecretManagerKeyResolver(project={self.project!r}, "
            f"template={self.template!r}, endpoint={endpoint!r}"
            f"{', plaintext=True' if self.insecure else ''}, held={len(self.cache)})"
        )


def _parse_label(label: str | None) -> tuple[str, str] | None:
    if label is None:
        return None
    key, sep, value = label.partition("=")
    if not sep or not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
        raise ResolverConfigError(
            f"GCP label must be 'key=value' (lowercase letters, digits, '_' and '-'; the "
            f"key starts with a letter), got {label!r}"
        )
    return key, value


def _version_of(name: str) -> int | None:
    return version_number(name, "/versions/")


def _map_error(exc: BaseException, *, key_id: str | None, what: str) -> KeyResolutionError:
    """Turn a google-api-core / google-auth exception into our error types.

    Our requests never carry key material (only names), and writes are mapped
    without echoing the payload, so the server's message is kept as detail.
    """
    backend = GCPSecretManagerKeyResolver.backend
    if isinstance(exc, gexc.FailedPrecondition):
        return KeyNotFound(
            f"not found: {what} is disabled or destroyed ({detail(exc)})",
            key_id=key_id, backend=backend,
        )
    return map_error(exc, key_id=key_id, what=what, backend=backend, service="Secret Manager")
