"""Interoperability of ours with the stock ``tenuo.temporal`` 0.3.3 plugin, on a real dev server.

## Compatibility range: tenuo_temporal and tenuo.temporal 0.3.3

Shown on a real Temporal dev server (temporalio 1.35) with activities that take
primitive arguments (str, int, bool). The workflow worker and the activity worker use
different clients and task queues. Each workflow is started by the signing side's
`execute_workflow_authorized`, or by its `start_workflow_authorized` when the test reads
the workflow's history.

**Works**

- **Our resolvers as the stock plugin's `key_resolver`.** Vault (OpenBao, KV v2), AWS
  Secrets Manager (moto_server) and GCP Secret Manager work this way. The stock plugin
  calls `preload_all()` once, synchronously, while the `Worker` is built, and that loads
  every key. Its workflows then sign PoP inside the sandbox with `resolve_sync`, from
  memory. The stock plugin's own cloud resolvers cannot do this.
  - Allowed calls run.
  - Each of these is denied, non-retryable, and the activity body never runs:
    - a broken constraint (`constraint_violation`);
    - a key id whose key is not the warrant's holder (`POP_VERIFICATION_FAILED`).
- **Mixed fleets, in both directions.** Either the stock plugin signs and ours verifies
  (verify-only config), or ours signs and the stock plugin verifies.
  - The activity headers have the same names and encodings on both sides:
    - `x-tenuo-warrant` (gzip CBOR) with `x-tenuo-compressed: 1`;
    - `x-tenuo-wire-format: 2` and `x-tenuo-key-id`;
    - `x-tenuo-pop` (base64 of 64 bytes);
    - `x-tenuo-arg-keys` (comma-joined names, e.g. `account,amount,urgent`);
    - `x-tenuo-warrant-chain` for a delegated warrant.
  - These are accepted:
    - several arguments of different types in one call;
    - an activity type that differs from the tool name;
    - a retry that presents the PoP signed when the activity was scheduled;
    - a delegated root→leaf chain. The leaf's narrower constraint is enforced.
  - Every denial is non-retryable, and the activity body never runs:
    - a broken constraint on any argument, including a leaf's narrowed path. The stock
      verifier raises `constraint_violation`, ours `TENUO_CONSTRAINT_VIOLATION`.
    - a PoP with one flipped bit, or a valid signature by the wrong key.
      `POP_VERIFICATION_FAILED` / `TENUO_POP_INVALID`.
    - a key id whose key is not the holder. The stock signer signs with it anyway, and
      our verifier denies with `TENUO_POP_INVALID`. Our signer refuses to sign
      (`TENUO_KEY_RESOLUTION` in the workflow), so nothing is scheduled.

**Conditions.** Each side works out argument names and tool names for itself. When they
do not match, the call is denied (fails closed).

- **Argument names.** A workflow worker that does not run the activity has to learn its
  parameter names.
  - The stock worker learns them from `activity_fns=[...]`. Without it, the stock worker
    refuses in the workflow with `PRE_VALIDATION_FAILED`.
  - Ours learns them from `tenuo_execute_activity(fn, ...)`, or from the activities
    registered on the workflow worker. Without either, ours signs `arg0`, ...:
    - our verifier accepts that: it checks the PoP over the signed names and the
      constraints over the activity's real parameter names;
    - the stock verifier denies it: it checks constraints under the header's names
      (`Constraint 'arg0' not satisfied: unknown field`). This is a limitation of the
      reference.
- **Tool names.** Ours does not read the stock `@tool("x")` decorator. Mirror it with
  `tool_mappings={"<activity>": "x"}` on our workers; otherwise ours denies with
  `TENUO_TOOL_NOT_AUTHORIZED`.
- **Stock activity workers.** A stock activity worker needs a `key_resolver` or a
  `signing_key`, even though it only verifies: 0.3.3 refuses a verify-only config. Any
  throwaway key works.

**Workflow-scoped warrants work in every direction.** These are 0.3.3 warrants whose
capability constrains `_workflow_namespace` and `_workflow_id`. Both signers add the
running workflow's identity, taken from `workflow.info()`, to the signed arguments. Both
verifiers add it from `activity.info()`. It is never listed in `x-tenuo-arg-keys`, and an
activity argument may not use either name. `test_workflow_scoped_warrant` covers all four
cells.

**One warrant, two workflows, the same call within one 30-second PoP window.** The two
PoPs are the same bytes.

- The stock verifier accepts both: it deduplicates per workflow run and activity.
- Ours, by default (`replay_protection=True`, i.e. `"run"`), accepts both too: each
  attempt of each activity is authorized once.
- Ours with `replay_protection="strict"` accepts the first and denies the second with
  `TENUO_POP_REPLAYED`: a PoP belongs to the first workflow that presents it, which is
  how strict mode refuses headers copied onto another workflow. Fleets that share one
  warrant across workflows and want strict mode use workflow-scoped warrants, whose PoPs
  name the workflow.

**Not tested here**

- Dataclass, dict and nested-list arguments. From the code: the stock signer signs them
  as JSON strings, and ours as canonical maps and lists.
- An activity backlog longer than the stock verifier's first-attempt PoP window.
- Continue-as-new and child workflows across the two plugins.
- Approvals and Nexus.

## Tests

- `test_our_cloud_resolver_signs_inside_the_stock_plugin[vault|aws|gcp]`: goal 1.
- `test_mixed_fleet[...]`: goals 2 to 4, in both directions.
- `test_argument_and_tool_names_must_agree`: the conditions above.
- `test_workflow_scoped_warrant[signer-verifier]`: the whole matrix.
  `stock-stock` is the reference behaviour.
- `test_one_warrant_two_workflows_same_call[...]`: the difference above.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import tenuo.temporal as stock
import tenuo_core
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Worker
from temporalio.worker import Interceptor as WorkerInterceptor
from tenuo.temporal_plugin import TenuoTemporalPlugin as StockPlugin

import tenuo_temporal as ours
from integration import _interop_workflows as wf
from tenuo_keys import StaticKeyResolver, encode_signing_key
from tenuo_temporal import _headers as H

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = tenuo_core.SigningKey.generate()  # the issuer every verifier trusts
DELEGATOR = tenuo_core.SigningKey.generate()  # holds a root warrant and attenuates it
HOLDER = tenuo_core.SigningKey.generate()  # the warrants' holder, served as "agent1"
MALLORY = tenuo_core.SigningKey.generate()  # a real key, but not the holder: "mallory"
KEYS = {"agent1": HOLDER, "mallory": MALLORY}
Subpath = tenuo_core.Subpath

CAPS: dict[str, Any] = {
    "read_file": {"path": Subpath("/data")},
    "flaky_read": {"path": Subpath("/data")},
    "pay": {"account": tenuo_core.Pattern("acct-*"), "amount": tenuo_core.Range(0, 1000),
            "urgent": tenuo_core.Wildcard()},
}
#: Ours reads no ``@tool`` decorator: the stock decorator on ``fetch_document`` is mirrored here.
OUR_TOOL_MAPPINGS = {"fetch_document": "read_file"}

#: The stock plugin's ``ApplicationError.type`` for a broken constraint (its casing varies
#: by code path; on the activity side 0.3.3 sends ``constraint_violation``) and a bad PoP.
STOCK_CONSTRAINT = {"constraint_violation", "CONSTRAINT_VIOLATED"}
STOCK_POP = "POP_VERIFICATION_FAILED"

#: Tenuo headers on a scheduled activity, identical whichever plugin signed it.
ACTIVITY_HEADERS = {H.WARRANT, H.COMPRESSED, H.WIRE_FORMAT, H.KEY_ID, H.POP, H.ARG_KEYS}

def mint(caps: dict[str, Any] | None = None, *, holder: Any = HOLDER) -> Any:
    return tenuo_core.Warrant.issue(keypair=ROOT, capabilities=caps or CAPS, ttl_seconds=600,
                                    holder=holder.public_key)


def delegated(narrow_to: str) -> list[Any]:
    """``[root, leaf]``: ROOT -> DELEGATOR (``/data``) -> HOLDER (``narrow_to``)."""
    root = mint({"read_file": {"path": Subpath("/data")}}, holder=DELEGATOR)
    leaf = root.attenuate({"read_file": {"path": Subpath(narrow_to)}}, signing_key=DELEGATOR,
                          ttl_seconds=300, holder=HOLDER.public_key)
    return [root, leaf]


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


async def connect(env: Any, plugin: Any, interceptors: list[Any] | None = None) -> Client:
    """A client of its own: each stock plugin instance configures exactly one worker."""
    return await Client.connect(env.client.service_client.config.target_host,
                                namespace=env.client.namespace, plugins=[plugin],
                                interceptors=interceptors or [])


def stock_plugin(key_resolver: Any = None, **config: Any) -> StockPlugin:
    if key_resolver is None:
        # 0.3.3 refuses a verify-only config: an activity worker gets a throwaway key.
        config["signing_key"] = tenuo_core.SigningKey.generate()
    return StockPlugin(stock.TenuoPluginConfig(
        key_resolver=key_resolver, trusted_roots=[ROOT.public_key], **config))


def our_plugin(**config: Any) -> ours.TenuoTemporalPlugin:
    config.setdefault("tool_mappings", OUR_TOOL_MAPPINGS)
    return ours.TenuoTemporalPlugin(ours.TenuoPluginConfig(**config))


# --------------------------------------------------------------------------- outcomes


async def activity_denial(run: Awaitable[Any]) -> ApplicationError:
    """The verifier's denial: non-retryable, raised by the activity worker, never retried."""
    with pytest.raises(WorkflowFailureError) as info:
        await run
    error = info.value.cause
    assert isinstance(error, ActivityError), repr(error)
    # Retries are allowed (wf.OPTIONS); a retryable denial would end MAXIMUM_ATTEMPTS_REACHED.
    assert error.retry_state == RetryState.NON_RETRYABLE_FAILURE, error.retry_state
    denial = error.cause
    assert isinstance(denial, ApplicationError), repr(denial)
    assert denial.non_retryable is True
    return denial


