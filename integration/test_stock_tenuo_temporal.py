"""``tenuo_keys`` resolvers plugged into the stock ``tenuo.temporal`` plugin.

The plugin under test is the reference one shipped in PyPI ``tenuo`` 0.3.3
(``tenuo.temporal.TenuoTemporalPlugin``), unmodified, on a real Temporal dev
server. The only holder-key material the worker has is what our resolver
serves: no ``signing_key=``, no ``TENUO_KEY_*`` variables for the stock
``EnvKeyResolver`` default prefix.

Each end-to-end test runs four workflows on one worker:

* allowed: ``read_file("/data/...")`` under a ``Subpath("/data")`` warrant runs
  the activity body once and returns its value;
* denied: ``read_file("/etc/...")`` fails the workflow with the stock
  non-retryable denial, and the body never runs;
* wrong key: the same allowed call, started with a key id whose key is not the
  warrant's holder, fails PoP verification: so the PoP really is signed with
  the key our resolver serves for the id in the headers;
* unknown key id: the resolver holds nothing for the id, so signing fails in
  the workflow before anything is dispatched.

A spy records which resolver methods the stock plugin calls, and when.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import tenuo.temporal as stock
import tenuo_core
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.worker import Worker
from tenuo.temporal import TenuoPluginConfig, execute_workflow_authorized
from tenuo.temporal_plugin import TenuoTemporalPlugin

from integration import _stock_workflows as wf
from tenuo_keys import EnvKeyResolver, StaticKeyResolver, encode_signing_key

pytestmark = pytest.mark.integration
#: The ``temporal_env`` fixture lives on the session event loop; async tests must too.
on_session_loop = pytest.mark.asyncio(loop_scope="session")

ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()  # the warrant's holder, served as "agent1"
MALLORY = tenuo_core.SigningKey.generate()  # a real key, but not the holder

#: ``ApplicationError.type`` strings the stock plugin uses for a broken constraint
#: and a bad PoP. Its casing is inconsistent between code paths; for a broken
#: constraint on the activity side 0.3.3 sends ``constraint_violation``.
CONSTRAINT_DENIAL_TYPES = {"CONSTRAINT_VIOLATED", "constraint_violation"}
POP_DENIAL_TYPES = {"POP_VERIFICATION_FAILED"}


def mint_warrant() -> tenuo_core.Warrant:
    return tenuo_core.Warrant.issue(
        keypair=ROOT,
        capabilities={"read_file": {"path": tenuo_core.Subpath("/data")}},
        ttl_seconds=600,
        holder=HOLDER.public_key,
    )


# ------------------------------------------------------------------ helpers


def spy_on(resolver: Any) -> list[tuple[str, tuple[Any, ...]]]:
    """Record calls to the resolver's public methods, on this instance only.

    The wrappers delegate to the real bound methods, so the resolver behaves
    exactly as before; only the call log is added.
    """
    log: list[tuple[str, tuple[Any, ...]]] = []

    def wrap_sync(name: str) -> None:
        original: Callable[..., Any] = getattr(resolver, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            log.append((name, args))
            return original(*args, **kwargs)

        setattr(resolver, name, wrapper)

    for name in ("resolve_sync", "resolve_for_holder_sync", "preload", "preload_all", "close"):
        wrap_sync(name)

    original_resolve = resolver.resolve

    async def resolve(*args: Any, **kwargs: Any) -> Any:
        log.append(("resolve", args))
        return await original_resolve(*args, **kwargs)

    resolver.resolve = resolve
    return log


async def plugin_client(temporal_env: Any, resolver: Any) -> Client:
    """A client to the dev server carrying a fresh stock plugin around ``resolver``."""
    plugin = TenuoTemporalPlugin(
        TenuoPluginConfig(key_resolver=resolver, trusted_roots=[ROOT.public_key])
    )
    return await Client.connect(
        temporal_env.client.service_client.config.target_host,
        namespace=temporal_env.client.namespace,
        plugins=[plugin],
    )


async def run_read_file(client: Client, task_queue: str, path: str, key_id: str) -> str:
    return await execute_workflow_authorized(
        client=client,
        workflow_run_fn=wf.ReadFileWorkflow.run,
        workflow_id=f"stock-tenuo-{uuid.uuid4().hex}",
        warrant=mint_warrant(),
        key_id=key_id,
        args=[path],
        task_queue=task_queue,
        execution_timeout=timedelta(seconds=30),
    )


def activity_denial(exc_info: pytest.ExceptionInfo[WorkflowFailureError]) -> ApplicationError:
    """The stock denial raised by the activity-side interceptor, checked for shape."""
    activity_error = exc_info.value.cause
    assert isinstance(activity_error, ActivityError), repr(activity_error)
    assert activity_error.activity_type == "read_file"
    # Not retried: a retryable error would end with MAXIMUM_ATTEMPTS_REACHED.
    assert activity_error.retry_state == RetryState.NON_RETRYABLE_FAILURE
    denial = activity_error.cause
    assert isinstance(denial, ApplicationError), repr(denial)
    assert denial.non_retryable is True
    return denial


async def exercise_stock_plugin(temporal_env: Any, resolver: Any) -> None:
    """Run the four scenarios on one worker, then close ``resolver``.

    ``resolver`` must serve ``HOLDER`` as ``agent1`` and ``MALLORY`` as
    ``mallory``, and know nothing of ``ghost``. The worker preloads every key
    and never calls the async ``resolve``.
    """
    try:
        log = await _scenarios(temporal_env, resolver)
    finally:
        resolver.close()
    assert ("preload_all", ()) in log
    assert not any(name == "resolve" for name, _ in log), log


async def _scenarios(temporal_env: Any, resolver: Any) -> list[tuple[str, tuple[Any, ...]]]:
    """The four scenarios of :func:`exercise_stock_plugin`; returns the resolver call log."""
    log = spy_on(resolver)
    tag = uuid.uuid4().hex[:12]
    task_queue = f"stock-tenuo-{tag}"
    client = await plugin_client(temporal_env, resolver)
    assert log == [], "nothing is called before a worker is configured"

    allowed = f"/data/{tag}/report.txt"
    denied = f"/etc/{tag}/passwd"
    wrong_key = f"/data/{tag}/wrong-key.txt"
    unknown_key = f"/data/{tag}/unknown-key.txt"

    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[wf.ReadFileWorkflow],
        activities=[wf.read_file],
    ):
        # The stock plugin preloads while the worker is being configured.
        assert [name for name, _ in log] == ["preload_all"]

        # Allowed: PoP signed with the key our resolver served; body ran once.
        result = await run_read_file(client, task_queue, allowed, "agent1")
        assert result == f"contents of {allowed}"
        assert wf.CALLS.count(allowed) == 1

        # Denied by the warrant's Subpath("/data"): non-retryable, body never ran.
        with pytest.raises(WorkflowFailureError) as denied_info:
            await run_read_file(client, task_queue, denied, "agent1")
        denial = activity_denial(denied_info)
        assert denial.type in CONSTRAINT_DENIAL_TYPES, (denial.type, denial.message)
        assert "path" in denial.message
        assert denied not in wf.CALLS

        # Key id whose key is not the holder: PoP verification rejects it.
        with pytest.raises(WorkflowFailureError) as wrong_info:
            await run_read_file(client, task_queue, wrong_key, "mallory")
        denial = activity_denial(wrong_info)
        assert denial.type in POP_DENIAL_TYPES, (denial.type, denial.message)
        assert wrong_key not in wf.CALLS

        # Key id our resolver cannot serve: the workflow fails while signing,
        # before scheduling the activity, with the plugin's non-retryable error.
        with pytest.raises(WorkflowFailureError) as unknown_info:
            await run_read_file(client, task_queue, unknown_key, "ghost")
        failure = unknown_info.value.cause
        assert isinstance(failure, ApplicationError), repr(failure)
        assert failure.non_retryable is True
        assert failure.type == "CONTEXT_MISSING", (failure.type, failure.message)
        assert "PoP computation failed" in failure.message
        assert "ghost" in failure.message
        assert unknown_key not in wf.CALLS

    # Signing reads keys through resolve_sync (the sandbox cannot await I/O),
    # by the key id carried in the workflow's x-tenuo-key-id header.
    signed_with = [args[0] for name, args in log if name == "resolve_sync"]
    assert {"agent1", "mallory", "ghost"} <= set(signed_with), log
    assert set(signed_with) <= {"agent1", "mallory", "ghost"}, log
    return log


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("kind", ["env", "static"])
def test_stock_config_accepts_our_resolvers(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"TENUO_IT_{uuid.uuid4().hex[:8]}_"
    monkeypatch.setenv(prefix + "agent1", encode_signing_key(HOLDER))
    resolver: Any = (
        EnvKeyResolver(prefix=prefix) if kind == "env" else StaticKeyResolver({"agent1": HOLDER})
    )
    try:
        config = stock.TenuoPluginConfig(key_resolver=resolver, trusted_roots=[ROOT.public_key])
        assert config.key_resolver is resolver  # not replaced by a synthesized resolver
        assert config.signing_key is None
        assert [k.to_bytes() for k in config.trusted_roots] == [ROOT.public_key.to_bytes()]

        plugin = stock.TenuoTemporalPlugin(config)
        # The plugin works on a shallow copy of the config: same resolver object.
        assert plugin._tenuo_config.key_resolver is resolver

        # What the plugin will do with it: preload_all() (at worker configuration),
        # then resolve_sync(key_id) from memory while signing PoP.
        assert resolver.preload_all() == 1
        key = resolver.resolve_sync("agent1")
        assert key.public_key_bytes() == HOLDER.public_key_bytes()
        warrant = mint_warrant()
        args = {"path": "/data/x"}
        assert bytes(warrant.sign(key, "read_file", args, 1_700_000_000)) == bytes(
            warrant.sign(HOLDER, "read_file", args, 1_700_000_000)
        )
    finally:
        resolver.close()


@on_session_loop
async def test_env_key_resolver_with_stock_plugin(
    temporal_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"TENUO_IT_{uuid.uuid4().hex[:8]}_"
    monkeypatch.setenv(prefix + "agent1", encode_signing_key(HOLDER))
    monkeypatch.setenv(prefix + "mallory", encode_signing_key(MALLORY))
    # Nothing for the stock resolver's default prefix: the key can only come from ours.
    monkeypatch.delenv("TENUO_KEY_agent1", raising=False)
    monkeypatch.delenv("TENUO_SIGNING_KEY", raising=False)

    resolver = EnvKeyResolver(prefix=prefix)
    await exercise_stock_plugin(temporal_env, resolver)


@on_session_loop
async def test_static_key_resolver_with_stock_plugin(temporal_env: Any) -> None:
    resolver = StaticKeyResolver({"agent1": HOLDER, "mallory": MALLORY})
    await exercise_stock_plugin(temporal_env, resolver)


# ------------------------------------------------------------------ reference facts
# Behaviour of the 0.3.3 reference that docs/COMPARISON.md cites, checked here
# so the comparison stays true when the pinned version moves.


def test_reference_refuses_a_verify_only_config() -> None:
    from tenuo.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError):
        TenuoPluginConfig(trusted_roots=[ROOT.public_key])
    # Ours accepts it: an activity worker needs no key resolver.
    from tenuo_temporal import TenuoPluginConfig as Ours

    assert Ours(trusted_roots=[ROOT.public_key]).verifies


def test_reference_config_from_env_is_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    # It calls SigningKey.from_base64, which tenuo_core does not have.
    monkeypatch.setenv("TENUO_SIGNING_KEY", encode_signing_key(HOLDER))
    with pytest.raises(AttributeError, match="from_base64"):
        TenuoPluginConfig.from_env(trusted_roots=[ROOT.public_key])


def test_reference_vault_resolver_cannot_serve_the_sandbox_from_memory() -> None:
    # Its resolve_sync is the base class's: a thread pool plus a new event loop
    # per call, even on a cache hit, which the workflow sandbox blocks.
    from tenuo.temporal import KeyResolver as RefBase
    from tenuo.temporal import VaultKeyResolver as RefVault

    assert RefVault.resolve_sync is RefBase.resolve_sync
