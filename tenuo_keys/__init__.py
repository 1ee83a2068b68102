"""Holder keys for Tenuo, from wherever a platform team keeps them.

A :class:`KeyResolver` turns a key id into the ``tenuo_core.SigningKey`` that
signs Proof-of-Possession for a warrant. ``resolve_sync`` serves from memory
only, so it is safe inside Temporal's workflow sandbox; ``resolve`` may fetch.
Every backend shares one cache (TTL, refresh-ahead, stale-if-error,
single-flight) and one key decoder.

Example:
    >>> import os, tenuo_core
    >>> from tenuo_keys import EnvKeyResolver, encode_signing_key
    >>> key = tenuo_core.SigningKey.generate()
    >>> env = {"TENUO_KEY_agent1": encode_signing_key(key)}
    >>> with EnvKeyResolver(environ=env) as resolver:
    ...     resolver.preload_all()
    ...     resolver.resolve_sync("agent1").public_key_bytes() == key.public_key_bytes()
    PreloadReport(loaded=1, failed={})
    True
"""

from __future__ import annotations

from typing import Any

from ._cache import CacheEvent, CacheObserver, CachePolicy, CacheStats, KeyCache
from ._formats import FORMATS, decode_signing_key, encode_signing_key
from ._keyset import KeyVersion, KeyVersions
from ._lazy import Lazy, lazy_attribute
from ._registry import (
    register_resolver,
    registered_schemes,
    resolver_from_env,
    resolver_from_url,
    signer_from_url,
)
from ._resolver import BackendKeyResolver, KeyResolver, PreloadReport, StoredKey
from ._signer import LocalSigner, Signer, sign_pop
from ._url import ResolverURL
from .backends.composite import CompositeKeyResolver
from .backends.env import EnvKeyResolver
from .backends.file import FileKeyResolver
from .backends.static import StaticKeyResolver
from .errors import (
    BackendUnavailable,
    HolderMismatch,
    KeyAccessDenied,
    KeyFormatError,
    KeyNotFound,
    KeyNotLoaded,
    KeyResolutionError,
    MissingExtraAttributeError,
    MissingExtraError,
    ResolverClosed,
    ResolverConfigError,
    TenuoKeysError,
)

__all__ = [
    "FORMATS",
    "BackendKeyResolver",
    "BackendUnavailable",
    "CacheEvent",
    "CacheObserver",
    "CachePolicy",
    "CacheStats",
    "CompositeKeyResolver",
    "EnvKeyResolver",
    "FileKeyResolver",
    "HolderMismatch",
    "KeyAccessDenied",
    "KeyCache",
    "KeyFormatError",
    "KeyNotFound",
    "KeyNotLoaded",
    "KeyResolutionError",
    "KeyResolver",
    "KeyVersion",
    "KeyVersions",
    "LocalSigner",
    "MissingExtraAttributeError",
    "MissingExtraError",
    "PreloadReport",
    "ResolverClosed",
    "ResolverConfigError",
    "ResolverURL",
    "Signer",
    "StaticKeyResolver",
    "StoredKey",
    "TenuoKeysError",
    "decode_signing_key",
    "encode_signing_key",
    "register_resolver",
    "registered_schemes",
    "resolver_from_env",
    "resolver_from_url",
    "sign_pop",
    "signer_from_url",
]

# Cloud resolvers import their client libraries; they load on first use, and a
# missing extra says what to install.
_LAZY = {
    "VaultKeyResolver": Lazy("tenuo_keys.backends.vault", "vault", "hvac"),
    "VaultTransitSigner": Lazy("tenuo_keys.backends.vault_transit", "vault", "hvac"),
    "AWSSecretsManagerKeyResolver": Lazy("tenuo_keys.backends.aws", "aws", "boto3"),
    "GCPSecretManagerKeyResolver": Lazy(
        "tenuo_keys.backends.gcp", "gcp", "google-cloud-secret-manager"
    ),
    "GCPKMSSigner": Lazy("tenuo_keys.backends.gcp_kms", "gcp", "google-cloud-kms"),
    "AWSKMSSigner": Lazy("tenuo_keys.backends.aws_kms", "aws", "boto3"),
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)
