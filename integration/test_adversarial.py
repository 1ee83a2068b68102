"""The adversarial matrix: every way we know to get an activity past the plugin.

All cases run on the session's real Temporal dev server, through one client
whose config signs (``StaticKeyResolver``) and verifies (``trusted_roots``,
``max_chain_depth=2``). Attacks reach the activity worker in two ways:

* **crafted at the source**: warrants and chains we mint (or forge) ourselves,
  started with ``start_workflow_authorized`` so the plugin signs a real PoP
  for them;
* **tampered in transit**: ``Mutator``, a client interceptor that is also a
  worker interceptor, so it sits *before* the plugin on the activity worker
  and rewrites the headers and arguments exactly as delivered by Temporal.

Every denial must be: refused with the stable ``TENUO_*`` type, non-retryable
(one attempt in history although the retry policy allows three), the activity
body never run (``CALLS`` has nothing for that workflow), and an audit event
naming the reason.

Widened delegations cannot be minted with ``tenuo_core`` (``attenuate``
refuses), so they are forged: the child's CBOR payload is edited and re-signed
with the parent holder's key, which is exactly what a malicious delegator
holds. The signature preimage (``b"tenuo-warrant-v1\\x01" + payload``) was
found empirically; ``test_forgery_helper_reproduces_real_warrants`` proves the
forger reproduces real warrants byte for byte, so a denial is due to the edit.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import gzip
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
import tenuo_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from integration import _adversarial_workflows as aw
from tenuo_keys import EnvKeyResolver, StaticKeyResolver
from tenuo_temporal import (
    AuditEvent,
    TenuoPluginConfig,
    TenuoTemporalPlugin,
    execute_workflow_authorized,
    start_workflow_authorized,
)
from tenuo_temporal import _headers as H
from tenuo_temporal._args import canonical_args
from tenuo_temporal._interceptors import client_context
from tenuo_temporal.errors import TenuoTemporalError

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

Subpath, UrlSafe, Wildcard = tenuo_core.Subpath, tenuo_core.UrlSafe, tenuo_core.Wildcard
Range = tenuo_core.Range

ROOT = tenuo_core.SigningKey.generate()
STRANGER = tenuo_core.SigningKey.generate()  # issues warrants nobody trusts
HOLDER = tenuo_core.SigningKey.generate()  # tenant A, key id "agent"
TENANT_B = tenuo_core.SigningKey.generate()
CHILD = tenuo_core.SigningKey.generate()
GRANDCHILD = tenuo_core.SigningKey.generate()
ROTATED_NEW = tenuo_core.SigningKey.generate()
ROTATED_OLD = tenuo_core.SigningKey.generate()

MAX_CHAIN_DEPTH = 2

AGENT_CAPS: dict[str, dict[str, Any]] = {
    "read_file": {"path": Subpath("/data")},
    "fetch_url": {"url": UrlSafe()},
    "write_note": {"path": Subpath("/data"), "body": Wildcard()},
}
# Apart from AGENT_CAPS: a Range's float bounds are CBOR floats, which the forger cannot edit.
NUMBER_CAPS: dict[str, dict[str, Any]] = {
    "delete_object": {"object_id": Range(0, 2**65)},
    "store_doc": {"doc": Wildcard()},
}
BIG = 18446744073709555712  # 2**64 + 4096: a PoP over it also verified for BIG + 1


def mint(caps: dict[str, Any] | None = None, *, holder: Any = HOLDER, issuer: Any = ROOT,
         ttl: int = 600) -> Any:
    return tenuo_core.Warrant.issue(keypair=issuer, capabilities=caps or AGENT_CAPS,
                                    ttl_seconds=ttl, holder=holder.public_key)


def uid(name: str) -> str:
    return f"adv-{name}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- forging
# A minimal CBOR codec: enough for tenuo 0.3.3 warrants (ints, bytes, text,
# arrays, maps, bools, null, floats). Envelope: [1, payload-bstr, [1, sig]];
# payload map keys observed: 3 capabilities, 4 holder, 5 issuer, 6 issued_at,
# 7 expires_at, 9 parent_hash, 18 depth.

SIGNATURE_DOMAIN = b"tenuo-warrant-v1\x01"
CAPS, ISSUER, ISSUED, EXPIRES, DEPTH = 3, 5, 6, 7, 18


def _cbor_head(data: bytes, i: int) -> tuple[int, int, int]:
    major, info = data[i] >> 5, data[i] & 31
    if info < 24:
        return major, info, i + 1
    size = {24: 1, 25: 2, 26: 4, 27: 8}[info]
    return major, int.from_bytes(data[i + 1:i + 1 + size], "big"), i + 1 + size


def _cbor_decode(data: bytes, i: int) -> tuple[Any, int]:
    if data[i] >> 5 == 7:
        simple = data[i] & 31
        if simple in (20, 21, 22):
            return {20: False, 21: True, 22: None}[simple], i + 1
        if simple == 27:
            return struct.unpack(">d", data[i + 1:i + 9])[0], i + 9
        raise ValueError(f"unsupported CBOR simple value {simple}")
    major, n, i = _cbor_head(data, i)
    if major == 0:
        return n, i
    if major == 1:
        return -1 - n, i
    if major in (2, 3):
        raw = bytes(data[i:i + n])
        return (raw if major == 2 else raw.decode()), i + n
    if major == 4:
        items = []
        for _ in range(n):
            item, i = _cbor_decode(data, i)
            items.append(item)
        return items, i
    if major == 5:
        mapping = {}
        for _ in range(n):
            key, i = _cbor_decode(data, i)
            mapping[key], i = _cbor_decode(data, i)
        return mapping, i
    raise ValueError(f"unsupported CBOR major type {major}")


def cbor_loads(data: bytes) -> Any:
    value, end = _cbor_decode(data, 0)
    assert end == len(data)
    return value


def _cbor_len(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise ValueError(n)


def cbor_dumps(value: Any) -> bytes:
    if isinstance(value, bool) or value is None:
        return {False: b"\xf4", True: b"\xf5", None: b"\xf6"}[value]
    if isinstance(value, int):
        return _cbor_len(0, value) if value >= 0 else _cbor_len(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, bytes):
        return _cbor_len(2, len(value)) + value
    if isinstance(value, str):
        return _cbor_len(3, len(value.encode())) + value.encode()
    if isinstance(value, list):
        return _cbor_len(4, len(value)) + b"".join(cbor_dumps(v) for v in value)
    if isinstance(value, dict):
        return _cbor_len(5, len(value)) + b"".join(
            cbor_dumps(k) + cbor_dumps(v) for k, v in value.items())
    raise TypeError(type(value).__name__)


def forge_bytes(warrant: Any, signer: Any, edit: Callable[[dict[Any, Any]], None]) -> bytes:
    """``warrant`` with its payload edited and re-signed by ``signer``."""
    envelope = cbor_loads(bytes(warrant.to_bytes()))
    payload = cbor_loads(envelope[1])
    edit(payload)
    envelope[1] = cbor_dumps(payload)
    envelope[2] = [1, bytes(signer.sign_raw(SIGNATURE_DOMAIN + envelope[1]))]
    return cbor_dumps(envelope)


def forge(warrant: Any, signer: Any, edit: Callable[[dict[Any, Any]], None]) -> Any:
    return tenuo_core.Warrant.from_bytes(forge_bytes(warrant, signer, edit))


def caps_payload(caps: dict[str, Any]) -> Any:
    """The CBOR capability map tenuo_core writes for ``caps`` (from a throwaway warrant)."""
    return cbor_loads(cbor_loads(bytes(mint(caps).to_bytes()))[1])[CAPS]


def set_caps(caps: dict[str, Any]) -> Callable[[dict[Any, Any]], None]:
    encoded = caps_payload(caps)

    def edit(payload: dict[Any, Any]) -> None:
        payload[CAPS] = encoded

    return edit


def parent_and_child() -> tuple[Any, Any]:
    """A legitimate delegation: ROOT -> HOLDER (/data) -> CHILD (/data/reports)."""
    parent = mint()
    child = parent.attenuate({"read_file": {"path": Subpath("/data/reports")}},
                             signing_key=HOLDER, ttl_seconds=300, holder=CHILD.public_key)
    return parent, child


async def test_forgery_helper_reproduces_real_warrants() -> None:
    parent, child = parent_and_child()
    for warrant, signer in ((parent, ROOT), (child, HOLDER)):
        assert forge_bytes(warrant, signer, lambda p: None) == bytes(warrant.to_bytes())


# --------------------------------------------------------------------------- harness


@dataclasses.dataclass
class Tamper:
    """One activity delivery, as the Mutator hands it to a case's edit."""

    headers: dict[str, Any]
    args: list[Any]
    info: Any

    def raw(self, name: str) -> bytes:
        return bytes(self.headers[name].data)

    def put(self, name: str, data: bytes | None) -> None:
        if data is None:
            self.headers.pop(name, None)
        else:
            self.headers[name] = Payload(data=data)

    def warrant_cbor(self) -> bytes:
        return gzip.decompress(self.raw(H.WARRANT))

    def put_warrant_cbor(self, cbor: bytes) -> None:
        self.put(H.WARRANT, gzip.compress(cbor))
        self.put(H.COMPRESSED, b"1")

    def pop(self, key: Any, *, tool: str | None = None, args: list[Any] | None = None,
            ts: int | None = None) -> bytes:
        """A PoP over the delivered arguments (or ``args``), signed with ``key``."""
        leaf = H.decode_context(self.headers).chain[-1]  # type: ignore[union-attr]
        names = H.decode_arg_keys({H.ARG_KEYS: self.raw(H.ARG_KEYS)}) or []
        signed = canonical_args(names, self.args if args is None else args)
        return bytes(leaf.sign(key, tool or self.info.activity_type, signed,
                               int(time.time()) if ts is None else ts))

    def put_pop(self, pop: bytes) -> None:
        self.put(H.POP, base64.b64encode(pop))