async def workflow_denial(run: Awaitable[Any]) -> ApplicationError:
    """A refusal in the workflow itself, before any activity was scheduled."""
    with pytest.raises(WorkflowFailureError) as info:
        await run
    error = info.value.cause
    assert isinstance(error, ApplicationError), repr(error)
    assert error.non_retryable is True
    return error


async def tenuo_headers_of(handle: WorkflowHandle[Any, Any]) -> dict[str, bytes]:
    """The Tenuo headers on the workflow's (only) scheduled activity, from its history."""
    found = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            fields = event.activity_task_scheduled_event_attributes.header.fields
            found.append({k: bytes(v.data) for k, v in fields.items() if k.startswith("x-tenuo-")})
    assert len(found) == 1, found
    return found[0]


async def scheduled_activities(handle: WorkflowHandle[Any, Any]) -> int:
    return sum([event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                async for event in handle.fetch_history_events()])


# --------------------------------------------------------------------------- wire tampering


class WireTamper(ClientInterceptor, WorkerInterceptor):
    """Rewrites the PoP of chosen workflows' activities before the verifier sees it.

    Given to the verifying worker's client ahead of the plugin, so it runs
    first. ``flip`` flips one bit of the PoP; ``mallory`` replaces it with a
    valid signature by MALLORY (not the holder) over the same tool, arguments
    and current time: a well-formed PoP by the wrong key.
    """

    def __init__(self) -> None:
        self.modes: dict[str, str] = {}

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        modes = self.modes

        class Tamper(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                info = activity.info()
                mode = modes.get(info.workflow_id)
                if mode is not None:
                    raw = H.header_bytes(input.headers)
                    if mode == "flip":
                        pop = bytearray(base64.b64decode(raw[H.POP]))
                        pop[0] ^= 1
                    else:
                        context = H.decode_context(input.headers)
                        assert context is not None
                        names = H.decode_arg_keys(raw) or []
                        pop = bytearray(bytes(context.warrant.sign(
                            MALLORY, info.activity_type, dict(zip(names, input.args, strict=True)),
                            int(time.time()))))
                    payload = type(input.headers[H.POP])(data=base64.b64encode(bytes(pop)))
                    input.headers = {**input.headers, H.POP: payload}
                return await super().execute_activity(input)

        return Tamper(next)


# --------------------------------------------------------------------------- a mixed fleet


@dataclass
class Fleet:
    """A workflow worker signing with one plugin, an activity worker verifying with the other.

    The two workers use different clients and task queues: the workflow
    worker does not run the activities (see ``fleet``), the activity worker
    has no holder key.
    """

    signer: str
    client: Client
    queue: str
    activity_queue: str
    tamper: WireTamper

    async def start(self, name: str, args: list[Any], **options: Any) -> WorkflowHandle[Any, Any]:
        """``start_workflow_authorized`` of the signing side; see :meth:`run`."""
        starter = stock.start_workflow_authorized if self.signer == "stock" else (
            ours.start_workflow_authorized)
        return await self._call(starter, name, args, **options)

    async def run(self, name: str, args: list[Any], **options: Any) -> Any:
        """Run ``name(*args)`` on the activity queue, started by the signing side.

        ``stock.execute_workflow_authorized`` starts ``wf.PlainCall``;
        ``tenuo_temporal.execute_workflow_authorized`` starts ``wf.HelperCall``
        (``helper=False``: ``wf.PlainCall``).

        Args:
            key_id: The ``x-tenuo-key-id`` (default ``agent1``, the holder).
            chain: Root-first chain, leaf last (default: a fresh warrant on ``CAPS``).
            workflow_id: Default: unique.
            helper: Ours only: name arguments through ``tenuo_execute_activity``.
            tamper: ``flip`` or ``mallory``: rewrite the PoP on the way (``WireTamper``).
        """
        executor = stock.execute_workflow_authorized if self.signer == "stock" else (
            ours.execute_workflow_authorized)
        return await self._call(executor, name, args, **options)

    async def _call(self, fn: Callable[..., Awaitable[Any]], name: str, args: list[Any], *,
                    key_id: str = "agent1", chain: list[Any] | None = None,
                    workflow_id: str | None = None, helper: bool = True,
                    tamper: str | None = None) -> Any:
        chain = chain or [mint()]
        workflow_id = workflow_id or uid(f"{self.signer}-{name}")
        if tamper:
            self.tamper.modes[workflow_id] = tamper
        common: dict[str, Any] = {
            "workflow_id": workflow_id, "warrant": chain[-1], "key_id": key_id,
            "args": [name, args, self.activity_queue], "task_queue": self.queue,
            "execution_timeout": timedelta(seconds=30),
        }
        if self.signer == "stock":
            return await fn(client=self.client, workflow_run_fn=wf.PlainCall.run,
                            warrant_chain=chain if len(chain) > 1 else None, **common)
        return await fn(self.client, (wf.HelperCall if helper else wf.PlainCall).run,
                        chain=chain if len(chain) > 1 else None, **common)


@contextlib.asynccontextmanager
async def fleet(env: Any, signer: str, verifier: str, *,
                signer_config: dict[str, Any] | None = None,
                verifier_config: dict[str, Any] | None = None,
                signer_activities: bool = False) -> AsyncIterator[Fleet]:
    """Run a workflow worker (``signer``'s plugin) and an activity worker (``verifier``'s).

    The stock workflow worker is given ``activity_fns`` (its documented way to
    name the arguments of activities it does not run); our workflow worker
    names them through ``tenuo_execute_activity`` (``wf.HelperCall``).
    ``signer_activities=True`` also registers the activities on the workflow
    worker (it never runs them: they are dispatched to the activity queue).
    """
    queue = uid(f"{signer}-to-{verifier}")
    activity_queue = queue + "-activities"
    resolver = StaticKeyResolver(KEYS)
    if signer == "stock":
        signer_plugin: Any = stock_plugin(
            resolver, **{"activity_fns": wf.ACTIVITIES, **(signer_config or {})})
    else:
        signer_plugin = our_plugin(key_resolver=resolver, **(signer_config or {}))
    if verifier == "stock":
        verifier_plugin: Any = stock_plugin(**(verifier_config or {}))
    else:
        verifier_plugin = our_plugin(trusted_roots=[ROOT.public_key], **(verifier_config or {}))
    tamper = WireTamper()
    try:
        signing = await connect(env, signer_plugin)
        verifying = await connect(env, verifier_plugin, interceptors=[tamper])
        async with Worker(signing, task_queue=queue, workflows=wf.WORKFLOWS,
                          activities=wf.ACTIVITIES if signer_activities else []), \
                Worker(verifying, task_queue=activity_queue, activities=wf.ACTIVITIES):
            yield Fleet(signer, signing, queue, activity_queue, tamper)
    finally:
        resolver.close()


# --------------------------------------------------------------------------- 1. our cloud resolvers


def _vault(server: Any, tag: str) -> Any:
    from tenuo_keys.backends.vault import VaultKeyResolver

    admin = server.client()
    for key_id, key in KEYS.items():
        admin.secrets.kv.v2.create_or_update_secret(
            path=f"interop/{tag}/{key_id}", secret={"key": encode_signing_key(key)})
    return VaultKeyResolver(server.addr, token=server.token,
                            path_template=f"interop/{tag}/{{key_id}}", environ={})


def _aws(server: Any, tag: str) -> Any:
    from tenuo_keys.backends.aws import AWSSecretsManagerKeyResolver

    admin = server.client()
    for key_id, key in KEYS.items():
        admin.create_secret(Name=f"interop/{tag}/{key_id}",
                            SecretBinary=bytes(key.secret_key_bytes()))
    return AWSSecretsManagerKeyResolver(f"interop/{tag}/{{key_id}}", client=server.client())


def _gcp(server: Any, tag: str) -> Any:
    from tenuo_keys.backends.gcp import GCPSecretManagerKeyResolver

    for key_id, key in KEYS.items():
        server.put(f"i{tag}-{key_id}", encode_signing_key(key, "hex"))
    return GCPSecretManagerKeyResolver(server.project, f"i{tag}-{{key_id}}",
                                       api_endpoint=server.endpoint, insecure=True)


BACKENDS: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "vault": ("vault_server", _vault),  # OpenBao dev server, KV v2
    "aws": ("moto_server", _aws),  # moto_server, SecretBinary
    "gcp": ("gcp_sm", _gcp),  # the project's Secret Manager gRPC server, hex text
}


