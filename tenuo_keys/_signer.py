"""The ``Signer`` contract: something that signs bytes for a key id.

A resolved local key is one kind of signer (:class:`LocalSigner`); a key that
never leaves a KMS (Vault Transit, Cloud KMS) is the other. Both sign the
bytes :func:`~tenuo_keys._pop.pop_message` builds, so a remote PoP equals the
local one byte for byte.
"""

from __future__ import annotations

import abc
import asyncio
from types import TracebackType
from typing import Any, ClassVar

from ._keyset import public_bytes_of
from ._pop import pop_message, self_test
from .errors import HolderMismatch, KeyResolutionError

__all__ = ["LocalSigner", "Signer", "sign_pop"]


class Signer(abc.ABC):
    """Signs messages with one key id's private key, wherever that key lives.

    Attributes:
        backend: Backend name, for errors (``"local"``, ``"vault-transit"``...).
        remote: True when signing does I/O (the key never leaves its KMS), so
            it must not run inside Temporal's workflow sandbox.
    """

    backend: ClassVar[str] = "custom"
    remote: ClassVar[bool] = True

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id

    @abc.abstractmethod
    def public_key_for(self, holder: Any | None = None) -> Any:
        """The ``PublicKey`` that will sign: the version matching ``holder`` when given.

        Raises:
            HolderMismatch: No version of the key is ``holder``.
            KeyResolutionError: The key cannot be reached.
        """

    @abc.abstractmethod
    def sign(self, message: bytes, *, holder: Any | None = None) -> bytes:
        """Sign ``message`` (pure Ed25519), with the version matching ``holder`` if given.

        Returns:
            The 64-byte signature, already checked against the public key.

        Raises:
            KeyResolutionError: The signer could not sign (denied, unreachable,
                or the returned signature did not verify).
        """

    async def asign(self, message: bytes, *, holder: Any | None = None) -> bytes:
        """Async form of :meth:`sign`; runs it off the event loop."""
        return await asyncio.to_thread(self.sign, message, holder=holder)

    @property
    def public_key(self) -> Any:
        """The current version's ``PublicKey``."""
        return self.public_key_for(None)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients. Safe to call twice."""

    def __enter__(self) -> Signer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self.key_id!r}, backend={self.backend!r})"


class LocalSigner(Signer):
    """A key held in memory (from a resolver) as a signer.

    Args:
        key_id: The key id.
        key: The ``tenuo_core.SigningKey``.
    """

    backend = "local"
    remote = False

    def __init__(self, key_id: str, key: Any) -> None:
        super().__init__(key_id)
        self._key = key

    def public_key_for(self, holder: Any | None = None) -> Any:
        """The key's public key; ``holder`` must match it when given."""
        if holder is not None and public_bytes_of(holder) != bytes(self._key.public_key_bytes()):
            raise HolderMismatch(key_id=self.key_id, backend=self.backend)
        return self._key.public_key

    def sign(self, message: bytes, *, holder: Any | None = None) -> bytes:
        """Sign in memory."""
        self.public_key_for(holder)
        return bytes(self._key.sign_raw(message))


def sign_pop(signer: Signer, warrant: Any, tool: str, args: Any, timestamp: int) -> bytes:
    """A PoP for ``warrant`` signed by ``signer`` (local keys take tenuo_core's path).

    Raises:
        PopFormatChanged: The installed tenuo_core signs another format (remote only).
        KeyResolutionError: The signer failed.
    """
    holder = warrant.authorized_holder
    if isinstance(signer, LocalSigner):
        signer.public_key_for(holder)
        return bytes(warrant.sign(signer._key, tool, args, timestamp))
    self_test()
    signature = signer.sign(pop_message(warrant, tool, args, timestamp), holder=holder)
    if len(signature) != 64:
        raise KeyResolutionError(f"signer returned {len(signature)} bytes, expected 64",
                                 key_id=signer.key_id, backend=signer.backend)
    return signature
