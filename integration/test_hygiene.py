"""Secret hygiene: after a representative run, no holder key appears anywhere.

One module fixture runs the workload once, on a Temporal dev server of its own
(started with ``--log-level debug`` so its log can be scanned too) and the
session's moto_server, with the root logger at DEBUG for the whole run and
Temporal's Rust core forwarding its DEBUG logs into Python logging:

* allowed calls through a composite resolver (static, env, AWS Secrets Manager);
* denials at the activity worker (constraint, untrusted issuer, delegation
  narrowed) and at the workflow worker (holder mismatch, malformed stored key);
* delegation to a child workflow on a child key;
* rotation of an env key and of an AWS key (through the CLI), with workflows
  under both the new and the previous version;
* direct resolver failures (not found, holder mismatch, bad material);
* the ``tenuo-keys`` CLI against ``env://`` and ``awssm://``.

Each test then scans one place for every key used (holders, child, rotated
versions, issuer, the malformed one), in every form ``secret_forms`` knows
(raw, hex, base64 in both alphabets, PEM body, 16-character prefixes). Blobs are
expanded first: base64 tokens are decoded (two levels: JSON of payloads that
hold base64 headers) and gzip is inflated, so a key buried in a header or a
payload is found too. Zero hits is the only pass.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import gzip
import json
import logging
import re
import subprocess
import threading
import traceback
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import tenuo_core
from click.testing import CliRunner
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowFailureError
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from integration import _adversarial_workflows as aw
from integration.support.procs import find_binary, free_port
from integration.support.temporal import DevServer
from tenuo_keys import (
    CompositeKeyResolver,
    EnvKeyResolver,
    KeyResolutionError,
    StaticKeyResolver,
    decode_signing_key,
    encode_signing_key,
)
from tenuo_keys.backends.aws import AWSSecretsManagerKeyResolver
from tenuo_keys.cli import main as cli
from tenuo_keys.testing import assert_no_secret, find_secret, secret_forms
from tenuo_temporal import (
    AuditEvent,
    InMemoryReplayStore,
    TenuoPluginConfig,
    TenuoTemporalPlugin,
    execute_workflow_authorized,
)
from tenuo_temporal import _headers as H

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

Subpath = tenuo_core.Subpath
NAMESPACE = "default"


def _key() -> Any:
    return tenuo_core.SigningKey.generate()


ROOT, STRANGER = _key(), _key()
ENV_OLD, ENV_NEW, CHILD, STATIC = _key(), _key(), _key(), _key()
AWS_OLD, AWS_NEW, BROKEN = _key(), _key(), _key()
KEYS: list[Any] = [ROOT, STRANGER, ENV_OLD, ENV_NEW, CHILD, STATIC, AWS_OLD, AWS_NEW, BROKEN]
"""Every key of the run but the one the CLI generates (``Run.generated``)."""

LOGGERS = ("temporalio", "tenuo_keys", "tenuo_temporal", "botocore", "boto3", "urllib3",
           "hvac", "click")


# --------------------------------------------------------------------------- scanning

_TOKEN = re.compile(rb"[A-Za-z0-9+/_-]{16,}={0,2}")


def _decodings(token: bytes) -> Iterator[bytes]:
    body = token.rstrip(b"=")
    padded = body + b"=" * (-len(body) % 4)
    for altchars in (None, b"-_"):
        try:
            yield base64.b64decode(padded, altchars=altchars, validate=altchars is None)
        except (binascii.Error, ValueError):
            continue


def _inflate(data: bytes) -> bytes | None:
    if not data.startswith(b"\x1f\x8b"):
        return None
    try:
        return zlib.decompressobj(31).decompress(data, 1 << 20)
    except zlib.error:
        return None


def expand(blob: str | bytes, depth: int = 2) -> bytes:
    """``blob`` plus every base64 token in it decoded, and gzip inflated, recursively."""
    data = blob.encode("utf-8", "surrogateescape") if isinstance(blob, str) else bytes(blob)
    parts = [data]
    inflated = _inflate(data)
    if inflated is not None:
        parts.append(expand(inflated, depth))
    if depth > 0:
        for match in _TOKEN.finditer(data):
            for decoded in _decodings(match.group()):
                parts.append(expand(decoded, depth - 1))
    return b"\x00".join(parts)


GENERATED: list[Any] = []
"""The key ``tenuo-keys put`` generated, read back from the backend by the fixture."""


def keys() -> list[Any]:
    return [*KEYS, *GENERATED]


def scan(blob: str | bytes, where: str) -> None:
    assert_no_secret(expand(blob), keys(), where)


async def test_scanner_finds_a_key_buried_in_a_gzipped_base64_header() -> None:
    """Positive control: the expansion reaches where a header would hide a key."""
    seed = bytes(CHILD.secret_key_bytes())
    header = base64.b64encode(gzip.compress(b"cbor..." + seed + b"...cbor"))
    history_json = json.dumps({"header": {"fields": {"x": {"data": base64.b64encode(
        header).decode()}}}})
    assert find_secret(history_json, keys()) is None  # invisible without expansion
    with pytest.raises(AssertionError, match="secret key material"):
        scan(history_json, "control")
    assert len(secret_forms(CHILD)) >= 10


# --------------------------------------------------------------------------- capture


class Capture(logging.Handler):
    """Keeps every record: message, raw bytes arguments, exception and extras."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.guard = threading.Lock()
        self.chunks: list[bytes] = []
        self.names: set[str] = set()
        self.formatter_ = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        parts: list[str | bytes] = [record.name, record.getMessage()]
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        parts.extend(a for a in args if isinstance(a, (bytes, bytearray)))
        if record.exc_info:
            parts.append(self.formatter_.formatException(record.exc_info))
        if record.stack_info:
            parts.append(record.stack_info)
        parts.append(repr({k: v for k, v in vars(record).items()
                           if k not in ("msg", "args", "exc_info")}))
        data = b"\n".join(p if isinstance(p, bytes) else p.encode("utf-8", "replace")
                          for p in parts)
        with self.guard:
            self.chunks.append(data)
            self.names.add(record.name)