class Mutator(ClientInterceptor, Interceptor):
    """Runs before the plugin on the activity worker; rewrites planned deliveries."""

    def __init__(self) -> None:
        self.plans: dict[str, Callable[[Tamper], None]] = {}
        self.delivered: dict[str, ExecuteActivityInput] = {}
        self.infos: dict[str, Any] = {}

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        outer = self

        class Inbound(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                info = activity.info()
                wid = info.workflow_id
                outer.delivered[wid] = dataclasses.replace(
                    input, headers=dict(input.headers), args=list(input.args))
                outer.infos[wid] = info
                plan = outer.plans.get(wid)
                if plan is not None:
                    tamper = Tamper(dict(input.headers), list(input.args), info)
                    plan(tamper)
                    input.headers, input.args = tamper.headers, tamper.args
                return await super().execute_activity(input)

        return Inbound(next)


@dataclasses.dataclass
class Harness:
    client: Client
    queue: str
    plugin: TenuoTemporalPlugin
    mutator: Mutator
    events: dict[str, list[AuditEvent]]


RESOLVER_KEYS: dict[str, Any] = {
    "agent": HOLDER, "tenant-b": TENANT_B, "child": CHILD, "grandchild": GRANDCHILD,
    "rotated": [ROTATED_NEW, ROTATED_OLD],
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def harness(temporal_env: Any) -> Any:
    events: dict[str, list[AuditEvent]] = {}

    def audit(event: AuditEvent) -> None:
        events.setdefault(event.workflow_id or "", []).append(event)

    # Strict replay protection: the crossed-header cases show a PoP copied onto
    # another workflow refused (the default mode's answer: test_replay_modes.py).
    plugin = TenuoTemporalPlugin(TenuoPluginConfig(
        key_resolver=StaticKeyResolver(RESOLVER_KEYS), trusted_roots=[ROOT.public_key],
        max_chain_depth=MAX_CHAIN_DEPTH, audit_callback=audit, replay_protection="strict"))
    mutator = Mutator()
    target = temporal_env.client.service_client.config.target_host
    client = await Client.connect(target, namespace=temporal_env.client.namespace,
                                  plugins=[plugin], interceptors=[mutator])
    queue = uid("queue")
    async with Worker(client, task_queue=queue, workflows=aw.WORKFLOWS,
                      activities=aw.ACTIVITIES):
        yield Harness(client, queue, plugin, mutator, events)


async def failure_of(run: Awaitable[Any], wid: str | None = None) -> ApplicationError:
    """The ApplicationError at the root of a failed workflow."""
    try:
        result = await run
    except WorkflowFailureError as failure:
        cause: BaseException | None = failure.cause
        while cause is not None and not isinstance(cause, ApplicationError):
            cause = cause.cause  # type: ignore[attr-defined]
        assert isinstance(cause, ApplicationError), failure
        return cause
    raise AssertionError(f"not denied: the workflow returned {result!r}"
                         + (f"; the activity ran as {ran(wid)}" if wid else ""))


def start(h: Harness, wid: str, activity_name: str, args: list[Any], *,
          warrant: Any = None, chain: list[Any] | None = None, key_id: str = "agent") -> Any:
    if warrant is None:  # no warrant at all: a plain Temporal start
        return h.client.execute_workflow(aw.Call.run, args=[activity_name, args], id=wid,
                                         task_queue=h.queue)
    return execute_workflow_authorized(
        h.client, aw.Call.run, workflow_id=wid, warrant=warrant, key_id=key_id,
        args=[activity_name, args], task_queue=h.queue, chain=chain)


def ran(wid: str) -> list[tuple[str, tuple[object, ...]]]:
    return [(name, args) for w, name, args in aw.CALLS if w == wid]


async def activity_attempts(h: Harness, wid: str) -> list[int]:
    history = await h.client.get_workflow_handle(wid).fetch_history()
    return [e.activity_task_started_event_attributes.attempt for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]


async def assert_denied(h: Harness, wid: str, error: ApplicationError, expected: str) -> None:
    assert error.type == expected, f"{error.type}: {error.message}"
    assert error.non_retryable
    assert ran(wid) == []  # the activity body never ran
    assert await activity_attempts(h, wid) == [1]  # and was not retried
    events = h.events.get(wid, [])
    assert events, "no audit event for the denial"
    assert [e.decision for e in events] == ["deny"]
    assert events[-1].reason == expected and events[-1].detail


# --------------------------------------------------------------------------- cases


@dataclasses.dataclass(frozen=True)
class Case:
    expected: str
    activity: str = "read_file"
    args: tuple[Any, ...] = ("/data/report.csv",)
    # () -> (warrant, chain, key_id); warrant None starts without any warrant.
    build: Callable[[], tuple[Any, list[Any] | None, str]] = lambda: (mint(), None, "agent")
    tamper: Callable[[Tamper], None] | None = None


def _strip_tenuo(t: Tamper) -> None:
    t.headers = {k: v for k, v in t.headers.items() if k not in H.TENUO_HEADERS}


def _flip_in_constraint(t: Tamper) -> None:
    cbor = bytearray(t.warrant_cbor())
    at = cbor.index(b"/data")
    cbor[at + 2] ^= 0x01  # "/data" -> "/dbta" inside the signed payload
    t.put_warrant_cbor(bytes(cbor))


def _flip_in_signature(t: Tamper) -> None:
    cbor = bytearray(t.warrant_cbor())
    cbor[-1] ^= 0x80
    t.put_warrant_cbor(bytes(cbor))


def _gzip_bomb() -> bytes:
    # 200 gzip members of 1 MiB of zeros each: about 200 KiB on the wire (under
    # the 256 KiB raw cap), 200 MiB if inflated.
    return gzip.compress(bytes(1 << 20), compresslevel=9) * 200


def _stack(*envelopes: bytes) -> bytes:
    """An ``encode_warrant_stack`` value built from raw (possibly forged) warrants."""
    return base64.b64encode(cbor_dumps([cbor_loads(e) for e in envelopes]))


def _forged_by_non_holder(t: Tamper) -> None:
    # A child "delegated" by STRANGER while claiming HOLDER as issuer; it cannot
    # be a Warrant object (from_bytes refuses it), so it is spliced in as bytes.
    parent, child = parent_and_child()
    forged = forge_bytes(child, STRANGER, set_caps({"read_file": {"path": Subpath("/")}}))
    t.put_warrant_cbor(forged)
    t.put(H.CHAIN, _stack(bytes(parent.to_bytes()), forged))


def _delegated(edit: Callable[[dict[Any, Any]], None] | None = None, *,
               signer: Any = HOLDER) -> Callable[[], tuple[Any, list[Any], str]]:
    """Build ROOT -> HOLDER -> CHILD, the child optionally forged."""

    def build() -> tuple[Any, list[Any], str]:
        parent, child = parent_and_child()
        if edit is not None:
            child = forge(child, signer, edit)
        return child, [parent, child], "child"

    return build


def _widen_ttl(payload: dict[Any, Any]) -> None:
    payload[EXPIRES] += 86_400


def _other_issuer(payload: dict[Any, Any]) -> None:
    payload[ISSUER] = [1, bytes(STRANGER.public_key_bytes())]
    payload[CAPS] = caps_payload({"read_file": {"path": Subpath("/")}})


def _depth_lie(payload: dict[Any, Any]) -> None:
    payload[DEPTH] = 0


def _spliced() -> tuple[Any, list[Any], str]:
    # A child of a *different* parent (ROOT -> HOLDER over "/") under this
    # workflow's parent (over "/data"): parent_hash does not match.
    wide_parent = mint({"read_file": {"path": Subpath("/")}})
    child = wide_parent.attenuate({"read_file": {"path": Subpath("/etc")}}, signing_key=HOLDER,
                                  ttl_seconds=300, holder=CHILD.public_key)
    return child, [mint(), child], "child"


def _self_issued_child() -> tuple[Any, list[Any], str]:
    # The parent holder issues a fresh root warrant instead of attenuating.
    rogue = mint({"read_file": {"path": Subpath("/")}}, issuer=HOLDER, holder=CHILD)
    return rogue, [mint(), rogue], "child"


def _too_deep() -> tuple[Any, list[Any], str]:
    parent, child = parent_and_child()
    grandchild = child.attenuate({"read_file": {"path": Subpath("/data/reports")}},
                                 signing_key=CHILD, ttl_seconds=200,
                                 holder=GRANDCHILD.public_key)
    return grandchild, [parent, child, grandchild], "grandchild"


def _expired() -> Any:
    # Issued by the trusted root, two minutes ago, for one minute. (ttl_seconds=0
    # is not a way to get one: tenuo_core refuses to decode expires_at == issued_at.)
    now = int(time.time())

    def backdate(payload: dict[Any, Any]) -> None:
        payload[ISSUED], payload[EXPIRES] = now - 120, now - 60

    return forge(mint(), ROOT, backdate)


def _trailing_chain(t: Tamper) -> bytes:
    """The delivered chain with bytes after it, in an encoding tenuo_core still decodes."""
    encoded = t.raw(H.CHAIN)
    stack = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
    for n in range(1, 16):
        for encode in (base64.urlsafe_b64encode, base64.b64encode):
            tail = encode(stack + b"x" * n)
            try:
                if len(tenuo_core.decode_warrant_stack_base64(tail.decode())) == 2:
                    return tail
            except Exception:
                continue
    raise AssertionError("tenuo_core refused every trailing form: nothing to test")


def _leaf_alone() -> tuple[Any, None, str]:
    _, child = parent_and_child()
    return child, None, "child"


HEADER, CHAIN, EXPIRED = "TENUO_HEADER_INVALID", "TENUO_CHAIN_INVALID", "TENUO_WARRANT_EXPIRED"
MISSING, TOOL, CONSTRAINT = "TENUO_WARRANT_MISSING", "TENUO_TOOL_NOT_AUTHORIZED", \
    "TENUO_CONSTRAINT_VIOLATION"
POP, REPLAYED = "TENUO_POP_INVALID", "TENUO_POP_REPLAYED"
REPORTS = ("/data/reports/q3.csv",)

CASES: dict[str, Case] = {
    # -- missing or malformed headers (tampered in transit) --
    "no-warrant-started-without": Case(MISSING, build=lambda: (None, None, "agent")),
    "no-warrant-stripped-in-transit": Case(MISSING, tamper=_strip_tenuo),
    "warrant-byte-flipped-in-constraint": Case(HEADER, tamper=_flip_in_constraint),
    "warrant-byte-flipped-in-signature": Case(HEADER, tamper=_flip_in_signature),
    "warrant-cbor-truncated": Case(HEADER, tamper=lambda t: t.put_warrant_cbor(
        t.warrant_cbor()[: len(t.warrant_cbor()) // 2])),
    "warrant-gzip-truncated": Case(HEADER, tamper=lambda t: t.put(
        H.WARRANT, t.raw(H.WARRANT)[:-12])),
    "warrant-gzip-bomb": Case(HEADER, tamper=lambda t: t.put(H.WARRANT, _gzip_bomb())),
    "warrant-header-oversized": Case(HEADER, tamper=lambda t: t.put(
        H.WARRANT, t.raw(H.WARRANT) + bytes(H.MAX_HEADER_BYTES))),
    "chain-header-oversized": Case(HEADER, tamper=lambda t: t.put(
        H.CHAIN, b"A" * (H.MAX_HEADER_BYTES + 4))),
    "chain-header-garbage": Case(HEADER, tamper=lambda t: t.put(H.CHAIN, b"%%not-base64%%")),
    "key-id-oversized": Case(HEADER, tamper=lambda t: t.put(H.KEY_ID, b"k" * 4096)),
    "wire-format-unknown": Case(HEADER, tamper=lambda t: t.put(H.WIRE_FORMAT, b"3")),
    "compressed-flag-unknown": Case(HEADER, tamper=lambda t: t.put(H.COMPRESSED, b"2")),
    # tenuo_core ignores what follows: kept, it made a context map key of any size.
    "warrant-gzip-trailing-garbage": Case(HEADER, tamper=lambda t: t.put(
        H.WARRANT, t.raw(H.WARRANT) + b"\0" * 4096)),
    "warrant-cbor-trailing-bytes": Case(HEADER, tamper=lambda t: t.put_warrant_cbor(
        t.warrant_cbor() + b"junk")),
    "chain-trailing-bytes": Case(HEADER, args=REPORTS, build=_delegated(),
                                 tamper=lambda t: t.put(H.CHAIN, _trailing_chain(t))),
    # -- trust --
    "issuer-not-trusted": Case(CHAIN, build=lambda: (mint(issuer=STRANGER), None, "agent")),
    "warrant-expired": Case(EXPIRED, build=lambda: (_expired(), None, "agent")),
    "chain-deeper-than-max": Case(CHAIN, args=REPORTS, build=_too_deep),
    "delegated-leaf-without-chain": Case(CHAIN, args=REPORTS, build=_leaf_alone),
    "chain-stripped-in-transit": Case(CHAIN, args=REPORTS, build=_delegated(),
                                      tamper=lambda t: t.put(H.CHAIN, None)),
    "child-widens-tool": Case(CHAIN, "write_file", ("/data/reports/x", "body"), _delegated(
        set_caps({"read_file": {"path": Subpath("/data/reports")},
                  "write_file": {"path": Subpath("/data/reports"), "body": Wildcard()}}))),
    "child-widens-constraint": Case(CHAIN, args=("/etc/passwd",), build=_delegated(
        set_caps({"read_file": {"path": Subpath("/")}}))),
    "child-widens-constraint-in-scope-call": Case(CHAIN, args=REPORTS, build=_delegated(
        set_caps({"read_file": {"path": Subpath("/")}}))),
    "child-drops-constraint": Case(CHAIN, args=REPORTS, build=_delegated(
        set_caps({"read_file": {}}))),
    "child-widens-ttl": Case(CHAIN, args=REPORTS, build=_delegated(_widen_ttl)),
    "child-lies-about-depth": Case(CHAIN, args=REPORTS, build=_delegated(_depth_lie)),
    "child-by-another-issuer": Case(CHAIN, args=("/etc/passwd",), build=_delegated(
        _other_issuer, signer=STRANGER)),
    "child-signed-by-non-holder": Case(HEADER, args=REPORTS, build=_delegated(),
                                       tamper=_forged_by_non_holder),
    "child-spliced-from-other-parent": Case(CHAIN, args=("/etc/passwd",), build=_spliced),
    "child-self-issued-by-holder": Case(CHAIN, args=("/etc/passwd",), build=_self_issued_child),
    # -- tool and arguments --
    "tool-not-granted": Case(TOOL, "write_file", ("/data/out.txt", "body")),
    "subpath-traversal": Case(CONSTRAINT, args=("/data/../etc/passwd",)),
    "ssrf-cloud-metadata": Case(CONSTRAINT, "fetch_url",
                                ("http://169.254.169.254/latest/meta-data",)),
    "ssrf-loopback": Case(CONSTRAINT, "fetch_url", ("http://127.0.0.1:8080/",)),
    "ssrf-ipv4-mapped-ipv6": Case(CONSTRAINT, "fetch_url",
                                  ("http://[::ffff:169.254.169.254]/latest/meta-data",)),
    "ssrf-decimal-loopback": Case(CONSTRAINT, "fetch_url", ("http://2130706433:8080/",)),
    "argument-undeclared": Case(CONSTRAINT, "write_file", ("/data/out.txt", "body"), build=lambda: (
        mint({"write_file": {"path": Subpath("/data")}}), None, "agent")),
    "argument-missing": Case(CONSTRAINT, "write_note", ("/data/note.txt",)),
    "argument-appended-in-transit": Case(CONSTRAINT, tamper=lambda t: t.args.append("extra")),
    "argument-dropped-in-transit": Case(CONSTRAINT, "write_note", ("/data/n.txt", "hello"),
                                        tamper=lambda t: t.args.pop()),
    # -- PoP --
    "pop-missing": Case(POP, tamper=lambda t: t.put(H.POP, None)),
    "pop-not-base64": Case(POP, tamper=lambda t: t.put(H.POP, b"!!not*base64!!")),
    "pop-wrong-length": Case(POP, tamper=lambda t: t.put_pop(t.pop(HOLDER)[:63])),
    "pop-all-zero": Case(POP, tamper=lambda t: t.put_pop(bytes(64))),
    "pop-by-stranger-key": Case(POP, tamper=lambda t: t.put_pop(t.pop(STRANGER))),
    "pop-by-issuer-key": Case(POP, tamper=lambda t: t.put_pop(t.pop(ROOT))),
    "pop-for-other-arguments": Case(POP, tamper=lambda t: t.put_pop(
        t.pop(HOLDER, args=["/data/other.csv"]))),
    "pop-for-other-tool": Case(POP, tamper=lambda t: t.put_pop(t.pop(HOLDER, tool="fetch_url"))),
    "pop-stale": Case(POP, tamper=lambda t: t.put_pop(t.pop(HOLDER, ts=int(time.time()) - 600))),
    "pop-from-the-future": Case(POP, tamper=lambda t: t.put_pop(
        t.pop(HOLDER, ts=int(time.time()) + 600))),
    "arguments-swapped-in-transit": Case(POP, tamper=lambda t: t.args.__setitem__(
        0, "/data/salaries.csv")),
    "argument-names-relabelled": Case(POP, tamper=lambda t: t.put(H.ARG_KEYS, b"file")),
    # -- numbers tenuo_core cannot hold exactly (64-bit floats) --
    "integer-changed-past-2**53-in-transit": Case(
        CONSTRAINT, "delete_object", (5,), build=lambda: (mint(NUMBER_CAPS), None, "agent"),
        tamper=lambda t: _pop_over_big_int(t)),
}


def _pop_over_big_int(t: Tamper) -> None:
    """A PoP over BIG signed straight with tenuo_core, delivered with BIG + 1."""
    leaf = H.decode_context(t.headers).chain[-1]  # type: ignore[union-attr]
    t.put_pop(bytes(leaf.sign(HOLDER, "delete_object", {"object_id": BIG}, int(time.time()))))
    t.args[0] = BIG + 1


@pytest.mark.parametrize("name", list(CASES))
async def test_denied(harness: Harness, name: str) -> None:
    case = CASES[name]
    wid = uid(name)
    if case.tamper is not None:
        harness.mutator.plans[wid] = case.tamper
    warrant, chain, key_id = case.build()
    started = time.perf_counter()
    error = await failure_of(start(harness, wid, case.activity, list(case.args),
                                   warrant=warrant, chain=chain, key_id=key_id), wid)
    elapsed = time.perf_counter() - started
    await assert_denied(harness, wid, error, case.expected)
    if name == "warrant-gzip-bomb":  # refused from the first 64 KiB, not inflated
        assert elapsed < 5 and harness.events[wid][-1].latency_ms < 500


# --------------------------------------------------------------------------- crossed headers


CROSSED: dict[str, tuple[str, Any, str, tuple[Any, ...]]] = {
    # name: (expected, thief's own warrant or None, its key id, its arguments)
    "pop-replayed-onto-workflow-without-warrant": (REPLAYED, None, "agent",
                                                   ("/tenants/a/x.csv",)),
    "pop-replayed-onto-tenant-b-same-call": (REPLAYED, "tenant-b", "tenant-b",
                                             ("/tenants/a/x.csv",)),
    "tenant-a-headers-on-tenant-b-call": (POP, "tenant-b", "tenant-b", ("/tenants/b/y.csv",)),
}


@pytest.mark.parametrize("name", list(CROSSED))
async def test_crossed_headers(harness: Harness, name: str) -> None:
    expected, thief_warrant, thief_key, thief_args = CROSSED[name]
    victim, thief = uid("victim"), uid(name)
    warrant_a = mint({"read_file": {"path": Subpath("/tenants/a")}})
    ok = await start(harness, victim, "read_file", ["/tenants/a/x.csv"], warrant=warrant_a)
    assert ok == "contents of /tenants/a/x.csv"
    stolen = {k: v for k, v in harness.mutator.delivered[victim].headers.items()
              if k in H.TENUO_HEADERS}

    def copy(t: Tamper) -> None:
        t.headers = {**{k: v for k, v in t.headers.items() if k not in H.TENUO_HEADERS},
                     **stolen}

    harness.mutator.plans[thief] = copy
    own = (mint({"read_file": {"path": Subpath("/tenants/b")}}, holder=TENANT_B)
           if thief_warrant else None)
    error = await failure_of(start(harness, thief, "read_file", list(thief_args), warrant=own,
                                   key_id=thief_key), thief)
    await assert_denied(harness, thief, error, expected)


# --------------------------------------------------------------------------- relabelled arguments


async def test_variadic_activity_arguments_cannot_be_relabelled(harness: Harness) -> None:
    """Constraints must bind to the positions the activity receives.

    ``send_parts(*parts)`` cannot be named from its signature, so the warrant
    constrains ``arg0``/``arg1``. A legitimate positional call is allowed; the
    workflow then signs the same call with the names swapped (through a stub
    passed to ``tenuo_execute_activity``) so that ``/etc/passwd`` lands in
    ``parts[0]`` while the constraint on ``arg0`` sees ``/data/ok``.
    """
    warrant = mint({"send_parts": {"arg0": Subpath("/data"), "arg1": Wildcard()}})
    legit = uid("variadic-positional")
    assert await start(harness, legit, "send_parts", ["/data/ok", "note"],
                       warrant=warrant) == 2
    assert ran(legit) == [("send_parts", ("/data/ok", "note"))]
    wid = uid("variadic-relabelled")
    error = await failure_of(execute_workflow_authorized(
        harness.client, aw.Relabel.run, workflow_id=wid, warrant=warrant, key_id="agent",
        args=[["/etc/passwd", "/data/ok"]], task_queue=harness.queue), wid)
    await assert_denied(harness, wid, error, CONSTRAINT)


# --------------------------------------------------------------------------- denied at the signer


def _corrupt_start_headers() -> H.WarrantContext:
    good = H.WarrantContext.build(mint(), "agent")
    cbor = bytearray(gzip.decompress(bytes(good.payloads[H.WARRANT].data)))
    cbor[cbor.index(b"/data") + 2] ^= 0x01
    payloads = {**good.payloads, H.WARRANT: Payload(data=gzip.compress(bytes(cbor)))}
    return dataclasses.replace(good, payloads=payloads)


SIGNER_DENIALS: dict[str, tuple[str, str, list[Any]]] = {
    # name: (expected, activity, args)
    # Within Range(0, 2**53) as a float, but not the integer signed: refused.
    "integer-just-past-2**53": (CONSTRAINT, "delete_object", [2**53 + 1]),
    "integer-past-2**63": (CONSTRAINT, "delete_object", [2**63 + 1000]),
    # tenuo_core cannot encode it: the workflow task used to fail forever.
    "integer-10**400-wedged-the-workflow": (CONSTRAINT, "store_doc", [{"k": 10**400}]),
    "lone-surrogate-key-wedged-the-workflow": (CONSTRAINT, "store_doc", [{"\udc00": 1}]),
}


@pytest.mark.parametrize("name", ["key-id-matches-no-holder-version",
                                  "workflow-started-with-flipped-warrant", *SIGNER_DENIALS])
async def test_denied_at_the_workflow_worker(harness: Harness, name: str) -> None:
    """Denials the workflow worker raises before any activity is scheduled.

    The key id "rotated" resolves to two versions (new, old); the warrant's
    holder is neither. A flipped warrant byte on the workflow's own start
    headers fails decoding in the workflow inbound interceptor. Arguments the
    PoP cannot bind exactly, or tenuo_core cannot sign, are a typed denial of
    the call: never a workflow task that fails and is retried forever.
    """
    wid = uid(name)
    if name == "key-id-matches-no-holder-version":
        expected = "TENUO_KEY_RESOLUTION"
        run = start(harness, wid, "read_file", ["/data/r.csv"], warrant=mint(), key_id="rotated")
    elif name in SIGNER_DENIALS:
        expected, activity_name, args = SIGNER_DENIALS[name]
        run = asyncio.wait_for(start(harness, wid, activity_name, args,
                                     warrant=mint(NUMBER_CAPS)), 30)
    else:
        expected = HEADER
        token = client_context.set(_corrupt_start_headers())
        try:
            handle = await harness.client.start_workflow(
                aw.Call.run, args=["read_file", ["/data/r.csv"]], id=wid, task_queue=harness.queue)
        finally:
            client_context.reset(token)
        run = handle.result()
    error = await failure_of(run, wid)
    assert error.type == expected, f"{error.type}: {error.message}"
    assert error.non_retryable
    assert ran(wid) == []
    history = await harness.client.get_workflow_handle(wid).fetch_history()
    assert not [e for e in history.events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    events = harness.events.get(wid, [])
    assert events and events[-1].decision == "deny" and events[-1].reason == expected, (
        "a denial on the workflow worker emits no audit event")


class SlowEnviron(dict):  # type: ignore[type-arg]
    """Variables that answer like a remote secret store: 200 ms a read."""

    def get(self, key: Any, default: Any = None) -> Any:
        if str(key).startswith("SLOW_"):
            time.sleep(0.2)
        return super().get(key, default)


async def test_definitive_key_error_from_a_slow_backend_fails_the_workflow(
        temporal_env: Any) -> None:
    """A key id the backend does not have must end in ``TENUO_KEY_RESOLUTION``.

    The first workflow task finds the key cold (retryable ``KeyNotReady``);
    Temporal retries at once, before a 200 ms backend has answered, then every
    ~10 s. The definitive answer (not found) must reach one of those retries;
    it must not leave the workflow retrying its task forever.
    """
    plugin = TenuoTemporalPlugin(TenuoPluginConfig(
        key_resolver=EnvKeyResolver("SLOW_", environ=SlowEnviron()),
        trusted_roots=[ROOT.public_key], preload_all=False))
    target = temporal_env.client.service_client.config.target_host
    client = await Client.connect(target, namespace=temporal_env.client.namespace,
                                  plugins=[plugin])
    queue, wid = uid("slow-backend"), uid("key-id-unknown-to-a-slow-backend")
    async with Worker(client, task_queue=queue, workflows=aw.WORKFLOWS,
                      activities=aw.ACTIVITIES):
        handle = await start_workflow_authorized(
            client, aw.Call.run, workflow_id=wid, warrant=mint(), key_id="typo",
            args=["read_file", ["/data/x"]], task_queue=queue)
        try:
            error = await asyncio.wait_for(failure_of(handle.result(), wid), 30)
        except asyncio.TimeoutError:
            history = await handle.fetch_history()
            failed = [e.workflow_task_failed_event_attributes.failure.message
                      for e in history.events
                      if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
            raise AssertionError(
                f"the workflow is still retrying its task after 30 s: {failed[:1]}") from None
    assert error.type == "TENUO_KEY_RESOLUTION" and error.non_retryable
    assert ran(wid) == []


# --------------------------------------------------------------------------- controls


ALLOWED: dict[str, Case] = {
    "plain-read": Case("", args=("/data/report.csv",)),
    "delegated-read-within-depth": Case("", args=REPORTS, build=_delegated()),
    "fetch-public-https": Case("", "fetch_url", ("https://example.com/x",)),
    "write-note-with-all-arguments": Case("", "write_note", ("/data/n.txt", "hi")),
    # The verifier binds the PoP to the warrant's holder, never to the key id:
    # rewriting the (unsigned) key id in transit changes nothing.
    "key-id-rewritten-in-transit": Case("", tamper=lambda t: t.put(H.KEY_ID, b"tenant-b")),
}


@pytest.mark.parametrize("name", list(ALLOWED))
async def test_controls_are_allowed(harness: Harness, name: str) -> None:
    """The harness itself denies nothing that is legitimate."""
    case = ALLOWED[name]
    wid = uid(name)
    if case.tamper is not None:
        harness.mutator.plans[wid] = case.tamper
    warrant, chain, key_id = case.build()
    await start(harness, wid, case.activity, list(case.args), warrant=warrant, chain=chain,
                key_id=key_id)
    assert ran(wid) == [(case.activity, case.args)]
    assert [e.decision for e in harness.events[wid]] == ["allow"]


# --------------------------------------------------------------------------- property


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[(bit // 8) % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


async def test_property_any_bit_flip_in_signed_material_is_denied(harness: Harness) -> None:
    """A real delivered activity (delegated, so every header is present), re-verified
    through ``check`` (the in-memory store claims inline, so nothing is left to await)
    with one bit flipped in the decoded content of the warrant, the chain, the PoP, the
    argument names or an argument value.

    The property: it is allowed only if the headers still decode to the very same
    warrants (tenuo_core's CBOR reader tolerates some non-canonical encodings, such
    as a wrong array length or trailing bytes, and then yields identical warrants);
    anything else is a Tenuo denial, never another exception. The key id is left
    out: it is an unsigned hint the verifier does not use.
    """
    wid = uid("property")
    warrant, chain, key_id = _delegated()()
    await start(harness, wid, "read_file", list(REPORTS), warrant=warrant, chain=chain,
                key_id=key_id)
    delivered, info = harness.mutator.delivered[wid], harness.mutator.infos[wid]
    interceptor = harness.plugin.interceptor

    def authorize(attempt: ExecuteActivityInput, info: Any) -> Any:
        context, _, pending = interceptor.verifier.check(
            attempt, info, interceptor.config.tool_for(info.activity_type))
        assert pending is None, "the in-memory store claims inline: nothing left to await"
        return context

    assert authorize(delivered, info) is not None  # the baseline is allowed
    original = [bytes(w.to_bytes()) for w in chain]

    def mutated(target: str, bit: int) -> ExecuteActivityInput:
        headers, args = dict(delivered.headers), list(delivered.args)
        if target == "warrant":
            cbor = gzip.decompress(bytes(headers[H.WARRANT].data))
            headers[H.WARRANT] = Payload(data=gzip.compress(_flip(cbor, bit)))
        elif target == "chain":
            stack = base64.b64decode(bytes(headers[H.CHAIN].data))
            headers[H.CHAIN] = Payload(data=base64.b64encode(_flip(stack, bit)))
        elif target == "pop":
            pop = base64.b64decode(bytes(headers[H.POP].data))
            headers[H.POP] = Payload(data=base64.b64encode(_flip(pop, bit)))
        elif target == "arg-keys":
            headers[H.ARG_KEYS] = Payload(data=_flip(bytes(headers[H.ARG_KEYS].data), bit))
        else:
            args[0] = _flip(args[0].encode(), bit).decode("utf-8", "replace")
        return dataclasses.replace(delivered, headers=headers, args=args)

    def same_warrants(attempt: ExecuteActivityInput) -> bool:
        try:
            context = H.decode_context(attempt.headers)
        except TenuoTemporalError:
            return False
        assert context is not None
        return ([bytes(w.to_bytes()) for w in context.chain] == original
                and bytes(context.warrant.to_bytes()) == original[-1])

    tolerated: list[str] = []

    @settings(max_examples=400, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(["warrant", "chain", "pop", "arg-keys", "argument"]),
           st.integers(min_value=0, max_value=8 * 4096))
    def property_(target: str, bit: int) -> None:
        attempt = mutated(target, bit)
        if target in ("warrant", "chain") and same_warrants(attempt):
            tolerated.append(target)  # a re-encoding of the same signed content
            assert authorize(attempt, info) is not None
            return
        if attempt.args == delivered.args and attempt.headers == delivered.headers:
            return
        with pytest.raises(TenuoTemporalError):
            authorize(attempt, info)

    property_()
    assert len(tolerated) < 40  # rare: only a few header bits are non-semantic
