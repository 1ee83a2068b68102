"""``EnvKeyResolver``: holder keys from environment variables (development)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

from .._cache import CacheObserver, CachePolicy
from .._resolver import BackendKeyResolver, KeyMaterial, StoredKey
from .._url import ResolverURL
from ..errors import KeyNotFound, ResolverConfigError

__all__ = ["EnvKeyResolver"]

logger = logging.getLogger("tenuo_keys.env")

PRODUCTION_SIGNALS = ("TENUO_ENV", "ENVIRONMENT", "APP_ENV", "ENV", "DEPLOYMENT_ENVIRONMENT")
PRODUCTION_VALUES = frozenset({"prod", "production", "live"})


class EnvKeyResolver(BackendKeyResolver):
    """Reads key ``agent1`` from ``TENUO_KEY_agent1``, in any accepted format.

    A previous version for rotation may sit in ``TENUO_KEY_agent1__PREVIOUS``.
    :meth:`preload_all` snapshots every matching variable into memory, so the
    workflow sandbox never touches ``os.environ``. Environment variables are
    a development convenience: a warning is logged when the process signals
    production (``TENUO_ENV``, ``ENVIRONMENT``, ``APP_ENV``, ``ENV`` or
    ``DEPLOYMENT_ENVIRONMENT`` set to ``prod``/``production``/``live``).

    Args:
        prefix: Variable name prefix; must not be empty.
        previous_suffix: Suffix of the variable holding the previous version.
        cache: Cache policy; environment values rarely change, so the default
            TTL only bounds how long an edited variable goes unnoticed.
        observers: Cache event observers.
        field: JSON field holding the key when a value is a JSON object.
        environ: The mapping to read (default ``os.environ``), for tests.

    Raises:
        ResolverConfigError: An empty ``prefix``.
    """

    backend = "env"

    def __init__(
        self,
        prefix: str = "TENUO_KEY_",
        *,
        previous_suffix: str = "__PREVIOUS",
        cache: CachePolicy | None = None,
        observers: Iterable[CacheObserver] = (),
        field: str = "key",
        environ: Any = None,
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            # An empty prefix would make every environment variable a key.
            raise ResolverConfigError(
                "env:// prefix must not be empty (every environment variable would be "
                "read as a key); use e.g. prefix=TENUO_KEY_")
        super().__init__(cache=cache, observers=observers, field=field)
        self.prefix = prefix
        self.previous_suffix = previous_suffix
        self._environ = os.environ if environ is None else environ
        signal = production_signal(self._environ)
        if signal:
            logger.warning(
                "EnvKeyResolver is for development: %s says this is production. Keep "
                "holder keys in Vault, AWS or GCP Secret Manager instead.", signal,
            )

    @classmethod
    def from_url(cls, url: ResolverURL, **kwargs: Any) -> EnvKeyResolver:
        """Build from ``env://?prefix=TENUO_KEY_&field=key&ttl=300``."""
        url.no_authority()
        prefix = url.pop("prefix", "TENUO_KEY_")
        field = url.pop("field", "key")
        cache = url.pop_cache_policy()
        url.finish()
        return cls(prefix, field=field, cache=cache, **kwargs)

    def fetch(self, key_id: str) -> KeyMaterial | Sequence[KeyMaterial]:
        """Read the variable(s) for ``key_id``."""
        name = self.prefix + key_id
        current = self._environ.get(name)
        if current is None:
            raise KeyNotFound(f"not found: environment variable {name} is not set",
                              key_id=key_id, backend=self.backend)
        versions = [StoredKey(current, "current")]
        previous = self._environ.get(name + self.previous_suffix)
        if previous is not None:
            versions.append(StoredKey(previous, "previous"))
        return versions

    def list_key_ids(self) -> list[str]:
        """Every key id with a variable under the prefix."""
        return sorted(
            name[len(self.prefix):]
            for name in list(self._environ)
            if name.startswith(self.prefix)
            and len(name) > len(self.prefix)
            and not name.endswith(self.previous_suffix)
        )

    def __repr__(self) -> str:
        return f"EnvKeyResolver(prefix={self.prefix!r}, held={len(self.cache)})"


def production_signal(environ: Any) -> str | None:
    """Return ``"NAME=value"`` when an environment variable signals production."""
    for name in PRODUCTION_SIGNALS:
        value = str(environ.get(name, "")).strip().lower()
        if value in PRODUCTION_VALUES:
            return f"{name}={value}"
    return None
