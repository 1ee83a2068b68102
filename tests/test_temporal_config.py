"""``TenuoPluginConfig`` adapts a resolver from elsewhere once; the plugin uses the contract."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import tenuo_core
from temporalio.exceptions import ApplicationError

from tenuo_keys import KeyNotLoaded, KeyResolver, ResolverConfigError, StaticKeyResolver
from tenuo_keys._resolver import ForeignKeyResolver
from tenuo_temporal import TenuoPluginConfig
from tenuo_temporal import _headers as H
from tenuo_temporal._interceptors import TenuoInterceptor
from tenuo_temporal._workflow_signer import KeyNotReady
from tenuo_temporal.errors import KEY_RESOLUTION_TYPE
from tests._warrants import read_file_warrant

ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
OTHER = tenuo_core.SigningKey.generate()
WARRANT = read_file_warrant(ROOT, HOLDER)


class Bare:
    """A resolver written for ``tenuo.temporal`` 0.3.3: only resolve and resolve_sync."""

    def __init__(self, keys: dict[str, Any], error: Exception | None = None) -> None:
        self.keys = keys
        self.error = error

    async def resolve(self, key_id: str) -> Any:
        return self.keys[key_id]

    def resolve_sync(self, key_id: str) -> Any:
        if self.error is not None:
            raise self.error
        return self.keys[key_id]


def test_a_key_resolver_is_kept_as_it_is() -> None:
    resolver = StaticKeyResolver({"agent1": HOLDER})
    assert TenuoPluginConfig(key_resolver=resolver).key_resolver is resolver


def test_a_foreign_resolver_is_adapted_once_when_the_config_is_built() -> None:
    bare = Bare({"agent1": HOLDER})
    config = TenuoPluginConfig(key_resolver=bare)  # type: ignore[arg-type]
    assert isinstance(config.key_resolver, ForeignKeyResolver)
    assert isinstance(config.key_resolver, KeyResolver)
    assert config.key_resolver.inner is bare


def test_an_object_without_resolve_and_resolve_sync_is_refused() -> None:
    with pytest.raises(ResolverConfigError,
                       match="key_resolver object lacks resolve/resolve_sync"):
        TenuoPluginConfig(key_resolver=object())  # type: ignore[arg-type]


def holder_key(resolver: Any, warrant: Any = WARRANT) -> tuple[Any, TenuoInterceptor]:
    tenuo = TenuoInterceptor(TenuoPluginConfig(key_resolver=resolver, metrics=False))
    context = H.WarrantContext.build(warrant, "agent1")
    return tenuo.signer.holder_key(context), tenuo


def test_signing_reads_a_foreign_resolver_s_key_for_the_holder() -> None:
    key, tenuo = holder_key(Bare({"agent1": HOLDER}))
    assert bytes(key.public_key_bytes()) == bytes(HOLDER.public_key_bytes())
    assert tenuo.keys_to_keep_warm() == ["agent1"]


def test_a_foreign_resolver_s_key_for_another_holder_is_a_key_resolution_denial() -> None:
    with pytest.raises(ApplicationError) as caught:
        holder_key(Bare({"agent1": OTHER}))
    assert caught.value.type == KEY_RESOLUTION_TYPE
    assert caught.value.non_retryable
    assert caught.value.message == "key 'agent1' is not the warrant's holder"


def test_a_foreign_resolver_s_retryable_error_retries_the_workflow_task() -> None:
    with pytest.raises(KeyNotReady):
        holder_key(Bare({}, KeyNotLoaded("not yet", key_id="agent1")))


def _roots(config: TenuoPluginConfig) -> list[bytes]:
    return [bytes(root.to_bytes()) for root in config._roots]


@pytest.mark.parametrize("form", [
    lambda pk: pk,
    lambda pk: [pk],
    lambda pk: bytes(pk.to_bytes()),
    lambda pk: base64.b64encode(bytes(pk.to_bytes())).decode(),
    lambda pk: base64.urlsafe_b64encode(bytes(pk.to_bytes())).decode().rstrip("="),
    lambda pk: bytes(pk.to_bytes()).hex(),
    lambda pk: bytes(pk.to_bytes()).hex().upper(),
    lambda pk: pk.to_pem(),
    lambda pk: (base64.b64encode(bytes(pk.to_bytes())).decode(),),
])
def test_trusted_roots_accepts_one_key_and_encoded_keys(form):
    config = TenuoPluginConfig(trusted_roots=form(ROOT.public_key))
    assert _roots(config) == [bytes(ROOT.public_key.to_bytes())]
    assert config.verifies and isinstance(config.trusted_roots, tuple)


def test_trusted_roots_in_a_list_mix_forms():
    other = tenuo_core.SigningKey.generate().public_key
    config = TenuoPluginConfig(trusted_roots=[ROOT.public_key, bytes(other.to_bytes()).hex()])
    assert _roots(config) == [bytes(ROOT.public_key.to_bytes()), bytes(other.to_bytes())]


@pytest.mark.parametrize(("value", "message"), [
    (42, r"trusted_roots must be a tenuo_core\.PublicKey, .* got int"),
    ([ROOT.public_key, 42], r"trusted_roots\[1\] must be a tenuo_core\.PublicKey.*got int"),
    ("not a key", r"trusted_roots is a string of 9 characters that is not a 32-byte"),
    (base64.b64encode(bytes(31)).decode(), r"not a 32-byte public key in hex, base64"),
    (bytes(31), r"trusted_roots must be 32 bytes \(an Ed25519 public key\), got 31"),
    ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", r"PEM block"),
    (ROOT, r"trusted_roots must be .* got SigningKey"),
])
def test_trusted_roots_of_another_kind_is_a_typed_error_naming_it(value, message):
    with pytest.raises(ResolverConfigError, match=message):
        TenuoPluginConfig(trusted_roots=value)


def test_a_trusted_roots_provider_may_return_encoded_keys():
    encoded = base64.b64encode(bytes(ROOT.public_key.to_bytes())).decode()
    config = TenuoPluginConfig(trusted_roots=lambda: [encoded])
    assert config.refresh_trusted_roots()
    assert _roots(config) == [bytes(ROOT.public_key.to_bytes())]


# -- signal and update allowlists ------------------------------------------


def _allowlisted(**options: Any) -> TenuoPluginConfig:
    return TenuoPluginConfig(trusted_roots=[tenuo_core.SigningKey.generate().public_key],
                             **options)


def test_allowlists_default_to_none_and_reach_each_run_s_policy() -> None:
    assert _allowlisted().authorized_signals is None
    config = _allowlisted(authorized_signals=("approve", "approve", "finish"),
                          authorized_updates=["set_limit"])
    assert config.authorized_signals == frozenset({"approve", "finish"})
    policy = TenuoInterceptor(config).run_policy()
    assert policy.authorized_signals == frozenset({"approve", "finish"})
    assert policy.authorized_updates == frozenset({"set_limit"})
    assert TenuoInterceptor(_allowlisted()).run_policy().authorized_updates is None


@pytest.mark.parametrize("name", ["authorized_signals", "authorized_updates"])
@pytest.mark.parametrize(("value", "message"), [
    ([], r"=\[\] would refuse every one; use {name}=None to accept all"),
    ("approve", r"must be a list of names, not a single str; write {name}=\['approve'\]"),
    (["approve", ""], "holds '': each entry must be a non-empty signal or update name"),
    ([b"approve"], "holds b'approve'"),
    (3, "must be a list of names or None, got int"),
])
def test_a_bad_allowlist_is_a_typed_error_naming_the_option(name: str, value: Any,
                                                           message: str) -> None:
    with pytest.raises(ResolverConfigError, match=message.format(name=name)):
        _allowlisted(**{name: value})