def spy(resolver: Any) -> list[tuple[str, Any, Any]]:
    """Log ``(method, argument, result)`` of the resolver calls the stock plugin makes."""
    log: list[tuple[str, Any, Any]] = []
    preload_all, resolve_sync = resolver.preload_all, resolver.resolve_sync

    def logged_preload_all(*args: Any, **kwargs: Any) -> int:
        loaded = preload_all(*args, **kwargs)
        log.append(("preload_all", None, loaded))
        return int(loaded)

    def logged_resolve_sync(key_id: str) -> Any:
        try:
            key = resolve_sync(key_id)
        except Exception as exc:
            log.append(("resolve_sync", key_id, exc))
            raise
        log.append(("resolve_sync", key_id, bytes(key.public_key_bytes())))
        return key

    resolver.preload_all, resolver.resolve_sync = logged_preload_all, logged_resolve_sync
    return log


@pytest.mark.parametrize("backend", sorted(BACKENDS))
async def test_our_cloud_resolver_signs_inside_the_stock_plugin(temporal_env, request, backend):
    """Goal 1: the stock plugin, unmodified, signs PoP with a key held in a real service."""
    fixture, build = BACKENDS[backend]
    resolver = build(request.getfixturevalue(fixture), uuid.uuid4().hex[:10])
    log = spy(resolver)
    client = await connect(temporal_env, stock_plugin(resolver))
    queue = uid(f"stock-{backend}")
    mark = len(wf.CALLS)
    run_fn = wf.PlainCall.run

    async def run(name: str, args: list[Any], key_id: str = "agent1") -> Any:
        return await stock.execute_workflow_authorized(
            client=client, workflow_run_fn=run_fn, workflow_id=uid(backend), warrant=mint(),
            key_id=key_id, args=[name, args, ""], task_queue=queue,
            execution_timeout=timedelta(seconds=30))

    try:
        assert log == []
        async with Worker(client, task_queue=queue, workflows=[wf.PlainCall],
                          activities=wf.ACTIVITIES):
            # Worker construction ran preload_all() (synchronously): both keys, from the service.
            assert log == [("preload_all", None, 2)]
            held = resolver.resolve_versions_sync("agent1").current  # memory only, no I/O
            assert bytes(held.public_key_bytes()) == bytes(HOLDER.public_key_bytes())

            assert await run("read_file", [f"/data/{backend}.txt"]) == (
                f"contents of /data/{backend}.txt")
            assert await run("pay", ["acct-7", 250, False]) == "paid 250 to acct-7"

            path = await activity_denial(run("read_file", [f"/etc/{backend}"]))
            assert path.type in STOCK_CONSTRAINT and "path" in path.message, path
            amount = await activity_denial(run("pay", ["acct-7", 5000, True]))
            assert amount.type in STOCK_CONSTRAINT and "amount" in amount.message, amount
            # The PoP is signed with whatever our resolver serves for the header's key id.
            wrong = await activity_denial(run("read_file", ["/data/mallory"], "mallory"))
            assert wrong.type == STOCK_POP, wrong
    finally:
        resolver.close()
    assert wf.CALLS[mark:] == [("read_file", (f"/data/{backend}.txt",)),
                               ("pay", ("acct-7", 250, False))]
    # Signing read each key id in the headers through resolve_sync, from memory, and got
    # exactly the key stored in the service (a replayed workflow task may sign again).
    signed = [(key_id, result) for name, key_id, result in log if name == "resolve_sync"]
    assert len(signed) >= 5 and set(signed) == {
        ("agent1", bytes(HOLDER.public_key_bytes())),
        ("mallory", bytes(MALLORY.public_key_bytes()))}, signed


