"""``VaultTransitSigner``: PoPs signed inside Vault/OpenBao Transit; the key never leaves.

A Tenuo Proof-of-Possession is a pure Ed25519 signature over the bytes
:func:`~tenuo_keys._pop.pop_message` builds, so a non-derived ``ed25519``
Transit key can sign it: ``sign_pop(signer, warrant, tool, args, ts)`` equals
``warrant.sign(key, tool, args, ts)`` byte for byte when Transit holds the same
key. Each signature is checked locally against the key version's public key
before it is returned.

Example::

    from tenuo_keys._signer import sign_pop
    from tenuo_keys.backends.vault_transit import VaultTransitSigner, create_key

    # $VAULT_ADDR and $VAULT_TOKEN, like the vault/bao CLI:
    create_key("agent1")                      # transit/keys/agent1: ed25519, non-exportable
    with VaultTransitSigner("agent1") as signer:
        warrant = Warrant.issue(keypair=root, capabilities=caps, ttl_seconds=600,
                                holder=signer.public_key)
        pop = sign_pop(signer, warrant, "read_file", {"path": "/data/x"}, int(time.time()))

    # the same as a URL, over plain HTTP to a local dev server:
    signer = VaultTransitSigner.from_url(
        "vault-transit://127.0.0.1:8200/transit/{key_id}?tls=0", key_id="agent1")
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

import hvac.exceptions
import tenuo_core
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from .._keyset import public_bytes_of
from .._template import NO_BRACES, KeyTemplate, TemplateError
from .._url import ResolverURL
from ..errors import (
    HolderMismatch,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
)
from ._remote_signer import (
    DEFAULT_TEMPLATE,
    MAX_AGE,
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
from ._vault_common import (
    TRANSIT_NAME,
    Session,
    VaultArguments,
    VaultConnection,
    check_arguments,
    clean_mount,
    summary,
    url_options,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "SCHEME",
    "TransitKeyInfo",
    "TransitVersion",
    "VaultTransitSigner",
    "create_key",
    "import_key",
    "public",
]

logger = logging.getLogger("tenuo_keys.vault_transit")

T = TypeVar("T")

BACKEND: Final = "vault-transit"
SCHEME: Final = "vault-transit"
DEFAULT_MOUNT: Final = "transit"
_POOL_SIZE: Final = 16
_SIGNATURE = re.compile(r"vault:v(\d+):([A-Za-z0-9+/=]+)")
_CLIENT_ERRORS: Final = (
    # Transit answers these caller mistakes with HTTP 500; retrying cannot help.
    "requested version for signing",
    "missing 'context'",
    "key derivation",
    "cannot be used with an existing key",
    "does not allow rotation",
    "ciphertext",
    "unsupported",
    "not supported",
)


# --------------------------------------------------------------------------- key info


@dataclass(frozen=True)
class TransitVersion:
    """One version of a Transit key: its number and raw 32-byte public key."""

    version: int
    public: bytes

    @property
    def public_key(self) -> Any:
        """The version's ``tenuo_core.PublicKey``."""
        return tenuo_core.PublicKey.from_bytes(self.public)

    def __repr__(self) -> str:
        return f"TransitVersion(version={self.version}, public={self.public.hex()[:16]}…)"


@dataclass(frozen=True)
class TransitKeyInfo:
    """What ``read_key`` says about a Transit key (public data only).

    Attributes:
        name: The Transit key name.
        latest_version: The newest version (the one that signs without a holder).
        versions: The versions Transit still signs with, newest first.
        retired: Versions Transit still holds but no longer signs with
            (below ``min_encryption_version``), newest first.
        exportable: Whether the private key can be exported.
        imported: Whether the key was imported (bring your own key).
    """

    name: str
    latest_version: int
    versions: tuple[TransitVersion, ...]
    retired: tuple[TransitVersion, ...] = ()
    exportable: bool = False
    imported: bool = False

    @property
    def current(self) -> TransitVersion:
        """The latest version."""
        return self.versions[0]

    def find(self, holder: Any) -> TransitVersion | None:
        """The signing version whose public key is ``holder``, or None."""
        raw = public_bytes_of(holder)
        return next((v for v in self.versions if v.public == raw), None)


