"""``AWSKMSSigner``: PoPs signed inside AWS KMS; the key never leaves.

A Tenuo Proof-of-Possession is a pure Ed25519 signature over the bytes
:func:`~tenuo_keys._pop.pop_message` builds, so an AWS KMS key with key spec
``ECC_NIST_EDWARDS25519`` and usage ``SIGN_VERIFY`` can sign it with ``Sign``
(``SigningAlgorithm=ED25519_SHA_512``, ``MessageType=RAW``: pure Ed25519, not
the prehashed ``ED25519_PH_SHA_512``). Each signature is checked locally
against the key's public key before it is returned.

Example::

    # aws kms create-key --key-spec ECC_NIST_EDWARDS25519 --key-usage SIGN_VERIFY
    # aws kms create-alias --alias-name alias/tenuo-agent1 --target-key-id <KeyId>
    from tenuo_keys import sign_pop, signer_from_url

    signer = signer_from_url("awskms://us-east-1/alias/tenuo-{key_id}", key_id="agent1")
    with signer:
        warrant = Warrant.issue(keypair=root, capabilities=caps, ttl_seconds=600,
                                holder=signer.public_key)
        pop = sign_pop(signer, warrant, "read_file", {"path": "/data/x"}, int(time.time()))

Rotation. Asymmetric KMS keys do not rotate in place: rotating means creating
a new key and moving the alias (``UpdateAlias``) to it. The signer remembers
every key the alias has pointed to since it started (the newest
:data:`KEEP_KEYS`), numbered 1, 2, ... in the order it saw them: these are its
"versions". A warrant whose holder is a remembered key keeps being signed by
that key while the key is ``Enabled``; a holder it does not know makes it
read the alias again (throttled), which finds a rotation. A signer started
after the alias moved knows only the new key: keep such warrants short, or
sign with the old key through its own fixed template (its key ARN).

Calls and permissions. Reading the key is ``DescribeKey`` on the alias (and
on each remembered key) and ``GetPublicKey`` once per key (a key's public
key never changes); signing is one ``Sign``. So the signing identity needs
``kms:DescribeKey``, ``kms:GetPublicKey`` and ``kms:Sign`` on the keys (the
alias resolves to them; see ``docs/SECURITY.md`` for a least-privilege policy).

Size limit. ``Sign`` accepts at most :data:`MAX_MESSAGE_BYTES` (4096) bytes of
``RAW`` message; a PoP message over ``max_message_bytes`` is refused with
:class:`~tenuo_keys.errors.KeyResolutionError` before any call.

Errors carry the AWS error code and operation, never AWS's free-text message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import tenuo_core
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .._keyset import public_bytes_of
from .._template import KeyTemplate, TemplateError
from .._transport import INSECURE_OPT_IN
from .._url import ResolverURL
from ..errors import (
    BackendUnavailable,
    HolderMismatch,
    KeyAccessDenied,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
)
from ._remote_signer import (
    MAX_AGE,
    PLACEHOLDER,
    REFRESH_INTERVAL,
    RemoteSigner,
    SharedClient,
    VersionSnapshot,
    as_message,
    check_intervals,
    key_name,
    signer_url,
    url_key_id,
)
from .aws import (
    _CREDENTIALS,
    _DENIED,
    _REGION,
    _UNAVAILABLE,
    _client_or_built,
    _code,
    _redact_url,
    _status,
)

__all__ = [
    "DEFAULT_TEMPLATE",
    "KEEP_KEYS",
    "MAX_MESSAGE_BYTES",
    "PREVIOUS_SUFFIX",
    "SCHEME",
    "AWSKMSKeyInfo",
    "AWSKMSSigner",
    "AWSKMSVersion",
    "create_key",
    "previous_alias",
    "public",
    "raw_public_key",
    "rotate_key",
]

logger = logging.getLogger("tenuo_keys.aws_kms")

T = TypeVar("T")

BACKEND: Final = "aws-kms"
SCHEME: Final = "awskms"
KEY_SPEC: Final = "ECC_NIST_EDWARDS25519"
KEY_USAGE: Final = "SIGN_VERIFY"
ALGORITHM: Final = "ED25519_SHA_512"
DEFAULT_TEMPLATE: Final = "alias/tenuo-{key_id}"
"""The KMS key a key id names: an alias, so a rotation moves the alias."""
MAX_MESSAGE_BYTES: Final = 4096
"""Largest ``RAW`` message AWS KMS ``Sign`` accepts."""
PREVIOUS_SUFFIX: Final = "/previous"
"""Added to an alias to name the key it named before the last rotation."""
KEEP_KEYS: Final = 16
"""Most keys a signer remembers (the alias's current one and those it pointed to before)."""
_NAME = re.compile(
    r"alias/[A-Za-z0-9/_-]{1,250}"                              # alias name
    r"|arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(alias/[A-Za-z0-9/_-]{1,250}|key/[A-Za-z0-9-]{1,64})"
    r"|(mrk-)?[0-9a-fA-F-]{32,40}")                             # key id
_NAME_CHARS = re.compile(r"[A-Za-z0-9/_:-]*")
_GONE: Final = frozenset({"DisabledException", "KMSInvalidStateException", "NotFoundException"})
"""Sign answers meaning the key no longer signs (disabled, pending deletion, deleted)."""
_KMS_UNAVAILABLE: Final = frozenset({
    "KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException",
    "LimitExceededException", "CloudHsmClusterNotActiveException",
    "CustomKeyStoreInvalidStateException", "XksProxyUriUnreachableException",
})


# --------------------------------------------------------------------------- key info


@dataclass(frozen=True)
class AWSKMSVersion:
    """One KMS key the alias points or pointed to.

    Attributes:
        number: The signer's number for it (1 for the first key it saw).
        key_arn: The key ARN.
        state: ``Enabled``, ``Disabled``, ``PendingDeletion``,
            ``PendingImport``, ``Deleted`` (no longer found)...
        public: The raw 32-byte Ed25519 public key, or None when never read.
    """

    number: int
    key_arn: str
    state: str
    public: bytes | None

    @property
    def signs(self) -> bool:
        """True when this key can sign PoPs now."""
        return self.state == "Enabled" and self.public is not None

    @property
    def public_key(self) -> Any:
        """The key's ``tenuo_core.PublicKey`` (None when unknown)."""
        return None if self.public is None else tenuo_core.PublicKey.from_bytes(self.public)

    def __repr__(self) -> str:
        public = "?" if self.public is None else self.public.hex()[:16] + "…"
        return (f"AWSKMSVersion(number={self.number}, key_arn={self.key_arn!r}, "
                f"state={self.state}, public={public})")


@dataclass(frozen=True)
class AWSKMSKeyInfo:
    """What AWS KMS says about a key id's key (public data only).

    Attributes:
        name: The alias (or key id / ARN) the template gives.
        target: The key ARN it names now.
        versions: Every remembered key, newest first.
    """

    name: str
    target: str
    versions: tuple[AWSKMSVersion, ...]

    @property
    def signing(self) -> tuple[AWSKMSVersion, ...]:
        """The keys that sign PoPs now, newest first."""
        return tuple(v for v in self.versions if v.signs)

    @property
    def current(self) -> AWSKMSVersion | None:
        """The key ``name`` points to, when it signs (used when no holder is named)."""
        return next((v for v in self.signing if v.key_arn == self.target), None)

    def find(self, holder: Any) -> AWSKMSVersion | None:
        """The remembered key (of any state) whose public key is ``holder``, or None."""
        raw = public_bytes_of(holder)
        return next((v for v in self.versions if v.public == raw), None)


_Snapshot = VersionSnapshot[AWSKMSKeyInfo]


class _SharedClient(SharedClient):
    """One boto3 ``kms`` client used by several signers (boto3 clients are thread-safe)."""

    def __init__(self, client: Any, owned: bool) -> None:
        super().__init__(BACKEND)
        self.client = client
        self.owned = owned
        self.endpoint = _redact_url(str(getattr(client.meta, "endpoint_url", "") or ""))

    def close_client(self) -> None:
        """Close the client's connections, unless it was injected."""
        if self.owned:
            self.client.close()


@dataclass(frozen=True)
class _Settings:
    name_template: str
    refresh_interval: float
    max_age: float
    max_message_bytes: int


# --------------------------------------------------------------------------- the signer


class AWSKMSSigner(RemoteSigner[AWSKMSKeyInfo, _Settings, _SharedClient]):
    """Signs PoPs with an AWS KMS ``ECC_NIST_EDWARDS25519`` key that never leaves KMS.

    **The key.** Key id ``agent1`` names the KMS key ``name_template`` with
    ``{key_id}`` replaced: by default the alias ``alias/tenuo-agent1``. A
    template without ``{key_id}`` names one fixed key (an alias, key id or
    ARN). The constructor reads the key and refuses, with
    ``ResolverConfigError``, one whose key spec is not
    ``ECC_NIST_EDWARDS25519`` or whose usage is not ``SIGN_VERIFY``.

    **Rotation** moves the alias to a new key; see the module docstring. A
    signature for a warrant is made by the remembered key whose public key is
    the warrant's holder; without a holder, by the key the alias names (read
    again when older than ``max_age``). A holder whose key was disabled or
    scheduled for deletion gets ``HolderMismatch`` saying so.

    **Checks.** Every signature is verified locally against the key's public
    key before it is returned; one that does not verify is never returned
    (``KeyResolutionError``). ``Sign``'s answer must name the key asked for
    and ``ED25519_SHA_512``.

    **Client.** One boto3 ``kms`` client (the standard AWS credential chain),
    with the Secrets Manager resolver's timeouts, retries (``standard``
    mode), response size cap and total request deadline; shared with every
    :meth:`for_key` sibling and closed with the last of them unless injected
    with ``client=``. A plaintext ``http://`` endpoint off loopback is refused
    unless ``dangerously_allow_insecure_transport``.

    **URL** (:meth:`from_url`)::

        awskms://REGION/NAME_TEMPLATE?param=value&...

    e.g. ``awskms://us-east-1/alias/tenuo-{key_id}``. Parameters:
    ``endpoint_url``, ``profile``, ``connect_timeout``, ``read_timeout``,
    ``request_timeout``, ``max_attempts``, ``refresh_interval``, ``max_age``,
    ``max_message_bytes``, ``lazy``, ``dangerously_allow_insecure_transport``.
    Credentials never go in URLs.

    Errors: ``NotFoundException`` is ``KeyNotFound``; ``AccessDeniedException``
    and rejected credentials are ``KeyAccessDenied``; throttling,
    ``KMSInternalException``, ``DependencyTimeoutException``, ``5xx`` and
    connection failures are ``BackendUnavailable`` (retryable); a key that no
    longer signs is ``HolderMismatch`` when a holder was named, else
    ``KeyNotFound``; other refusals are non-retryable ``KeyResolutionError``.

    Attributes:
        sign_calls: ``Sign`` requests sent (tests use it to prove that a
            replay or a refused message signs nothing).
        describe_calls: ``DescribeKey`` requests sent.
        public_key_calls: ``GetPublicKey`` requests sent.

    Args:
        key_id: The key id.
        name_template: The KMS key (alias, key id or ARN) with at most one ``{key_id}``.
        region_name: AWS region (default: the AWS chain, e.g. ``AWS_REGION``).
        profile_name: Shared-config profile.
        endpoint_url: Another endpoint (VPC endpoint, a test server).
        client: A boto3 ``kms`` client to use (never closed by us); excludes
            the client options.
        config: A ``botocore.config.Config`` merged over the defaults.
        connect_timeout, read_timeout, request_timeout, max_attempts: As for
            :class:`~tenuo_keys.backends.aws.AWSSecretsManagerKeyResolver`.
        refresh_interval: Fewest seconds between re-reads caused by an unknown holder.
        max_age: Seconds after which signing without a holder re-reads the alias.
        max_message_bytes: Largest message sent to ``Sign`` (at most 4096).
        lazy: Read the key on first use instead of in the constructor.
        dangerously_allow_insecure_transport: Allow a plaintext endpoint off loopback.

    Raises:
        ResolverConfigError: Bad settings, or a key that cannot sign PoPs.
        KeyResolutionError: The key could not be read (not found, denied,
            unreachable), unless ``lazy``.
    """

    backend = BACKEND
    _KEY_KIND = "KMS key"

    def __init__(
        self,
        key_id: str,
        name_template: str = DEFAULT_TEMPLATE,
        *,
        region_name: str | None = None,
        profile_name: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
        config: Config | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        request_timeout: float | None = None,
        max_attempts: int | None = None,
        refresh_interval: float = REFRESH_INTERVAL,
        max_age: float = MAX_AGE,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        lazy: bool = False,
        dangerously_allow_insecure_transport: bool = False,
    ) -> None:
        _check_template(name_template)
        _key_name(name_template, key_id)  # refuse a bad key id before connecting
        check_intervals(refresh_interval, max_age)
        if isinstance(max_message_bytes, bool) or not isinstance(max_message_bytes, int) \
                or not 0 < max_message_bytes <= MAX_MESSAGE_BYTES:
            raise ResolverConfigError(
                f"max_message_bytes must be an integer from 1 to {MAX_MESSAGE_BYTES} (the "
                f"most AWS KMS Sign accepts), got {max_message_bytes!r}")
        if region_name is not None and not _REGION.fullmatch(region_name):
            raise ResolverConfigError(
                f"region_name must be an AWS region such as us-east-1, got {region_name!r}")
        options = {"region_name": region_name, "profile_name": profile_name,
                   "endpoint_url": endpoint_url, "config": config,
                   "connect_timeout": connect_timeout, "read_timeout": read_timeout,
                   "request_timeout": request_timeout, "max_attempts": max_attempts}
        built, owned = _client_or_built(client, options, pool=10,
                                       insecure_ok=dangerously_allow_insecure_transport,
                                       backend=BACKEND, service="kms", label="AWS KMS",
                                       scheme=SCHEME)
        shared = _SharedClient(built, owned=owned)
        settings = _Settings(name_template, float(refresh_interval), float(max_age),
                             max_message_bytes)
        self._setup(key_id, settings, shared, lazy=lazy)

    def _setup(self, key_id: str, settings: _Settings, shared: _SharedClient, *,
               lazy: bool) -> None:
        self._init_versions(key_id, settings, shared)
        self.key_name = self._key_name_for(key_id)
        self.endpoint = shared.endpoint
        self.max_message_bytes = settings.max_message_bytes
        self._numbers: dict[str, int] = {}  # key ARN -> our number, in the order seen
        self._publics: dict[str, bytes] = {}  # key ARN -> raw public key (immutable)
        self.sign_calls = 0
        self.describe_calls = 0
        self.public_key_calls = 0
        self._load_unless_lazy(lazy)

    @classmethod
    def from_url(cls, url: str | ResolverURL, *, key_id: str | None = None,
                 **kwargs: Any) -> AWSKMSSigner:
        """Build from ``awskms://REGION/NAME_TEMPLATE?endpoint_url=...``.

        The host is the region (empty: the AWS chain decides); the path is the
        name template (default :data:`DEFAULT_TEMPLATE`).

        Args:
            url: The URL (see the class docstring).
            key_id: The key id; may be omitted when the template names one fixed key.
            **kwargs: Constructor arguments (``client``, ``config``); naming a
                setting both here and in the URL is an error.

        Raises:
            ResolverConfigError: A malformed URL, an unknown parameter, a
                conflict, or no key id for a template with ``{key_id}``.
        """
        parsed = signer_url(url, SCHEME)
        if parsed.port is not None or parsed.username is not None:
            raise ResolverConfigError(
                f"{SCHEME}:// URLs look like {SCHEME}://REGION/alias/tenuo-{{key_id}}: the "
                "host is an AWS region, with no port or user; pass an endpoint as "
                "?endpoint_url= (credentials come from the AWS environment, profile or role)")
        options: dict[str, Any] = {}
        if parsed.host:
            if not _REGION.fullmatch(parsed.host):
                raise ResolverConfigError(
                    f"{SCHEME}:// host must be an AWS region such as us-east-1, got "
                    f"{parsed.host!r}; pass an endpoint as ?endpoint_url=")
            options["region_name"] = parsed.host
        if parsed.relative_path:
            options["name_template"] = parsed.relative_path
        for param, name in (("endpoint_url", "endpoint_url"), ("profile", "profile_name")):
            value = parsed.pop_optional(param)
            if value is not None:
                options[name] = value
        for flag in ("lazy", INSECURE_OPT_IN):
            if parsed.pop_bool(flag, False):
                options[flag] = True
        options.update(parsed.pop_floats("connect_timeout", "read_timeout", "request_timeout",
                                         "refresh_interval", "max_age"))
        for name in ("max_attempts", "max_message_bytes"):
            number = parsed.pop_int(name, 0)
            if number:
                options[name] = number
        parsed.finish()
        key_id = url_key_id(SCHEME, options, kwargs, key_id, DEFAULT_TEMPLATE)
        return cls(key_id, **options, **kwargs)

    def _key_name_for(self, key_id: str) -> str:
        return _key_name(self._settings.name_template, key_id)

    # -- the Signer contract ------------------------------------------------------

    def sign(self, message: bytes, *, holder: Any | None = None) -> bytes:
        """Sign ``message`` in AWS KMS with the key matching ``holder``.

        Returns:
            The 64-byte pure Ed25519 signature, verified locally.

        Raises:
            TypeError: ``message`` is not bytes.
            KeyResolutionError: The message is over ``max_message_bytes`` (no
                call is made), KMS refused or was unreachable
                (``BackendUnavailable``, retryable), or the answer was wrong
                or did not verify (never returned).
            HolderMismatch: No remembered key that signs is ``holder``.
        """
        message = as_message(message)
        if len(message) > self.max_message_bytes:
            raise KeyResolutionError(
                f"the message to sign is {len(message)} bytes; AWS KMS Sign accepts at most "
                f"{self.max_message_bytes} (max_message_bytes), so it was not sent. A PoP "
                "message grows with the tool arguments: pass large values by reference",
                key_id=self.key_id, backend=self.backend)
        snapshot, number = self._select(holder)
        version = _version(snapshot, number)
        try:
            signature = self._kms_sign(message, version)
        except _NoLongerSigns as exc:
            self._snapshot = None
            if holder is not None:
                raise HolderMismatch(
                    f"holder mismatch: KMS key {version.key_arn} (number {version.number} of "
                    f"{self.key_name}), the warrant holder's, no longer signs ({exc.code})",
                    key_id=self.key_id, backend=self.backend) from None
            snapshot, number = self._select_newest()  # the alias may have moved
            version = _version(snapshot, number)
            try:
                signature = self._kms_sign(message, version)
            except _NoLongerSigns as again:
                self._snapshot = None
                raise KeyNotFound(
                    f"not found: KMS key {version.key_arn} ({self.key_name}) does not sign "
                    f"({again.code})", key_id=self.key_id, backend=self.backend) from None
        return self._verified(snapshot, version.number, message, signature, source="AWS KMS",
                              against=f"the public key of {version.key_arn}")

    # -- selection -------------------------------------------------------------------

    def _select_newest(self) -> tuple[_Snapshot, int]:
        snapshot = self._current(max_age=self.max_age)
        if snapshot.info.current is None:
            # Disabled or still pending import when last read: look again (throttled).
            snapshot, _ = self._refresh_on_miss(lambda s: s.info.current is not None)
        current = snapshot.info.current
        if current is None:
            raise self._none_enabled(snapshot.info)
        return snapshot, current.number

    def _mismatch(self, info: AWSKMSKeyInfo, raw: bytes, *, retryable: bool) -> HolderMismatch:
        known = next((v for v in info.versions if v.public == raw), None)
        why = None if known is None else (
            known.number, f"is {known.state} (AWS KMS signs only with Enabled keys)")
        return self._mismatch_error(raw, info.name, [(v.number, v.public) for v in info.signing],
                                    "Enabled", why, retryable=retryable)

    def _none_enabled(self, info: AWSKMSKeyInfo) -> KeyNotFound:
        state = next((v.state for v in info.versions if v.key_arn == info.target), "unknown")
        return KeyNotFound(
            f"not found: {info.name} names KMS key {info.target}, which does not sign "
            f"(KeyState {state}; AWS KMS signs only with Enabled keys)",
            key_id=self.key_id, backend=self.backend, retryable=state == "PendingImport")

    # -- reading the key -------------------------------------------------------------

    def _load(self, construction: bool) -> _Snapshot:
        meta = self._describe(self.key_name)
        problem = _unsuitable(meta, self.key_name)
        if problem is not None:
            if construction:
                raise ResolverConfigError(f"key {self.key_id!r}: {problem}")
            raise KeyResolutionError(problem, key_id=self.key_id, backend=self.backend)
        target = str(meta.get("Arn") or "")
        states = {target: str(meta.get("KeyState") or "")}
        previous_alias = self.previous_alias
        if previous_alias is not None:
            try:
                before = self._describe(previous_alias)
            except KeyNotFound:
                before = None
            if before is not None and _unsuitable(before, previous_alias) is None:
                states.setdefault(str(before["Arn"]), str(before.get("KeyState") or ""))
        held = self._snapshot
        # Number the keys in the order they served: the previous alias's before the current.
        for arn in reversed(list(states)):
            if arn not in self._numbers:
                self._numbers[arn] = max(self._numbers.values(), default=0) + 1
        if held is not None and held.info.target != target:
            logger.info("tenuo_keys: %s now names KMS key %s (was %s)", self.key_name, target,
                        held.info.target)
        for arn in sorted(self._numbers, key=self._numbers.__getitem__, reverse=True):
            if arn in states:
                continue
            if len(states) >= KEEP_KEYS:
                del self._numbers[arn]  # forget the oldest beyond KEEP_KEYS
                self._publics.pop(arn, None)
                continue
            try:
                states[arn] = str(self._describe(arn).get("KeyState") or "")
            except KeyNotFound:
                states[arn] = "Deleted"
        listed: list[AWSKMSVersion] = []
        for arn, state in states.items():
            public = self._publics.get(arn)
            if public is None and state == "Enabled":
                public = self._read_public(arn)
            listed.append(AWSKMSVersion(self._numbers[arn], arn, state, public))
        listed.sort(key=lambda v: v.number, reverse=True)
        info = AWSKMSKeyInfo(self.key_name, target, tuple(listed))
        return _Snapshot(info, {v.number: v.public for v in info.signing
                                if v.public is not None})

    @property
    def previous_alias(self) -> str | None:
        """The alias that names the key before the last rotation (None without an alias)."""
        return previous_alias(self.key_name)

    def _describe(self, name: str) -> dict[str, Any]:
        self._count("describe_calls")
        answer = self._call("DescribeKey", name, lambda c: c.describe_key(KeyId=name))
        meta = answer.get("KeyMetadata") if isinstance(answer, dict) else None
        if not isinstance(meta, dict) or not meta.get("Arn"):
            raise KeyResolutionError(f"unexpected DescribeKey answer for {name}",
                                     key_id=self.key_id, backend=self.backend)
        return meta

    def _read_public(self, arn: str) -> bytes | None:
        """The raw public key of ``arn``; None if it stopped being Enabled meanwhile."""
        self._count("public_key_calls")
        try:
            answer = self._call("GetPublicKey", arn, lambda c: c.get_public_key(KeyId=arn),
                                passthrough=True)
        except ClientError as exc:
            if _code(exc) in _GONE:
                return None
            raise self._error(exc, "GetPublicKey", arn) from None
        try:
            raw = raw_public_key(answer.get("PublicKey"))
            if answer.get("KeyId") not in (None, arn):
                raise ValueError(f"GetPublicKey for {arn} answered for {answer.get('KeyId')}")
            if ALGORITHM not in (answer.get("SigningAlgorithms") or [ALGORITHM]):
                raise ValueError(f"the public key of {arn} does not sign with {ALGORITHM}")
        except ValueError as exc:
            raise KeyResolutionError(str(exc), key_id=self.key_id,
                                     backend=self.backend) from None
        self._publics[arn] = raw
        return raw

    # -- signing ----------------------------------------------------------------------

    def _kms_sign(self, message: bytes, version: AWSKMSVersion) -> bytes:
        self._count("sign_calls")
        arn = version.key_arn
        try:
            answer = self._call(
                "Sign", arn, lambda c: c.sign(KeyId=arn, Message=message, MessageType="RAW",
                                              SigningAlgorithm=ALGORITHM), passthrough=True)
        except ClientError as exc:
            if _code(exc) in _GONE:
                raise _NoLongerSigns(_code(exc)) from None
            raise self._error(exc, "Sign", arn) from None
        signature = answer.get("Signature")
        problem = None
        if answer.get("KeyId") != arn:
            problem = (f"AWS KMS signed with {answer.get('KeyId') or 'an unnamed key'} when "
                       f"asked for {arn}; the signature was discarded")
        elif answer.get("SigningAlgorithm") != ALGORITHM:
            problem = (f"AWS KMS signed with {answer.get('SigningAlgorithm')!r}, not "
                       f"{ALGORITHM}; the signature was discarded")
        elif not isinstance(signature, bytes) or len(signature) != 64:
            size = len(signature) if isinstance(signature, bytes) else 0
            problem = f"{arn} returned a {size}-byte signature; expected 64"
        if problem is not None:
            self._snapshot = None
            raise KeyResolutionError(problem, key_id=self.key_id, backend=self.backend)
        assert isinstance(signature, bytes)
        return signature

    # -- plumbing ----------------------------------------------------------------------

    def _call(self, op: str, name: str, fn: Callable[[Any], T], *,
              passthrough: bool = False) -> T:
        """One KMS call on the shared client, with our error mapping.

        Args:
            op: The operation, for errors.
            name: The key it is about, for errors.
            fn: The call, given the client.
            passthrough: Let ``ClientError`` through for the caller to map.
        """
        self._check_open()
        try:
            return fn(self._shared.client)
        except (ClientError, BotoCoreError, KeyResolutionError) as exc:
            # KeyResolutionError: the request bounds (deadline, size cap).
            if self._closed:
                raise self._closed_error() from None
            if passthrough and isinstance(exc, ClientError):
                raise
            raise self._error(exc, op, name) from None

    def _error(self, exc: BaseException, op: str, name: str) -> KeyResolutionError:
        return map_error(exc, op=op, name=name, key_id=self.key_id, endpoint=self.endpoint)

    def __repr__(self) -> str:
        return (f"AWSKMSSigner(key_id={self.key_id!r}, key={self.key_name!r}, "
                f"endpoint={self.endpoint!r})")


class _NoLongerSigns(Exception):
    """Sign said the key is disabled, pending deletion or gone."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# --------------------------------------------------------------------------- helpers


def map_error(exc: BaseException, *, op: str, name: str, key_id: str | None,
              endpoint: str = "") -> KeyResolutionError:
    """Turn a botocore exception from KMS into our error types.

    AWS's free-text message is never copied (it may echo request parameters).

    Args:
        exc: What boto3 raised (or the request bounds' ``KeyResolutionError``).
        op: The KMS operation (``"Sign"``).
        name: The key it was about.
        key_id: The key id, for the error.
        endpoint: The endpoint, for connection errors.
    """
    kw: dict[str, Any] = {"key_id": key_id, "backend": BACKEND}
    if isinstance(exc, KeyResolutionError):
        return exc.with_context(key_id=key_id, backend=BACKEND)
    if isinstance(exc, ClientError):
        code, status = _code(exc), _status(exc)
        label = f"HTTP {code}" if code.isdigit() else code or f"HTTP {status}"
        where = f"{label} on {op} for {name}"
        if code == "NotFoundException":
            return KeyNotFound(f"not found: {where}", **kw)
        if code in ("DisabledException", "KMSInvalidStateException"):
            return KeyNotFound(f"not found: the KMS key is not Enabled ({where})", **kw)
        if code in _CREDENTIALS:
            return KeyAccessDenied(f"access denied: AWS rejected the credentials ({where}); "
                                   "check the environment, profile or role", **kw)
        unavailable = code in _UNAVAILABLE or code in _KMS_UNAVAILABLE
        if code in _DENIED or (not unavailable and status in (401, 403)):
            return KeyAccessDenied(
                f"access denied: {where}; the key policy or IAM policy must allow kms:{op}",
                **kw)
        if unavailable or (status is not None and status >= 500):
            return BackendUnavailable(f"backend unreachable: {where}", **kw)
        return KeyResolutionError(f"{op} failed: {where}", retryable=False, **kw)
    kind = type(exc).__name__
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return BackendUnavailable(f"backend unreachable: {kind} calling {op} at {endpoint}",
                                  **kw)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return KeyAccessDenied(
            f"access denied: no usable AWS credentials ({kind}); set them in the environment, "
            "a profile or an instance/task role", **kw)
    return KeyResolutionError(f"{op} failed: {kind}", retryable=False, **kw)


def raw_public_key(der: Any) -> bytes:
    """The raw 32-byte Ed25519 public key in a DER SubjectPublicKeyInfo (``GetPublicKey``).

    Raises:
        ValueError: It is not an Ed25519 SubjectPublicKeyInfo.
    """
    if not isinstance(der, (bytes, bytearray)):
        raise ValueError("GetPublicKey returned no PublicKey")
    try:
        key = serialization.load_der_public_key(bytes(der))
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the KMS public key is not an Ed25519 SubjectPublicKeyInfo "
                         f"(key spec {KEY_SPEC})")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _unsuitable(meta: dict[str, Any], name: str) -> str | None:
    """Why the key ``DescribeKey`` described cannot sign PoPs, or None."""
    spec = meta.get("KeySpec") or meta.get("CustomerMasterKeySpec")
    usage = meta.get("KeyUsage")
    if spec != KEY_SPEC or usage != KEY_USAGE:
        return (f"{name} is a {spec} {usage} KMS key; a Tenuo holder key needs key spec "
                f"{KEY_SPEC} with key usage {KEY_USAGE} (a PoP is a pure Ed25519 signature)")
    return None


def previous_alias(name: str) -> str | None:
    """The alias naming the key ``name`` named before its last rotation, or None.

    Rotation (:func:`rotate_key`) moves ``alias/X/previous`` to the key that
    ``alias/X`` named, then ``alias/X`` to the new key; a signer started after
    a rotation thus still finds the previous key for warrants in flight.
    """
    return name + PREVIOUS_SUFFIX if name.startswith("alias/") else None


def _version(snapshot: _Snapshot, number: int) -> AWSKMSVersion:
    return next(v for v in snapshot.info.signing if v.number == number)


def _check_template(template: str) -> KeyTemplate:
    try:
        return KeyTemplate.parse(template, optional=True, chars=_NAME_CHARS)
    except TemplateError:
        raise ResolverConfigError(
            f"KMS key name template must hold at most one '{PLACEHOLDER}' and otherwise only "
            f"letters, digits and '/_:-' (e.g. {DEFAULT_TEMPLATE}), got {template!r}") from None


def _key_name(template: str, key_id: str) -> str:
    """The KMS key (alias) of ``key_id``; refuses ids that make an invalid one."""
    name = key_name(_check_template(template), key_id, BACKEND, _NAME, "KMS key name",
                    "it must be alias/NAME (letters, digits, '/_-'), a key id or a key ARN")
    if name.startswith("alias/") and name.endswith(PREVIOUS_SUFFIX):
        raise ResolverConfigError(
            f"key id {key_id!r} gives the alias {name!r}, which ends with {PREVIOUS_SUFFIX!r}: "
            "that names the key before a rotation of another key id")
    return name


# --------------------------------------------------------------------------- tools


def create_key(key_id: str, url: str | None = None, *, exist_ok: bool = False,
               **options: Any) -> AWSKMSKeyInfo:
    """Create an ``ECC_NIST_EDWARDS25519`` KMS key and point ``key_id``'s alias at it.

    Args:
        key_id: The key id; its template must give an alias (``alias/...``).
        url: An ``awskms://`` URL; else ``options`` and the AWS environment.
        exist_ok: Accept an existing suitable key instead of failing.
        **options: Constructor arguments of :class:`AWSKMSSigner`.

    Returns:
        The key as AWS KMS now reports it.

    Raises:
        KeyResolutionError: The alias exists (without ``exist_ok``), or KMS refused.
        ResolverConfigError: Bad settings, or a template that names no alias.
    """
    with _open(key_id, url, options) as signer:
        _alias_only(signer, "create")
        try:
            existing: AWSKMSKeyInfo | None = signer.refresh()
        except KeyNotFound:
            existing = None
        if existing is not None:
            if exist_ok:
                return existing
            raise KeyResolutionError(
                f"{signer.key_name} already names KMS key {existing.target}; to rotate, "
                "create a key and move the alias (aws kms update-alias)",
                key_id=key_id, backend=BACKEND)
        arn = _new_key(signer, key_id)
        signer._call("CreateAlias", signer.key_name, lambda c: c.create_alias(
            AliasName=signer.key_name, TargetKeyId=arn))
        info = signer.refresh()
    logger.info("tenuo_keys: created KMS key %s as %s", arn, signer.key_name)
    return info


def rotate_key(key_id: str, url: str | None = None, **options: Any) -> AWSKMSKeyInfo:
    """Rotate ``key_id``: a new KMS key, its alias moved there, the old key kept as previous.

    ``alias/X/previous`` is pointed at the key ``alias/X`` named (created if
    absent), then ``alias/X`` at a new ``ECC_NIST_EDWARDS25519`` key. Warrants
    for the old key keep signing until it is disabled or scheduled for deletion.

    Raises:
        KeyResolutionError: The key cannot be read, or KMS refused.
        ResolverConfigError: Bad settings, or a template that names no alias.
    """
    with _open(key_id, url, options) as signer:
        previous = _alias_only(signer, "rotate")
        old = signer.refresh().target
        try:
            signer._describe(previous)
            signer._call("UpdateAlias", previous, lambda c: c.update_alias(
                AliasName=previous, TargetKeyId=old))
        except KeyNotFound:
            signer._call("CreateAlias", previous, lambda c: c.create_alias(
                AliasName=previous, TargetKeyId=old))
        arn = _new_key(signer, key_id)
        signer._call("UpdateAlias", signer.key_name, lambda c: c.update_alias(
            AliasName=signer.key_name, TargetKeyId=arn))
        info = signer.refresh()
    logger.info("tenuo_keys: rotated %s to KMS key %s (previous: %s)", signer.key_name, arn, old)
    return info


def _alias_only(signer: AWSKMSSigner, what: str) -> str:
    """The previous alias of ``signer``'s alias; refuses a template that names no alias."""
    previous = signer.previous_alias
    if previous is None:
        raise ResolverConfigError(
            f"{what} needs a template that gives an alias (alias/...), not {signer.key_name!r}")
    return previous


def _new_key(signer: AWSKMSSigner, key_id: str) -> str:
    made = signer._call("CreateKey", signer.key_name, lambda c: c.create_key(
        KeySpec=KEY_SPEC, KeyUsage=KEY_USAGE, Description=f"tenuo-keys holder key {key_id}"))
    return str(made["KeyMetadata"]["Arn"])


def public(key_id: str, url: str | None = None, *, holder: Any | None = None,
           **options: Any) -> AWSKMSVersion:
    """The public key of ``key_id``'s KMS key: the one its alias names, or ``holder``'s.

    Raises:
        HolderMismatch: ``holder`` is not the key the alias names.
        KeyResolutionError: The key cannot be read or cannot sign PoPs.
    """
    with _open(key_id, url, options) as signer:
        info = signer.refresh()
        found = info.current if holder is None else info.find(holder)
        if found is None and holder is not None:
            raise signer._mismatch(info, public_bytes_of(holder), retryable=False)
        if found is None:
            raise signer._none_enabled(info)
        return found


def _open(key_id: str, url: str | None, options: dict[str, Any]) -> AWSKMSSigner:
    if url is not None:
        return AWSKMSSigner.from_url(url, key_id=key_id, lazy=True, **options)
    return AWSKMSSigner(key_id, lazy=True, **options)
