"""The ``tenuo-keys`` command line.

Secret output goes to stdout only when a command exists to print it
(``generate``, ``export-env``); nothing secret is ever logged.

Exit codes follow the vault CLI: 0 success, 1 a local or usage error (bad
arguments or URL, unreadable file, missing extra, a refusal such as "already
exists"), 2 a backend error (not found, denied, unreachable, bad stored data,
a failed ``doctor`` check).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import re
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO, Any, NoReturn, TypeVar

import click
import tenuo_core

from ._documents import DocumentSource, open_document
from ._formats import decode_signing_key, encode_signing_key
from ._keyset import KeyVersions
from ._registry import resolver_from_url, signer_from_url
from ._resolver import BackendKeyResolver, KeyResolver
from ._trust_documents import decode_roots, decode_srl, encode_roots, encode_srl, public_key_bytes
from .errors import KeyFormatError, KeyNotFound, KeyResolutionError, TenuoKeysError

__all__ = ["EXIT_BACKEND", "EXIT_LOCAL", "main"]

T = TypeVar("T")

EXIT_LOCAL = 1
"""Exit code of a local or usage error."""
EXIT_BACKEND = 2
"""Exit code of an error the backend answered with, or could not answer."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTEXT = {"help_option_names": ["-h", "--help"]}
# What to run instead of a key-store command for a signer URL.
_SIGNER_COMMANDS = {"vault-transit": "transit", "gcpkms": "gcpkms", "awskms": "kms"}


_public_format = click.option(
    "--format", "fmt", type=click.Choice(["base64", "hex", "pem"]), default="base64",
    show_default=True)
"""The ``--format`` option of the commands that print a public key."""


class BackendError(click.ClickException):
    """An error the backend answered with (or could not answer): exit code 2."""

    exit_code = EXIT_BACKEND


class _Main(click.Group):
    """The root group: usage errors exit 1, as in the vault CLI (click uses 2)."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            exc.exit_code = EXIT_LOCAL  # type: ignore[misc]  # click reads it per instance
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.exit_code = EXIT_LOCAL  # type: ignore[misc]  # click reads it per instance
            raise


def _fail(exc: TenuoKeysError, prefix: str = "") -> NoReturn:
    """Exit 2 for what a backend said (KeyResolutionError), else 1."""
    cls = BackendError if isinstance(exc, KeyResolutionError) else click.ClickException
    raise cls(f"{prefix}{exc}") from None


def _holder(holder: str | None) -> bytes | None:
    if holder is None:
        return None
    try:
        return base64.b64decode(holder, validate=True)
    except ValueError:
        raise click.BadParameter("not base64", param_hint="--holder") from None


_HOLDER = click.option(
    "--holder", metavar="BASE64", default=None,
    help="Print the version whose public key this is (fails if there is none).")


def _signer_public_options(command: Callable[..., None]) -> Callable[..., None]:
    """URL, KEY_ID, --holder and --format: the arguments of a remote signer's ``public``."""
    return click.argument("url")(click.argument("key_id")(_HOLDER(_public_format(command))))
@click.group(cls=_Main, context_settings=_CONTEXT)
@click.version_option(package_name="tenuo-keys")
def main() -> None:
    """Manage Tenuo holder keys in env, Vault, AWS or GCP secret stores.

    Exit codes: 0 success, 1 local or usage error, 2 backend error.
    """


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
    """Print an 'export TENUO_KEY_<id>=...' line with a new key, for development."""
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
        _fail(exc)
    _echo_public(key.public_key, fmt)


def _open(url: str) -> KeyResolver:
    command = _SIGNER_COMMANDS.get(url.partition("://")[0].lower())
    if command is not None:
        raise click.ClickException(
            f"{url.partition('://')[0]}:// names a remote signer, not a key store: its keys "
            f"never leave it. Use 'tenuo-keys {command} public URL KEY_ID' "
            f"(see 'tenuo-keys {command} -h')")
    try:
        return resolver_from_url(url)
    except TenuoKeysError as exc:
        _fail(exc)