def _parse_key(name: str, data: Any, *, allow_exportable: bool = False) -> TransitKeyInfo:
    """Check a ``read_key`` answer and keep its public keys.

    Args:
        name: The Transit key name.
        data: The answer's ``data``.
        allow_exportable: Accept a key whose private half can be exported
            (``dangerously_allow_exportable``); it is logged as a warning.

    Raises:
        ValueError: The key cannot sign Tenuo PoPs; the message says why.
    """
    if not isinstance(data, dict):
        raise ValueError(f"unexpected answer reading Transit key {name!r}")
    kind = data.get("type")
    if kind != "ed25519":
        raise ValueError(
            f"Transit key {name!r} has type {kind!r}; a Tenuo holder key must be ed25519")
    if data.get("derived"):
        raise ValueError(
            f"Transit key {name!r} is derived (derived=true): each signature would come from "
            "a per-context key, not the holder's; create the key without derived")
    if data.get("supports_signing") is False:
        raise ValueError(f"Transit key {name!r} does not support signing")
    if data.get("exportable"):
        if not allow_exportable:
            raise ValueError(
                f"Transit key {name!r} is exportable: its private key can be read out of "
                "Vault, so it is not a sealed signing key. Use a non-exportable key "
                "(create_key / import_key), or pass dangerously_allow_exportable=True "
                "(URL: ?dangerously_allow_exportable=1) to accept the risk")
        logger.warning("tenuo_keys: Transit key %r is EXPORTABLE and used for signing "
                       "(dangerously_allow_exportable is set)", name)
    keys = data.get("keys")
    if not isinstance(keys, dict) or not keys:
        raise ValueError(f"Transit key {name!r} holds no key versions")
    min_sign = int(data.get("min_encryption_version") or 0)
    usable: list[TransitVersion] = []
    retired: list[TransitVersion] = []
    for label, entry in keys.items():
        try:
            version = int(label)
            raw = base64.b64decode(entry["public_key"], validate=True)
        except (ValueError, TypeError, KeyError, binascii.Error):
            raise ValueError(
                f"Transit key {name!r} version {label!r} has no readable public key") from None
        if len(raw) != 32:
            raise ValueError(f"Transit key {name!r} version {version} has a {len(raw)}-byte "
                             "public key; expected 32")
        (usable if version >= min_sign else retired).append(TransitVersion(version, raw))
    if not usable:
        raise ValueError(f"Transit key {name!r} has no version it may sign with "
                         f"(min_encryption_version={min_sign})")
    usable.sort(key=lambda v: v.version, reverse=True)
    retired.sort(key=lambda v: v.version, reverse=True)
    latest = int(data.get("latest_version") or usable[0].version)
    return TransitKeyInfo(name=name, latest_version=latest, versions=tuple(usable),
                          retired=tuple(retired), exportable=bool(data.get("exportable")),
                          imported=bool(data.get("imported_key")))


_Snapshot = VersionSnapshot[TransitKeyInfo]


class _SharedSession(SharedClient):
    """One Vault session used by several signers; closed with the last of them."""

    def __init__(self, session: Session) -> None:
        super().__init__(BACKEND)
        self.session = session

    def close_client(self) -> None:
        """Close the session (and stop its token renewal)."""
        self.session.close()


@dataclass(frozen=True)
class _Settings:
    mount: str
    name_template: str
    refresh_interval: float
    max_age: float
    connection: VaultConnection
    allow_exportable: bool = False


# --------------------------------------------------------------------------- the signer


