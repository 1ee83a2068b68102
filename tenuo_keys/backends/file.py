"""``FileKeyResolver``: holder keys from mounted files.

In Kubernetes (Secret volumes, the Secrets Store CSI driver), with Vault Agent
or OpenBao Agent templates, systemd credentials (``$CREDENTIALS_DIRECTORY``)
or SOPS, a key reaches the worker as a file, with no SDK or token in the
process. This resolver reads such a directory: the key id names a file
through the one name template (``{key_id}.key`` and the like), and every
file goes through the one decoder.

**Rotation.** A refresh re-reads the file. The values it replaced (the last
two) are kept as previous versions, holder-matched for in-flight workflows, as
the cloud backends keep theirs; a ``<name>.previous`` file, which
``store_key`` writes on rotation, is read as well.

**Kubernetes' atomic writer** publishes a new ``..<timestamp>`` directory and
swaps the ``..data`` link to it in one rename; the visible names are links
through ``..data``. A read resolves ``..data`` once, reads every file of the
version from that directory, and checks that ``..data`` still points there;
if it moved meanwhile the read starts again, so a read never mixes two
versions or sees a half-written file.

**Permissions, as ssh does it.** A key file readable by its group or by
others is refused, with what to do: ``defaultMode: 0400`` on the Secret
volume (``chmod 600`` elsewhere), or ``allow_insecure_permissions=True`` where
another control protects the directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cachetools

from .._cache import CacheObserver, CachePolicy
from .._resolver import BackendKeyResolver, KeyMaterial, StoredKey
from .._template import KeyTemplate, TemplateError
from .._url import ResolverURL
from ..errors import (
    BackendUnavailable,
    KeyAccessDenied,
    KeyNotFound,
    KeyResolutionError,
    ResolverConfigError,
)

__all__ = ["FileKeyResolver"]

DATA_LINK = "..data"
"""The link Kubernetes' atomic writer swaps to publish a new version of a volume."""
PREVIOUS_SUFFIX = ".previous"
MAX_KEY_FILE = 64 * 1024  # a key file is small: a bigger one is not a key
_READ_ATTEMPTS = 8
_FILE_NAME = re.compile(r"[A-Za-z0-9._+-]*")
_REMEMBERED = 65_536  # key ids whose earlier values are kept in memory
_HISTORY = 3  # values kept per key id: the current one and two it replaced