# --------------------------------------------------------------------------- 2-4. mixed fleets


@pytest.mark.parametrize(("signer", "verifier"), [("stock", "ours"), ("ours", "stock")],
                         ids=["stock-signs-ours-verifies", "ours-signs-stock-verifies"])
async def test_mixed_fleet(temporal_env, signer, verifier):
    """Goals 2-4: allowed calls accepted, every denial still a non-retryable denial."""
    constraint = STOCK_CONSTRAINT if verifier == "stock" else {"TENUO_CONSTRAINT_VIOLATION"}
    bad_pop = STOCK_POP if verifier == "stock" else "TENUO_POP_INVALID"
    mark = len(wf.CALLS)
    async with fleet(temporal_env, signer, verifier) as f:
        # -- accepted --------------------------------------------------------------
        handle = await f.start("pay", ["acct-1", 999, True])
        assert await handle.result() == "paid 999 to acct-1 (urgent)"
        assert await f.run("read_file", ["/data/in.txt"]) == "contents of /data/in.txt"
        # Activity type fetch_document, warrant tool read_file (stock @tool / our tool_mappings).
        assert await f.run("fetch_document", ["/data/doc"]) == "document /data/doc"
        # A retry re-presents the PoP signed at schedule time: still accepted.
        assert await f.run("flaky_read", ["/data/flaky"]) == "contents of /data/flaky"
        # Delegated: the chain header travels; the leaf's narrower constraint applies.
        chained = await f.start("read_file", ["/data/reports/q3"], chain=delegated("/data/reports"))
        assert await chained.result() == "contents of /data/reports/q3"

        # -- denied by constraints ----------------------------------------------------
        path = await activity_denial(f.run("read_file", ["/etc/passwd"]))
        amount = await activity_denial(f.run("pay", ["acct-1", 1001, False]))
        account = await activity_denial(f.run("pay", ["root", 1, False]))
        narrowed = await activity_denial(f.run("read_file", ["/data/private"],
                                               chain=delegated("/data/reports")))
        for denial, arg in ((path, "path"), (amount, "amount"), (account, "account"),
                            (narrowed, "path")):
            assert denial.type in constraint and arg in denial.message, denial

        # -- denied by PoP -----------------------------------------------------------
        flipped = await activity_denial(f.run("read_file", ["/data/in.txt"], tamper="flip"))
        forged = await activity_denial(f.run("read_file", ["/data/in.txt"], tamper="mallory"))
        assert flipped.type == bad_pop and forged.type == bad_pop, (flipped, forged)
        # Key id whose key is not the warrant's holder.
        if signer == "stock":
            # The stock signer signs with it; the PoP is refused by our verifier.
            wrong = await activity_denial(f.run("read_file", ["/data/in.txt"], key_id="mallory"))
            assert wrong.type == bad_pop, wrong
        else:
            # Ours refuses to sign for another holder: nothing is dispatched.
            handle_wrong = await f.start("read_file", ["/data/in.txt"], key_id="mallory")
            wrong = await workflow_denial(handle_wrong.result())
            assert wrong.type == "TENUO_KEY_RESOLUTION" and "holder mismatch" in wrong.message
            assert await scheduled_activities(handle_wrong) == 0

        # -- the wire: same names, same encodings -------------------------------------
        headers = await tenuo_headers_of(handle)
        chained_headers = await tenuo_headers_of(chained)
    assert set(headers) == ACTIVITY_HEADERS, sorted(headers)
    assert set(chained_headers) == ACTIVITY_HEADERS | {H.CHAIN}, sorted(chained_headers)
    assert headers[H.ARG_KEYS] == b"account,amount,urgent"
    assert headers[H.WIRE_FORMAT] == b"2" and headers[H.COMPRESSED] == b"1"
    assert headers[H.KEY_ID] == b"agent1"
    assert len(base64.b64decode(headers[H.POP], validate=True)) == 64
    # Every denied body never ran; every accepted one ran once.
    assert wf.CALLS[mark:] == [
        ("pay", ("acct-1", 999, True)),
        ("read_file", ("/data/in.txt",)),
        ("fetch_document", ("/data/doc",)),
        ("flaky_read", ("/data/flaky", 2)),
        ("read_file", ("/data/reports/q3",)),
    ]