class VaultTransitSigner(RemoteSigner[TransitKeyInfo, _Settings, _SharedSession]):
    """Signs PoPs with a Vault/OpenBao Transit ``ed25519`` key that never leaves Vault.

    **The key.** Key id ``agent1`` names the Transit key ``name_template``
    with ``{key_id}`` replaced (default: the key id itself) under ``mount``
    (default ``transit``); a template without ``{key_id}`` names one fixed
    key. The key must be a non-derived ``ed25519`` key; the constructor reads
    it (``read_key``) and refuses anything else with
    :class:`~tenuo_keys.errors.ResolverConfigError`. Create one with
    :func:`create_key`, or bring your own with :func:`import_key`.

    **Versions.** Transit keys have versions, each with its own public key.
    A signature for a warrant is made with the version whose public key is the
    warrant's holder (``key_version=`` is pinned), so rotating the Transit key
    does not break warrants in flight. The version map is cached; an unknown
    holder re-reads it (a rotation) at most once per ``refresh_interval``
    seconds, and signing without a holder re-reads it when older than
    ``max_age``. Versions below the key's ``min_encryption_version`` no longer
    sign; a holder naming one gets ``HolderMismatch`` saying so.

    **Checks.** Every signature is verified locally against the version's
    public key before it is returned; a signature that does not verify is
    never returned (``KeyResolutionError``). Signing is pure Ed25519: never
    prehashed, no context.

    **Connection.** Authentication, TLS, namespace, timeouts and environment
    variables are exactly :class:`~tenuo_keys.backends.vault.VaultKeyResolver`'s
    (same arguments, same ``$VAULT_*`` variables, same login/renewal), over
    one ``hvac`` client; :meth:`for_key` gives a signer for another key id on
    the same client and token.

    **URL** (:meth:`from_url`)::

        vault-transit://HOST[:PORT]/MOUNT/NAME_TEMPLATE?param=value&...

    e.g. ``vault-transit://vault:8200/transit/{key_id}?auth=approle`` or
    ``vault-transit://vault:8200/transit/agent1`` (one fixed key). Parameters
    are those of ``vault://`` for the connection (``tls``, ``auth``,
    ``auth_mount``, ``role``, ``jwt_path``, ``namespace``, ``verify``,
    ``ca_cert``, ``client_cert``, ``client_key``, ``timeout``, ``renew``,
    ``dangerously_allow_insecure_transport``), plus ``mount`` (a nested
    mount), ``refresh_interval``, ``max_age``, ``lazy`` and
    ``dangerously_allow_exportable``. Secrets never go in URLs.

    Errors: 403 is ``KeyAccessDenied`` (a rejected token, or a policy without
    ``update`` on ``MOUNT/sign/NAME`` / ``read`` on ``MOUNT/keys/NAME``); a
    missing key is ``KeyNotFound``; connection failures, timeouts, 5xx and a
    sealed Vault are ``BackendUnavailable`` (retryable); Transit refusals
    that retrying cannot fix are non-retryable ``KeyResolutionError``. No
    message carries a token.

    Attributes:
        sign_calls: Transit sign requests sent (tests use it to prove that a
            replay signs nothing).
        read_calls: Transit ``read_key`` requests sent.

    Args:
        key_id: The key id.
        addr: Vault address (default ``$VAULT_ADDR``, then ``https://127.0.0.1:8200``).
        mount: The Transit mount.
        name_template: Transit key name, with at most one ``{key_id}``.
        refresh_interval: Fewest seconds between re-reads caused by an unknown holder.
        max_age: Seconds after which signing without a holder re-reads the key.
        lazy: Read the key on first use instead of in the constructor; a
            key that turns out unsuitable then fails each call with
            ``KeyResolutionError``.
        prehashed: Must stay False: a prehashed (Ed25519ph) signature is not
            a Tenuo PoP. Accepted only to refuse it clearly.
        auth: This and ``token``, ``role_id``, ``secret_id``, ``role``, ``jwt``,
            ``jwt_path``, ``auth_mount``, ``namespace``, ``verify``, ``ca_cert``,
            ``client_cert``, ``client_key``, ``timeout``, ``renew``, ``environ`` and
            ``dangerously_allow_insecure_transport``: as for
            :class:`~tenuo_keys.backends.vault.VaultKeyResolver`.
        dangerously_allow_exportable: Sign with a Transit key marked
            ``exportable`` (its private half can be read out of Vault).
            Without it such a key is refused. URL:
            ``?dangerously_allow_exportable=1``.
        connection: A settled :class:`~tenuo_keys.backends._vault_common.VaultConnection`
            (e.g. a resolver's ``connection``) to use instead of the
            connection arguments above, which must then be left unset.

    Raises:
        ResolverConfigError: Bad settings, or a key that cannot sign PoPs.
        KeyResolutionError: The key could not be read (not found, denied,
            unreachable), unless ``lazy``.
    """

    backend = BACKEND
    _KEY_KIND = "Transit key"

    def __init__(
        self,
        key_id: str,
        addr: str | None = None,
        *,
        mount: str = DEFAULT_MOUNT,
        name_template: str = DEFAULT_TEMPLATE,
        refresh_interval: float = REFRESH_INTERVAL,
        max_age: float = MAX_AGE,
        lazy: bool = False,
        prehashed: bool = False,
        dangerously_allow_exportable: bool = False,
        connection: VaultConnection | None = None,
        **connection_arguments: Unpack[VaultArguments],
    ) -> None:
        check_arguments(connection_arguments, "VaultTransitSigner")
        if prehashed:
            raise ResolverConfigError(
                "prehashed signing (Ed25519ph) cannot make a Tenuo PoP: the verifier checks "
                "pure Ed25519 over the PoP message; drop prehashed")
        check_intervals(refresh_interval, max_age)
        _check_template(name_template)
        _key_name(name_template, key_id)  # refuse a bad key id before connecting
        connection = VaultConnection.given_or_built(connection, addr, **connection_arguments)
        settings = _Settings(clean_mount(mount), name_template.strip("/"),
                             float(refresh_interval), float(max_age), connection,
                             dangerously_allow_exportable)
        shared = _SharedSession(connection.open_session(pool_size=_POOL_SIZE, backend=BACKEND))
        self._setup(key_id, settings, shared, lazy=lazy)

    def _setup(self, key_id: str, settings: _Settings, shared: _SharedSession, *,
               lazy: bool) -> None:
        self._init_versions(key_id, settings, shared)
        self.mount = settings.mount
        self.key_name = self._key_name_for(key_id)
        self.connection = settings.connection
        self.addr = settings.connection.addr
        self.namespace = settings.connection.namespace
        self.auth_method = settings.connection.credentials.method
        self.sign_calls = 0
        self.read_calls = 0
        self._load_unless_lazy(lazy)

    @classmethod
    def from_url(cls, url: str | ResolverURL, *, key_id: str | None = None,
                 **kwargs: Any) -> VaultTransitSigner:
        """Build from ``vault-transit://host:port/mount/name_template?auth=approle&...``.

        Args:
            url: The URL (see the class docstring).
            key_id: The key id; may be omitted when the template names one
                fixed key (then the key id is that name).
            **kwargs: Constructor arguments (secrets, ``environ``); naming a
                setting both here and in the URL is an error.

        Raises:
            ResolverConfigError: A malformed URL, an unknown parameter, a
                conflict, or no key id for a template with ``{key_id}``.
        """
        parsed = signer_url(url, SCHEME)
        options = url_options(parsed, "name_template", kwargs.get("environ"))
        options.update(parsed.pop_floats("refresh_interval", "max_age"))
        options.update(parsed.pop_bools("lazy", "prehashed", "dangerously_allow_exportable"))
        parsed.finish()
        key_id = url_key_id(SCHEME, options, kwargs, key_id, DEFAULT_TEMPLATE)
        return cls(key_id, **options, **kwargs)

    def _key_name_for(self, key_id: str) -> str:
        return _key_name(self._settings.name_template, key_id)

    # -- the Signer contract ------------------------------------------------------

    def sign(self, message: bytes, *, holder: Any | None = None) -> bytes:
        """Sign ``message`` in Transit with the version matching ``holder``.

        Returns:
            The 64-byte pure Ed25519 signature, verified locally.

        Raises:
            HolderMismatch: No signing version of the key is ``holder``.
            KeyResolutionError: Transit refused or was unreachable
                (``BackendUnavailable``, retryable), or its signature did not
                verify (never returned).
        """
        message = as_message(message)
        snapshot, version = self._select(holder)
        signature = self._transit_sign(message, version)
        return self._verified(
            snapshot, version, message, signature, source="Transit",
            against=f"version {version} of {self.mount}/keys/{self.key_name}")

    # -- internals -------------------------------------------------------------------

    def _select_newest(self) -> tuple[_Snapshot, int]:
        snapshot = self._current(max_age=self.max_age)
        return snapshot, snapshot.info.current.version

    def _mismatch(self, info: TransitKeyInfo, raw: bytes, *, retryable: bool) -> HolderMismatch:
        retired = next((v for v in info.retired if v.public == raw), None)
        why = None if retired is None else (
            retired.version, "no longer signs (below min_encryption_version)")
        return self._mismatch_error(raw, repr(info.name),
                                    [(v.version, v.public) for v in info.versions], "signing",
                                    why, retryable=retryable)

    def _load(self, construction: bool) -> _Snapshot:
        where = f"{self.mount}/keys/{self.key_name}"

        def read() -> Any:
            self._count("read_calls")
            return self._session.client.secrets.transit.read_key(
                name=self.key_name, mount_point=self.mount)["data"]

        data = self._call(read, what="read", where=where)
        try:
            info = _parse_key(self.key_name, data,
                              allow_exportable=self._settings.allow_exportable)
        except ValueError as exc:
            self._snapshot = None
            if construction:
                raise ResolverConfigError(f"key {self.key_id!r}: {exc}") from None
            raise KeyResolutionError(str(exc), key_id=self.key_id,
                                     backend=self.backend) from None
        previous = self._snapshot
        if previous is not None and previous.info.latest_version != info.latest_version:
            logger.info("tenuo_keys: Transit key %s is now at version %d (was %d)", where,
                        info.latest_version, previous.info.latest_version)
        return _Snapshot(info, {v.version: v.public for v in info.versions})

    def _transit_sign(self, message: bytes, version: int) -> bytes:
        where = f"{self.mount}/sign/{self.key_name}"
        encoded = base64.b64encode(message).decode("ascii")

        def sign() -> Any:
            self._count("sign_calls")
            return self._session.client.secrets.transit.sign_data(
                name=self.key_name, hash_input=encoded, key_version=version,
                mount_point=self.mount)["data"]

        try:
            data = self._call(sign, what="sign", where=where)
        except KeyResolutionError as exc:
            if not exc.retryable:
                self._snapshot = None  # the key changed under us: re-read next time
            raise
        text = data.get("signature") if isinstance(data, dict) else None
        found = _SIGNATURE.fullmatch(text) if isinstance(text, str) else None
        if found is None or int(found.group(1)) != version:
            raise KeyResolutionError(
                f"unexpected signature from {where} (wanted version {version})",
                key_id=self.key_id, backend=self.backend)
        try:
            signature = base64.b64decode(found.group(2), validate=True)
        except (ValueError, binascii.Error):
            signature = b""
        if len(signature) != 64:
            raise KeyResolutionError(
                f"{where} returned a {len(signature)}-byte signature; expected 64",
                key_id=self.key_id, backend=self.backend)
        return signature

    @property
    def _session(self) -> Session:
        return self._shared.session

    def _call(self, fn: Callable[[], T], *, what: str, where: str, admin: bool = False) -> T:
        """One Transit request through the shared session, with Transit's own error quirks."""
        self._check_open()

        def guarded() -> T:
            try:
                return fn()
            except hvac.exceptions.InternalServerError as exc:
                detail = summary(exc)
                if detail and (admin or any(text in detail for text in _CLIENT_ERRORS)):
                    raise KeyResolutionError(
                        f"Transit refused {what} on {where}: {detail}",
                        key_id=self.key_id, backend=self.backend) from None
                raise
            except hvac.exceptions.InvalidRequest as exc:
                if "key not found" in summary(exc):
                    raise KeyNotFound(f"not found: no Transit key at {where}",
                                      key_id=self.key_id, backend=self.backend) from None
                raise

        return self._session.call(guarded, key_id=self.key_id, what=what, where=where)

    def __repr__(self) -> str:
        return (
            f"VaultTransitSigner(key_id={self.key_id!r}, "
            f"key={self.mount + '/keys/' + self.key_name!r}, addr={self.addr!r}, "
            f"auth={self.auth_method!r}, namespace={self.namespace!r}"
            f"{self._settings.connection.transport_note})"
        )