def _writable(resolver: KeyResolver) -> BackendKeyResolver:
    if not isinstance(resolver, BackendKeyResolver):
        raise click.ClickException(f"{type(resolver).__name__} cannot store keys")
    return resolver


# A missing file or a directory is refused by click with its reason, not a traceback.
_KEY_FILE = click.File("rb")


def _read_import(source: IO[bytes] | None) -> Any:
    if source is None:
        return tenuo_core.SigningKey.generate()
    with source:
        data = source.read()
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
        _fail(exc)


def _exists(resolver: KeyResolver, key_id: str) -> bool:
    try:
        asyncio.run(resolver.resolve_versions(key_id))
    except KeyNotFound:
        return False
    except TenuoKeysError as exc:
        _fail(exc)
    return True


@main.command()
@click.argument("url")
@click.argument("key_id")
@click.option("--import", "source", type=_KEY_FILE, metavar="FILE|-", default=None,
              help="Import this key (any accepted format) instead of generating one.")
@click.option("--force", is_flag=True, help="Write a new version even if the key exists.")
def put(url: str, key_id: str, source: IO[bytes] | None, force: bool) -> None:
    """Generate (or import) a key and store it under KEY_ID."""
    key = _read_import(source)
    with _open(url) as opened:
        resolver = _writable(opened)
        if not force and _exists(resolver, key_id):
            raise click.ClickException(
                f"key {key_id!r} already exists; use 'rotate' to add a version, or --force"
            )
        version = _store(resolver, key_id, key)
    suffix = f" (version {version})" if version else ""
    click.echo(f"stored {key_id}{suffix}; public key (base64): "
               f"{_fingerprint(bytes(key.public_key_bytes()))}")


@main.command()
@click.argument("url")
@click.argument("key_id")
@click.option("--import", "source", type=_KEY_FILE, metavar="FILE|-", default=None,
              help="Rotate to this key (any accepted format) instead of a new one.")
def rotate(url: str, key_id: str, source: IO[bytes] | None) -> None:
    """Write a new current version of KEY_ID, keeping the previous one readable."""
    key = _read_import(source)
    with _open(url) as opened:
        resolver = _writable(opened)
        if not _exists(resolver, key_id):
            raise click.ClickException(f"key {key_id!r} does not exist; use 'put' first")
        version = _store(resolver, key_id, key)
        resolver.invalidate(key_id)
        try:
            versions = asyncio.run(resolver.resolve_versions(key_id))
        except TenuoKeysError as exc:
            _fail(exc, "rotated, but reading back failed: ")
    if versions.current_public != bytes(key.public_key_bytes()):
        raise BackendError("rotated, but the backend does not serve the new version yet")
    suffix = f" (version {version})" if version else ""
    click.echo(f"rotated {key_id}{suffix}; held versions:")
    for held in versions.versions:
        click.echo(f"  {held.version or '-':<40} {_fingerprint(held.public)}")


class _Timeout(Exception):
    """A doctor check took longer than --timeout."""


def _within(timeout: float | None, fn: Callable[[], T]) -> T:
    """``fn()``, given up on after ``timeout`` seconds (its thread is left to finish).

    The thread is a daemon, so a call stalled on a dead endpoint cannot keep
    the command from exiting.
    """
    if timeout is None:
        return fn()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name="tenuo-keys-doctor", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise _Timeout(f"no answer within {timeout:g} s (--timeout)")
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    return value  # type: ignore[no-any-return]


class _Report:
    """Doctor's checks: printed as each completes, or as one JSON document at the end."""

    def __init__(self, as_json: bool, names: Sequence[str]) -> None:
        self.as_json = as_json
        self.width = max(len(name) for name in ("resolver", "list", "keys", *names))
        self.checks: list[dict[str, str]] = []

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append({"check": name, "status": status, "detail": detail})
        if not self.as_json:
            click.echo(f"{name:<{self.width}}  {status:<4}  {detail}")

    @property
    def problems(self) -> int:
        return sum(check["status"] == "FAIL" for check in self.checks)

    def finish(self, url: str) -> None:
        if self.as_json:
            click.echo(json.dumps({
                "url": url.partition("?")[0], "ok": not self.problems,
                "problems": self.problems,
                "warnings": sum(check["status"] == "warn" for check in self.checks),
                "checks": self.checks,
            }, indent=2))
        if self.problems:
            sys.exit(EXIT_BACKEND)


