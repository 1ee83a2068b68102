"""The scheme registry: ``resolver_from_url`` and ``resolver_from_env``.

Built-in backends are imported only when their scheme is used; a missing
optional dependency gives :class:`~tenuo_keys.errors.MissingExtraError` with
the ``pip install`` line. Third-party resolvers register in code with
:func:`register_resolver` or through the entry-point group
``tenuo_keys.resolvers`` (name = scheme, value = ``module:Class``). A scheme
once registered is never silently replaced.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from ._resolver import KeyResolver
from ._url import ResolverURL
from .errors import MissingExtraError, ResolverConfigError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_VAR",
    "register_resolver",
    "registered_schemes",
    "resolver_from_env",
    "resolver_from_url",
    "signer_from_url",
]

logger = logging.getLogger("tenuo_keys.registry")

ENV_VAR = "TENUO_KEY_RESOLVER"
ENTRY_POINT_GROUP = "tenuo_keys.resolvers"


@dataclass(frozen=True)
class _Registration:
    target: str | Callable[..., Any]
    extra: str | None = None
    requires: str | None = None


_BUILTINS: dict[str, _Registration] = {
    "env": _Registration("tenuo_keys.backends.env:EnvKeyResolver"),
    "file": _Registration("tenuo_keys.backends.file:FileKeyResolver"),
    "vault": _Registration("tenuo_keys.backends.vault:VaultKeyResolver", "vault", "hvac"),
    "awssm": _Registration(
        "tenuo_keys.backends.aws:AWSSecretsManagerKeyResolver", "aws", "boto3"
    ),
    "gcpsm": _Registration(
        "tenuo_keys.backends.gcp:GCPSecretManagerKeyResolver", "gcp", "google.cloud.secretmanager"
    ),
}
_SIGNERS: dict[str, _Registration] = {
    # Keys that never leave a KMS: built with signer_from_url, not resolver_from_url.
    "vault-transit": _Registration(
        "tenuo_keys.backends.vault_transit:VaultTransitSigner", "vault", "hvac"
    ),
    "gcpkms": _Registration(
        "tenuo_keys.backends.gcp_kms:GCPKMSSigner", "gcp", "google.cloud.kms_v1"
    ),
    "awskms": _Registration("tenuo_keys.backends.aws_kms:AWSKMSSigner", "aws", "boto3"),
}
_lock = threading.Lock()
_registry: dict[str, _Registration] = dict(_BUILTINS)
_entry_points_loaded = False


def register_resolver(
    scheme: str,
    target: str | Callable[..., Any],
    *,
    extra: str | None = None,
    requires: str | None = None,
    overwrite: bool = False,
) -> None:
    """Register a resolver class for a URL scheme.

    Args:
        scheme: The scheme, e.g. ``"myvault"``.
        target: The class (or ``"module:Class"``). It must have a
            ``from_url(url: ResolverURL, **kwargs)`` classmethod.
        extra: The ``tenuo-keys`` extra that installs its dependency.
        requires: The importable module it needs, checked on use.
        overwrite: Replace an existing registration deliberately.

    Raises:
        ResolverConfigError: The scheme is taken and ``overwrite`` is False, or
            ``target`` is a class without a callable ``from_url``.
    """
    scheme = _norm(scheme)
    if not isinstance(target, str):
        _check_from_url(scheme, target)
    with _lock:
        if scheme in _registry and not overwrite:
            raise ResolverConfigError(
                f"resolver scheme {scheme!r} is already registered; pass overwrite=True "
                "to replace it deliberately"
            )
        _registry[scheme] = _Registration(target, extra, requires)


def registered_schemes() -> list[str]:
    """Every scheme known now, built-in, in code and from entry points."""
    _load_entry_points()
    with _lock:
        return sorted(_registry)


def resolver_class(scheme: str) -> Any:
    """The resolver class registered for ``scheme``, imported on demand.

    Raises:
        ResolverConfigError: Unknown scheme.
        MissingExtraError: Its optional dependency is not installed.
    """
    scheme = _norm(scheme)
    with _lock:
        registration = _registry.get(scheme)
    if registration is None:
        _load_entry_points()
        with _lock:
            registration = _registry.get(scheme)
    if registration is None:
        known = ", ".join(registered_schemes())
        hint = " (it names a signer: use signer_from_url)" if scheme in _SIGNERS else ""
        raise ResolverConfigError(f"no resolver for scheme {scheme!r}{hint} (known: {known})")
    return _load(scheme, registration)


def _load(scheme: str, registration: _Registration) -> Any:
    """Import a registration's target, turning a missing extra into MissingExtraError."""
    if registration.requires:
        try:
            importlib.import_module(registration.requires)
        except ImportError:
            raise MissingExtraError(scheme, registration.extra or scheme,
                                    registration.requires) from None
    target = registration.target
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if registration.extra:
            raise MissingExtraError(scheme, registration.extra, exc.name or module_name) from None
        raise
    return _check_from_url(scheme, getattr(module, attr))


