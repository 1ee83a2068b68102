"""Documents kept next to keys: where a signed revocation list or a root set lives.

A document URL names one stored value: the URL of a resolver whose last path
segment is the document's name (``vault://127.0.0.1:8200/secret/tenuo/srl``,
``awssm://us-east-1/tenuo/srl``, ``gcpsm://my-project/tenuo-srl``) or a file
(``file:///etc/tenuo/srl``). Backend documents are read through the backend's
own :meth:`~tenuo_keys.BackendKeyResolver.read_document`: its authentication,
cache and typed errors. ``file://`` has a minimal reader here.
"""

from __future__ import annotations

import abc
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ._resolver import BackendKeyResolver
from ._url import redact_url
from .errors import BackendUnavailable, KeyNotFound, ResolverConfigError

__all__ = ["BackendDocument", "DocumentSource", "FileDocument", "open_document"]

_PLACEHOLDER = "{key_id}"


class DocumentSource(abc.ABC):
    """Where one document is read from and published to."""

    url: str

    @abc.abstractmethod
    def read(self, *, fresh: bool = False) -> bytes:
        """The document's bytes; ``fresh`` asks the backend now rather than a cache.

        Raises:
            KeyResolutionError: Not found, denied, unreachable.
        """

    @abc.abstractmethod
    def write(self, content: bytes) -> str | None:
        """Publish ``content`` (UTF-8 text) as the document's current value.

        Returns:
            The backend's label of the new version, if any.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release what the source holds."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_url(self.url)!r})"


class FileDocument(DocumentSource):
    """A document in a local (or mounted) file; written atomically.

    Args:
        path: The file.
    """

    backend = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.url = self.path.as_uri() if self.path.is_absolute() else str(self.path)

    def read(self, *, fresh: bool = False) -> bytes:
        """The file's bytes (a file is always read fresh).

        Raises:
            KeyNotFound: No such file.
            BackendUnavailable: The file could not be read.
        """
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(f"no file {self.path}", backend=self.backend) from None
        except OSError as exc:
            raise BackendUnavailable(f"cannot read {self.path} ({type(exc).__name__})",
                                     backend=self.backend) from None

    def write(self, content: bytes) -> str | None:
        """Replace the file atomically (a reader never sees half a document)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.replace(temp, self.path)
        except OSError as exc:
            raise BackendUnavailable(f"cannot write {self.path} ({type(exc).__name__})",
                                     backend=self.backend) from None
        return None


class BackendDocument(DocumentSource):
    """A document read through a backend resolver's document read.

    Args:
        resolver: The backend resolver (owned: closed with this source).
        name: The document's id in that backend.
        url: The document URL, for messages.
    """

    def __init__(self, resolver: BackendKeyResolver, name: str, url: str) -> None:
        self.resolver = resolver
        self.name = name
        self.url = url

    def read(self, *, fresh: bool = False) -> bytes:
        """The stored bytes, through the resolver's cache."""
        return self.resolver.read_document(self.name, fresh=fresh)

    def write(self, content: bytes) -> str | None:
        """Store ``content`` as the new current version."""
        return self.resolver.store_document(self.name, content)

    def close(self) -> None:
        """Close the resolver."""
        self.resolver.close()


def open_document(url: str, **kwargs: Any) -> DocumentSource:
    """The document a URL names.

    Args:
        url: ``file:///path``, or a backend URL (``vault://``, ``awssm://``,
            ``gcpsm://``...) whose last path segment is the document's name.
        **kwargs: Passed to the backend resolver (clients, tokens, cache policy).

    Returns:
        The source.

    Raises:
        ResolverConfigError: The URL is malformed or names no document.
    """
    from ._registry import resolver_from_url

    if not isinstance(url, str) or "://" not in url:
        raise ResolverConfigError("a document URL must look like 'scheme://.../name'")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query:
            raise ResolverConfigError(
                f"file:// document URLs take an absolute path only, got {redact_url(url)!r}")
        path = unquote(parts.path)
        if not path or path.endswith("/"):
            raise ResolverConfigError(f"{redact_url(url)!r} names no file")
        return FileDocument(path)
    head, _, name = parts.path.rpartition("/")
    name = unquote(name)
    if not name or _PLACEHOLDER in name:
        raise ResolverConfigError(
            f"{redact_url(url)!r} names no document: its last path segment is the "
            "document's name (for example vault://host:8200/secret/tenuo/srl)")
    template_url = urlunsplit((parts.scheme, parts.netloc, f"{head}/{_PLACEHOLDER}",
                               parts.query, ""))
    resolver = resolver_from_url(template_url, **kwargs)
    if not isinstance(resolver, BackendKeyResolver):
        resolver.close()
        raise ResolverConfigError(
            f"{scheme}:// cannot hold documents: it is not a fetching backend")
    return BackendDocument(resolver, name, url)