class FileKeyResolver(BackendKeyResolver):
    """Reads key ``agent1`` from ``<directory>/agent1.key`` (with the default template).

    Args:
        directory: The mounted directory.
        template: File name of a key id, holding ``{key_id}`` once (letters,
            digits, ``._+-`` around it).
        allow_insecure_permissions: Read key files that group or others may read.
        cache: Cache policy; the TTL is how soon a rotated file is noticed.
        observers: Cache event observers.
        field: JSON field holding the key when a file holds a JSON object.

    Raises:
        ResolverConfigError: A relative directory, or a bad template.
    """

    backend = "file"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        template: str = "{key_id}.key",
        allow_insecure_permissions: bool = False,
        cache: CachePolicy | None = None,
        observers: Iterable[CacheObserver] = (),
        field: str = "key",
    ) -> None:
        path = Path(directory)
        if not path.is_absolute():
            raise ResolverConfigError(
                f"file:// directory must be absolute, got {str(directory)!r}")
        try:
            self.template = KeyTemplate.parse(template, chars=_FILE_NAME)
        except TemplateError:
            raise ResolverConfigError(
                f"file:// template {template!r} must name a file with {{key_id}} once, and "
                "only letters, digits and ._+- around it") from None
        super().__init__(cache=cache, observers=observers, field=field)
        self.directory = path
        self.allow_insecure_permissions = allow_insecure_permissions
        # key id -> the distinct values it held, newest first: bounded, like every
        # map keyed by ids.
        self._history: cachetools.LRUCache[str, tuple[bytes, ...]] = \
            cachetools.LRUCache(_REMEMBERED)
        self._lock = threading.Lock()  # the cache's pool reads several ids at once

    @classmethod
    def from_url(cls, url: ResolverURL, **kwargs: Any) -> FileKeyResolver:
        """Build from ``file:///var/run/tenuo/{key_id}.key?allow_insecure_permissions=0``.

        A path without ``{key_id}`` is the directory, with ``{key_id}.key`` files.
        """
        url.no_authority()
        path = url.path
        if "{key_id}" in path:
            directory, _, template = path.rpartition("/")
        else:
            directory, template = path.rstrip("/") or "/", "{key_id}.key"
        options = url.pop_bools("allow_insecure_permissions")
        field = url.pop("field", "key")
        cache = url.pop_cache_policy()
        url.finish()
        return cls(directory or "/", template=template, field=field, cache=cache,
                   allow_insecure_permissions=options.get("allow_insecure_permissions", False),
                   **kwargs)

    # -- reading ---------------------------------------------------------------

    def fetch(self, key_id: str) -> KeyMaterial | Sequence[KeyMaterial]:
        """Read the key file (and its previous version) from one published version."""
        name = self._name(key_id)
        for _ in range(_READ_ATTEMPTS):
            published = self._published()
            try:
                current = self._read(key_id, name)
                previous_file = self._read_optional(key_id, name + PREVIOUS_SUFFIX)
            except FileNotFoundError:
                if self._published() != published:
                    continue  # the atomic writer swapped versions under us: read again
                raise KeyNotFound(f"not found: no file {name} in {self.directory}",
                                  key_id=key_id, backend=self.backend) from None
            if self._published() != published:
                continue
            return self._versions(key_id, current, previous_file)
        raise BackendUnavailable(f"{self.directory} kept changing while it was read",
                                 key_id=key_id, backend=self.backend)

    def _versions(self, key_id: str, current: bytes, previous_file: bytes | None
                  ) -> list[StoredKey]:
        # Every distinct value this key held (newest first, a few): reads that
        # finish out of order (a refresh racing a preload) can lose none of them.
        with self._lock:
            held = [current, *(v for v in self._history.get(key_id, ()) if v != current)]
            self._history[key_id] = tuple(held[:_HISTORY])
        versions = [StoredKey(current, "current")]
        for older in (previous_file, *held[1:_HISTORY]):
            if older is not None and all(v.material != older for v in versions):
                versions.append(StoredKey(older, "previous"))
        return versions

    def _name(self, key_id: str) -> str:
        name = self.template.render(key_id)
        if "/" in key_id or "\x00" in key_id or key_id in (".", "..") \
                or key_id.startswith(".") or os.sep in name:
            raise KeyResolutionError(
                "invalid key id for a file: no path separators, and no leading dot",
                key_id=key_id[:64], backend=self.backend)
        return name

    def _published(self) -> str | None:
        """Where ``..data`` points now (None when the directory has no such link)."""
        try:
            return os.readlink(self.directory / DATA_LINK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackendUnavailable(f"{self.directory}: {exc.strerror}",
                                     backend=self.backend) from None

    def _read(self, key_id: str, name: str) -> bytes:
        path = self.directory / name
        try:
            fd = os.open(path, os.O_RDONLY)  # links followed: Kubernetes' names are links
        except PermissionError:
            raise KeyAccessDenied(f"access denied: cannot read {path}", key_id=key_id,
                                  backend=self.backend) from None
        except IsADirectoryError:
            raise KeyNotFound(f"not found: {path} is a directory", key_id=key_id,
                              backend=self.backend) from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise KeyNotFound(f"not found: {path} is not a regular file", key_id=key_id,
                                  backend=self.backend)
            self._check_mode(key_id, path, info.st_mode)
            data = f.read(MAX_KEY_FILE + 1)
        if len(data) > MAX_KEY_FILE:
            raise KeyResolutionError(f"{path} is larger than {MAX_KEY_FILE} bytes: not a key",
                                     key_id=key_id, backend=self.backend)
        return data

    def _read_optional(self, key_id: str, name: str) -> bytes | None:
        try:
            return self._read(key_id, name)
        except (FileNotFoundError, KeyNotFound):
            return None

    def _check_mode(self, key_id: str, path: Path, mode: int) -> None:
        if self.allow_insecure_permissions or not mode & 0o077:
            return
        raise KeyAccessDenied(
            f"refused: key file {path} is readable by group or others (mode "
            f"{stat.S_IMODE(mode):04o}), as ssh refuses such keys. On Kubernetes set "
            "defaultMode: 0400 on the Secret volume (or chmod 600 the file); pass "
            "allow_insecure_permissions=True (?allow_insecure_permissions=1) only where "
            "another control protects the directory", key_id=key_id, backend=self.backend)

    def list_key_ids(self) -> list[str]:
        """Every key id with a file fitting the template (not hidden files or ``.previous``)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            raise KeyNotFound(f"not found: no directory {self.directory}",
                              backend=self.backend) from None
        except PermissionError:
            raise KeyAccessDenied(f"access denied: cannot list {self.directory}",
                                  backend=self.backend) from None
        ids = (self.template.key_id_of(name) for name in names
               if not name.startswith(".") and not name.endswith(PREVIOUS_SUFFIX))
        return sorted(key_id for key_id in ids if key_id and not key_id.startswith("."))

    # -- writing ---------------------------------------------------------------

    def store_key(self, key_id: str, material: str) -> str | None:
        """Write ``material`` as the key file (mode 0600, atomically); keep the old as previous.

        Not for directories another writer owns (a Kubernetes volume is
        read-only): for a plain directory, as ``tenuo-keys put|rotate`` use it.
        """
        name = self._name(key_id)
        path = self.directory / name
        with contextlib.suppress(FileNotFoundError):
            self._write(self.directory / (name + PREVIOUS_SUFFIX), path.read_bytes())
        self._write(path, material.encode("utf-8"))
        return None

    def _write(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def __repr__(self) -> str:
        return (f"FileKeyResolver({str(self.directory)!r}, template={self.template.text!r}, "
                f"held={len(self.cache)})")
