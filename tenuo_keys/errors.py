"""The error hierarchy of ``tenuo_keys``.

Every failure to produce a key is a :class:`KeyResolutionError` carrying
structured fields (``key_id``, ``backend``, ``retryable``, ``reason``), so a
caller can branch on the type or on the fields without parsing messages.
Messages say *why* ("not found", "access denied", "backend unreachable",
"expected 32 bytes, got 31") and never contain key material: format errors are
raised without a chained cause, because third-party decoders may echo their
input.

Configuration mistakes (a bad URL, an unknown scheme, a missing extra) are
:class:`ResolverConfigError`, also a ``ValueError``. Both share the root
:class:`TenuoKeysError`.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "HolderMismatch",
    "KeyAccessDenied",
    "KeyFormatError",
    "KeyNotFound",
    "KeyNotLoaded",
    "KeyResolutionError",
    "MissingExtraAttributeError",
    "MissingExtraError",
    "ResolverClosed",
    "ResolverConfigError",
    "TenuoKeysError",
]


class TenuoKeysError(Exception):
    """Root of every error raised by ``tenuo_keys``."""


class KeyResolutionError(TenuoKeysError):
    """A key could not be produced.

    Attributes:
        key_id: The key id that was asked for (an identifier, never material).
        backend: Which resolver answered, e.g. ``"env"``, ``"vault"``.
        retryable: True when the same call may succeed later (outage, key still
            loading); False when retrying cannot help (not found, denied, bad data).
        reason: The short human reason, without the key id and backend prefix.
    """

    default_reason = "key resolution failed"
    default_retryable = False

    def __init__(
        self,
        reason: str | None = None,
        *,
        key_id: str | None = None,
        backend: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.reason = reason or self.default_reason
        self.key_id = key_id
        self.backend = backend
        self.retryable = self.default_retryable if retryable is None else retryable
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.backend:
            where.append(f"backend {self.backend!r}")
        if self.key_id is not None:
            where.append(f"key {self.key_id!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reason={self.reason!r}, key_id={self.key_id!r}, "
            f"backend={self.backend!r}, retryable={self.retryable!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the structured fields across pickling (process pools, Temporal failure
        # converters that pickle): the default would pass the formatted message as reason.
        return (
            _rebuild,
            (type(self), self.reason, self.key_id, self.backend, self.retryable),
        )

    def with_context(
        self, *, key_id: str | None = None, backend: str | None = None
    ) -> KeyResolutionError:
        """Return a copy of this error with missing ``key_id``/``backend`` filled in.

        Args:
            key_id: Key id to set when the error has none.
            backend: Backend name to set when the error has none.

        Returns:
            A new error of the same type; this one is left unchanged.
        """
        return type(self)(
            self.reason,
            key_id=self.key_id if self.key_id is not None else key_id,
            backend=self.backend or backend,
            retryable=self.retryable,
        )


def _rebuild(
    cls: type[KeyResolutionError],
    reason: str,
    key_id: str | None,
    backend: str | None,
    retryable: bool,
) -> KeyResolutionError:
    return cls(reason, key_id=key_id, backend=backend, retryable=retryable)


class KeyNotFound(KeyResolutionError, LookupError):
    """The backend has no key under this id."""

    default_reason = "not found"


class KeyAccessDenied(KeyResolutionError, PermissionError):
    """The backend refused access (bad credentials, or a policy denies the path)."""

    default_reason = "access denied"

    # PermissionError is an OSError whose __str__ is errno-shaped; use ours.
    def __str__(self) -> str:
        return self._format()


class BackendUnavailable(KeyResolutionError, ConnectionError):
    """The backend could not be reached or answered with a server-side error."""

    default_reason = "backend unreachable"
    default_retryable = True

    def __str__(self) -> str:
        return self._format()


class KeyFormatError(KeyResolutionError, ValueError):
    """The stored value is not a key in any accepted format."""

    default_reason = "not a key in any accepted format"


class KeyNotLoaded(KeyResolutionError):
    """The key is not in memory yet; a background load has been started.

    Raised only by the memory-only ``resolve_sync`` path. Retrying shortly after
    finds the key once the background load lands.
    """

    default_reason = "not loaded in memory yet; a background load was started"
    default_retryable = True


class HolderMismatch(KeyResolutionError):
    """No held version of this key id has the public key a warrant names as holder."""

    default_reason = "holder mismatch: no version of this key matches the warrant holder"


class ResolverClosed(KeyResolutionError):
    """The resolver was closed; it serves nothing more."""

    default_reason = "resolver is closed"


class ResolverConfigError(TenuoKeysError, ValueError):
    """A resolver was configured wrongly (bad URL, unknown option, duplicate scheme)."""


def _install_hint(subject: str, extra: str, missing: str) -> str:
    return (f"{subject} needs {missing!r}, which is not installed: "
            f"pip install 'tenuo-keys[{extra}]'")


class MissingExtraError(ResolverConfigError, ImportError):
    """A built-in backend needs an optional dependency that is not installed.

    Attributes:
        scheme: The URL scheme or backend asked for.
        extra: The ``tenuo-keys`` extra that installs what is missing.
        missing: The distribution or module that is missing.
    """

    def __init__(self, scheme: str, extra: str, missing: str, *,
                 subject: str | None = None) -> None:
        self.scheme = scheme
        self.extra = extra
        self.missing = missing
        super().__init__(_install_hint(subject or f"the {scheme!r} resolver", extra, missing))


class MissingExtraAttributeError(ResolverConfigError, AttributeError):
    """A lazy attribute of ``tenuo_keys`` (``tenuo_keys.VaultKeyResolver``) lacks its extra.

    An ``AttributeError``, so ``hasattr(tenuo_keys, "VaultKeyResolver")`` is
    False without the extra, with the same ``pip install`` hint as
    :class:`MissingExtraError`. (It cannot also be an ``ImportError``: Python
    forbids the two bases together. ``from tenuo_keys import VaultKeyResolver``
    raises :class:`MissingExtraError` instead.)

    Attributes:
        scheme: The attribute asked for.
        extra: The ``tenuo-keys`` extra that installs what is missing.
        missing: The distribution or module that is missing.
    """

    def __init__(self, scheme: str, extra: str, missing: str, *,
                 subject: str | None = None) -> None:
        self.scheme = scheme
        self.extra = extra
        self.missing = missing
        super().__init__(_install_hint(subject or f"the {scheme!r} resolver", extra, missing))
        self.name = scheme