def _versions(resolver: KeyResolver, key_id: str) -> KeyVersions:
    return asyncio.run(resolver.resolve_versions(key_id))


def _problem(exc: BaseException) -> str:
    if isinstance(exc, _Timeout):
        return f"timed out: {exc}"
    reason = exc.reason if isinstance(exc, KeyResolutionError) else str(exc)
    return f"{type(exc).__name__}: {reason}"


@main.command()
@click.argument("url")
@click.argument("key_ids", nargs=-1)
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document (url, ok, problems, warnings, checks) at the end.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, metavar="SECONDS",
              help="Give up on a check (and report it failed) after this long.")
def doctor(url: str, key_ids: tuple[str, ...], as_json: bool, timeout: float) -> None:
    """Check the backend and each key: reachable, allowed, present, well-formed.

    Each check is printed as it completes. Without KEY_IDS, every key the
    backend can list is checked, and a failure to list is a problem. With
    KEY_IDS nothing is listed, so a policy that can read the keys but not
    list them passes (least privilege). Exits 2 on any problem, 1 on a bad URL.
    """
    report = _Report(as_json, key_ids)
    resolver = _open(url)
    try:
        report.add("resolver", "ok", repr(resolver))
        ids = list(key_ids)
        if not ids:
            try:
                ids = _within(timeout, resolver.list_key_ids)
            except (TenuoKeysError, _Timeout) as exc:
                report.add("list", "FAIL", _problem(exc))
            else:
                report.add("list", "ok", f"{len(ids)} key(s) listed")
                if not ids:
                    report.add("keys", "warn", "no key ids given and none listed")
        for key_id in ids:
            try:
                versions = _within(timeout, functools.partial(_versions, resolver, key_id))
            except (TenuoKeysError, _Timeout) as exc:
                report.add(key_id, "FAIL", _problem(exc))
                continue
            labels = ", ".join(
                f"{v.version or i}={_fingerprint(v.public)[:12]}…"
                for i, v in enumerate(versions.versions)
            )
            report.add(key_id, "ok", f"{len(versions)} version(s): {labels}")
    finally:
        # The checks are reported; a failing or slow close must not hide them.
        with contextlib.suppress(Exception):
            _within(timeout, resolver.close)
    report.finish(url)


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
        _fail(exc)
    click.echo(f"Transit key {info.name}: version {info.latest_version}, non-exportable; "
               f"public key (base64): {_fingerprint(info.current.public)}")


@transit.command("import")
@click.argument("url")
@click.argument("key_id")
@click.argument("source", metavar="FILE|-", type=_KEY_FILE)
@click.option("--new-version", is_flag=True,
              help="Add the key as the next version of a key that was itself imported.")
@click.option("--allow-rotation", is_flag=True,
              help="Also let Transit rotate the imported key by itself later.")
def transit_import(url: str, key_id: str, source: IO[bytes], new_version: bool,
                   allow_rotation: bool) -> None:
    """Bring your own key: import FILE (any accepted format) into Transit, non-exportable.

    Transit then signs a random probe, which must equal the local signature.
    """
    key = _read_import(source)
    try:
        info = _vault_transit().import_key(key_id, key, url, new_version=new_version,
                                           allow_rotation=allow_rotation)
    except TenuoKeysError as exc:
        _fail(exc)
    click.echo(f"imported into Transit key {info.name} as version {info.latest_version} "
               f"(signature check passed); public key (base64): "
               f"{_fingerprint(info.current.public)}")


@transit.command("public")
@_signer_public_options
def transit_public(url: str, key_id: str, holder: str | None, fmt: str) -> None:
    """Print the public key of KEY_ID's Transit key: the latest version, or --holder's.

    The version number goes to stderr, so stdout is the key alone.
    """
    try:
        version = _vault_transit().public(key_id, url, holder=_holder(holder))
    except TenuoKeysError as exc:
        _fail(exc)
    _echo_public(version.public_key, fmt)
    click.echo(f"version {version.version}", err=True)


