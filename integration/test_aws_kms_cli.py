"""``tenuo-keys kms create|rotate|public`` against the AWS KMS test server, real boto3 client."""

from __future__ import annotations

import base64

import pytest
import tenuo_core
from click.testing import CliRunner

from integration.support.procs import free_port
from integration.support.signer_checks import unique
from tenuo_keys.cli import EXIT_BACKEND, EXIT_LOCAL, main

pytestmark = pytest.mark.integration


def test_create_public_rotate_and_holder(aws_kms):
    runner = CliRunner()
    key_id = unique("cli")
    url = aws_kms.url()
    created = runner.invoke(main, ["kms", "create", url, key_id])
    assert created.exit_code == 0, created.output
    arn = aws_kms.target(f"alias/tenuo-{key_id}")
    assert f"alias/tenuo-{key_id} -> {arn}" in created.output
    again = runner.invoke(main, ["kms", "create", url, key_id])
    assert again.exit_code == EXIT_BACKEND and "already names" in again.output
    assert runner.invoke(main, ["kms", "create", url, key_id, "--exist-ok"]).exit_code == 0

    public = runner.invoke(main, ["kms", "public", url, key_id])
    assert public.exit_code == 0, public.output
    first = public.stdout.strip()
    assert base64.b64decode(first) == aws_kms.public_raw(arn)
    assert arn in public.stderr

    rotated = runner.invoke(main, ["kms", "rotate", url, key_id])
    assert rotated.exit_code == 0, rotated.output
    second = runner.invoke(main, ["kms", "public", url, key_id]).stdout.strip()
    assert second != first
    # --holder finds the previous key (kept under alias/.../previous).
    old = runner.invoke(main, ["kms", "public", url, key_id, "--holder", first])
    assert old.exit_code == 0 and old.stdout.strip() == first and arn in old.stderr
    stranger = base64.b64encode(bytes(
        tenuo_core.SigningKey.generate().public_key.to_bytes())).decode()
    mismatch = runner.invoke(main, ["kms", "public", url, key_id, "--holder", stranger])
    assert mismatch.exit_code == EXIT_BACKEND and "holder mismatch" in mismatch.output
    pem = runner.invoke(main, ["kms", "public", url, key_id, "--format", "pem"])
    assert pem.stdout.startswith("-----BEGIN PUBLIC KEY-----")


def test_exit_codes_and_help(aws_kms):
    runner = CliRunner()
    missing = runner.invoke(main, ["kms", "public", aws_kms.url(), unique("absent")])
    assert missing.exit_code == EXIT_BACKEND and "NotFoundException" in missing.output
    down = runner.invoke(main, ["kms", "public", f"awskms://us-east-1/?endpoint_url="
                                f"http://127.0.0.1:{free_port()}&max_attempts=1", "k"])
    assert down.exit_code == EXIT_BACKEND and "unreachable" in down.output
    bad = runner.invoke(main, ["kms", "public", "awskms://us-east-1/?nope=1", "k"])
    assert bad.exit_code == EXIT_LOCAL and "nope" in bad.output
    # create makes an alias: a template naming a key ARN is refused locally.
    fixed = runner.invoke(main, ["kms", "create", aws_kms.url(template=aws_kms.create_key()),
                                 "k"])
    assert fixed.exit_code == EXIT_LOCAL and "gives an alias" in fixed.output
    for args in (["kms", "-h"], ["kms", "create", "-h"], ["kms", "public", "-h"],
                 ["kms", "rotate", "-h"]):
        shown = runner.invoke(main, args)
        assert shown.exit_code == 0 and "Usage:" in shown.output
    assert "never leave AWS KMS" in runner.invoke(main, ["kms", "-h"]).output
    # A signer URL given to a key-store command points at the kms group.
    listed = runner.invoke(main, ["public", aws_kms.url(), "k"])
    assert listed.exit_code == EXIT_LOCAL and "tenuo-keys kms public" in listed.output
