"""Parsed key versions held for one key id, and holder matching for rotation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import tenuo_core

from .errors import HolderMismatch

__all__ = ["KeyVersion", "KeyVersions", "public_bytes_of"]

_PublicKey = tenuo_core.PublicKey


def public_bytes_of(holder: Any) -> bytes:
    """Return the 32 raw bytes of a public key given as ``PublicKey`` or bytes.

    Args:
        holder: A ``tenuo_core.PublicKey``, an object with ``to_bytes()``, or bytes.

    Returns:
        The raw public key bytes.

    Raises:
        TypeError: ``holder`` is none of those.
    """
    # Hot path of holder matching: the common cases first, cheapest checks only.
    if type(holder) is bytes:
        return holder
    if isinstance(holder, (bytearray, memoryview)):
        return bytes(holder)
    if isinstance(holder, int):  # int has a to_bytes() too; it is not a key
        raise TypeError("expected a PublicKey or bytes, got int")
    to_bytes = getattr(holder, "to_bytes", None)
    if to_bytes is None:
        raise TypeError(f"expected a PublicKey or bytes, got {type(holder).__name__}")
    raw = to_bytes()
    return raw if type(raw) is bytes else bytes(raw)


@dataclass(frozen=True, slots=True)
class KeyVersion:
    """One parsed version of a key.

    Attributes:
        key: The ``tenuo_core.SigningKey``.
        public: Its 32 raw public key bytes, computed once at load.
        version: The backend's label for this version (``"3"``, an AWS
            version id, ``"current"``), or None when the backend has none.
    """

    key: Any
    public: bytes
    version: str | None = None

    @classmethod
    def of(cls, key: Any, version: str | None = None) -> KeyVersion:
        """Build a version from a ``SigningKey``, computing its public bytes once."""
        return cls(key=key, public=bytes(key.public_key_bytes()), version=version)

    def __repr__(self) -> str:
        return f"KeyVersion(version={self.version!r}, public={self.public.hex()[:16]}…)"


class KeyVersions:
    """The versions of one key id held in memory, current first.

    Holding the previous versions next to the current one is what lets a
    rotation land without breaking workflows whose warrants name the old
    holder: :meth:`for_holder` picks the version a warrant was minted for.
    """

    __slots__ = ("_by_public", "backend", "key_id", "versions")

    def __init__(
        self, key_id: str, versions: Sequence[KeyVersion], *, backend: str | None = None
    ) -> None:
        if not versions:
            raise ValueError("KeyVersions needs at least one version")
        self.key_id = key_id
        self.backend = backend
        self.versions: tuple[KeyVersion, ...] = tuple(versions)
        by_public: dict[bytes, Any] = {}
        for v in self.versions:
            by_public.setdefault(v.public, v.key)
        self._by_public = by_public

    @property
    def current(self) -> Any:
        """The current ``SigningKey``."""
        return self.versions[0].key

    @property
    def current_public(self) -> bytes:
        """The current version's raw public key bytes."""
        return self.versions[0].public

    def for_holder(self, holder: Any) -> Any:
        """Return the version whose public key is ``holder``.

        Args:
            holder: The warrant's holder, as ``PublicKey`` or raw bytes.

        Returns:
            The matching ``SigningKey``.

        Raises:
            HolderMismatch: No held version has that public key.
        """
        # Inline fast path for the two shapes the plugin passes (hot path).
        kind = type(holder)
        if kind is _PublicKey:
            raw = holder.to_bytes()
        elif kind is bytes:
            raw = holder
        else:
            raw = public_bytes_of(holder)
        key = self._by_public.get(raw)
        if key is None:
            raise self.mismatch(holder)
        return key

    def mismatch(self, holder: Any, *, retryable: bool = False) -> HolderMismatch:
        """Build the holder-mismatch error for ``holder`` (public data only)."""
        wanted = public_bytes_of(holder).hex()[:16]
        held = ", ".join(
            f"{v.version or i}={v.public.hex()[:16]}…" for i, v in enumerate(self.versions)
        )
        return HolderMismatch(
            f"holder mismatch: the warrant holder {wanted}… matches none of the "
            f"{len(self.versions)} held version(s) ({held})",
            key_id=self.key_id,
            backend=self.backend,
            retryable=retryable,
        )

    def __len__(self) -> int:
        return len(self.versions)

    def __repr__(self) -> str:
        return (
            f"KeyVersions(key_id={self.key_id!r}, backend={self.backend!r}, "
            f"versions={list(self.versions)!r})"
        )
