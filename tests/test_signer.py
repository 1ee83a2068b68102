"""The Signer contract's local implementation and sign_pop."""

from __future__ import annotations

import time

import pytest
import tenuo_core

from tenuo_keys import HolderMismatch
from tenuo_keys._signer import LocalSigner, Signer, sign_pop

ISSUER = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
WARRANT = tenuo_core.Warrant.issue(
    keypair=ISSUER, capabilities={"read_file": {"path": tenuo_core.Subpath("/data")}},
    ttl_seconds=600, holder=HOLDER.public_key)


class InMemoryRemote(Signer):
    """A 'remote' signer over an in-memory key: exercises the message-builder path."""

    backend = "test-remote"

    def __init__(self, key_id, key):
        super().__init__(key_id)
        self.key = key
        self.calls = 0

    def public_key_for(self, holder=None):
        return self.key.public_key

    def sign(self, message, *, holder=None):
        self.calls += 1
        return bytes(self.key.sign_raw(message))


def test_local_and_remote_paths_produce_the_verifier_accepted_pop():
    args = {"path": "/data/x"}
    ts = int(time.time())
    local = sign_pop(LocalSigner("agent1", HOLDER), WARRANT, "read_file", args, ts)
    remote_signer = InMemoryRemote("agent1", HOLDER)
    remote = sign_pop(remote_signer, WARRANT, "read_file", args, ts)
    assert local == remote and remote_signer.calls == 1
    authorizer = tenuo_core.Authorizer(trusted_roots=[ISSUER.public_key])
    authorizer.check_chain([WARRANT], "read_file", args, signature=remote)


def test_local_signer_refuses_another_holder():
    other = LocalSigner("x", tenuo_core.SigningKey.generate())
    with pytest.raises(HolderMismatch):
        sign_pop(other, WARRANT, "read_file", {"path": "/data/x"}, 0)
    assert "x" in repr(other) and "secret" not in repr(other).lower()
