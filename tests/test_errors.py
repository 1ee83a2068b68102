"""One rooted error hierarchy with structured fields."""

from __future__ import annotations

import pickle

import pytest

from tenuo_keys import errors


@pytest.mark.parametrize(
    ("cls", "stdlib", "retryable", "reason"),
    [
        (errors.KeyNotFound, LookupError, False, "not found"),
        (errors.KeyAccessDenied, PermissionError, False, "access denied"),
        (errors.BackendUnavailable, ConnectionError, True, "backend unreachable"),
        (errors.KeyFormatError, ValueError, False, "not a key"),
        (errors.KeyNotLoaded, errors.KeyResolutionError, True, "not loaded"),
        (errors.HolderMismatch, errors.KeyResolutionError, False, "holder mismatch"),
        (errors.ResolverClosed, errors.KeyResolutionError, False, "closed"),
    ],
)
def test_hierarchy_fields_and_messages(cls, stdlib, retryable, reason):
    err = cls(key_id="agent1", backend="vault")
    assert isinstance(err, errors.KeyResolutionError) and isinstance(err, errors.TenuoKeysError)
    assert isinstance(err, stdlib)
    assert err.retryable is retryable
    assert str(err) == f"backend 'vault', key 'agent1': {err.reason}"
    assert reason in str(err)
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is cls and repr(clone) == repr(err)


def test_with_context_fills_only_missing_fields():
    err = errors.KeyNotFound("gone", backend="aws")
    filled = err.with_context(key_id="k1", backend="ignored")
    assert (filled.key_id, filled.backend, filled.reason) == ("k1", "aws", "gone")
    assert err.key_id is None


def test_config_errors():
    err = errors.MissingExtraError("vault", "vault", "hvac")
    assert isinstance(err, errors.ResolverConfigError) and isinstance(err, ImportError)
    assert "pip install 'tenuo-keys[vault]'" in str(err)
    assert isinstance(errors.ResolverConfigError("x"), ValueError)
