"""``AWSSecretsManagerKeyResolver``: holder keys in AWS Secrets Manager (boto3).

Key ``agent1`` lives in the secret ``tenuo/keys/agent1`` (the name template is
configurable), as ``SecretBinary`` or ``SecretString`` in any accepted format,
including a JSON object with the key under a field. Both ``AWSCURRENT`` and
``AWSPREVIOUS`` are held, so a rotation does not break workflows in flight.

Example:
    >>> from tenuo_keys import resolver_from_url
    >>> resolver = resolver_from_url("awssm://us-east-1/tenuo/keys/{key_id}")  # doctest: +SKIP
    >>> resolver.preload_all()                                                 # doctest: +SKIP
    PreloadReport(loaded=12, failed={})
    >>> resolver.resolve_sync("agent1")                                        # doctest: +SKIP
    <SigningKey ...>

How a key is read. The first load of a key calls ``DescribeSecret`` (its
``VersionIdsToStages``) and downloads the ``AWSCURRENT`` and ``AWSPREVIOUS``
versions by ``VersionId``. Version ids are immutable, so the resolver keeps the
parsed key of each version id it has downloaded; a refresh calls
``DescribeSecret`` only and downloads a version only when a stage points at a
version id it does not hold (a rotation). Refreshing an unchanged key costs one
metadata call and no ``GetSecretValue``. (So withdrawing only
``GetSecretValue`` from a worker does not take a key it already holds out of
its memory; nothing could. Revoke a key by rotating or deleting the secret:
both are seen on the next refresh.)

Version labels are ``VersionId`` values (``KeyVersion.version``); the stage is
the position: the first version is ``AWSCURRENT``, the second ``AWSPREVIOUS``.

Preloading uses ``BatchGetSecretValue`` (20 secrets per call) for the current
versions; ``preload_all`` lists with ``ListSecrets`` (a ``name`` prefix filter),
whose ``SecretVersionsToStages`` saves the per-key ``DescribeSecret``. Where the
batch call is unsupported by the endpoint or not allowed by IAM, preloading
falls back, once and for the resolver's life, to per-key loads in parallel.

IAM actions used: ``secretsmanager:DescribeSecret`` and ``GetSecretValue``
(resolving), ``BatchGetSecretValue`` (preloading; optional), ``ListSecrets``
(``preload_all``, ``list_key_ids``), and ``PutSecretValue``/``CreateSecret``
(``store_key``, for the CLI). Secrets encrypted with a customer KMS key also
need ``kms:Decrypt``; AWS reports its absence as ``DecryptionFailure``, which
this resolver raises as :class:`~tenuo_keys.errors.KeyAccessDenied`.

Errors carry the AWS error code and operation, never AWS's free-text message
(some services echo request parameters there) and never a chained botocore
exception.

botocore logs raw request and response bodies at DEBUG (``botocore.parsers``,
``botocore.endpoint``), which for Secrets Manager are secret values. Importing
this module adds a filter to those loggers that redacts any record carrying a
``SecretString`` or ``SecretBinary``; other records pass unchanged.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import boto3
import cachetools
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from .._cache import CacheObserver, CachePolicy, sized_like
from .._resolver import BackendKeyResolver, KeyMaterial, StoredKey, check_key_id
from .._template import PLACEHOLDER, KeyTemplate, TemplateError
from .._transport import (
    INSECURE_OPT_IN,
    MAX_RESPONSE_BYTES,
    bounded_pools,
    check_transport,
    read_bounded,
    total_deadline,
)
from .._url import ResolverURL
from ..errors import (
    BackendUnavailable,
    KeyAccessDenied,
    KeyFormatError,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
)

__all__ = ["DEFAULT_TEMPLATE", "TTL_ENV", "AWSSecretsManagerKeyResolver"]

logger = logging.getLogger("tenuo_keys.aws")

DEFAULT_TEMPLATE = "tenuo/keys/{key_id}"
"""Secret name of a key id; ``{key_id}`` appears exactly once."""

TTL_ENV = "SECRETS_MANAGER_TTL"
"""Seconds between refreshes when no cache policy is given (the convention of
AWS's Parameters and Secrets Lambda extension)."""

CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"
BATCH_LIMIT = 20
"""Most secret ids one ``BatchGetSecretValue`` call accepts."""
MAX_NAME = 512
LISTING_FRESH = 30.0
"""Seconds a listing's stage maps are trusted by the preload that follows it."""

_NAME_CHARS = re.compile(r"[A-Za-z0-9/_+=.@-]*")
_ID_CHARS = re.compile(r"[A-Za-z0-9/_+=.@-]+")
_REGION = re.compile(r"[a-z]{2,}(-[a-z0-9]+)+")

_DENIED = frozenset({
    "AccessDeniedException", "AccessDenied", "UnrecognizedClientException",
    "InvalidSignatureException", "SignatureDoesNotMatch", "IncompleteSignature",
    "InvalidClientTokenId", "ExpiredTokenException", "ExpiredToken",
    "MissingAuthenticationToken", "MissingAuthenticationTokenException",
})
_CREDENTIALS = frozenset(_DENIED - {"AccessDeniedException", "AccessDenied"})
_UNAVAILABLE = frozenset({
    "ThrottlingException", "Throttling", "TooManyRequestsException",
    "RequestLimitExceeded", "InternalServiceError", "InternalServiceErrorException",
    "InternalFailure", "InternalError", "ServiceUnavailable", "ServiceUnavailableException",
    "RequestTimeout", "RequestTimeoutException",
})
_UNSUPPORTED = frozenset({
    "UnknownOperationException", "UnknownOperation", "InvalidAction", "NotImplemented",
    "UnsupportedOperation", "UnsupportedOperationException",
})

_T = TypeVar("_T")

_SECRET_MARKERS = ("SecretString", "SecretBinary")
_BODY_LOGGERS = ("botocore.parsers", "botocore.endpoint", "botocore.awsrequest")


class _RedactSecretBodies(logging.Filter):
    """Redacts botocore DEBUG records whose body or parameters hold a secret value."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        values: Iterable[object]
        if isinstance(args, Mapping):
            values = args.values()
        elif isinstance(args, tuple):
            values = args
        else:
            values = () if args is None else (args,)
        for value in (record.msg, *values):
            text = value.decode("latin-1") if isinstance(value, (bytes, bytearray)) \
                else str(value)
            if any(marker in text for marker in _SECRET_MARKERS):
                record.msg = ("botocore debug record redacted by tenuo_keys: it carries a "
                              "Secrets Manager secret value")
                record.args = None
                break
        return True


def _install_log_redaction() -> None:
    for name in _BODY_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(f, _RedactSecretBodies) for f in target.filters):
            target.addFilter(_RedactSecretBodies())


_install_log_redaction()


class AWSSecretsManagerKeyResolver(BackendKeyResolver):
    """Reads holder keys from AWS Secrets Manager; holds current and previous versions.

    One boto3 client is created at construction and reused by every call
    (clients are thread-safe). Credentials come from the standard AWS chain
    (environment, shared config/profile, container or instance role); they
    never appear in URLs, messages or ``repr``.

    Args:
        template: Secret name of a key id, with ``{key_id}`` exactly once.
        region_name: AWS region (default: the AWS chain, e.g. ``AWS_REGION``).
        profile_name: Shared-config profile to take credentials and region from.
        endpoint_url: Custom endpoint (VPC endpoint, moto, LocalStack).
        client: A ready ``secretsmanager`` client to use instead of building one;
            it is not closed by :meth:`close`. Excludes the client options.
        config: A ``botocore.config.Config`` merged over the defaults below.
        connect_timeout: Seconds to connect (default 2).
        read_timeout: Seconds to wait for each read of a response (default 5).
        request_timeout: Total seconds one HTTP request may take, its whole
            body included, which is also capped at 4 MiB (default: connect
            plus read timeout). A server that drips its answer cannot hold a
            worker longer.
        max_attempts: Total attempts per call, retries included, with
            botocore's ``standard`` retry mode (default 3).
        cache: Cache policy. When None, ``$SECRETS_MANAGER_TTL`` (seconds), if
            set, is the TTL; otherwise the default policy.
        observers: Cache event observers.
        field: JSON field holding the key when a secret is a JSON object.
        dangerously_allow_insecure_transport: Allow a plaintext ``http://``
            endpoint (``endpoint_url`` or botocore's ``$AWS_ENDPOINT_URL...``)
            on a host that is not loopback. Without it that is refused at
            construction: requests are signed, but secret values would
            cross the network in plaintext. URL:
            ``?dangerously_allow_insecure_transport=1``.

    With ``client=`` the caller's client is used as is: the transport
    policy and the request bounds apply to clients this resolver builds.

    Raises:
        ResolverConfigError: A bad template, region, profile or ``$SECRETS_MANAGER_TTL``,
            or ``client`` together with client options, or a plaintext
            endpoint that is not loopback.
    """

    backend = "awssm"

    def __init__(
        self,
        template: str = DEFAULT_TEMPLATE,
        *,
        region_name: str | None = None,
        profile_name: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
        config: Config | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_attempts: int | None = None,
        cache: CachePolicy | None = None,
        observers: Iterable[CacheObserver] = (),
        field: str = "key",
        request_timeout: float | None = None,
        dangerously_allow_insecure_transport: bool = False,
    ) -> None:
        self._names = _parse_template(template)
        self.template = template
        policy = cache if cache is not None else policy_from_env()
        super().__init__(cache=policy, observers=observers, field=field)
        options = {
            "region_name": region_name, "profile_name": profile_name,
            "endpoint_url": endpoint_url, "config": config,
            "connect_timeout": connect_timeout, "read_timeout": read_timeout,
            "max_attempts": max_attempts, "request_timeout": request_timeout,
        }
        self._client, self._owns_client = _client_or_built(
            client, options, pool=self.cache.policy.max_workers + 2,
            insecure_ok=dangerously_allow_insecure_transport, backend=self.backend)
        self._lock = threading.Lock()
        # Parsed keys by version id, per key id. Version ids are immutable, so
        # a version held here never needs downloading again.
        self._held: cachetools.LRUCache[str, dict[str, Any]] = cachetools.LRUCache(
            self.cache.policy.maxsize
        )
        self._listed: tuple[float, dict[str, tuple[str, str | None]]] = (-math.inf, {})
        self._batch_ok = True

    # -- configuration ----------------------------------------------------

    @classmethod
    def from_url(cls, url: ResolverURL, **kwargs: Any) -> AWSSecretsManagerKeyResolver:
        """Build from ``awssm://REGION/NAME-TEMPLATE?field=key&endpoint_url=...&profile=...``.

        The host is the region (empty: the AWS chain decides). The path is the
        secret name template; ``{key_id}`` may be written as is or
        percent-encoded (``%7Bkey_id%7D``); a path without it is a prefix
        (``awssm://us-east-1/tenuo/keys/`` means ``tenuo/keys/{key_id}``), and
        no path means :data:`DEFAULT_TEMPLATE`. Parameters: ``field``,
        ``endpoint_url``, ``profile``, ``connect_timeout``, ``read_timeout``,
        ``request_timeout``, ``max_attempts``,
        ``dangerously_allow_insecure_transport`` and the shared cache parameters (``ttl``,
        ``max_staleness``, ...), over ``$SECRETS_MANAGER_TTL`` when set.
        Credentials never go in the URL.
        """
        if url.port is not None:
            raise ResolverConfigError(
                f"awssm:// takes a region as host, not host:port; pass an endpoint as "
                f"?endpoint_url=, got {url.host}:{url.port}"
            )
        if url.username is not None:
            raise ResolverConfigError(
                "awssm:// URLs take no user: credentials come from the AWS environment, "
                "profile or role"
            )
        region = url.host or None
        if region is not None and not _REGION.fullmatch(region):
            raise ResolverConfigError(
                f"awssm:// host must be an AWS region such as us-east-1, got {region!r}; "
                "pass an endpoint as ?endpoint_url="
            )
        template = url.relative_path or DEFAULT_TEMPLATE
        if PLACEHOLDER not in template:
            template = template + PLACEHOLDER
        field = url.pop("field", "key")
        endpoint_url = url.pop_optional("endpoint_url")
        profile = url.pop_optional("profile")
        connect_timeout = url.pop_float("connect_timeout", None)
        read_timeout = url.pop_float("read_timeout", None)
        request_timeout = url.pop_float("request_timeout", None)
        insecure = url.pop_bool(INSECURE_OPT_IN, False)
        attempts = url.pop_optional("max_attempts")
        max_attempts = None if attempts is None else _int_param("max_attempts", attempts)
        base = kwargs.pop("cache", None) or policy_from_env() or CachePolicy()
        cache = url.pop_cache_policy(base)
        url.finish()
        return cls(
            template, region_name=region, profile_name=profile, endpoint_url=endpoint_url,
            connect_timeout=connect_timeout, read_timeout=read_timeout,
            max_attempts=max_attempts, cache=cache, field=field,
            request_timeout=request_timeout, dangerously_allow_insecure_transport=insecure,
            **kwargs,
        )

    @property
    def client(self) -> Any:
        """The boto3 ``secretsmanager`` client (for event hooks and metrics)."""
        return self._client

    def secret_name(self, key_id: str) -> str:
        """The secret name that holds ``key_id``.

        Raises:
            KeyResolutionError: The id cannot be part of a secret name (AWS
                allows letters, digits and ``/_+=.@-``, 512 characters at most).
        """
        check_key_id(key_id, self.backend)
        if not _ID_CHARS.fullmatch(key_id):
            raise KeyResolutionError(
                "invalid key id for AWS Secrets Manager: use letters, digits and /_+=.@-",
                key_id=key_id[:64], backend=self.backend,
            )
        name = self._names.render(key_id)
        if len(name) > MAX_NAME:
            raise KeyResolutionError(
                f"invalid key id: the secret name would be {len(name)} characters "
                f"(AWS allows {MAX_NAME})", key_id=key_id[:64], backend=self.backend,
            )
        return name

    # -- fetching ---------------------------------------------------------

    def fetch(self, key_id: str) -> list[StoredKey]:
        """Return ``AWSCURRENT`` then ``AWSPREVIOUS`` (if any) of ``key_id``.

        Downloads only versions not held already (see the module docstring).
        """
        name = self.secret_name(key_id)
        current, previous = self._describe(key_id, name)
        return self._assemble(key_id, name, current, previous, {})

    def fetch_many(
        self, key_ids: Sequence[str]
    ) -> Mapping[str, KeyMaterial | Sequence[KeyMaterial] | KeyResolutionError]:
        """Load many keys: ``BatchGetSecretValue`` for the current versions.

        Previous versions come from the stage maps of a fresh listing (from
        ``preload_all``) or from ``DescribeSecret``, and are downloaded only
        when not held. Falls back to parallel per-key loads where the batch
        call is unsupported or denied.
        """
        out: dict[str, KeyMaterial | Sequence[KeyMaterial] | KeyResolutionError] = {}
        names: dict[str, str] = {}
        for key_id in key_ids:
            try:
                names[key_id] = self.secret_name(key_id)
            except KeyResolutionError as exc:
                out[key_id] = exc
        ids = list(names)
        fetched: dict[str, tuple[str, Any]] = {}
        for start in range(0, len(ids), BATCH_LIMIT):
            if not self._batch_ok:
                out.update(self._parallel(self.fetch, ids[start:]))
                break
            chunk = ids[start:start + BATCH_LIMIT]
            try:
                batch = self._batch_get(chunk, names)
            except KeyResolutionError as exc:
                # The whole call failed (unreachable, throttled, ...): every id
                # left gets the same answer rather than more doomed calls.
                for key_id in ids[start:]:
                    out[key_id] = exc.with_context(key_id=key_id)
                break
            if batch is None:  # unsupported: this chunk and the rest, per key
                out.update(self._parallel(self.fetch, ids[start:]))
                break
            found, failed = batch
            fetched.update(found)
            out.update(failed)
        listed = self._take_listing()
        known: dict[str, tuple[str, str | None] | None] = {}
        for key_id, (version, _) in fetched.items():
            stages = listed.get(names[key_id])
            known[key_id] = stages if stages is not None and stages[0] == version else None

        def complete(key_id: str) -> Sequence[KeyMaterial]:
            version, raw = fetched[key_id]
            name = names[key_id]
            stages = known[key_id]
            if stages is None:
                stages = self._describe(key_id, name)
            return self._assemble(key_id, name, stages[0], stages[1], {version: raw})

        out.update(self._parallel(complete, list(fetched)))
        return out

    def list_key_ids(self) -> list[str]:
        """Every key id with a secret matching the template (``ListSecrets``).

        Secrets scheduled for deletion are left out.

        Raises:
            KeyAccessDenied: ``secretsmanager:ListSecrets`` is not allowed.
            BackendUnavailable: Secrets Manager could not be reached.
        """
        kwargs: dict[str, Any] = {"PaginationConfig": {"PageSize": 100}}
        if self._names.prefix:
            kwargs["Filters"] = [{"Key": "name", "Values": [self._names.prefix]}]
        ids: list[str] = []
        stages: dict[str, tuple[str, str | None]] = {}
        try:
            for page in self._client.get_paginator("list_secrets").paginate(**kwargs):
                for entry in page.get("SecretList", []):
                    name = entry.get("Name", "")
                    key_id = self._key_id_of(name)
                    if key_id is None or entry.get("DeletedDate") is not None:
                        continue
                    ids.append(key_id)
                    current, previous = _stage_ids(entry.get("SecretVersionsToStages") or {})
                    if current is not None:
                        stages[name] = (current, previous)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "ListSecrets", None, None) from None
        with self._lock:
            self._listed = (time.monotonic(), stages)
        return sorted(set(ids))

    def store_key(self, key_id: str, material: str) -> str | None:
        """Write ``material`` as the new ``AWSCURRENT`` of ``key_id``.

        ``PutSecretValue`` moves the old current to ``AWSPREVIOUS``; a missing
        secret is created with ``CreateSecret``.

        Returns:
            The ``VersionId`` of the new version.

        Raises:
            KeyResolutionError: The write failed (denied, unreachable,
                scheduled for deletion).
        """
        name = self.secret_name(key_id)
        for attempt in range(2):
            try:
                put = self._client.put_secret_value(SecretId=name, SecretString=material)
                return str(put["VersionId"])
            except ClientError as exc:
                if _code(exc) != "ResourceNotFoundException":
                    raise self._error(exc, "PutSecretValue", key_id, name) from None
            except BotoCoreError as exc:
                raise self._error(exc, "PutSecretValue", key_id, name) from None
            try:
                created = self._client.create_secret(
                    Name=name, SecretString=material,
                    Description="Tenuo holder key (written by tenuo-keys)",
                )
                return str(created["VersionId"])
            except ClientError as exc:
                # Created concurrently between our two calls: put once more.
                if _code(exc) != "ResourceExistsException" or attempt:
                    raise self._error(exc, "CreateSecret", key_id, name) from None
            except BotoCoreError as exc:
                raise self._error(exc, "CreateSecret", key_id, name) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _close_backend(self) -> None:
        with self._lock:
            self._held.clear()
            self._listed = (-math.inf, {})
        if self._owns_client:
            self._owns_client = False  # close once
            self._client.close()

    # -- internals --------------------------------------------------------

    def _describe(self, key_id: str, name: str) -> tuple[str, str | None]:
        try:
            described = self._call("DescribeSecret", key_id, name,
                                   self._client.describe_secret, SecretId=name)
        except KeyNotFound:
            self._forget(key_id)
            raise
        if described.get("DeletedDate") is not None:
            self._forget(key_id)
            raise KeyNotFound(f"not found: secret {name!r} is scheduled for deletion",
                              key_id=key_id, backend=self.backend)
        current, previous = _stage_ids(described.get("VersionIdsToStages") or {})
        if current is None:
            self._forget(key_id)
            raise KeyNotFound(f"not found: secret {name!r} has no {CURRENT} version",
                              key_id=key_id, backend=self.backend)
        return current, previous

    def _assemble(
        self, key_id: str, name: str, current: str, previous: str | None,
        downloaded: Mapping[str, Any],
    ) -> list[StoredKey]:
        """Build the versions, downloading only what is neither held nor given."""
        with self._lock:
            held = dict(self._held.get(key_id) or {})
        keep: dict[str, Any] = {}
        out: list[StoredKey] = []
        for version, required in ((current, True), (previous, False)):
            if version is None or version in keep:
                continue
            key = held.get(version)
            if key is None:
                raw = downloaded.get(version)
                if raw is None:
                    raw = self._download(key_id, name, version, required)
                    if raw is None:
                        continue
                try:
                    key = self._decode_one(key_id, raw)
                except KeyFormatError:
                    # Not held: the base class decodes it again and raises (for
                    # the current version) or skips it with a warning (previous).
                    out.append(StoredKey(raw, version))
                    continue
            keep[version] = key
            out.append(StoredKey(key, version))
        with self._lock:
            self._held = sized_like(self._held, self.cache)
            self._held[key_id] = keep
        return out

    def _download(self, key_id: str, name: str, version: str, required: bool) -> Any:
        try:
            value = self._call("GetSecretValue", key_id, name, self._client.get_secret_value,
                               SecretId=name, VersionId=version)
        except KeyResolutionError as exc:
            if required or exc.retryable:
                if isinstance(exc, KeyNotFound):
                    self._forget(key_id)
                raise
            # The previous version alone can be refused (an IAM condition on
            # secretsmanager:VersionStage) or gone; the current one still serves.
            logger.warning("tenuo_keys: skipping %s of key %r: %s", PREVIOUS, key_id, exc.reason)
            return None
        return _material(value, key_id, self.backend)

    def _batch_get(
        self, chunk: Sequence[str], names: Mapping[str, str]
    ) -> tuple[dict[str, tuple[str, Any]], dict[str, KeyResolutionError]] | None:
        """One chunk through ``BatchGetSecretValue``; None when the call is unavailable."""
        by_name = {names[key_id]: key_id for key_id in chunk}
        found: dict[str, tuple[str, Any]] = {}
        failed: dict[str, KeyResolutionError] = {}
        request: dict[str, Any] = {"SecretIdList": list(by_name)}
        while True:
            try:
                page = self._client.batch_get_secret_value(**request)
            except AttributeError:
                self._batch_unsupported("the installed botocore lacks it")
                return None
            except ClientError as exc:
                code = _code(exc)
                status = _status(exc)
                # Not offered by this endpoint, or not granted by IAM (policies
                # written before the API existed): per-key loads still work.
                denied = code in ("AccessDeniedException", "AccessDenied") or (
                    status == 403 and code not in _DENIED and code not in _UNAVAILABLE)
                if denied or code in _UNSUPPORTED \
                        or (status in (404, 501) and code != "ResourceNotFoundException"):
                    self._batch_unsupported(code or f"HTTP {status}")
                    return None
                raise self._error(exc, "BatchGetSecretValue", None, None) from None
            except BotoCoreError as exc:
                raise self._error(exc, "BatchGetSecretValue", None, None) from None
            for entry in page.get("SecretValues", []):
                key_id = by_name.get(entry.get("Name", ""))
                if key_id is None:
                    continue
                try:
                    found[key_id] = (str(entry["VersionId"]),
                                     _material(entry, key_id, self.backend))
                except KeyResolutionError as exc:
                    failed[key_id] = exc
            for error in page.get("Errors", []):
                key_id = by_name.get(error.get("SecretId", ""))
                if key_id is not None:
                    failed[key_id] = self._code_error(
                        str(error.get("ErrorCode", "")), None, "BatchGetSecretValue",
                        key_id, names[key_id], str(error.get("Message", "")),
                    )
            token = page.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
        for key_id in chunk:
            if key_id not in found and key_id not in failed:
                failed[key_id] = KeyNotFound(
                    f"not found: BatchGetSecretValue returned nothing for {names[key_id]!r}",
                    key_id=key_id, backend=self.backend,
                )
        return found, failed

    def _batch_unsupported(self, why: str) -> None:
        self._batch_ok = False
        logger.warning(
            "tenuo_keys: BatchGetSecretValue is not available on %s (%s); preloading "
            "with one load per key from now on (grant secretsmanager:BatchGetSecretValue "
            "to batch)", self._endpoint(), why,
        )

    def _parallel(
        self, fn: Callable[[str], Sequence[KeyMaterial]], key_ids: list[str]
    ) -> dict[str, Sequence[KeyMaterial] | KeyResolutionError]:
        def one(key_id: str) -> Sequence[KeyMaterial] | KeyResolutionError:
            try:
                return fn(key_id)
            except KeyResolutionError as exc:
                return exc.with_context(key_id=key_id, backend=self.backend)

        if len(key_ids) <= 1:
            return {key_id: one(key_id) for key_id in key_ids}
        workers = min(self.cache.policy.max_workers, len(key_ids))
        with ThreadPoolExecutor(workers, thread_name_prefix="tenuo-keys-awssm-preload") as pool:
            futures = {key_id: pool.submit(one, key_id) for key_id in key_ids}
        return {key_id: future.result() for key_id, future in futures.items()}

    def _take_listing(self) -> dict[str, tuple[str, str | None]]:
        with self._lock:
            listed_at, stages = self._listed
            self._listed = (-math.inf, {})
        return stages if time.monotonic() - listed_at < LISTING_FRESH else {}

    def _forget(self, key_id: str) -> None:
        with self._lock:
            self._held.pop(key_id, None)

    def _key_id_of(self, name: str) -> str | None:
        key_id = self._names.key_id_of(name)
        return key_id if key_id is not None and _ID_CHARS.fullmatch(key_id) else None

    def _call(self, op: str, key_id: str, name: str, fn: Callable[..., _T],
              **kwargs: Any) -> _T:
        try:
            return fn(**kwargs)
        except KeyResolutionError as exc:  # from the request bounds (_bound_requests)
            raise exc.with_context(key_id=key_id, backend=self.backend) from None
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, op, key_id, name) from None

    def _error(self, exc: Exception, op: str, key_id: str | None,
               name: str | None) -> KeyResolutionError:
        """Map a botocore exception; its message is never copied (see module docs)."""
        if isinstance(exc, ClientError):
            message = str(exc.response.get("Error", {}).get("Message", ""))
            return self._code_error(_code(exc), _status(exc), op, key_id, name, message)
        kind = type(exc).__name__
        if isinstance(exc, (BotoConnectionError, HTTPClientError)):
            return BackendUnavailable(
                f"backend unreachable: {kind} calling {op} at {self._endpoint()}",
                key_id=key_id, backend=self.backend,
            )
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return KeyAccessDenied(
                f"access denied: no usable AWS credentials ({kind}); set them in the "
                "environment, a profile or an instance/task role",
                key_id=key_id, backend=self.backend,
            )
        return KeyResolutionError(f"{op} failed: {kind}", key_id=key_id, backend=self.backend)

    def _code_error(self, code: str, status: int | None, op: str, key_id: str | None,
                    name: str | None, message: str) -> KeyResolutionError:
        secret = f" for secret {name!r}" if name else ""
        # Some gateways and emulators answer without a JSON error code; botocore
        # then reports the HTTP status as the code.
        label = f"HTTP {code}" if code.isdigit() else code or f"HTTP {status}"
        where = f"{label} on {op}{secret}"
        kw: dict[str, Any] = {"key_id": key_id, "backend": self.backend}
        if code == "ResourceNotFoundException":
            return KeyNotFound(f"not found: {where}", **kw)
        if code == "InvalidRequestException" and "delet" in message.lower():
            return KeyNotFound(f"not found: the secret is scheduled for deletion ({where})", **kw)
        if code == "DecryptionFailure":
            return KeyAccessDenied(
                f"access denied: Secrets Manager could not decrypt the secret with its KMS "
                f"key ({where}); allow kms:Decrypt on that key", **kw,
            )
        if code in _CREDENTIALS:
            return KeyAccessDenied(
                f"access denied: AWS rejected the credentials ({where}); check the "
                "environment, profile or role", **kw,
            )
        # An unrecognised code on HTTP 401/403 is still a refusal (some
        # gateways and emulators answer auth failures without a JSON code).
        if code in _DENIED or (code not in _UNAVAILABLE and status in (401, 403)):
            return KeyAccessDenied(
                f"access denied: {where}; the IAM policy must allow secretsmanager:{op}", **kw,
            )
        if code in _UNAVAILABLE or (status is not None and status >= 500):
            return BackendUnavailable(f"backend unreachable: {where}", **kw)
        return KeyResolutionError(f"{op} failed: {where}", **kw)

    def _endpoint(self) -> str:
        return _redact_url(str(getattr(self._client.meta, "endpoint_url", "") or ""))

    def __repr__(self) -> str:
        meta = self._client.meta
        return (
            f"AWSSecretsManagerKeyResolver(region={meta.region_name!r}, "
            f"template={self.template!r}, endpoint={self._endpoint()!r}, held={len(self.cache)})"
        )


# -- helpers ----------------------------------------------------------------


def policy_from_env(environ: Mapping[str, str] | None = None) -> CachePolicy | None:
    """The cache policy ``$SECRETS_MANAGER_TTL`` asks for, or None when unset.

    Args:
        environ: Mapping to read instead of ``os.environ``.

    Raises:
        ResolverConfigError: The value is not a positive number of seconds.
    """
    raw = (os.environ if environ is None else environ).get(TTL_ENV, "").strip()
    if not raw:
        return None
    try:
        ttl = float(raw)
    except ValueError:
        raise ResolverConfigError(f"${TTL_ENV}={raw[:32]!r} is not a number of seconds") from None
    if not (ttl > 0 and math.isfinite(ttl)):
        raise ResolverConfigError(
            f"${TTL_ENV} must be a positive number of seconds, got {raw[:32]!r} (0, the "
            "Lambda extension's 'no caching', is not supported: resolve_sync serves from memory)"
        )
    return CachePolicy(ttl=ttl)


def _parse_template(template: str) -> KeyTemplate:
    try:
        return KeyTemplate.parse(template, chars=_NAME_CHARS)
    except TemplateError as exc:
        if not exc.chars:
            raise ResolverConfigError(
                f"secret name template must contain {{key_id}} exactly once, got {template!r}"
            ) from None
        raise ResolverConfigError(
            f"secret name template {template!r} has characters AWS does not allow in "
            "secret names (letters, digits and /_+=.@- only)"
        ) from None


def _int_param(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ResolverConfigError(
            f"awssm:// parameter {name}={value!r} is not an integer"
        ) from None
    return number


def _client_or_built(
    client: Any, options: Mapping[str, Any], *, pool: int, insecure_ok: bool, backend: str,
    service: str = "secretsmanager", label: str = "Secrets Manager", scheme: str = "awssm",
) -> tuple[Any, bool]:
    """``client`` as given, else a bounded boto3 client built from ``options``.

    A built client has the transport policy checked on its endpoint and every
    request bounded (:func:`_bound_requests`).

    Args:
        client: A ready client, or None to build one.
        options: The client options (``region_name``, ``endpoint_url``,
            ``request_timeout``... as the resolver takes them); None means unset.
        pool: Connections to keep.
        insecure_ok: ``dangerously_allow_insecure_transport``.
        backend: The backend name, for errors.
        service: The boto3 service name.
        label: The service as errors name it.
        scheme: The URL scheme, for errors.

    Returns:
        The client, and whether it was built here (so is ours to close).

    Raises:
        ResolverConfigError: ``client`` with client options, a bad option, or
            a plaintext endpoint that is not loopback.
    """
    if client is not None:
        given = sorted(name for name, value in options.items() if value is not None)
        if given:
            raise ResolverConfigError(
                f"pass either client= or client options, not both (got {', '.join(given)})")
        return client, False
    connect_timeout, read_timeout = options.get("connect_timeout"), options.get("read_timeout")
    built = _build_client(
        region_name=options.get("region_name"), profile_name=options.get("profile_name"),
        endpoint_url=options.get("endpoint_url"), config=options.get("config"),
        connect_timeout=connect_timeout, read_timeout=read_timeout,
        max_attempts=options.get("max_attempts"), pool=pool, service=service, scheme=scheme)
    endpoint = str(built.meta.endpoint_url or "")
    check_transport(host=urlsplit(endpoint).hostname or "", plaintext=endpoint.startswith("http:"),
                    unverified=False, allowed=insecure_ok, what=f"{label} endpoint")
    request_timeout = options.get("request_timeout")
    if request_timeout is None:
        request_timeout = ((2.0 if connect_timeout is None else connect_timeout)
                           + (5.0 if read_timeout is None else read_timeout))
    if not (request_timeout > 0 and math.isfinite(request_timeout)):
        raise ResolverConfigError(
            f"request_timeout must be a positive number of seconds, got {request_timeout!r}")
    _bound_requests(built, total=float(request_timeout), backend=backend, service=label)
    return built, True


def _build_client(
    *, region_name: str | None, profile_name: str | None, endpoint_url: str | None,
    config: Config | None, connect_timeout: float | None, read_timeout: float | None,
    max_attempts: int | None, pool: int, service: str = "secretsmanager",
    scheme: str = "awssm",
) -> Any:
    """A boto3 client for ``service`` with our timeouts, retries and pool (shared with KMS)."""
    attempts = 3 if max_attempts is None else max_attempts
    if attempts < 1:
        raise ResolverConfigError(f"max_attempts must be >= 1, got {attempts}")
    base = Config(
        connect_timeout=2.0 if connect_timeout is None else connect_timeout,
        read_timeout=5.0 if read_timeout is None else read_timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
        max_pool_connections=max(10, pool),
        user_agent_extra="tenuo-keys",
    )
    if config is not None:
        base = base.merge(config)
    # The AWS SDKs and CLI read AWS_REGION before AWS_DEFAULT_REGION; botocore
    # reads only the latter.
    region_name = region_name or os.environ.get("AWS_REGION") or None
    try:
        session = boto3.session.Session(profile_name=profile_name, region_name=region_name)
        return session.client(service, endpoint_url=endpoint_url, config=base)  # type: ignore[call-overload]
    except ProfileNotFound as exc:
        # With no profile= the name came from $AWS_PROFILE.
        name = profile_name or exc.kwargs.get("profile")
        source = "" if profile_name else " (from $AWS_PROFILE)"
        raise ResolverConfigError(
            f"AWS profile {name!r}{source} not found in the AWS config or credentials files"
        ) from None
    except NoRegionError:
        raise ResolverConfigError(
            f"no AWS region: put it in the URL ({scheme}://us-east-1/...), pass region_name=, "
            "or set AWS_REGION (or AWS_DEFAULT_REGION)"
        ) from None
    except ValueError as exc:  # e.g. a malformed endpoint_url
        raise ResolverConfigError(f"cannot build the {service} client: {exc}") from None


def _bound_requests(client: Any, *, total: float, backend: str,
                    service: str = "Secrets Manager") -> None:
    """Give every HTTP request of ``client`` a total deadline and a response size cap.

    botocore limits each read (``read_timeout``), not the request, and reads
    any body whole. Its ``urllib3`` pool managers are made deadline-aware
    (:func:`~tenuo_keys._transport.bounded_pools`), and its HTTP session's
    ``send`` is wrapped so the body is left unread by botocore
    (``stream_output``) and read here by
    :func:`~tenuo_keys._transport.read_bounded`; the parser then finds it in
    place as the response's content.
    """
    http = client._endpoint.http_session
    send = http.send
    get_manager = http._get_connection_manager
    where = f"{service} at {_redact_url(str(client.meta.endpoint_url or ''))}"

    def bounded_manager(*args: Any, **kwargs: Any) -> Any:
        return bounded_pools(get_manager(*args, **kwargs))

    def bounded_send(request: Any) -> Any:
        with total_deadline(total, where=where, backend=backend) as deadline:
            streamed = request.stream_output
            request.stream_output = True
            response = send(request)
            if not streamed:
                response._content = read_bounded(
                    response.raw, deadline=deadline, max_bytes=MAX_RESPONSE_BYTES,
                    where=where, decode_content=False, backend=backend, budget=total)
        return response

    http._get_connection_manager = bounded_manager
    http.send = bounded_send


def _stage_ids(stages: Mapping[str, Sequence[str]]) -> tuple[str | None, str | None]:
    current = previous = None
    for version, labels in stages.items():
        if CURRENT in labels:
            current = version
        elif PREVIOUS in labels:
            previous = version
    return current, previous


def _material(value: Mapping[str, Any], key_id: str, backend: str) -> Any:
    if value.get("SecretBinary") is not None:
        return value["SecretBinary"]
    if value.get("SecretString") is not None:
        return value["SecretString"]
    raise KeyFormatError("secret version holds neither SecretBinary nor SecretString",
                         key_id=key_id, backend=backend)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<endpoint>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
