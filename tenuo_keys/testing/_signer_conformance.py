"""The signer conformance suite: one set of tests every ``Signer`` passes.

Any signer, built-in or your own, runs the whole suite by supplying one
small harness::

    import pytest
    from tenuo_keys.testing import SignerConformance, SignerHarness

    class MyHarness(SignerHarness):
        def make_signer(self, key_id):
            return MyKmsSigner(key_id)
        def put(self, key_id, key):
            my_kms.import_key(key_id, key)

    class TestMySigner(SignerConformance):
        @pytest.fixture
        def harness(self):
            return MyHarness()

Every PoP the suite makes is checked by ``tenuo_core.Authorizer.check_chain``,
and, where the backend can hold a given key, compared byte for byte with the
PoP ``tenuo_core`` signs locally.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
import pytest_asyncio  # noqa: F401  (its plugin runs the async tests: fail here if absent)
import tenuo_core

from .._pop import pop_message
from .._signer import Signer, sign_pop
from ..errors import (
    BackendUnavailable,
    HolderMismatch,
    KeyAccessDenied,
    KeyNotFound,
    KeyResolutionError,
)
from ._secrets import assert_no_secret

__all__ = ["SignerConformance", "SignerHarness"]

TOOL = "read_file"
ARGS: dict[str, Any] = {"path": "/data/report.txt", "n": 3, "f": 1.5, "flag": True}
_ISSUER = tenuo_core.SigningKey.generate()


class SignerHarness:
    """What a signer's tests supply: how to build it and how to put keys behind it.

    Subclass it for your backend and return it from the ``harness`` fixture
    of a :class:`SignerConformance` subclass.

    Attributes:
        supports_import: :meth:`put` stores a given key, so signatures can be
            compared byte for byte with the local ones.
        supports_rotation: :meth:`rotate` adds a version and older versions
            keep signing for warrants that name them.
    """

    supports_import: ClassVar[bool] = True
    supports_rotation: ClassVar[bool] = True

    def make_signer(self, key_id: str) -> Signer:
        """Build a signer for ``key_id`` on the test backend."""
        raise NotImplementedError

    def put(self, key_id: str, key: Any) -> None:
        """Store the ``tenuo_core.SigningKey`` ``key`` as ``key_id``'s only version."""
        raise NotImplementedError

    def create(self, key_id: str) -> None:
        """Create a key for ``key_id`` inside the backend (default: :meth:`put` a new one)."""
        self.put(key_id, tenuo_core.SigningKey.generate())

    def rotate(self, key_id: str) -> None:
        """Make a new current version of ``key_id``, keeping the old one usable."""
        raise NotImplementedError

    def make_unreachable_signer(self, key_id: str) -> Signer:
        """A signer whose backend cannot be reached (skip when not overridden).

        It may raise :class:`~tenuo_keys.errors.BackendUnavailable` itself.
        """
        raise NotImplementedError

    def make_denied_signer(self, key_id: str) -> Signer:
        """A signer whose credentials the backend refuses (skip when not overridden).

        It may raise :class:`~tenuo_keys.errors.KeyAccessDenied` itself.
        """
        raise NotImplementedError

    def secrets(self) -> list[str]:
        """Credentials (tokens, passwords) that must never show in reprs, errors or logs."""
        return []

    def key_id(self, name: str) -> str:
        """A key id unique to this test run, so shared services need no cleanup."""
        return f"{name}-{uuid.uuid4().hex[:10]}"


def _warrant(holder: Any) -> Any:
    if isinstance(holder, (bytes, bytearray)):
        holder = tenuo_core.PublicKey.from_bytes(bytes(holder))
    return tenuo_core.Warrant.issue(keypair=_ISSUER, capabilities={TOOL: {}},
                                    ttl_seconds=600, holder=holder)


def _accepts(warrant: Any, pop: bytes, args: dict[str, Any] | None = None) -> None:
    """Raises unless ``tenuo_core``'s verifier accepts ``pop`` for ``warrant``."""
    authorizer = tenuo_core.Authorizer(trusted_roots=[_ISSUER.public_key])
    authorizer.check_chain([warrant], TOOL, ARGS if args is None else args, signature=pop)


def _raw(public_key: Any) -> bytes:
    return bytes(public_key.to_bytes())