# --------------------------------------------------------------------------- naming


async def outcome(run: Awaitable[Any]) -> Any:
    """The result, or ``(denial type, message)`` of the failure at the root."""
    try:
        return await run
    except WorkflowFailureError as exc:
        cause: BaseException | None = exc.cause
        while isinstance(cause, ActivityError):
            cause = cause.cause
        assert isinstance(cause, ApplicationError), repr(exc.cause)
        assert cause.non_retryable, cause
        return (cause.type, cause.message)


async def test_argument_and_tool_names_must_agree(temporal_env):
    """Names are the one thing each side works out for itself; mismatches fail closed.

    The PoP signs ``{name: value}`` and ``x-tenuo-arg-keys`` carries the
    names. A workflow worker that does not run the activity must learn them
    from somewhere: the stock one from ``activity_fns``, ours from
    ``tenuo_execute_activity(fn, ...)`` or from activities registered on it.
    Without them both sign positional names (``arg0``). The stock verifier
    checks constraints under the header's names, so it denies such a call;
    ours checks the signed view (``arg0``) and the constraints under the
    activity's real parameter names (``check_chain_with_pop_args``), so it
    accepts it. Tool names: the stock ``@tool`` decorator is not read by ours.
    """
    mark = len(wf.CALLS)
    # Ours signs positional names (plain execute_activity, activity code not on this worker).
    async with fleet(temporal_env, "ours", "stock") as f:
        handle = await f.start("read_file", ["/data/a0"], helper=False)
        positional = await activity_denial(handle.result())
        assert (await tenuo_headers_of(handle))[H.ARG_KEYS] == b"arg0"
    assert positional.type in STOCK_CONSTRAINT, positional
    assert "'arg0'" in positional.message and "unknown field" in positional.message
    # ... which our own verifier accepts: it binds arg0 to read_file's parameter "path".
    async with fleet(temporal_env, "ours", "ours") as f:
        assert await f.run("read_file", ["/data/a1"], helper=False) == "contents of /data/a1"
    # The same plain call from a workflow worker that registers the activities: real names.
    async with fleet(temporal_env, "ours", "stock", signer_activities=True) as f:
        handle = await f.start("read_file", ["/data/a2"], helper=False)
        assert await handle.result() == "contents of /data/a2"
        assert (await tenuo_headers_of(handle))[H.ARG_KEYS] == b"path"
    # The stock workflow worker without activity_fns refuses to sign at all (its pre-validation).
    async with fleet(temporal_env, "stock", "ours", signer_config={"activity_fns": None}) as f:
        handle = await f.start("read_file", ["/data/a3"])
        unnamed = await workflow_denial(handle.result())
        assert await scheduled_activities(handle) == 0
    assert unnamed.type == "PRE_VALIDATION_FAILED" and "arg0" in unnamed.message, unnamed
    # Tool names: stock signs fetch_document as tool read_file (@tool); ours, told
    # nothing, verifies it as tool fetch_document, which the warrant does not grant.
    async with fleet(temporal_env, "stock", "ours", verifier_config={"tool_mappings": {}}) as f:
        unmapped = await activity_denial(f.run("fetch_document", ["/data/a4"]))
    assert unmapped.type == "TENUO_TOOL_NOT_AUTHORIZED", unmapped
    assert "'fetch_document'" in unmapped.message
    assert wf.CALLS[mark:] == [("read_file", ("/data/a1",)), ("read_file", ("/data/a2",))]