class Catch(ClientInterceptor, Interceptor):
    """Outermost on the workers: keeps every exception a workflow or activity raises."""

    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = errors

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        errors = self.errors

        class Inbound(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                try:
                    return await super().execute_activity(input)
                except BaseException as error:
                    errors.append(error)
                    raise

        return Inbound(next)

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> Any:
        errors = self.errors

        class Inbound(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                try:
                    return await super().execute_workflow(input)
                except BaseException as error:
                    errors.append(error)
                    raise

        return Inbound


def exception_text(error: BaseException) -> str:
    """str, repr and traceback of ``error`` and everything chained to it, suppressed or not."""
    out, seen, todo = [], set(), [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        out += [str(current), repr(current), *traceback.format_exception(current)]
        out += [repr(getattr(current, name, None)) for name in ("details", "reason", "failure")]
        todo += [current.__cause__, current.__context__, getattr(current, "cause", None)]
    return "\n".join(out)


@dataclasses.dataclass
class Run:
    address: str
    server_log: Path
    capture: Capture
    workflow_ids: list[str]
    outcomes: dict[str, Any]
    errors: list[BaseException]
    events: list[AuditEvent]
    objects: list[Any]
    cli: list[tuple[list[str], int, str, str]]
    reprs: list[str] = dataclasses.field(default_factory=list)


async def _cli(run: Run, *args: str, expect: int = 0) -> str:
    # The CLI calls asyncio.run(): it runs on a thread, off this event loop.
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args))
    run.cli.append((list(args), result.exit_code, result.stdout, result.stderr))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        run.errors.append(result.exception)
    assert result.exit_code == expect, (args, result.output)
    return result.stdout


def _corrupt(key: Any) -> str:
    """A stored value that is almost the key: its hex with the last digit dropped."""
    return bytes(key.secret_key_bytes()).hex()[:-1]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def run(moto_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    capture = Capture()
    root = logging.getLogger()
    saved = (root.level, {name: logging.getLogger(name).level for name in LOGGERS})
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    workdir = tmp_path_factory.mktemp("hygiene")
    server = DevServer(workdir / "temporal-server.log", log_level="debug",
                       args=["--http-port", str(free_port()), "--metrics-port", str(free_port())])
    server.start(timeout=30)
    prefix = f"HYG_{uuid.uuid4().hex[:8]}_"
    aws_template = f"tenuo/hygiene-{uuid.uuid4().hex[:8]}/{{key_id}}"
    env = pytest.MonkeyPatch()
    try:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("AWS_CONFIG_FILE", str(workdir / "no-config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(workdir / "no-credentials"))
        env.setenv(prefix + "agent", encode_signing_key(ENV_OLD))
        env.setenv(prefix + "child", encode_signing_key(CHILD, "hex"))
        env.setenv(prefix + "broken", _corrupt(BROKEN))
        result = Run(server.target, workdir / "temporal-server.log", capture, [], {},
                     [], [], [], [])
        await _workload(result, moto_server, prefix, aws_template, workdir, env)
        yield result
    finally:
        env.undo()
        server.stop()
        root.removeHandler(capture)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


def _warrant(holder: Any, root: str = "/data", issuer: Any = ROOT) -> Any:
    return tenuo_core.Warrant.issue(keypair=issuer, capabilities={
        "read_file": {"path": Subpath(root)}}, ttl_seconds=600, holder=holder.public_key)


async def _workload(run: Run, moto: Any, prefix: str, template: str, workdir: Path,
                    env: pytest.MonkeyPatch) -> None:
    env_url = f"env://?prefix={prefix}"
    aws_url = f"awssm://us-east-1/{template}?endpoint_url={moto.endpoint}"
    old_file, new_file, bad_file = (workdir / n for n in ("old.pem", "new.b64", "bad.hex"))
    old_file.write_text(str(AWS_OLD.to_pem()))
    new_file.write_text(encode_signing_key(AWS_NEW))
    bad_file.write_text(_corrupt(BROKEN))

    # The CLI stores the AWS keys (and generates one) before any worker starts.
    await _cli(run, "put", aws_url, "aws-agent", "--import", str(old_file))
    await _cli(run, "put", aws_url, "aws-generated")
    await _cli(run, "put", aws_url, "aws-bad", "--import", str(bad_file), expect=1)

    static = StaticKeyResolver({"static-agent": STATIC})
    env_resolver = EnvKeyResolver(prefix)
    aws = AWSSecretsManagerKeyResolver(template, client=moto.client())
    resolver = CompositeKeyResolver([static, env_resolver, aws])
    config = TenuoPluginConfig(key_resolver=resolver, trusted_roots=[ROOT.public_key],
                               audit_callback=run.events.append,
                               replay_store=InMemoryReplayStore())
    runtime = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
        filter=TelemetryFilter(core_level="DEBUG", other_level="DEBUG"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")))))
    plugin = TenuoTemporalPlugin(config)
    client = await Client.connect(run.address, namespace=NAMESPACE, runtime=runtime,
                                  plugins=[plugin], interceptors=[Catch(run.errors)])
    queue = f"hygiene-{uuid.uuid4().hex[:8]}"

    async def bounded(wid: str, started: Any) -> Any:
        try:
            return await asyncio.wait_for(started, 60)
        except asyncio.TimeoutError:
            raise AssertionError(f"workflow {wid} did not finish within 60 s") from None

    async def call(name: str, warrant: Any, key_id: str, path: str) -> None:
        wid = f"hyg-{name}-{uuid.uuid4().hex[:6]}"
        run.workflow_ids.append(wid)
        try:
            run.outcomes[name] = await bounded(wid, execute_workflow_authorized(
                client, aw.Call.run, workflow_id=wid, warrant=warrant, key_id=key_id,
                args=["read_file", [path]], task_queue=queue))
        except WorkflowFailureError as error:
            run.errors.append(error)
            cause: Any = error.cause
            while getattr(cause, "cause", None) is not None:
                cause = cause.cause
            run.outcomes[name] = getattr(cause, "type", type(cause).__name__)

    async def delegate(name: str, path: str) -> None:
        wid = f"hyg-{name}-{uuid.uuid4().hex[:6]}"
        run.workflow_ids += [wid, wid + "-child"]
        try:
            run.outcomes[name] = await bounded(wid, execute_workflow_authorized(
                client, aw.Delegate.run, workflow_id=wid, warrant=_warrant(ENV_OLD),
                key_id="agent", args=[path, "child", "/data/reports"], task_queue=queue))
        except WorkflowFailureError as error:
            run.errors.append(error)
            run.outcomes[name] = "denied"

    async with Worker(client, task_queue=queue, workflows=aw.WORKFLOWS,
                      activities=aw.ACTIVITIES):
        await call("env-allowed", _warrant(ENV_OLD), "agent", "/data/a.csv")
        await call("static-allowed", _warrant(STATIC), "static-agent", "/data/b.csv")
        await call("aws-allowed", _warrant(AWS_OLD), "aws-agent", "/data/c.csv")
        await call("constraint-denied", _warrant(ENV_OLD), "agent", "/etc/shadow")
        await call("untrusted-denied", _warrant(ENV_OLD, issuer=STRANGER), "agent", "/data/d")
        await call("holder-mismatch", _warrant(ENV_OLD), "static-agent", "/data/e.csv")
        # Load the broken key first, so its definitive error is fresh in the
        # negative cache when the workflow asks: a cold lookup can otherwise
        # retry forever (the defect test_adversarial's slow-backend test shows).
        try:
            env_resolver.preload(["broken"])
        except KeyResolutionError as error:
            run.errors.append(error)
        await call("malformed-key", _warrant(BROKEN), "broken", "/data/f.csv")
        await delegate("delegated", "/data/reports/q3.csv")
        await delegate("delegated-denied", "/data/private/x.csv")

        # Rotation, env: the new key becomes current, the old one previous.
        env.setenv(prefix + "agent", encode_signing_key(ENV_NEW, "base64url"))
        env.setenv(prefix + "agent__PREVIOUS", encode_signing_key(ENV_OLD, "pem"))
        env_resolver.invalidate("agent")
        env_resolver.preload(["agent"])
        await call("env-rotated-new", _warrant(ENV_NEW), "agent", "/data/g.csv")
        await call("env-rotated-previous", _warrant(ENV_OLD), "agent", "/data/h.csv")

        # Rotation, AWS, through the CLI.
        await _cli(run, "rotate", aws_url, "aws-agent", "--import", str(new_file))
        aws.invalidate("aws-agent")
        aws.preload(["aws-agent"])
        await call("aws-rotated-new", _warrant(AWS_NEW), "aws-agent", "/data/i.csv")
        await call("aws-rotated-previous", _warrant(AWS_OLD), "aws-agent", "/data/j.csv")

        # Direct resolver failures, as a caller diagnosing a problem would see them.
        for target, key_id, holder in ((resolver, "nobody", None),
                                       (resolver, "agent", STRANGER.public_key),
                                       (env_resolver, "broken", None),
                                       (aws, "aws-agent", STRANGER.public_key),
                                       (static, "static-agent", ENV_OLD.public_key)):
            try:
                if holder is None:
                    await target.resolve(key_id)
                else:
                    await target.resolve_for_holder(key_id, holder)
                raise AssertionError(f"{key_id} resolved")
            except KeyResolutionError as error:
                run.errors.append(error)

        GENERATED[:] = [await aws.resolve("aws-generated")]
        run.objects += [static, env_resolver, aws, resolver, config, config.replay_store,
                        static.cache, env_resolver.cache, aws.cache, static.cache.policy,
                        plugin, plugin.interceptor]
        for key_id in ("agent", "aws-agent", "static-agent", "child"):
            versions = await resolver.resolve_versions(key_id)
            run.objects += [versions, *versions.versions]
        stored = env_resolver.fetch("agent")
        run.objects += list(stored) if isinstance(stored, list) else [stored]
        for wid in run.workflow_ids:
            history = await client.get_workflow_handle(wid).fetch_history()
            start = history.events[0].workflow_execution_started_event_attributes
            context = H.decode_context(start.header.fields)
            if context is not None:
                run.objects.append(context)
        run.objects.append(H.WarrantContext.build(_warrant(ENV_NEW), "agent"))
        run.objects += list(run.events)
        # Reprs now, while every cache holds its keys (after the worker stops
        # the resolvers are closed and empty).
        run.reprs += [f"{type(o).__name__}\n{o!r}\n{o}" for o in run.objects]

    # The CLI against both backends, after the run.
    await _cli(run, "public", env_url, "agent")
    await _cli(run, "public", env_url, "broken", expect=2)
    await _cli(run, "doctor", env_url, expect=2)  # "broken" is reported, not echoed
    await _cli(run, "public", aws_url, "aws-agent", "--format", "pem")
    await _cli(run, "doctor", aws_url)
    await _cli(run, "doctor", aws_url, "aws-agent", "aws-generated")


# --------------------------------------------------------------------------- outcomes


async def test_the_workload_ran_as_intended(run: Run) -> None:
    """The scans below mean something only if every path was really taken."""
    o = run.outcomes
    for name in ("env-allowed", "static-allowed", "aws-allowed", "env-rotated-new",
                 "env-rotated-previous", "aws-rotated-new", "aws-rotated-previous"):
        assert isinstance(o[name], str) and o[name].startswith("contents of"), (name, o[name])
    assert o["delegated"] == "contents of /data/reports/q3.csv"
    assert o["delegated-denied"] == "denied"
    assert o["constraint-denied"] == "TENUO_CONSTRAINT_VIOLATION"
    assert o["untrusted-denied"] == "TENUO_CHAIN_INVALID"
    assert o["holder-mismatch"] == "TENUO_KEY_RESOLUTION"
    assert o["malformed-key"] == "TENUO_KEY_RESOLUTION"
    assert {e.decision for e in run.events} == {"allow", "deny"}
    assert len(keys()) == 10 and len({bytes(k.public_key_bytes()) for k in keys()}) == 10
    assert len(run.errors) >= 10 and len(run.workflow_ids) == 15
    kinds = {type(e).__name__ for e in run.errors}
    # Raw exceptions caught inside the workers too, before Temporal converts them.
    assert {"ApplicationError", "KeyNotReady", "HolderMismatch", "KeyFormatError",
            "WorkflowFailureError"} <= kinds, kinds


# --------------------------------------------------------------------------- places


async def test_histories_via_the_cli_hold_no_key_material(run: Run) -> None:
    temporal = find_binary("temporal")
    for wid in run.workflow_ids:
        for command in (["workflow", "show"], ["workflow", "describe"]):
            shown = subprocess.run(
                [temporal, *command, "--workflow-id", wid, "--address", run.address,
                 "--namespace", NAMESPACE, "--output", "json"],
                capture_output=True, timeout=30, check=False)
            assert shown.returncode == 0, shown.stderr[-500:]
            assert len(shown.stdout) > 200
            scan(shown.stdout + shown.stderr, f"`temporal {' '.join(command)}` of {wid}")
    listed = subprocess.run([temporal, "workflow", "list", "--address", run.address,
                             "--namespace", NAMESPACE, "--output", "json"],
                            capture_output=True, timeout=30, check=True)
    scan(listed.stdout + listed.stderr, "`temporal workflow list`")


async def test_histories_via_the_sdk_hold_no_key_material(run: Run) -> None:
    client = await Client.connect(run.address, namespace=NAMESPACE)
    headers = 0
    for wid in run.workflow_ids:
        history = await client.get_workflow_handle(wid).fetch_history()
        raw = History(events=history.events).SerializeToString()
        headers += raw.count(H.WARRANT.encode())
        scan(history.to_json(), f"history JSON of {wid}")
        scan(raw, f"history protobuf of {wid}")
    assert headers >= len(run.workflow_ids)  # the warrants really are in there


async def test_debug_logs_hold_no_key_material(run: Run) -> None:
    names = run.capture.names
    # DEBUG capture really covered the SDK core, the AWS client and our packages.
    assert any(n.startswith("temporalio.core") for n in names), sorted(names)[:20]
    assert "botocore.parsers" in names  # the logger that prints response bodies
    assert any(n.startswith("tenuo_keys") for n in names) or any(
        n.startswith("tenuo_temporal") for n in names)
    with run.capture.guard:
        chunks = list(run.capture.chunks)
    assert len(chunks) > 100
    for start in range(0, len(chunks), 500):  # bounded blobs keep failures local
        scan(b"\n".join(chunks[start:start + 500]), f"DEBUG log records {start}..")


async def test_dev_server_debug_log_holds_no_key_material(run: Run) -> None:
    log = run.server_log.read_bytes()
    assert len(log) > 1000
    scan(log, "Temporal dev server log (debug)")


async def test_denial_exceptions_and_chained_causes_hold_no_key_material(run: Run) -> None:
    for error in run.errors:
        scan(exception_text(error), f"exception {type(error).__name__}")
    for event in run.events:
        scan(repr(event), "audit event")


async def test_reprs_hold_no_key_material(run: Run) -> None:
    kinds = {type(o).__name__ for o in run.objects}
    assert {"StaticKeyResolver", "EnvKeyResolver", "AWSSecretsManagerKeyResolver",
            "CompositeKeyResolver", "TenuoPluginConfig", "KeyCache", "KeyVersions",
            "KeyVersion", "StoredKey", "WarrantContext", "CachePolicy"} <= kinds, kinds
    assert any("held=0" not in r and "KeyCache" in r for r in run.reprs)  # taken while held
    for text in run.reprs + [f"{o!r}\n{o}" for o in run.objects]:
        scan(text, f"repr of {text.split(chr(10), 1)[0]}")


async def test_cli_output_holds_no_key_material(run: Run) -> None:
    commands = {args[0] for args, *_ in run.cli}
    assert {"put", "rotate", "public", "doctor"} <= commands
    for args, code, stdout, stderr in run.cli:
        scan(stdout + "\n" + stderr, f"tenuo-keys {' '.join(args[:2])} (exit {code})")


@pytest.mark.parametrize("args", [["generate"], ["generate", "--format", "hex"],
                                  ["generate", "--format", "base64url"],
                                  ["generate", "--format", "pem"], ["export-env", "agent1"]])
async def test_key_printing_commands_keep_stderr_clean(args: list[str]) -> None:
    """``generate`` and ``export-env`` print a key on stdout by design; never on stderr."""
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    printed = result.stdout.strip()
    if args[0] == "export-env":
        printed = printed.split("=", 1)[1]
    key = decode_signing_key(printed, key_id="printed")
    assert result.stderr.strip() and "public key" in result.stderr
    assert_no_secret(expand(result.stderr), [key], f"stderr of tenuo-keys {' '.join(args)}")