# --------------------------------------------------------------------------- Cloud KMS


@main.group()
def gcpkms() -> None:
    """Keys that never leave Google Cloud KMS (gcpkms:// URLs).

    URL: gcpkms://PROJECT/LOCATION/KEY_RING/NAME_TEMPLATE, e.g.
    gcpkms://my-project/global/tenuo/{key_id}. Credentials come from Application
    Default Credentials ($GOOGLE_APPLICATION_CREDENTIALS, gcloud, the metadata
    server). Keys are created with gcloud (it takes an admin role):

    \b
    gcloud kms keys create KEY --keyring RING --location LOCATION
      --purpose asymmetric-signing --default-algorithm ec-sign-ed25519
    """  # noqa: D301 - click's "\b" keeps the command from being rewrapped


def _kms_info(url: str, key_id: str) -> Any:
    try:
        with signer_from_url(url, key_id=key_id) as signer:
            return signer.key_info(refresh=True)
    except TenuoKeysError as exc:
        _fail(exc)


@gcpkms.command("public")
@_signer_public_options
def gcpkms_public(url: str, key_id: str, holder: str | None, fmt: str) -> None:
    """Print the public key of KEY_ID's Cloud KMS key: the newest signing version, or --holder's.

    The version number goes to stderr, so stdout is the key alone.
    """
    holder_raw = _holder(holder)
    info = _kms_info(url, key_id)
    if holder_raw is None:
        version = info.current
        if version is None:
            raise BackendError(f"{info.name} has no ENABLED Ed25519 version that can sign")
    else:
        version = info.find(holder_raw)
        if version is None or version.public is None:
            raise BackendError(f"no version of {info.name} has that public key")
    _echo_public(version.public_key, fmt)
    click.echo(f"version {version.number} ({version.state})", err=True)


@gcpkms.command("versions")
@click.argument("url")
@click.argument("key_id")
def gcpkms_versions(url: str, key_id: str) -> None:
    """List KEY_ID's Cloud KMS key versions: number, state, algorithm, public key."""
    info = _kms_info(url, key_id)
    click.echo(f"{info.name} ({info.protection_level})")
    for version in info.versions:
        public = "-" if version.public is None else _fingerprint(version.public)
        signs = "signs" if version.signs else "-"
        click.echo(f"  {version.number:<6} {version.state:<20} {version.algorithm:<22} "
                   f"{signs:<5} {public}")


# --------------------------------------------------------------------------- AWS KMS


@main.group()
def kms() -> None:
    """Keys that never leave AWS KMS (awskms:// URLs).

    URL: awskms://REGION/NAME_TEMPLATE?endpoint_url=..., e.g.
    awskms://us-east-1/alias/tenuo-{key_id}. Credentials come from the AWS chain
    (environment, profile, role). A key id names an alias; rotating creates a
    new ECC_NIST_EDWARDS25519 key and moves the alias, keeping the old key
    under ALIAS/previous for warrants in flight.
    """


def _aws_kms() -> Any:
    try:
        from .backends import aws_kms
    except ImportError:
        raise click.ClickException(
            "awskms needs boto3 and cryptography: pip install 'tenuo-keys[aws]'") from None
    return aws_kms


def _echo_aws_key(what: str, info: Any) -> None:
    current = info.current
    public = "-" if current is None else _fingerprint(current.public)
    click.echo(f"{what} {info.name} -> {info.target}; public key (base64): {public}")


@kms.command("create")
@click.argument("url")
@click.argument("key_id")
@click.option("--exist-ok", is_flag=True, help="Succeed if the alias already names a key.")
def kms_create(url: str, key_id: str, exist_ok: bool) -> None:
    """Create an ECC_NIST_EDWARDS25519 SIGN_VERIFY key and point KEY_ID's alias at it."""
    try:
        info = _aws_kms().create_key(key_id, url, exist_ok=exist_ok)
    except TenuoKeysError as exc:
        _fail(exc)
    _echo_aws_key("created:", info)


