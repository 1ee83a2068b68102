"""The worker's signed revocation list: where it comes from and when to trust it.

:class:`Revocation` holds the last good ``tenuo_core.SignedRevocationList``
of one plugin. It accepts a candidate only when a trusted root signed it and
its version does not go back (a rollback is refused and logged; the caller
counts it); a failed refresh keeps the last good list. tenuo_core judges both:
whether a root signed the list (``Authorizer.set_revocation_list``, once per
list) and whether a warrant is on it (``SignedRevocationList.is_revoked``, per
link and activity). The list is not left installed in the authorizers:
tenuo_core 0.3.3's ``check_chain`` then costs time linear in the list's length
on every activity (about 1.1 ms more at 10,000 entries), while ``is_revoked``
is a constant 0.1 µs. This module only decides which list that is, and
whether it is current enough to authorize anything (:meth:`Revocation.check`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

import tenuo_core

from tenuo_keys import ResolverConfigError
from tenuo_keys._documents import DocumentSource, open_document
from tenuo_keys._trust_documents import decode_srl

from .errors import RevocationStale, WarrantRevoked

__all__ = ["Outcome", "Revocation", "RevocationProvider", "issued_epoch"]

logger = logging.getLogger("tenuo_temporal")

RevocationProvider = Callable[[], Any]
"""Returns the current ``SignedRevocationList`` (or its bytes); called at start-up
and every ``revocation_refresh_secs``. A failing call keeps the last good list."""

Outcome = Literal["loaded", "unchanged", "rollback", "untrusted", "failed"]

_FRACTION = re.compile(r"(\.\d{6})\d+")


def issued_epoch(srl: Any) -> float:
    """A list's ``issued_at`` (RFC 3339, nanoseconds allowed) in epoch seconds."""
    text = _FRACTION.sub(r"\1", str(srl.issued_at)).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def _as_srl(value: Any) -> Any:
    if isinstance(value, tenuo_core.SignedRevocationList):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return tenuo_core.SignedRevocationList.from_bytes(raw)
        except Exception:
            return decode_srl(raw)
    raise TypeError(f"expected a SignedRevocationList or its bytes, got {type(value).__name__}")


class Revocation:
    """The revocation list of one worker.

    Args:
        source: A ``SignedRevocationList``, a document URL, or a provider.
        refresh_secs: Seconds between provider/URL refreshes.
        max_age_secs: Oldest ``issued_at`` accepted for authorizing, or None.
        clock_tolerance_secs: Skew allowed on ``issued_at``.
    """

    def __init__(self, source: Any, refresh_secs: float, max_age_secs: float | None,
                 clock_tolerance_secs: float) -> None:
        self.refresh_secs = refresh_secs
        self.max_age_secs = max_age_secs
        self._tolerance = clock_tolerance_secs
        self._lock = threading.Lock()
        self.current: Any = None
        self._is_revoked: Callable[[str], bool] | None = None
        self._issued = 0.0
        self.document: DocumentSource | None = None
        self._provider: RevocationProvider | None = None
        self._static: Any = None
        if isinstance(source, str):
            self.document = open_document(source)
        elif callable(source) and not isinstance(source, tenuo_core.SignedRevocationList):
            self._provider = source
        else:
            try:
                self._static = _as_srl(source)
            except Exception as exc:
                raise ResolverConfigError(
                    f"revocation_list must be a tenuo_core.SignedRevocationList or a document "
                    f"URL (vault://, awssm://, gcpsm://, file://): {exc}") from None

    @property
    def refreshes(self) -> bool:
        """Whether the list is re-read periodically (a provider or a URL)."""
        return self._static is None

    def fetch(self) -> Any:
        """The candidate list from the source (may raise)."""
        if self._static is not None:
            return self._static
        if self.document is not None:
            return decode_srl(self.document.read(fresh=True), repr(self.document))
        assert self._provider is not None
        return _as_srl(self._provider())

    def refresh(self, roots: Sequence[Any]) -> Outcome:
        """Fetch and offer a candidate; the last good list stays on any failure."""
        try:
            candidate = self.fetch()
        except Exception as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            logger.error("tenuo_temporal: revocation list refresh failed (%s); keeping the "
                         "last good list (version %s)", reason, self.version)
            return "failed"
        return self.offer(candidate, roots)

    def offer(self, candidate: Any, roots: Sequence[Any]) -> Outcome:
        """Install ``candidate`` if a root in ``roots`` signed it and it does not roll back."""
        if not _trusted(candidate, roots):
            logger.error("tenuo_temporal: refused a revocation list (version %s) signed by "
                         "%s, which is not a trusted root", candidate.version, candidate.issuer)
            return "untrusted"
        with self._lock:
            current = self.current
            if current is not None:
                if candidate.version < current.version or (
                        candidate.version == current.version
                        and set(candidate.revoked_ids) != set(current.revoked_ids)):
                    logger.error(
                        "tenuo_temporal: refused a revocation list rollback (held version "
                        "%s, offered %s%s); keeping the held list", current.version,
                        candidate.version,
                        ", a different revoked set" if candidate.version == current.version
                        else "")
                    return "rollback"
                if candidate.version == current.version and \
                        str(candidate.issued_at) == str(current.issued_at):
                    return "unchanged"
            self.current = candidate
            self._issued = issued_epoch(candidate)
            self._is_revoked = candidate.is_revoked
        return "loaded"

    @property
    def version(self) -> int | None:
        """The held list's version, None before one is held."""
        current = self.current
        return None if current is None else int(current.version)

    def check(self, chain: Sequence[Any], tool: str) -> None:
        """Refuse a revoked chain, or anything without a current list (hot path: cheap).

        Raises:
            RevocationStale: No list held, or the held one is past the max age.
            WarrantRevoked: A link of ``chain`` is on the list.
        """
        is_revoked = self._is_revoked
        if is_revoked is None:
            raise RevocationStale("this worker holds no valid revocation list yet", tool=tool)
        for link in chain:
            if is_revoked(link.id):
                raise WarrantRevoked(
                    f"warrant {link.id} is on the signed revocation list (version "
                    f"{self.current.version})", tool=tool)
        max_age = self.max_age_secs
        if max_age is not None:
            age = time.time() - self._issued
            if age > max_age + self._tolerance:
                raise RevocationStale(
                    f"the held revocation list (version {self.current.version}) was issued "
                    f"{age:.0f}s ago, past revocation_max_age_secs={max_age:g}; publish a "
                    "new one", tool=tool)

    def close(self) -> None:
        """Release the document source, if any."""
        if self.document is not None:
            self.document.close()


def _trusted(srl: Any, roots: Sequence[Any]) -> bool:
    """Whether tenuo_core accepts ``srl`` from one of ``roots`` (its signer, its signature)."""
    if not roots:
        return False
    try:
        tenuo_core.Authorizer(trusted_roots=list(roots)).set_revocation_list(srl)
    except Exception:
        return False
    return True