# --------------------------------------------------------------------------- helpers


def _check_template(template: str) -> KeyTemplate:
    cleaned = template.strip("/")
    try:
        names = KeyTemplate.parse(cleaned, optional=True, chars=NO_BRACES)
    except TemplateError:
        names = None
    if names is None or not cleaned:
        raise ResolverConfigError(
            f"Transit name template must hold at most one '{{key_id}}' and no other braces, "
            f"got {template!r}")
    return names


def _key_name(template: str, key_id: str) -> str:
    """The Transit key name of ``key_id``; refuses ids that make an invalid name."""
    return key_name(_check_template(template), key_id, BACKEND, TRANSIT_NAME, "Transit key name",
                    "names may hold only letters, digits and '-_.'")


def _open(key_id: str, url: str | None, options: dict[str, Any]) -> VaultTransitSigner:
    if url is not None:
        return VaultTransitSigner.from_url(url, key_id=key_id, lazy=True, **options)
    return VaultTransitSigner(key_id, lazy=True, **options)


def _read_or_none(signer: VaultTransitSigner) -> TransitKeyInfo | None:
    """The key's info, None when it does not exist; refuses an unsuitable key."""
    try:
        return signer.refresh()
    except KeyNotFound:
        return None


def create_key(key_id: str, url: str | None = None, *, exist_ok: bool = False,
               **options: Any) -> TransitKeyInfo:
    """Create a non-exportable ``ed25519`` Transit key for ``key_id``.

    Args:
        key_id: The key id (mapped to a key name as the signer does).
        url: A ``vault-transit://`` URL; else ``options`` (the signer's
            constructor arguments) and the ``$VAULT_*`` environment.
        exist_ok: Accept an existing suitable key instead of failing.
        **options: Constructor arguments of :class:`VaultTransitSigner`.

    Returns:
        The key as Transit now reports it.

    Raises:
        KeyResolutionError: The key exists (without ``exist_ok``), or Vault refused.
        ResolverConfigError: Bad settings.
    """
    with _open(key_id, url, options) as signer:
        existing = _read_or_none(signer)
        if existing is not None:
            if exist_ok:
                return existing
            raise KeyResolutionError(
                f"Transit key {signer.mount}/keys/{signer.key_name} already exists "
                f"(version {existing.latest_version}); rotate it in Vault to add a version",
                key_id=key_id, backend=BACKEND)
        signer._call(
            lambda: signer._session.client.secrets.transit.create_key(
                name=signer.key_name, key_type="ed25519", exportable=False,
                allow_plaintext_backup=False, mount_point=signer.mount),
            what="create", where=f"{signer.mount}/keys/{signer.key_name}", admin=True,
        )
        info = signer.refresh()
    logger.info("tenuo_keys: created Transit key %s/keys/%s", signer.mount, signer.key_name)
    return info


