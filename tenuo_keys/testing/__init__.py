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

The suites need ``pytest`` and ``pytest-asyncio`` (``tenuo-keys[dev]``).
"""

from __future__ import annotations

from ._conformance import FAST_POLICY, ResolverConformance, ResolverHarness, wait_for_sync
from ._guard import IOGuard, io_guard
from ._secrets import (
    BINARY_FORMS,
    MATERIAL_FORMS,
    assert_no_secret,
    find_secret,
    material,
    secret_forms,
)
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