@kms.command("rotate")
@click.argument("url")
@click.argument("key_id")
def kms_rotate(url: str, key_id: str) -> None:
    """Rotate KEY_ID: a new key, the alias moved to it, the old key kept as ALIAS/previous."""
    try:
        info = _aws_kms().rotate_key(key_id, url)
    except TenuoKeysError as exc:
        _fail(exc)
    _echo_aws_key("rotated:", info)


@kms.command("public")
@_signer_public_options
def kms_public(url: str, key_id: str, holder: str | None, fmt: str) -> None:
    """Print the public key of the KMS key KEY_ID's alias names, or --holder's.

    The key ARN goes to stderr, so stdout is the key alone.
    """
    try:
        version = _aws_kms().public(key_id, url, holder=_holder(holder))
    except TenuoKeysError as exc:
        _fail(exc)
    _echo_public(version.public_key, fmt)
    click.echo(f"{version.key_arn} ({version.state})", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


# ------------------------------------------------------------- trust documents


def _document(url: str) -> DocumentSource:
    try:
        return open_document(url)
    except TenuoKeysError as exc:
        _fail(exc)


def _read_document(source: DocumentSource) -> bytes | None:
    """The document's bytes, None when it does not exist yet."""
    try:
        return source.read(fresh=True)
    except KeyNotFound:
        return None
    except TenuoKeysError as exc:
        _fail(exc)


def _write_document(source: DocumentSource, content: bytes) -> str | None:
    try:
        return source.write(content)
    except NotImplementedError as exc:
        raise click.ClickException(str(exc)) from None
    except TenuoKeysError as exc:
        _fail(exc)


def _control_key(key_file: IO[bytes] | None, key_url: str | None, key_id: str | None) -> Any:
    """The control-plane signing key: from a file, or from a resolver URL and key id."""
    if key_file is not None:
        return _read_import(key_file)
    if key_url is None or key_id is None:
        raise click.UsageError("give --key-file FILE, or --key-url URL with --key-id ID")
    try:
        with _open(key_url) as resolver:
            return asyncio.run(resolver.resolve(key_id))
    except TenuoKeysError as exc:
        _fail(exc)


def _control_key_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in (
        click.option("--key-file", type=_KEY_FILE, metavar="FILE|-", default=None,
                     help="The control-plane (root) private key, in any accepted format."),
        click.option("--key-url", default=None, metavar="URL",
                     help="A resolver URL holding the control-plane key (with --key-id)."),
        click.option("--key-id", default=None, help="Its key id behind --key-url."),
    ):
        command = option(command)
    return command


def _held_srl(source: DocumentSource) -> Any:
    content = _read_document(source)
    if content is None:
        return None
    try:
        return decode_srl(content, repr(source))
    except TenuoKeysError as exc:
        _fail(exc)


def _publish_srl(url: str, revoke: Sequence[str], key: Any, version: int | None) -> None:
    with contextlib.closing(_document(url)) as source:
        held = _held_srl(source)
        builder = tenuo_core.SrlBuilder()
        if held is not None:
            builder = builder.from_existing(held)
        for warrant_id in revoke:
            builder = builder.revoke(warrant_id)
        new_version = version if version is not None else (
            1 if held is None else held.version + 1)
        if held is not None and new_version <= held.version:
            raise click.ClickException(
                f"version {new_version} does not move forward from the published "
                f"{held.version}; workers refuse a rollback")
        srl = builder.version(new_version).build(key)
        label = _write_document(source, encode_srl(srl))
    suffix = f" (backend version {label})" if label else ""
    click.echo(f"published revocation list version {srl.version} with "
               f"{len(srl.revoked_ids)} revoked warrant(s){suffix}")


@main.group(context_settings=_CONTEXT)
def srl() -> None:
    """Signed revocation lists kept next to the keys (vault://, awssm://, gcpsm://, file://).

    A document URL is a backend URL whose last path segment is the document's
    name, e.g. vault://127.0.0.1:8200/secret/tenuo/srl or file:///etc/tenuo/srl.
    """


@srl.command("revoke")
@click.argument("url")
@click.argument("warrant_ids", nargs=-1, required=True)
@_control_key_options
def srl_revoke(url: str, warrant_ids: tuple[str, ...], key_file: IO[bytes] | None,
               key_url: str | None, key_id: str | None) -> None:
    """Add WARRANT_IDS to the list at URL, sign it as the next version, publish it."""
    _publish_srl(url, warrant_ids, _control_key(key_file, key_url, key_id), None)


@srl.command("publish")
@click.argument("url")
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="The version to publish (default: the published one + 1, or 1).")
@_control_key_options
def srl_publish(url: str, version: int | None, key_file: IO[bytes] | None,
                key_url: str | None, key_id: str | None) -> None:
    """Re-sign the list at URL (or an empty one) as a new version and publish it.

    Run it more often than workers' revocation_max_age_secs.
    """
    _publish_srl(url, (), _control_key(key_file, key_url, key_id), version)


