"""The ``tenuo-keys`` command line.

Secret output goes to stdout only when a command exists to print it
(``generate``, ``export-env``); nothing secret is ever logged.
"""

from __future__ import annotations

import asyncio
import base64
import re
import sys

import click
import tenuo_core

from ._formats import encode_signing_key
from ._registry import resolver_from_url
from .errors import TenuoKeysError

__all__ = ["main"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@click.group()
@click.version_option(package_name="tenuo-keys")
def main() -> None:
    """Manage Tenuo holder keys in env, Vault, AWS or GCP secret stores."""


@main.command()
@click.option("--format", "fmt", type=click.Choice(["base64", "base64url", "hex", "pem"]),
              default="base64", show_default=True, help="Encoding of the private key.")
def generate(fmt: str) -> None:
    """Print a new private key (stdout) and its public key (stderr)."""
    key = tenuo_core.SigningKey.generate()
    click.echo(encode_signing_key(key, fmt))
    public = base64.b64encode(bytes(key.public_key_bytes())).decode()
    click.echo(f"public key (base64): {public}", err=True)


@main.command("export-env")
@click.argument("key_id")
@click.option("--prefix", default="TENUO_KEY_", show_default=True)
def export_env(key_id: str, prefix: str) -> None:
    """Print an ``export TENUO_KEY_<id>=...`` line with a new key, for development."""
    name = prefix + key_id
    if not _ENV_NAME.fullmatch(name):
        raise click.BadParameter(f"{name!r} is not a valid environment variable name",
                                 param_hint="KEY_ID")
    key = tenuo_core.SigningKey.generate()
    click.echo(f"export {name}={encode_signing_key(key)}")
    public = base64.b64encode(bytes(key.public_key_bytes())).decode()
    click.echo(f"# public key (base64): {public}", err=True)


@main.command()
@click.argument("url")
@click.argument("key_id")
@click.option("--format", "fmt", type=click.Choice(["base64", "hex", "pem"]), default="base64",
              show_default=True)
def public(url: str, key_id: str, fmt: str) -> None:
    """Print the public key of KEY_ID held behind resolver URL."""
    try:
        with resolver_from_url(url) as resolver:
            key = asyncio.run(resolver.resolve(key_id))
    except TenuoKeysError as exc:
        raise click.ClickException(str(exc)) from None
    pk = key.public_key
    if fmt == "pem":
        click.echo(pk.to_pem())
    elif fmt == "hex":
        click.echo(bytes(pk.to_bytes()).hex())
    else:
        click.echo(base64.b64encode(bytes(pk.to_bytes())).decode())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