# --------------------------------------------------------------------------- workflow scope


@pytest.mark.parametrize(("signer", "verifier"),
                         [("stock", "stock"), ("stock", "ours"), ("ours", "stock"),
                          ("ours", "ours")])
async def test_workflow_scoped_warrant(temporal_env, signer, verifier):
    """A 0.3.3 warrant constraining ``_workflow_namespace`` and ``_workflow_id``.

    The reference binds such a warrant to the running workflow: its signer adds
    the workflow's namespace and id (from ``workflow.info()``) to the signed
    arguments, its verifier adds them from ``activity.info()``; neither goes in
    ``x-tenuo-arg-keys``. ``stock-stock`` is the reference behaviour. Ours
    implements neither half, so every cell with ours in it denies the allowed
    call (fails closed): this test fails there until ours supports it (see the
    module docstring).
    """
    namespace = temporal_env.client.namespace
    scoped = mint({"read_file": {"path": Subpath("/data"),
                                 "_workflow_namespace": tenuo_core.Exact(namespace),
                                 "_workflow_id": tenuo_core.Pattern("scoped-*")}})
    constraint = STOCK_CONSTRAINT if verifier == "stock" else {"TENUO_CONSTRAINT_VIOLATION"}
    mark = len(wf.CALLS)
    async with fleet(temporal_env, signer, verifier) as f:
        inside = await outcome(f.run("read_file", ["/data/scoped"], chain=[scoped],
                                     workflow_id=uid("scoped")))
        outside = await outcome(f.run("read_file", ["/data/scoped"], chain=[scoped],
                                      workflow_id=uid("other")))
    assert inside == "contents of /data/scoped", inside
    assert isinstance(outside, tuple) and outside[0] in constraint, outside
    assert wf.CALLS[mark:] == [("read_file", ("/data/scoped",))]


