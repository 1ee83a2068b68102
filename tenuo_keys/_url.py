"""Parsing of resolver URLs (``env://?prefix=...``, ``vault://host:8200/...``).

Each scheme's ``from_url`` pops what it understands; :meth:`ResolverURL.finish`
then refuses anything left over, so a typo never silently becomes a default.
Secrets never go in URLs: a password in the authority or a token-like query
parameter is refused with a pointer to the environment or arguments.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ._cache import CachePolicy
from .errors import ResolverConfigError

__all__ = ["ResolverURL", "redact_url"]

SECRET_PARAMS = frozenset({
    "token", "password", "secret", "secret_id", "secret_access_key", "aws_secret_access_key",
    "credentials", "key_material", "private_key", "jwt",
})
_FLOAT_POLICY = ("ttl", "jitter", "refresh_ahead", "max_staleness", "negative_ttl",
                 "error_backoff", "max_backoff")
_INT_POLICY = ("maxsize", "max_workers")


def redact_url(url: str, limit: int = 80) -> str:
    """``url`` fit to echo in a message: user info, query and fragment replaced.

    A user name or password in the authority becomes ``***@``, every query
    value ``***`` and a fragment ``#***``; the result is capped at ``limit``
    characters. Only the scheme, host, port and path survive, so a secret
    typed anywhere else in the URL is not repeated.

    Args:
        url: The URL as given (possibly malformed).
        limit: Longest result.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return f"<{len(url)} characters>"
    rest, hash_sign, _ = rest.partition("#")
    rest, question, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    text = f"{scheme}://{authority}{slash}{path}"
    if question:
        names = [pair.partition("=")[0] for pair in query.split("&") if pair]
        text += "?" + "&".join(f"{name}=***" for name in names)
    if hash_sign:
        text += "#***"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _url_problem(exc: ValueError) -> str:
    message = str(exc)
    if "port" in message.lower():
        return "the port is not a number from 0 to 65535"
    return "it cannot be parsed"


class ResolverURL:
    """A parsed resolver URL whose query parameters are consumed one by one.

    Attributes:
        raw: The URL as given, for messages.
        scheme: The scheme, lower-cased.
        host: Host name or the authority's first part ('' when absent).
        port: Port, or None.
        path: The path as written, leading slash kept, percent-decoded
            (``dir:///var/keys`` gives ``/var/keys``; ``gcpsm://proj/name``
            gives ``/name``). Use :attr:`relative_path` for the form without it.
    """

    def __init__(self, url: str) -> None:
        if not isinstance(url, str) or "://" not in url:
            # Not echoed: a key pasted into TENUO_KEY_RESOLVER by mistake lands here.
            raise ResolverConfigError(
                "resolver URL must look like 'scheme://...', got "
                + (f"a value of {len(url)} characters" if isinstance(url, str)
                   else type(url).__name__)
            )
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            # The reason from urllib may quote the port text, so only its type is named.
            raise ResolverConfigError(
                f"malformed resolver URL {redact_url(url)!r} ({_url_problem(exc)})"
            ) from None
        if parts.password is not None:
            raise ResolverConfigError(
                f"{parts.scheme}:// URLs must not carry a password; pass secrets through "
                "the environment or constructor arguments"
            )
        self.raw = url if parts.username is None else url.replace(f"{parts.username}@", "", 1)
        self.scheme = parts.scheme.lower()
        self.host = parts.hostname or ""
        self.port = port
        self.username = parts.username
        self.path = unquote(parts.path)
        self._query: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name in self._query:
                raise ResolverConfigError(f"{self.scheme}:// parameter {name!r} given twice")
            self._query[name] = value
        leaked = sorted(SECRET_PARAMS.intersection(self._query))
        if leaked:
            raise ResolverConfigError(
                f"{self.scheme}:// URLs must not carry secrets (parameter {leaked[0]!r}); "
                "pass them through the environment or constructor arguments"
            )

    @property
    def relative_path(self) -> str:
        """The path without its leading slashes (``/tenuo/{key_id}`` gives ``tenuo/{key_id}``)."""
        return self.path.lstrip("/")

    def no_authority(self) -> None:
        """Refuse a host/port where the scheme takes none."""
        if self.host or self.port:
            raise ResolverConfigError(f"{self.scheme}:// takes no host, got {self.host!r}")

    def pop(self, name: str, default: str) -> str:
        """Take a string parameter."""
        return self._query.pop(name, default)

    def pop_optional(self, name: str) -> str | None:
        """Take a string parameter that may be absent."""
        return self._query.pop(name, None)

    def pop_float(self, name: str, default: float | None) -> float | None:
        """Take a number parameter; ``none`` gives None."""
        value = self._query.pop(name, None)
        if value is None:
            return default
        if value.lower() in ("none", "off"):
            return None
        try:
            number = float(value)
        except ValueError:
            raise ResolverConfigError(
                f"{self.scheme}:// parameter {name}={value!r} is not a number"
            ) from None
        if not math.isfinite(number):
            raise ResolverConfigError(f"{self.scheme}:// parameter {name} must be finite")
        return number

    def pop_floats(self, *names: str) -> dict[str, float]:
        """Take number parameters; the result holds those given (``none`` left out)."""
        found = {name: self.pop_float(name, None) for name in names}
        return {name: number for name, number in found.items() if number is not None}

    def pop_int(self, name: str, default: int) -> int:
        """Take an integer parameter."""
        value = self._query.pop(name, None)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ResolverConfigError(
                f"{self.scheme}:// parameter {name}={value!r} is not an integer"
            ) from None

    def pop_bool(self, name: str, default: bool) -> bool:
        """Take a boolean parameter (true/false, 1/0, yes/no)."""
        value = self.pop_opt_bool(name)
        return default if value is None else value

    def pop_bools(self, *names: str) -> dict[str, bool]:
        """Take boolean parameters; the result holds those given."""
        found = {name: self.pop_opt_bool(name) for name in names}
        return {name: flag for name, flag in found.items() if flag is not None}

    def pop_opt_bool(self, name: str) -> bool | None:
        """Take a boolean parameter; None when absent (so the constructor default applies)."""
        value = self._query.pop(name, None)
        if value is None:
            return None
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ResolverConfigError(f"{self.scheme}:// parameter {name}={value!r} is not a boolean")

    def pop_cache_policy(self, base: CachePolicy | None = None) -> CachePolicy:
        """Take the shared cache parameters (``ttl``, ``max_staleness``, ...)."""
        base = base or CachePolicy()
        options: dict[str, Any] = {}
        for name in _FLOAT_POLICY:
            if name in self._query:
                options[name] = self.pop_float(name, getattr(base, name))
        for name in _INT_POLICY:
            if name in self._query:
                options[name] = self.pop_int(name, getattr(base, name))
        if not options:
            return base
        fields = {name: getattr(base, name) for name in (*_FLOAT_POLICY, *_INT_POLICY)}
        fields.update(options)
        return CachePolicy(**fields)

    def finish(self) -> None:
        """Refuse parameters nobody consumed."""
        if self._query:
            names = ", ".join(sorted(self._query))
            raise ResolverConfigError(f"{self.scheme}:// does not understand parameter(s): {names}")

    def __repr__(self) -> str:
        return f"ResolverURL({self.raw!r})"