def import_key(key_id: str, key: Any, url: str | None = None, *, new_version: bool = False,
               allow_rotation: bool = False, **options: Any) -> TransitKeyInfo:
    """Bring your own key: import a Tenuo ``SigningKey`` into Transit, non-exportable.

    The key is wrapped as Transit requires (an ephemeral AES-256 key wraps the
    PKCS#8 key with AES-KWP, RFC 5649; the Transit wrapping key wraps the AES
    key with RSA-OAEP SHA-256). Afterwards Transit signs a random probe and the
    signature must equal the local one byte for byte.

    Args:
        key_id: The key id (mapped to a key name as the signer does).
        key: The ``tenuo_core.SigningKey``.
        url: A ``vault-transit://`` URL; else ``options`` and the environment.
        new_version: Add the key as the next version of an existing key
            that was itself imported (Transit refuses this for keys it
            generated), instead of creating the key.
        allow_rotation: Also let Transit rotate the imported key itself
            (``rotate`` makes a version Transit generates).
        **options: Constructor arguments of :class:`VaultTransitSigner`.

    Returns:
        The key as Transit now reports it; its latest version is ``key``.

    Raises:
        KeyResolutionError: The key exists (or, with ``new_version``, does not),
            Vault refused, or the imported key signs differently.
        ResolverConfigError: Bad settings.
    """
    seed = bytes(key.secret_key_bytes())
    public_raw = bytes(key.public_key_bytes())
    with _open(key_id, url, options) as signer:
        where = f"{signer.mount}/keys/{signer.key_name}"
        existing = _read_or_none(signer)
        if existing is not None and not new_version:
            raise KeyResolutionError(
                f"Transit key {where} already exists; pass new_version=True to import the key "
                "as its next version (only for keys that were imported themselves)",
                key_id=key_id, backend=BACKEND)
        if existing is None and new_version:
            raise KeyNotFound(f"not found: no Transit key at {where} to add a version to",
                              key_id=key_id, backend=BACKEND)
        client = signer._session.client
        pem = signer._call(
            lambda: client.adapter.get(f"/v1/{signer.mount}/wrapping_key")["data"]["public_key"],
            what="read", where=f"{signer.mount}/wrapping_key",
        )
        ciphertext = _wrap(seed, pem, key_id)
        if new_version:
            path = f"{where}/import_version"
            body: dict[str, Any] = {"ciphertext": ciphertext, "hash_function": "SHA256"}
        else:
            path = f"{where}/import"
            body = {"ciphertext": ciphertext, "hash_function": "SHA256", "type": "ed25519",
                    "exportable": False, "allow_plaintext_backup": False,
                    "allow_rotation": allow_rotation}
        signer._call(lambda: client.adapter.post(f"/v1/{path}", json=body),
                     what="import", where=path, admin=True)
        info = signer.refresh()
        if info.current.public != public_raw:
            raise KeyResolutionError(
                f"after the import, the latest version of {where} is not the imported key",
                key_id=key_id, backend=BACKEND)
        probe = b"tenuo-keys transit import check " + os.urandom(16)
        remote = signer.sign(probe, holder=public_raw)
        if remote != bytes(key.sign_raw(probe)):
            raise KeyResolutionError(
                f"the key imported into {where} signs differently from the local key",
                key_id=key_id, backend=BACKEND)
    logger.info("tenuo_keys: imported a key into Transit %s (version %d)", where,
                info.latest_version)
    return info