# --------------------------------------------------------------------------- per dispatch


@pytest.mark.parametrize(("signer", "verifier"), [("stock", "ours"), ("ours", "stock")],
                         ids=["stock-signs-ours-verifies", "ours-signs-stock-verifies"])
async def test_a_per_dispatch_warrant_crosses(temporal_env, signer, verifier):
    """``tenuo_execute_activity(warrant=, key_id=)`` on one side, verified by the other.

    The workflow runs under a warrant for ``/data``; one dispatch carries a
    warrant for ``/exports`` instead. The verifier judges the call by the
    dispatch's warrant: ``/exports/a.csv`` runs, ``/elsewhere`` is denied.
    """
    base, dispatch = mint(), mint({"read_file": {"path": tenuo_core.Subpath("/exports")}})
    mark = len(wf.CALLS)
    async with fleet(temporal_env, signer, verifier) as f:
        async def run(path: str) -> Any:
            args = [dispatch.to_base64(), "agent1", path, f.activity_queue]
            if signer == "stock":
                return await outcome(stock.execute_workflow_authorized(
                    client=f.client, workflow_run_fn=wf.StockDispatch.run,
                    workflow_id=uid("dispatch"), warrant=base, key_id="agent1", args=args,
                    task_queue=f.queue, execution_timeout=timedelta(seconds=30)))
            return await outcome(ours.execute_workflow_authorized(
                f.client, wf.OursDispatch.run, workflow_id=uid("dispatch"), warrant=base,
                key_id="agent1", args=args, task_queue=f.queue,
                execution_timeout=timedelta(seconds=30)))

        inside, outside = await run("/exports/a.csv"), await run("/elsewhere/b.csv")
    assert inside == "contents of /exports/a.csv", inside
    assert isinstance(outside, tuple), outside
    assert wf.CALLS[mark:] == [("read_file", ("/exports/a.csv",))]


