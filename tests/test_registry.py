"""URLs, the scheme registry and entry points."""

from __future__ import annotations

import importlib.metadata

import pytest

from tenuo_keys import (
    CompositeKeyResolver,
    EnvKeyResolver,
    KeyResolver,
    MissingExtraError,
    ResolverConfigError,
    StaticKeyResolver,
    _registry,
    register_resolver,
    registered_schemes,
    resolver_from_env,
    resolver_from_url,
)


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    monkeypatch.setattr(_registry, "_registry", dict(_registry._BUILTINS))
    monkeypatch.setattr(_registry, "_entry_points_loaded", False)


def test_env_url_maps_onto_constructor_arguments():
    with resolver_from_url("env://?prefix=APP_KEY_&field=secret&ttl=60&max_staleness=0") as r:
        assert isinstance(r, EnvKeyResolver)
        assert r.prefix == "APP_KEY_"
        assert r._field == "secret"
        assert r.cache.policy.ttl == 60 and r.cache.policy.max_staleness == 0


def test_env_url_defaults():
    with resolver_from_url("env://") as r:
        assert r.prefix == "TENUO_KEY_"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("env://?prefx=A", "does not understand parameter(s): prefx"),
        ("env://?ttl=abc", "ttl='abc' is not a number"),
        ("env://?ttl=-5", "CachePolicy.ttl"),
        ("env://?prefix=a&prefix=b", "given twice"),
        ("env://somehost", "takes no host"),
        ("env://?token=s3cr3t", "must not carry secrets"),
        ("vault://user:pw@host:8200/", "must not carry a password"),
        ("nope://x", "no resolver for scheme 'nope'"),
        ("not a url", "must look like 'scheme://"),
        ("env://:99999", "malformed resolver URL"),
    ],
)
def test_bad_urls_say_what_is_wrong(url, message):
    with pytest.raises(ResolverConfigError) as info:
        resolver_from_url(url)
    assert message in str(info.value)
    assert "s3cr3t" not in str(info.value) and "pw@" not in str(info.value)


def test_several_urls_make_a_composite():
    r = resolver_from_url("env://?prefix=A_  env://?prefix=B_")
    assert isinstance(r, CompositeKeyResolver)
    assert [x.prefix for x in r.resolvers] == ["A_", "B_"]
    r.close()


def test_resolver_from_env(monkeypatch):
    monkeypatch.setenv("TENUO_KEY_RESOLVER", "env://?prefix=FROM_ENV_")
    with resolver_from_env() as r:
        assert r.prefix == "FROM_ENV_"
    monkeypatch.delenv("TENUO_KEY_RESOLVER")
    with pytest.raises(ResolverConfigError, match="TENUO_KEY_RESOLVER is not set"):
        resolver_from_env()
    with resolver_from_env(default="env://?prefix=D_") as r:
        assert r.prefix == "D_"


class Custom(StaticKeyResolver):
    backend = "custom"

    @classmethod
    def from_url(cls, url, **kwargs):
        name = url.pop("name", "x")
        url.finish()
        resolver = cls(**kwargs)
        resolver.name = name
        return resolver


def test_register_in_code_and_refuse_overwrite():
    register_resolver("mine", Custom)
    r = resolver_from_url("mine://?name=abc")
    assert isinstance(r, Custom) and r.name == "abc"
    with pytest.raises(ResolverConfigError, match="already registered"):
        register_resolver("mine", Custom)
    with pytest.raises(ResolverConfigError, match="already registered"):
        register_resolver("env", Custom)
    register_resolver("mine", "tenuo_keys.backends.env:EnvKeyResolver", overwrite=True)
    assert isinstance(resolver_from_url("mine://"), EnvKeyResolver)


def test_missing_extra_gives_install_hint():
    register_resolver("fakecloud", "no_such_module_xyz:Thing", extra="fakecloud")
    with pytest.raises(MissingExtraError) as info:
        resolver_from_url("fakecloud://x")
    assert "pip install 'tenuo-keys[fakecloud]'" in str(info.value)
    register_resolver("fakecloud2", Custom, extra="fc", requires="no_such_module_xyz")
    with pytest.raises(MissingExtraError, match=r"tenuo-keys\[fc\]"):
        resolver_from_url("fakecloud2://")


def test_non_resolver_factory_is_refused():
    class NotAResolver:
        @classmethod
        def from_url(cls, url, **kwargs):
            return cls()

    register_resolver("bogus", NotAResolver)
    with pytest.raises(ResolverConfigError, match="not a KeyResolver"):
        resolver_from_url("bogus://")


def test_entry_points_register_third_party_schemes(monkeypatch):
    eps = importlib.metadata.EntryPoints([
        importlib.metadata.EntryPoint(
            name="thirdparty", value="tenuo_keys.backends.env:EnvKeyResolver",
            group="tenuo_keys.resolvers"),
        importlib.metadata.EntryPoint(
            name="env", value="evil.module:Hijack", group="tenuo_keys.resolvers"),
    ])
    monkeypatch.setattr(_registry, "entry_points", lambda group: eps)
    assert "thirdparty" in registered_schemes()
    assert isinstance(resolver_from_url("thirdparty://"), KeyResolver)
    # A plugin cannot take over a built-in scheme.
    assert isinstance(resolver_from_url("env://"), EnvKeyResolver)