def public(key_id: str, url: str | None = None, *, holder: Any | None = None,
           **options: Any) -> TransitVersion:
    """The public key of ``key_id``'s Transit key: the latest version, or ``holder``'s.

    Raises:
        HolderMismatch: ``holder`` is no signing version of the key.
        KeyResolutionError: The key cannot be read or cannot sign PoPs.
    """
    with _open(key_id, url, options) as signer:
        info = signer.refresh()
        if holder is None:
            return info.current
        found = info.find(holder)
        if found is None:
            raise signer._mismatch(info, public_bytes_of(holder), retryable=False)
        return found


def _wrap(seed: bytes, wrapping_pem: Any, key_id: str) -> str:
    """Transit's BYOK wrapping of an Ed25519 seed (see :func:`import_key`)."""
    try:
        wrapping_key = serialization.load_pem_public_key(str(wrapping_pem).encode())
    except (ValueError, TypeError):
        wrapping_key = None
    if not isinstance(wrapping_key, RSAPublicKey):
        raise KeyResolutionError("Transit's wrapping key is not an RSA public key",
                                 key_id=key_id, backend=BACKEND)
    der = Ed25519PrivateKey.from_private_bytes(seed).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    ephemeral = os.urandom(32)
    wrapped_key = wrapping_key.encrypt(
        ephemeral,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    return base64.b64encode(wrapped_key + aes_key_wrap_with_padding(ephemeral, der)).decode()
