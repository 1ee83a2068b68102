"""One rooted error hierarchy with structured fields."""

from __future__ import annotations

import pickle

import pytest

from tenuo_keys import (
    BackendUnavailable,
    HolderMismatch,
    KeyAccessDenied,
    KeyFormatError,
    KeyNotFound,
    KeyNotLoaded,
    KeyResolutionError,
    MissingExtraError,
    ResolverClosed,
    ResolverConfigError,
    TenuoKeysError,
)


@pytest.mark.parametrize(
    ("cls", "stdlib", "retryable", "reason"),
    [
        (KeyNotFound, LookupError, False, "not found"),
        (KeyAccessDenied, PermissionError, False, "access denied"),
        (BackendUnavailable, ConnectionError, True, "backend unreachable"),
        (KeyFormatError, ValueError, False, "not a key"),
        (KeyNotLoaded, KeyResolutionError, True, "not loaded"),
        (HolderMismatch, KeyResolutionError, False, "holder mismatch"),
        (ResolverClosed, KeyResolutionError, False, "closed"),
    ],
)
def test_hierarchy_fields_and_messages(cls, stdlib, retryable, reason):
    err = cls(key_id="agent1", backend="vault")
    assert isinstance(err, KeyResolutionError) and isinstance(err, TenuoKeysError)
    assert isinstance(err, stdlib)
    assert err.retryable is retryable
    assert str(err) == f"backend 'vault', key 'agent1': {err.reason}"
    assert reason in str(err)
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is cls and repr(clone) == repr(err)


def test_with_context_fills_only_missing_fields():
    err = KeyNotFound("gone", backend="aws")
    filled = err.with_context(key_id="k1", backend="ignored")
    assert (filled.key_id, filled.backend, filled.reason) == ("k1", "aws", "gone")
    assert err.key_id is None


def test_config_errors():
    err = MissingExtraError("vault", "vault", "hvac")
    assert isinstance(err, ResolverConfigError) and isinstance(err, ImportError)
    assert "pip install 'tenuo-keys[vault]'" in str(err)
    assert isinstance(ResolverConfigError("x"), ValueError)
