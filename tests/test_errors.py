"""One rooted error hierarchy with structured fields."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

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


_ABSENT = """
import sys

class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {names!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _Absent())
"""


def run_without(names: set[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where ``names`` cannot be imported."""
    script = _ABSENT.format(names=names) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)


def test_a_lazy_attribute_without_its_extra_is_an_attribute_error_with_the_hint():
    out = run_without({"hvac"}, """
        import tenuo_keys
        assert hasattr(tenuo_keys, "VaultKeyResolver") is False
        assert getattr(tenuo_keys, "VaultTransitSigner", None) is None
        try:
            tenuo_keys.VaultKeyResolver
        except AttributeError as exc:
            assert isinstance(exc, tenuo_keys.MissingExtraAttributeError)
            assert isinstance(exc, tenuo_keys.ResolverConfigError)
            assert (exc.extra, exc.missing, exc.name) == ("vault", "hvac", "VaultKeyResolver")
            print(exc)
        try:
            from tenuo_keys import VaultKeyResolver
        except tenuo_keys.MissingExtraError as exc:
            print(exc)
    """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stdout
    assert all("needs 'hvac'" in line and "pip install 'tenuo-keys[vault]'" in line
               for line in lines)