@srl.command("show")
@click.argument("url")
@click.option("--roots", "roots_url", default=None, metavar="URL",
              help="Also check the signature against this root-set document.")
def srl_show(url: str, roots_url: str | None) -> None:
    """Print the list at URL: version, issuer, issue time and revoked warrant ids."""
    with contextlib.closing(_document(url)) as source:
        held = _held_srl(source)
    if held is None:
        raise BackendError(f"no revocation list at {source!r}")
    click.echo(f"version    {held.version}")
    click.echo(f"issuer     {bytes(held.issuer.to_bytes()).hex()}")
    click.echo(f"issued_at  {held.issued_at}")
    click.echo(f"revoked    {len(held.revoked_ids)}")
    for warrant_id in sorted(held.revoked_ids):
        click.echo(f"  {warrant_id}")
    if roots_url is not None:
        roots = _held_roots(roots_url)
        trusted = any(root == held.issuer for root in roots)
        click.echo(f"signed by a trusted root: {'yes' if trusted else 'NO'}")
        if not trusted:
            raise BackendError("the list's issuer is not in the root set")


@main.group(context_settings=_CONTEXT)
def roots() -> None:
    """Trusted-root sets ({"roots": ["<hex>", ...]}) kept next to the keys.

    To rotate a root, publish the old and new keys together, move issuers to
    the new key, then publish the set without the old one.
    """


def _held_roots(url: str) -> list[Any]:
    with contextlib.closing(_document(url)) as source:
        content = _read_document(source)
    if content is None:
        raise BackendError(f"no root set at {source!r}")
    return _decoded_roots(content, source)


@roots.command("show")
@click.argument("url")
@_public_format
def roots_show(url: str, fmt: str) -> None:
    """Print each public key of the root set at URL."""
    for root in _held_roots(url):
        _echo_public(root, fmt)


@roots.command("publish")
@click.argument("url")
@click.argument("public_keys", nargs=-1, required=True)
@click.option("--keep", is_flag=True,
              help="Keep the roots already published (the overlap of a rotation).")
def roots_publish(url: str, public_keys: tuple[str, ...], keep: bool) -> None:
    """Publish PUBLIC_KEYS (hex, base64 or base64url) as the root set at URL."""
    keys: list[bytes] = []
    for index, text in enumerate(public_keys):
        raw = public_key_bytes(text)
        if raw is None:
            raise click.BadParameter(f"key {index + 1} is not a 32-byte public key in hex, "
                                     "base64 or base64url", param_hint="PUBLIC_KEYS")
        keys.append(raw)
    with contextlib.closing(_document(url)) as source:
        if keep:
            content = _read_document(source)
            held = [] if content is None else [bytes(k.to_bytes()) for k in
                                               _decoded_roots(content, source)]
            keys = [*held, *(k for k in keys if k not in held)]
        try:
            document = encode_roots(dict.fromkeys(keys))
        except TenuoKeysError as exc:
            _fail(exc)
        _write_document(source, document)
    click.echo(f"published {len(dict.fromkeys(keys))} root(s)")


def _decoded_roots(content: bytes, source: DocumentSource) -> list[Any]:
    try:
        return decode_roots(content, repr(source))
    except TenuoKeysError as exc:
        _fail(exc)
