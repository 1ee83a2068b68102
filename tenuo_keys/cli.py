"""The ``tenuo-keys`` command line.

Secret output goes to stdout only when a command exists to print it
(``generate``, ``export-env``); nothing secret is ever logged.
"""

from __future__ import annotations

import asyncio
import base64
import re
import sys
from pathlib import Path
from typing import Any

import click
import tenuo_core

from ._formats import decode_signing_key, encode_signing_key
from ._registry import resolver_from_url
from ._resolver import BackendKeyResolver, KeyResolver
from .errors import KeyFormatError, KeyNotFound, KeyResolutionError, TenuoKeysError

__all__ = ["main"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_public_format = click.option(
    "--format", "fmt", type=click.Choice(["base64", "hex", "pem"]), default="base64",
    show_default=True)
"""The ``--format`` option of the commands that print a public key."""


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
@_public_format
def public(url: str, key_id: str, fmt: str) -> None:
    """Print the public key of KEY_ID held behind resolver URL."""
    try:
        with _open(url) as resolver:
            key = asyncio.run(resolver.resolve(key_id))
    except TenuoKeysError as exc:
        raise click.ClickException(str(exc)) from None
    _echo_public(key.public_key, fmt)


def _open(url: str) -> KeyResolver:
    try:
        return resolver_from_url(url)
    except TenuoKeysError as exc:
        raise click.ClickException(str(exc)) from None


def _writable(resolver: KeyResolver) -> BackendKeyResolver:
    if not isinstance(resolver, BackendKeyResolver):
        raise click.ClickException(f"{type(resolver).__name__} cannot store keys")
    return resolver


def _read_import(source: str | None) -> Any:
    if source is None:
        return tenuo_core.SigningKey.generate()
    data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    try:
        return decode_signing_key(data, key_id="(imported)")
    except KeyFormatError as exc:
        raise click.ClickException(f"cannot import key: {exc.reason}") from None


def _fingerprint(public: bytes) -> str:
    return base64.b64encode(public).decode()


def _echo_public(public_key: Any, fmt: str) -> None:
    """Print a ``tenuo_core.PublicKey`` as ``fmt`` (``pem``, ``hex`` or ``base64``)."""
    if fmt == "pem":
        click.echo(public_key.to_pem())
        return
    raw = bytes(public_key.to_bytes())
    click.echo(raw.hex() if fmt == "hex" else _fingerprint(raw))


def _store(resolver: BackendKeyResolver, key_id: str, key: Any) -> str | None:
    try:
        return resolver.store_key(key_id, encode_signing_key(key))
    except NotImplementedError as exc:
        raise click.ClickException(str(exc)) from None
    except TenuoKeysError as exc:
        raise click.ClickException(str(exc)) from None


def _exists(resolver: KeyResolver, key_id: str) -> bool:
    try:
        asyncio.run(resolver.resolve_versions(key_id))
    except KeyNotFound:
        return False
    except TenuoKeysError as exc:
        raise click.ClickException(str(exc)) from None
    return True


@main.command()
@click.argument("url")
@click.argument("key_id")
@click.option("--import", "source", metavar="FILE|-", default=None,
              help="Import this key (any accepted format) instead of generating one.")
@click.option("--force", is_flag=True, help="Write a new version even if the key exists.")
def put(url: str, key_id: str, source: str | None, force: bool) -> None:
    """Generate (or import) a key and store it under KEY_ID."""
    key = _read_import(source)
    with _open(url) as opened:
        resolver = _writable(opened)
        if not force and _exists(resolver, key_id):
            raise click.ClickException(
                f"key {key_id!r} already exists; use `rotate` to add a version, or --force"
            )
        version = _store(resolver, key_id, key)
    suffix = f" (version {version})" if version else ""
    click.echo(f"stored {key_id}{suffix}; public key (base64): "
               f"{_fingerprint(bytes(key.public_key_bytes()))}")


@main.command()
@click.argument("url")
@click.argument("key_id")
@click.option("--import", "source", metavar="FILE|-", default=None,
              help="Rotate to this key (any accepted format) instead of a new one.")
def rotate(url: str, key_id: str, source: str | None) -> None:
    """Write a new current version of KEY_ID, keeping the previous one readable."""
    key = _read_import(source)
    with _open(url) as opened:
        resolver = _writable(opened)
        if not _exists(resolver, key_id):
            raise click.ClickException(f"key {key_id!r} does not exist; use `put` first")
        version = _store(resolver, key_id, key)
        resolver.invalidate(key_id)
        try:
            versions = asyncio.run(resolver.resolve_versions(key_id))
        except TenuoKeysError as exc:
            raise click.ClickException(f"rotated, but reading back failed: {exc}") from None
    if versions.current_public != bytes(key.public_key_bytes()):
        raise click.ClickException("rotated, but the backend does not serve the new version yet")
    suffix = f" (version {version})" if version else ""
    click.echo(f"rotated {key_id}{suffix}; held versions:")
    for held in versions.versions:
        click.echo(f"  {held.version or '-':<40} {_fingerprint(held.public)}")


@main.command()
@click.argument("url")
@click.argument("key_ids", nargs=-1)
def doctor(url: str, key_ids: tuple[str, ...]) -> None:
    """Check the backend and each key: reachable, allowed, present, well-formed.

    Without KEY_IDS, every key the backend can list is checked. Exits 1 on
    any problem.
    """
    rows: list[tuple[str, str, str]] = []
    problems = 0
    with _open(url) as resolver:
        rows.append(("resolver", "ok", repr(resolver)))
        ids = list(key_ids)
        try:
            listed = resolver.list_key_ids()
            rows.append(("list", "ok", f"{len(listed)} key(s) listed"))
        except TenuoKeysError as exc:
            listed = []
            problems += 1
            rows.append(("list", "FAIL", str(exc)))
        ids = ids or listed
        if not ids and not problems:
            rows.append(("keys", "warn", "no key ids given and none listed"))
        for key_id in ids:
            try:
                versions = asyncio.run(resolver.resolve_versions(key_id))
            except TenuoKeysError as exc:
                problems += 1
                reason = exc.reason if isinstance(exc, KeyResolutionError) else str(exc)
                rows.append((key_id, "FAIL", f"{type(exc).__name__}: {reason}"))
                continue
            labels = ", ".join(
                f"{v.version or i}={_fingerprint(v.public)[:12]}…"
                for i, v in enumerate(versions.versions)
            )
            rows.append((key_id, "ok", f"{len(versions)} version(s): {labels}"))
    width = max(len(r[0]) for r in rows)
    for name, status, detail in rows:
        click.echo(f"{name:<{width}}  {status:<4}  {detail}")
    if problems:
        raise SystemExit(1)


# --------------------------------------------------------------------------- Vault Transit


@main.group()
def transit() -> None:
    """Keys that never leave Vault/OpenBao Transit (vault-transit:// URLs).

    URL: vault-transit://HOST[:PORT]/MOUNT/NAME_TEMPLATE?tls=0&auth=..., e.g.
    vault-transit://127.0.0.1:8200/transit/{key_id}?tls=0. Credentials come
    from $VAULT_TOKEN (or $VAULT_ROLE_ID and $VAULT_SECRET_ID, ...), as for vault://.
    """


def _vault_transit() -> Any:
    try:
        from .backends import vault_transit
    except ImportError:
        raise click.ClickException(
            "vault-transit needs hvac and cryptography: pip install 'tenuo-keys[vault]'"
        ) from None
    return vault_transit


@transit.command("create")
@click.argument("url")
@click.argument("key_id")
@click.option("--exist-ok", is_flag=True, help="Succeed if a suitable key already exists.")
def transit_create(url: str, key_id: str, exist_ok: bool) -> None:
    """Create a non-exportable ed25519 Transit key for KEY_ID."""
    try:
        info = _vault_transit().create_key(key_id, url, exist_ok=exist_ok)
    except TenuoKeysError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Transit key {info.name}: version {info.latest_version}, non-exportable; "
               f"public key (base64): {_fingerprint(info.current.public)}")