def _check_from_url(scheme: str, target: Any) -> Any:
    """``target`` when it can build from a URL; else a message saying what to add."""
    if not callable(getattr(target, "from_url", None)):
        name = getattr(target, "__name__", type(target).__name__)
        raise ResolverConfigError(
            f"cannot use {name} for {scheme}://: it has no from_url classmethod. Add "
            "'@classmethod def from_url(cls, url: ResolverURL, **kwargs)' that reads the "
            "URL's parameters (url.pop(...)), calls url.finish() and returns an instance")
    return target


def resolver_from_url(url: str, **kwargs: Any) -> KeyResolver:
    """Build a resolver from a URL such as ``env://?prefix=TENUO_KEY_``.

    Several URLs separated by whitespace build a
    :class:`~tenuo_keys.CompositeKeyResolver` tried in that order.

    Args:
        url: The URL(s). Secrets never go in them.
        **kwargs: Extra constructor arguments (clients, tokens, observers).

    Returns:
        The resolver.

    Raises:
        ResolverConfigError: The URL is malformed, names an unknown scheme or
            carries an unknown parameter.
        MissingExtraError: The backend's extra is not installed.
    """
    urls = url.split() if isinstance(url, str) else []
    if len(urls) > 1:
        from .backends.composite import CompositeKeyResolver

        return CompositeKeyResolver([resolver_from_url(u, **kwargs) for u in urls])
    parsed = ResolverURL(urls[0] if urls else str(url))
    cls = resolver_class(parsed.scheme)
    resolver = cls.from_url(parsed, **kwargs)
    if not isinstance(resolver, KeyResolver):
        raise ResolverConfigError(
            f"{parsed.scheme}:// built {type(resolver).__name__}, which is not a KeyResolver"
        )
    return resolver


def signer_from_url(url: str, *, key_id: str | None = None, **kwargs: Any) -> Any:
    """Build a remote signer from a URL such as ``vault-transit://vault:8200/transit/{key_id}``.

    Args:
        url: The URL. Secrets never go in it.
        key_id: The key id (optional when the URL names one fixed key).
        **kwargs: Extra constructor arguments (tokens, ``environ``).

    Returns:
        The :class:`~tenuo_keys.Signer`.

    Raises:
        ResolverConfigError: Malformed, unknown scheme or unknown parameter.
        MissingExtraError: The backend's extra is not installed.
    """
    parsed = ResolverURL(url)
    registration = _SIGNERS.get(parsed.scheme)
    if registration is None:
        raise ResolverConfigError(
            f"no signer for scheme {parsed.scheme!r} (known: {', '.join(sorted(_SIGNERS))})")
    cls = _load(parsed.scheme, registration)
    return cls.from_url(parsed, key_id=key_id, **kwargs)


def resolver_from_env(
    var: str = ENV_VAR, *, default: str | None = None,
    environ: Mapping[str, str] | None = None, **kwargs: Any,
) -> KeyResolver:
    """Build the resolver named by ``$TENUO_KEY_RESOLVER``.

    Args:
        var: The variable to read.
        default: URL used when it is unset.
        environ: Mapping to read instead of ``os.environ``.
        **kwargs: Passed to the resolver's constructor.

    Raises:
        ResolverConfigError: Unset with no default, or invalid.
    """
    value = (os.environ if environ is None else environ).get(var) or default
    if not value:
        raise ResolverConfigError(
            f"${var} is not set; set it to a resolver URL such as 'env://?prefix=TENUO_KEY_'"
        )
    return resolver_from_url(value, **kwargs)


def _norm(scheme: str) -> str:
    if not isinstance(scheme, str) or not scheme.replace("+", "").replace("-", "").isalnum():
        raise ResolverConfigError(f"invalid resolver scheme {scheme!r}")
    return scheme.lower()


def _load_entry_points() -> None:
    global _entry_points_loaded
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            scheme = ep.name.lower()
            if scheme in _registry:
                logger.warning(
                    "tenuo_keys: entry point %r (%s) ignored: scheme already registered",
                    scheme, ep.value,
                )
                continue
            _registry[scheme] = _Registration(ep.value)
