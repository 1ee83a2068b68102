"""URLs, the scheme registry and entry points."""

from __future__ import annotations

import importlib.metadata

import pytest
import tenuo_core

from tenuo_keys import (
    BackendKeyResolver,
    CompositeKeyResolver,
    EnvKeyResolver,
    KeyNotFound,
    KeyResolver,
    MissingExtraError,
    ResolverConfigError,
    ResolverURL,
    StaticKeyResolver,
    _registry,
    encode_signing_key,
    register_resolver,
    registered_schemes,
    resolver_from_env,
    resolver_from_url,
)
from tenuo_keys.backends import _vault_common


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


def test_a_class_without_from_url_is_refused_at_registration():
    class DictResolver(BackendKeyResolver):  # the README's example, before it had from_url
        backend = "dict"

        def fetch(self, key_id):
            raise KeyNotFound(key_id=key_id, backend=self.backend)

    with pytest.raises(ResolverConfigError, match=r"DictResolver for dict://: it has no "
                                                  r"from_url classmethod\. Add '@classmethod"):
        register_resolver("dict", DictResolver)
    assert "dict" not in registered_schemes()
    # A lazily named class is checked when first used, with the same message.
    register_resolver("dictlazy", "tenuo_keys._resolver:BackendKeyResolver")
    with pytest.raises(ResolverConfigError, match="it has no from_url classmethod"):
        resolver_from_url("dictlazy://")


def test_the_readme_dict_resolver_registers_and_builds():
    store: dict[str, str] = {}

    class DictResolver(BackendKeyResolver):
        backend = "dict"

        @classmethod
        def from_url(cls, url, **kwargs):
            url.no_authority()
            cache = url.pop_cache_policy()
            url.finish()
            return cls(cache=cache, **kwargs)

        def fetch(self, key_id):
            try:
                return store[key_id]
            except KeyError:
                raise KeyNotFound(key_id=key_id, backend=self.backend) from None

        def list_key_ids(self):
            return list(store)

    register_resolver("dict", DictResolver)
    key = tenuo_core.SigningKey.generate()
    store["agent1"] = encode_signing_key(key)
    with resolver_from_url("dict://?ttl=60") as resolver:
        assert isinstance(resolver, DictResolver) and resolver.cache.policy.ttl == 60
        assert resolver.preload_all() == 1
        assert resolver.resolve_sync("agent1").public_key_bytes() == key.public_key_bytes()


@pytest.mark.parametrize(("url", "path", "relative"), [
    ("dir:///var/keys", "/var/keys", "var/keys"),
    ("dir://host/var/keys", "/var/keys", "var/keys"),
    ("dir://", "", ""),
    ("dir:///var/my%20keys/", "/var/my keys/", "var/my keys/"),
])
def test_resolver_url_path_keeps_its_leading_slash(url, path, relative):
    parsed = ResolverURL(url)
    assert (parsed.path, parsed.relative_path) == (path, relative)


def test_backends_still_read_their_templates_from_the_path(monkeypatch):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    aws = resolver_from_url("awssm://us-east-1/tenuo/keys/{key_id}")
    assert "template='tenuo/keys/{key_id}'" in repr(aws)
    aws.close()
    vault = _vault_common.url_options(
        ResolverURL("vault://h/secret/tenuo/{key_id}"), "path_template", {})
    assert (vault["mount"], vault["path_template"]) == ("secret", "tenuo/{key_id}")