@transit.command("import")
@click.argument("url")
@click.argument("key_id")
@click.argument("source", metavar="FILE|-")
@click.option("--new-version", is_flag=True,
              help="Add the key as the next version of a key that was itself imported.")
@click.option("--allow-rotation", is_flag=True,
              help="Also let Transit rotate the imported key by itself later.")
def transit_import(url: str, key_id: str, source: str, new_version: bool,
                   allow_rotation: bool) -> None:
    """Bring your own key: import FILE (any accepted format) into Transit, non-exportable.

    Transit then signs a random probe, which must equal the local signature.
    """
    key = _read_import(source)
    try:
        info = _vault_transit().import_key(key_id, key, url, new_version=new_version,
                                           allow_rotation=allow_rotation)
    except TenuoKeysError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"imported into Transit key {info.name} as version {info.latest_version} "
               f"(signature check passed); public key (base64): "
               f"{_fingerprint(info.current.public)}")


@transit.command("public")
@click.argument("url")
@click.argument("key_id")
@click.option("--holder", metavar="BASE64", default=None,
              help="Print the version whose public key this is (fails if there is none).")
@_public_format
def transit_public(url: str, key_id: str, holder: str | None, fmt: str) -> None:
    """Print the public key of KEY_ID's Transit key: the latest version, or --holder's.

    The version number goes to stderr, so stdout is the key alone.
    """
    holder_raw: bytes | None = None
    if holder is not None:
        try:
            holder_raw = base64.b64decode(holder, validate=True)
        except ValueError:
            raise click.BadParameter("not base64", param_hint="--holder") from None
    try:
        version = _vault_transit().public(key_id, url, holder=holder_raw)
    except TenuoKeysError as exc:
        raise click.ClickException(str(exc)) from None
    _echo_public(version.public_key, fmt)
    click.echo(f"version {version.version}", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
