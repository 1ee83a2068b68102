"""Test kit for resolvers: the conformance suite, an I/O guard and a leak scanner.

Any resolver, built-in or your own, runs the whole suite by supplying one
small harness::

    import pytest
    from tenuo_keys.testing import ResolverConformance, ResolverHarness

    class MyHarness(ResolverHarness):
        def make_resolver(self, *, cache, observers):
            return MyResolver(cache=cache, observers=observers)
        def put(self, key_id, value):
            my_store[key_id] = value

    class TestMyResolver(ResolverConformance):
        @pytest.fixture
        def harness(self):
            return MyHarness()

Signers (keys that never leave a KMS) have their own suite,
:class:`SignerConformance` with a :class:`SignerHarness`, built the same way.

The suites need ``pytest`` and ``pytest-asyncio``: ``pip install
'tenuo-keys[testing]'``. The rest (:func:`io_guard`, the leak scanner) needs
nothing more than ``tenuo-keys``, and the suites load on first use, so without
pytest ``from tenuo_keys.testing import ResolverConformance`` raises
:class:`~tenuo_keys.errors.MissingExtraError` with that install line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import Lazy, lazy_attribute
from ._guard import IOGuard, io_guard
from ._secrets import (
    BINARY_FORMS,
    MATERIAL_FORMS,
    assert_no_secret,
    find_secret,
    material,
    secret_forms,
)

if TYPE_CHECKING:
    from ._conformance import FAST_POLICY, ResolverConformance, ResolverHarness, wait_for_sync
    from ._signer_conformance import SignerConformance, SignerHarness

__all__ = [
    "BINARY_FORMS",
    "FAST_POLICY",
    "MATERIAL_FORMS",
    "IOGuard",
    "ResolverConformance",
    "ResolverHarness",
    "SignerConformance",
    "SignerHarness",
    "assert_no_secret",
    "find_secret",
    "io_guard",
    "material",
    "secret_forms",
    "wait_for_sync",
]

_RESOLVER_KIT = Lazy("tenuo_keys.testing._conformance", "testing")
_SIGNER_KIT = Lazy("tenuo_keys.testing._signer_conformance", "testing")
# The suites import pytest (and need pytest-asyncio): loaded on first use.
_LAZY = {
    "FAST_POLICY": _RESOLVER_KIT,
    "ResolverConformance": _RESOLVER_KIT,
    "ResolverHarness": _RESOLVER_KIT,
    "wait_for_sync": _RESOLVER_KIT,
    "SignerConformance": _SIGNER_KIT,
    "SignerHarness": _SIGNER_KIT,
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name, subject=f"the conformance kit ({name})")
