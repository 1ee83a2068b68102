"""The ``tenuo-keys transit`` commands against a real OpenBao, end to end."""

from __future__ import annotations

import base64
import uuid

import pytest
import tenuo_core
from click.testing import CliRunner

from tenuo_keys import Signer, VaultTransitSigner, encode_signing_key, sign_pop, signer_from_url
from tenuo_keys.cli import main
from tenuo_keys.testing import assert_no_secret

pytestmark = pytest.mark.integration


def b64(key):
    return base64.b64encode(bytes(key.public_key_bytes())).decode()


def test_transit_create_import_public_and_sign(vault_server):
    url = f"vault-transit://127.0.0.1:{vault_server.port}/transit/{{key_id}}?tls=0"
    env = {"VAULT_TOKEN": vault_server.token}
    run = CliRunner().invoke
    created = f"cli-created-{uuid.uuid4().hex[:6]}"
    imported = f"cli-imported-{uuid.uuid4().hex[:6]}"

    out = run(main, ["transit", "create", url, created], env=env)
    assert out.exit_code == 0, out.output
    assert "non-exportable" in out.output
    again = run(main, ["transit", "create", url, created], env=env)
    assert again.exit_code == 2  # refuses to touch an existing key ...
    assert run(main, ["transit", "create", url, created, "--exist-ok"], env=env).exit_code == 0

    key = tenuo_core.SigningKey.generate()
    out = run(main, ["transit", "import", url, imported, "-"], input=encode_signing_key(key),
              env=env)
    assert out.exit_code == 0, out.output
    assert f"public key (base64): {b64(key)}" in out.output
    rotated = tenuo_core.SigningKey.generate()
    out = run(main, ["transit", "import", url, imported, "-", "--new-version"],
              input=encode_signing_key(rotated, "pem"), env=env)
    assert out.exit_code == 0, out.output

    current = run(main, ["transit", "public", url, imported], env=env)
    assert current.exit_code == 0 and current.stdout.strip() == b64(rotated)
    by_holder = run(main, ["transit", "public", url, imported, "--holder", b64(key),
                           "--format", "hex"], env=env)
    assert by_holder.exit_code == 0
    assert by_holder.stdout.strip() == bytes(key.public_key_bytes()).hex()
    stranger = base64.b64encode(b"x" * 32).decode()
    assert run(main, ["transit", "public", url, imported, "--holder", stranger],
               env=env).exit_code == 2
    assert run(main, ["transit", "public", url, "no-such-key"], env=env).exit_code == 2
    for output in (out.output, current.output, by_holder.output):
        assert_no_secret(output, [key, rotated], "CLI output")
        assert vault_server.token not in output

    # The imported key signs in Transit exactly as it signs locally, per version.
    signer = signer_from_url(url, key_id=imported, environ=env)
    assert isinstance(signer, VaultTransitSigner) and isinstance(signer, Signer)
    issuer = tenuo_core.SigningKey.generate()
    for holder in (key, rotated):
        warrant = tenuo_core.Warrant.issue(keypair=issuer, capabilities={"t": {}},
                                           ttl_seconds=60, holder=holder.public_key)
        assert sign_pop(signer, warrant, "t", {"a": 1}, 100) == bytes(
            warrant.sign(holder, "t", {"a": 1}, 100))
    signer.close()