# --------------------------------------------------------------------------- replay


async def same_pop_window(margin: float = 4.0) -> None:
    """Wait, if needed, so the next ``margin`` seconds fall in one 30-second PoP window."""
    left = 30 - time.time() % 30
    if left < margin:
        await asyncio.sleep(left + 0.2)


@pytest.mark.parametrize(("signer", "verifier", "mode"), [
    ("stock", "ours", True), ("stock", "ours", "strict"), ("ours", "stock", None)],
    ids=["stock-signs-ours-verifies", "stock-signs-ours-verifies-strict",
         "ours-signs-stock-verifies"])
async def test_one_warrant_two_workflows_same_call(temporal_env, signer, verifier, mode):
    """Two workflows, one warrant, the same call in the same PoP window.

    The PoP does not name the workflow, so both PoPs are the same bytes. The
    stock verifier's dedup key is warrant + call + workflow id + run id +
    activity id: both are accepted. Ours by default authorizes each activity
    attempt once: both are accepted as well. Ours in strict mode lets a PoP
    belong to the first workflow that presents it (``TENUO_POP_REPLAYED`` for
    the second), which is how it refuses headers copied onto another
    workflow, and also refuses this legitimate second call.
    """
    warrant = mint()
    mark = len(wf.CALLS)
    verifier_config = {"replay_protection": mode} if verifier == "ours" else None
    async with fleet(temporal_env, signer, verifier, verifier_config=verifier_config) as f:
        await same_pop_window()
        first = await outcome(f.run("read_file", ["/data/shared"], chain=[warrant]))
        second = await outcome(f.run("read_file", ["/data/shared"], chain=[warrant]))
    assert first == "contents of /data/shared"
    if mode == "strict":
        assert isinstance(second, tuple) and second[0] == "TENUO_POP_REPLAYED", second
        assert wf.CALLS[mark:] == [("read_file", ("/data/shared",))]
    else:
        assert second == "contents of /data/shared"
        assert wf.CALLS[mark:] == [("read_file", ("/data/shared",))] * 2