def _sign_once(make: Callable[[str], Signer], key_id: str) -> bytes:
    """Build a signer (which may itself raise) and sign once; always closes it."""
    with make(key_id) as signer:
        return signer.sign(b"message")


class SignerConformance:
    """Mix this into a test class and override the ``harness`` fixture."""

    @pytest.fixture
    def harness(self) -> SignerHarness:
        """Override: return the backend's :class:`SignerHarness`."""
        raise NotImplementedError("override the `harness` fixture in your test class")

    @pytest.fixture
    def signer(self, harness: SignerHarness) -> Iterator[Signer]:
        """A signer over a key created in the backend, closed after the test."""
        key_id = harness.key_id("created")
        harness.create(key_id)
        signer = harness.make_signer(key_id)
        try:
            yield signer
        finally:
            signer.close()

    # -- signatures ---------------------------------------------------------

    def test_pop_verifies_with_authorizer(self, signer: Signer) -> None:
        holder = signer.public_key
        warrant = _warrant(holder)
        pop = sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
        assert isinstance(pop, bytes) and len(pop) == 64
        _accepts(warrant, pop)
        assert _raw(signer.public_key_for(holder)) == _raw(holder)

    def test_pop_equals_local_signature(self, harness: SignerHarness) -> None:
        if not harness.supports_import:
            pytest.skip("this backend cannot hold a given key")
        key = tenuo_core.SigningKey.generate()
        key_id = harness.key_id("same-bytes")
        harness.put(key_id, key)
        warrant = _warrant(key.public_key)
        ts = int(time.time())
        with harness.make_signer(key_id) as signer:
            remote = sign_pop(signer, warrant, TOOL, ARGS, ts)
            assert remote == bytes(warrant.sign(key, TOOL, ARGS, ts))
            message = pop_message(warrant, TOOL, ARGS, ts)
            assert signer.sign(message) == bytes(key.sign_raw(message))
            assert _raw(signer.public_key) == bytes(key.public_key_bytes())
        _accepts(warrant, remote)

    def test_pop_for_other_arguments_is_refused(self, signer: Signer) -> None:
        warrant = _warrant(signer.public_key)
        pop = sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
        from tenuo.exceptions import SignatureInvalid

        with pytest.raises(SignatureInvalid):
            _accepts(warrant, pop, {**ARGS, "path": "/data/other.txt"})

    # -- holders ---------------------------------------------------------------

    def test_holder_match_and_mismatch(self, signer: Signer) -> None:
        holder = signer.public_key
        assert _raw(signer.public_key_for(_raw(holder))) == _raw(holder)  # bytes work too
        stranger = tenuo_core.SigningKey.generate()
        with pytest.raises(HolderMismatch) as info:
            signer.public_key_for(stranger.public_key)
        assert info.value.key_id == signer.key_id
        assert info.value.backend
        assert "holder mismatch" in str(info.value)
        warrant = _warrant(stranger.public_key)
        with pytest.raises(HolderMismatch):
            sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
        with pytest.raises(HolderMismatch):
            signer.sign(b"message", holder=stranger.public_key)

    # -- rotation ---------------------------------------------------------------

    def test_rotation_keeps_old_versions_for_their_holders(self, harness: SignerHarness) -> None:
        if not harness.supports_rotation:
            pytest.skip("this backend keeps one version")
        key_id = harness.key_id("rotate")
        harness.create(key_id)
        ts = int(time.time())
        with harness.make_signer(key_id) as signer:
            old = signer.public_key
            in_flight = _warrant(old)
            harness.rotate(key_id)
            with harness.make_signer(key_id) as fresh:
                new = fresh.public_key
                assert _raw(new) != _raw(old), "rotate() must make a new current version"
                # A signer that first saw the key after the rotation still serves the old holder.
                _accepts(in_flight, sign_pop(fresh, in_flight, TOOL, ARGS, ts))
            minted_after = _warrant(new)
            # A warrant minted after the rotation: the unknown holder makes the signer re-read.
            _accepts(minted_after, sign_pop(signer, minted_after, TOOL, ARGS, ts))
            # Warrants in flight keep signing with the version they name.
            _accepts(in_flight, sign_pop(signer, in_flight, TOOL, ARGS, ts))
            assert _raw(signer.public_key_for(old)) == _raw(old)
            assert _raw(signer.public_key_for(new)) == _raw(new)

    # -- errors -------------------------------------------------------------------

    def test_not_found(self, harness: SignerHarness) -> None:
        key_id = harness.key_id("absent")
        with pytest.raises(KeyNotFound) as info:
            _sign_once(harness.make_signer, key_id)
        assert info.value.key_id == key_id
        assert info.value.backend
        assert info.value.retryable is False

    def test_unreachable_is_retryable(self, harness: SignerHarness) -> None:
        if type(harness).make_unreachable_signer is SignerHarness.make_unreachable_signer:
            pytest.skip("the harness has no unreachable backend")
        key_id = harness.key_id("unreachable")
        with pytest.raises(BackendUnavailable) as info:
            _sign_once(harness.make_unreachable_signer, key_id)
        assert info.value.retryable is True
        assert info.value.key_id == key_id

    def test_denied_is_typed(self, harness: SignerHarness) -> None:
        if type(harness).make_denied_signer is SignerHarness.make_denied_signer:
            pytest.skip("the harness has no way to be denied")
        key_id = harness.key_id("denied")
        harness.create(key_id)
        with pytest.raises(KeyAccessDenied) as info:
            _sign_once(harness.make_denied_signer, key_id)
        assert info.value.retryable is False
        assert info.value.key_id == key_id
        for secret in harness.secrets():
            assert secret not in str(info.value) + repr(info.value)

    # -- concurrency ----------------------------------------------------------------

    def test_concurrent_signing(self, signer: Signer) -> None:
        warrant = _warrant(signer.public_key)
        ts = int(time.time())
        results: list[bytes] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        barrier = threading.Barrier(8)

        def worker(n: int) -> None:
            barrier.wait()
            for i in range(4):
                try:
                    pop = sign_pop(signer, warrant, TOOL, {**ARGS, "n": n * 10 + i}, ts)
                    _accepts(warrant, pop, {**ARGS, "n": n * 10 + i})
                except BaseException as exc:  # reported below, in the test thread
                    with lock:
                        errors.append(exc)
                    return
                with lock:
                    results.append(pop)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors[0]
        assert len(set(results)) == 32

    @pytest.mark.asyncio
    async def test_asign(self, signer: Signer) -> None:
        warrant = _warrant(signer.public_key)
        ts = int(time.time())
        messages = [pop_message(warrant, TOOL, {**ARGS, "n": i}, ts) for i in range(10)]
        holder = warrant.authorized_holder
        pops = await asyncio.gather(*(signer.asign(m, holder=holder) for m in messages))
        for i, pop in enumerate(pops):
            _accepts(warrant, pop, {**ARGS, "n": i})

    # -- redaction and lifecycle -------------------------------------------------

    def test_redaction(self, harness: SignerHarness, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        key = tenuo_core.SigningKey.generate()
        key_id = harness.key_id("redact")
        if harness.supports_import:
            harness.put(key_id, key)
        else:
            harness.create(key_id)
        texts: list[tuple[str, str]] = []
        with harness.make_signer(key_id) as signer:
            warrant = _warrant(signer.public_key)
            sign_pop(signer, warrant, TOOL, ARGS, int(time.time()))
            texts += [(repr(signer), "repr(signer)"), (str(signer), "str(signer)")]
            try:
                signer.sign(b"m", holder=tenuo_core.SigningKey.generate().public_key)
            except HolderMismatch as exc:
                texts.append((str(exc) + repr(exc), "a holder-mismatch error"))
        try:
            _sign_once(harness.make_signer, harness.key_id("redact-absent"))
        except KeyResolutionError as exc:
            texts.append((str(exc) + repr(exc), "a not-found error"))
        texts.append((caplog.text, "logs"))
        for text, where in texts:
            assert_no_secret(text, [key], where)
            for secret in harness.secrets():
                assert secret not in text, f"a credential leaked in {where}"

    def test_close(self, harness: SignerHarness) -> None:
        key_id = harness.key_id("close")
        harness.create(key_id)
        with harness.make_signer(key_id) as signer:
            warrant = _warrant(signer.public_key)
            _accepts(warrant, sign_pop(signer, warrant, TOOL, ARGS, int(time.time())))
        signer.close()  # twice is harmless
        if signer.remote:
            with pytest.raises(KeyResolutionError):
                signer.sign(b"after close", holder=warrant.authorized_holder)
