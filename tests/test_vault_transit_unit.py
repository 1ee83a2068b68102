"""``VaultTransitSigner`` without a server, and the signer conformance suite for ``LocalSigner``.

An in-process fake of the Transit API (``FakeTransit``) stands in for Vault,
so the whole signer conformance suite runs here in milliseconds; the same
suite runs against a real OpenBao in ``integration/test_vault_transit.py``.
"""

from __future__ import annotations

import base64
import functools
import logging
import time
from types import SimpleNamespace
from typing import Any

import hvac
import hvac.exceptions
import pytest
import requests
import tenuo_core
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

from tenuo_keys import errors
from tenuo_keys._pop import pop_message
from tenuo_keys._signer import LocalSigner, sign_pop
from tenuo_keys.backends import vault_transit as vt
from tenuo_keys.backends.vault_transit import VaultTransitSigner
from tenuo_keys.testing import assert_no_secret
from tenuo_keys.testing._signer_conformance import SignerConformance, SignerHarness

TOKEN = "hvs.UNITTESTTOKENVALUE"
ADDR = "https://vault.test:8200"  # never contacted: the client is a fake
ENV = {"VAULT_ADDR": ADDR, "VAULT_TOKEN": TOKEN}
ISSUER = tenuo_core.SigningKey.generate()


# --------------------------------------------------------------------------- a fake Transit


def _err(cls: type[hvac.exceptions.VaultError], text: str) -> hvac.exceptions.VaultError:
    return cls(errors=[f"1 error occurred:\n\t* {text}\n\n"])


@functools.cache
def _wrapping_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeTransit:
    """The parts of Vault's Transit API the signer uses, in memory.

    Keys hold real ``SigningKey`` versions; ``outage``, ``tamper`` and
    ``sign_error`` inject faults; ``sign_requests`` records (name, key_version).
    """

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, Any]] = {}
        self.tokens = {TOKEN}
        self.outage = False
        self.tamper = False
        self.sign_error: BaseException | None = None
        self.sign_requests: list[tuple[str, int | None]] = []
        self.reads = 0
        self.clients: list[FakeClient] = []

    def add(self, name: str, *versions: Any, kind: str = "ed25519", derived: bool = False,
            imported: bool = False, allow_rotation: bool = True,
            exportable: bool = False) -> None:
        self.keys[name] = {"type": kind, "derived": derived, "imported": imported,
                           "exportable": exportable,
                           "allow_rotation": allow_rotation, "min_enc": 0,
                           "versions": list(versions) or [tenuo_core.SigningKey.generate()]}

    def rotate(self, name: str, key: Any = None) -> Any:
        key = key or tenuo_core.SigningKey.generate()
        self.keys[name]["versions"].append(key)
        return key

    # -- the API ------------------------------------------------------------

    def check(self, client: FakeClient) -> None:
        if self.outage:
            raise requests.exceptions.ConnectionError("connection refused")
        if client.token not in self.tokens:
            raise _err(hvac.exceptions.Forbidden, "permission denied")

    def read_key(self, name: str) -> dict[str, Any]:
        self.reads += 1
        key = self.keys.get(name)
        if key is None:
            raise hvac.exceptions.InvalidPath(errors=[])
        keys: dict[str, Any] = {}
        for n, version in enumerate(key["versions"], start=1):
            if key["type"] == "ed25519":
                public = base64.b64encode(bytes(version.public_key_bytes())).decode()
            else:
                public = "-----BEGIN PUBLIC KEY-----\nMFkw...\n-----END PUBLIC KEY-----\n"
            keys[str(n)] = {"name": key["type"], "public_key": public}
        return {"data": {
            "type": key["type"], "derived": key["derived"],
            "exportable": key.get("exportable", False),
            "imported_key": key["imported"], "supports_signing": True, "keys": keys,
            "latest_version": len(key["versions"]), "min_encryption_version": key["min_enc"],
        }}

    def sign_data(self, name: str, hash_input: str, key_version: int | None) -> dict[str, Any]:
        self.sign_requests.append((name, key_version))
        if self.sign_error is not None:
            raise self.sign_error
        key = self.keys.get(name)
        if key is None:
            raise _err(hvac.exceptions.InvalidRequest, "signing key not found")
        versions = key["versions"]
        n = key_version or len(versions)
        if n < key["min_enc"]:
            raise _err(hvac.exceptions.InternalServerError,
                       "requested version for signing is less than the minimum encryption "
                       "key version")
        signature = bytes(versions[n - 1].sign_raw(base64.b64decode(hash_input)))
        if self.tamper:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        return {"data": {"signature": f"vault:v{n}:{base64.b64encode(signature).decode()}",
                         "key_version": n}}

    def create_key(self, name: str, key_type: str, **_: Any) -> None:
        if name not in self.keys:  # like Vault: creating an existing key changes nothing
            self.add(name, kind=key_type)

    @property
    def wrapping(self) -> rsa.RSAPrivateKey:
        return _wrapping_key()

    def wrapping_key(self) -> dict[str, Any]:
        pem = self.wrapping.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return {"data": {"public_key": pem.decode()}}

    def unwrap(self, ciphertext: str) -> Any:
        blob = base64.b64decode(ciphertext)
        size = self.wrapping.key_size // 8
        ephemeral = self.wrapping.decrypt(blob[:size], padding.OAEP(
            mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
        der = aes_key_unwrap_with_padding(ephemeral, blob[size:])
        private = serialization.load_der_private_key(der, password=None)
        assert isinstance(private, Ed25519PrivateKey)
        seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
        return tenuo_core.SigningKey.from_bytes(seed)

    def post(self, url: str, json: dict[str, Any]) -> Any:
        parts = url.split("/")  # /v1/transit/keys/NAME/import[_version]
        name, action = parts[-2], parts[-1]
        if action == "import":
            if name in self.keys:
                raise _err(hvac.exceptions.InternalServerError,
                           "the import path cannot be used with an existing key; use "
                           "import-version to rotate an existing imported key")
            assert json["type"] == "ed25519" and json["exportable"] is False
            self.add(name, self.unwrap(json["ciphertext"]), imported=True,
                     allow_rotation=json["allow_rotation"])
        elif action == "import_version":
            if not self.keys[name]["imported"]:
                raise _err(hvac.exceptions.InternalServerError,
                           "the import_version endpoint can only be used with an imported key")
            self.rotate(name, self.unwrap(json["ciphertext"]))
        else:
            raise AssertionError(url)
        return None


class FakeClient:
    """Stands in for ``hvac.Client`` (built by the signer's session)."""

    def __init__(self, transit: FakeTransit, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.token = kwargs.get("token", "")
        self.closed = False
        transit.clients.append(self)

        def guarded(fn: Any) -> Any:
            def call(*args: Any, **kw: Any) -> Any:
                transit.check(self)
                kw.pop("mount_point", None)
                return fn(*args, **kw)
            return call

        def lookup_self() -> Any:
            transit.check(self)
            return {"data": {"ttl": 0, "renewable": False}}

        def get(url: str) -> Any:
            transit.check(self)
            assert url.endswith("/wrapping_key"), url
            return transit.wrapping_key()

        def close() -> None:
            self.closed = True

        self.adapter = SimpleNamespace(get=get, post=guarded(transit.post), close=close)
        self.auth = SimpleNamespace(token=SimpleNamespace(lookup_self=lookup_self))
        self.secrets = SimpleNamespace(transit=SimpleNamespace(
            read_key=guarded(transit.read_key), sign_data=guarded(transit.sign_data),
            create_key=guarded(transit.create_key)))


@pytest.fixture
def transit(monkeypatch: pytest.MonkeyPatch) -> FakeTransit:
    fake = FakeTransit()
    monkeypatch.setattr(hvac, "Client", lambda **kwargs: FakeClient(fake, **kwargs))
    return fake


def make(key_id: str, **kwargs: Any) -> VaultTransitSigner:
    kwargs.setdefault("environ", ENV)
    return VaultTransitSigner(key_id, **kwargs)


def warrant_for(holder: Any) -> Any:
    return tenuo_core.Warrant.issue(keypair=ISSUER, capabilities={"read_file": {}},
                                    ttl_seconds=600, holder=holder)


def accepts(warrant: Any, pop: bytes, args: dict[str, Any]) -> None:
    tenuo_core.Authorizer(trusted_roots=[ISSUER.public_key]).check_chain(
        [warrant], "read_file", args, signature=pop)


# --------------------------------------------------------------------------- conformance


class LocalHarness(SignerHarness):
    """``LocalSigner`` over keys held in a dict: the reference every signer must match."""

    supports_rotation = False  # a LocalSigner holds one key

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}

    def make_signer(self, key_id):
        if key_id not in self.keys:
            raise errors.KeyNotFound(key_id=key_id, backend="local")
        return LocalSigner(key_id, self.keys[key_id])

    def put(self, key_id, key):
        self.keys[key_id] = key


class FakeTransitHarness(SignerHarness):
    def __init__(self, transit: FakeTransit) -> None:
        self.transit = transit

    def make_signer(self, key_id):
        return make(key_id)

    def put(self, key_id, key):
        vt.import_key(key_id, key, environ=ENV)

    def create(self, key_id):
        vt.create_key(key_id, environ=ENV)

    def rotate(self, key_id):
        self.transit.rotate(key_id)

    def make_unreachable_signer(self, key_id):
        self.transit.add(key_id)
        signer = make(key_id)
        self.transit.outage = True
        return signer

    def make_denied_signer(self, key_id):
        return make(key_id, environ={"VAULT_ADDR": ADDR, "VAULT_TOKEN": "hvs.WRONGTOKEN"})

    def secrets(self):
        return [TOKEN, "hvs.WRONGTOKEN"]


class TestLocalSignerConformance(SignerConformance):
    @pytest.fixture
    def harness(self):
        return LocalHarness()


class TestFakeTransitConformance(SignerConformance):
    @pytest.fixture
    def harness(self, transit):
        return FakeTransitHarness(transit)


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"kind": "ecdsa-p256"}, "has type 'ecdsa-p256'; a Tenuo holder key must be ed25519"),
        ({"kind": "rsa-2048"}, "must be ed25519"),
        ({"derived": True}, "is derived"),
        ({"exportable": True}, "is exportable.*dangerously_allow_exportable"),
    ],
)
def test_unsuitable_keys_are_refused_at_construction(transit, options, expected):
    transit.add("k", **options)
    with pytest.raises(errors.ResolverConfigError, match=expected) as info:
        make("k")
    assert "key 'k'" in str(info.value)
    assert all(client.closed for client in transit.clients)  # nothing left open


def test_exportable_key_signs_only_with_the_loud_opt_in(transit, caplog):
    key = tenuo_core.SigningKey.generate()
    transit.add("k", key, exportable=True)
    with make("k", dangerously_allow_exportable=True) as signer:
        assert signer.sign(b"m") == bytes(key.sign_raw(b"m"))
    assert "EXPORTABLE" in caplog.text
    url = "vault-transit://vault.test/transit/k?dangerously_allow_exportable=1"
    with VaultTransitSigner.from_url(url, environ=ENV) as signer:
        assert signer.sign(b"m") == bytes(key.sign_raw(b"m"))
    with pytest.raises(errors.ResolverConfigError, match="exportable"):
        VaultTransitSigner.from_url("vault-transit://vault.test/transit/k", environ=ENV)


def test_unsuitable_key_with_lazy_fails_each_call_typed(transit):
    transit.add("k", derived=True)
    with make("k", lazy=True) as signer:
        with pytest.raises(errors.KeyResolutionError, match="is derived") as info:
            signer.sign(b"m")
        assert info.value.retryable is False and info.value.backend == "vault-transit"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"prehashed": True}, "Ed25519ph"),
        ({"name_template": "a-{key_id}-{key_id}"}, "at most one"),
        ({"name_template": "{other}"}, "no other braces"),
        ({"name_template": "tenuo/{key_id}"}, "not a valid|only letters"),
        ({"refresh_interval": -1}, "refresh_interval"),
        ({"max_age": 0}, "max_age"),
        ({"timeout": 0}, "timeout"),
        ({"environ": {}}, "no Vault credentials"),
        ({"environ": {"VAULT_TOKEN": TOKEN, "VAULT_ADDR": "vault:8200"}}, "http:// or https://"),
        ({"mount": "../x"}, "invalid Vault mount"),
    ],
)
def test_bad_settings_are_refused_before_any_request(transit, kwargs, expected):
    with pytest.raises(errors.ResolverConfigError, match=expected):
        make("agent1", **kwargs)
    assert transit.reads == 0


@pytest.mark.parametrize("key_id", ["a b", "a/b", "x" * 200 + "\x00", ""])
def test_key_ids_that_make_no_transit_name_are_refused(transit, key_id):
    with pytest.raises(errors.ResolverConfigError):
        make(key_id)


def test_name_template_maps_key_ids(transit):
    transit.add("tenuo-agent1")
    with make("agent1", name_template="tenuo-{key_id}") as signer:
        assert signer.key_name == "tenuo-agent1"
        signer.sign(b"m")
    assert transit.sign_requests == [("tenuo-agent1", 1)]


# --------------------------------------------------------------------------- versions


def test_signs_with_the_version_the_holder_names(transit):
    v1 = tenuo_core.SigningKey.generate()
    transit.add("k", v1)
    v2 = transit.rotate("k")
    with make("k") as signer:
        message = b"tenuo"
        assert signer.sign(message, holder=v1.public_key) == bytes(v1.sign_raw(message))
        assert signer.sign(message, holder=bytes(v2.public_key_bytes())) == bytes(
            v2.sign_raw(message))
        assert signer.sign(message) == bytes(v2.sign_raw(message))
        assert [v for _, v in transit.sign_requests] == [1, 2, 2]
        assert signer.sign_calls == 3 and signer.read_calls == 1


def test_rotation_is_found_on_a_holder_miss_and_old_versions_keep_signing(transit):
    v1 = tenuo_core.SigningKey.generate()
    transit.add("k", v1)
    with make("k") as signer:
        w1 = warrant_for(v1.public_key)
        ts = int(time.time())
        accepts(w1, sign_pop(signer, w1, "read_file", {}, ts), {})
        v2 = transit.rotate("k")
        w2 = warrant_for(v2.public_key)
        assert sign_pop(signer, w2, "read_file", {}, ts) == bytes(w2.sign(v2, "read_file", {}, ts))
        assert sign_pop(signer, w1, "read_file", {}, ts) == bytes(w1.sign(v1, "read_file", {}, ts))
        assert signer.read_calls == 2


def test_unknown_holders_reread_at_most_once_per_interval(transit):
    transit.add("k")
    stranger = tenuo_core.SigningKey.generate().public_key
    with make("k", refresh_interval=60) as signer:
        for attempt in range(5):
            with pytest.raises(errors.HolderMismatch) as info:
                signer.sign(b"m", holder=stranger)
            # The first miss re-read the key and is final; later ones were throttled.
            assert info.value.retryable is (attempt > 0)
        assert signer.read_calls == 2 and signer.sign_calls == 0
    with make("k", refresh_interval=0) as eager:
        for _ in range(3):
            with pytest.raises(errors.HolderMismatch):
                eager.sign(b"m", holder=stranger)
        assert eager.read_calls == 4


def test_without_a_holder_the_current_version_is_reread_after_max_age(transit):
    transit.add("k")
    with make("k", max_age=0.05) as signer:
        first = bytes(signer.public_key.to_bytes())
        v2 = transit.rotate("k")
        assert bytes(signer.public_key.to_bytes()) == first  # still fresh
        time.sleep(0.06)
        assert bytes(signer.public_key.to_bytes()) == bytes(v2.public_key_bytes())


def test_versions_below_min_encryption_version_no_longer_sign(transit):
    v1 = tenuo_core.SigningKey.generate()
    transit.add("k", v1)
    v2 = transit.rotate("k")
    transit.keys["k"]["min_enc"] = 2
    with make("k") as signer:
        with pytest.raises(errors.HolderMismatch, match=r"is version 1 .* no longer signs"):
            signer.sign(b"m", holder=v1.public_key)
        assert signer.sign(b"m", holder=v2.public_key) == bytes(v2.sign_raw(b"m"))
        assert signer.key_info().retired[0].version == 1


def test_version_retired_after_loading_is_a_final_error_and_rereads(transit):
    v1 = tenuo_core.SigningKey.generate()
    transit.add("k", v1)
    transit.rotate("k")
    with make("k") as signer:
        signer.public_key_for(v1.public_key)
        transit.keys["k"]["min_enc"] = 2  # Transit answers 500 for this caller mistake
        with pytest.raises(errors.KeyResolutionError,
                           match="requested version for signing") as info:
            signer.sign(b"m", holder=v1.public_key)
        assert not isinstance(info.value, errors.BackendUnavailable)
        assert info.value.retryable is False
        with pytest.raises(errors.HolderMismatch, match="no longer signs"):
            signer.sign(b"m", holder=v1.public_key)


# --------------------------------------------------------------------------- signature checks


def test_a_signature_that_does_not_verify_is_never_returned(transit):
    transit.add("k")
    with make("k") as signer:
        signer.sign(b"m")
        transit.tamper = True
        with pytest.raises(errors.KeyResolutionError, match="does not verify") as info:
            signer.sign(b"m")
        assert info.value.retryable is False
        assert signer._snapshot is None  # the version map is re-read next time
        transit.tamper = False
        signer.sign(b"m")


def test_a_key_recreated_under_the_same_name_is_caught(transit):
    old = tenuo_core.SigningKey.generate()
    transit.add("k", old)
    with make("k") as signer:
        signer.sign(b"m", holder=old.public_key)
        transit.add("k")  # deleted and created again: version 1 is another key now
        with pytest.raises(errors.KeyResolutionError, match="does not verify"):
            signer.sign(b"m", holder=old.public_key)
        with pytest.raises(errors.HolderMismatch):
            signer.sign(b"m", holder=old.public_key)


@pytest.mark.parametrize(
    "answer",
    ["vault:v2:" + base64.b64encode(b"x" * 64).decode(), "vault:v1:" + base64.b64encode(
        b"x" * 63).decode(), "v1:abc", "vault:v1:***"],
)
def test_malformed_signature_answers_are_refused(transit, answer):
    transit.add("k")
    with make("k") as signer:
        signer._session.client.secrets.transit.sign_data = lambda **k: {
            "data": {"signature": answer}}
        with pytest.raises(errors.KeyResolutionError) as info:
            signer.sign(b"m")
        assert info.value.retryable is False


def test_message_must_be_bytes(transit):
    transit.add("k")
    with make("k") as signer, pytest.raises(TypeError):
        signer.sign("text")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("error", "cls", "retryable", "text"),
    [
        (requests.exceptions.ConnectionError("refused"), errors.BackendUnavailable, True,
         "cannot connect"),
        (requests.exceptions.ReadTimeout("slow"), errors.BackendUnavailable, True,
         "did not answer"),
        (hvac.exceptions.VaultDown(errors=["Vault is sealed"]), errors.BackendUnavailable, True,
         "sealed"),
        (_err(hvac.exceptions.InternalServerError, "storage backend failed"),
         errors.BackendUnavailable, True, "server error"),
        (_err(hvac.exceptions.InternalServerError, "error deriving key: missing 'context' for "
              "key derivation"), errors.KeyResolutionError, False, "Transit refused sign"),
        (_err(hvac.exceptions.InvalidRequest, "signing key not found"), errors.KeyNotFound, False,
         "not found"),
    ],
)
def test_sign_errors_are_mapped(transit, error, cls, retryable, text):
    transit.add("k")
    with make("k") as signer:
        transit.sign_error = error
        with pytest.raises(cls, match=text) as info:
            signer.sign(b"m")
        assert type(info.value) is cls
        assert (info.value.retryable, info.value.key_id, info.value.backend) == (
            retryable, "k", "vault-transit")


def test_wrong_token_and_missing_key(transit):
    transit.add("k")
    with pytest.raises(errors.KeyAccessDenied, match="rejected the token") as info:
        make("k", environ={"VAULT_ADDR": ADDR, "VAULT_TOKEN": "hvs.NOPE"})
    assert "hvs.NOPE" not in str(info.value) + repr(info.value)
    assert info.value.backend == "vault-transit"
    with pytest.raises(errors.KeyNotFound, match="not found: nothing at transit/keys/absent"):
        make("absent")


def test_closed_signer_refuses(transit):
    transit.add("k")
    signer = make("k")
    signer.close()
    signer.close()
    with pytest.raises(errors.KeyResolutionError, match="closed"):
        signer.sign(b"m")
    assert transit.clients[0].closed


# --------------------------------------------------------------------------- sharing, repr


def test_for_key_shares_one_client_and_closes_with_the_last(transit):
    transit.add("a")
    transit.add("b")
    first = make("a")
    second = first.for_key("b")
    assert second._session is first._session and len(transit.clients) == 1
    assert second.key_name == "b" and second.sign_calls == 0
    second.sign(b"m")
    first.close()
    assert not transit.clients[0].closed
    second.sign(b"m")  # still usable
    second.close()
    assert transit.clients[0].closed
    with pytest.raises(errors.KeyResolutionError, match="closed"):
        first.for_key("c")


def test_for_key_on_a_fixed_name_is_refused(transit):
    transit.add("only")
    with make("x", name_template="only") as signer, pytest.raises(errors.ResolverConfigError,
                                                                 match="one Transit key"):
        signer.for_key("y")


def test_repr_and_errors_never_show_the_token(transit, caplog):
    caplog.set_level(logging.DEBUG)
    transit.add("k")
    with make("k") as signer:
        text = repr(signer) + str(signer)
        assert "transit/keys/k" in text and "vault.test" in text and "token" in text
        try:
            signer.sign(b"m", holder=tenuo_core.SigningKey.generate().public_key)
        except errors.HolderMismatch as exc:
            text += str(exc) + repr(exc)
    assert TOKEN not in text + caplog.text


# --------------------------------------------------------------------------- URLs


def from_url(url: str, **kwargs: Any) -> VaultTransitSigner:
    kwargs.setdefault("environ", ENV)
    kwargs.setdefault("lazy", True)
    signer = VaultTransitSigner.from_url(url, **kwargs)
    signer.close()
    return signer


def test_url_host_mount_template_and_options(transit):
    s = from_url("vault-transit://vault.internal:8201/tx/tenuo-{key_id}?auth=approle"
                 "&namespace=team-a&timeout=2&refresh_interval=1&max_age=30&renew=0",
                 key_id="agent1", role_id="rid", secret_id="sid")
    assert s.addr == "https://vault.internal:8201"
    assert (s.mount, s.key_name, s.auth_method, s.namespace) == (
        "tx", "tenuo-agent1", "approle", "team-a")
    assert (s.refresh_interval, s.max_age) == (1.0, 30.0)


def test_url_defaults_fixed_name_and_env_addr(transit):
    s = from_url("vault-transit://127.0.0.1?tls=0", key_id="agent1")
    assert (s.addr, s.mount, s.key_name) == ("http://127.0.0.1:8200", "transit", "agent1")
    fixed = from_url("vault-transit:///transit/holder-key")
    assert (fixed.key_id, fixed.key_name, fixed.addr) == ("holder-key", "holder-key", ADDR)
    nested = from_url("vault-transit://h/{key_id}?mount=teams/transit", key_id="a")
    assert (nested.mount, nested.key_name) == ("teams/transit", "a")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("vault-transit://h/transit/{key_id}", "needs a key id"),
        ("vault-transit://h/transit/k?token=abc", "must not carry secrets"),
        ("vault-transit://user@h/transit/k", "no user name"),
        ("vault-transit://h/transit/k?prehashed=1", "Ed25519ph"),
        ("vault-transit://h/transit/k?ttl=3", "does not understand"),
        ("vault-transit://h/transit/k?tls=maybe", "vault-transit:// parameter tls"),
        ("vault-transit:///transit/k?tls=0", "without a host"),
        ("vault://h/transit/k", "expected a vault-transit:// URL"),
    ],
)
def test_bad_urls(transit, url, expected):
    with pytest.raises(errors.ResolverConfigError, match=expected):
        from_url(url)


def test_url_and_argument_clash(transit):
    with pytest.raises(errors.ResolverConfigError, match="both in the URL and as an argument"):
        from_url("vault-transit://h/transit/k?timeout=1", timeout=2)


# --------------------------------------------------------------------------- CLI helpers


def test_create_key_is_non_exportable_ed25519_and_refuses_existing(transit):
    info = vt.create_key("agent1", environ=ENV)
    assert transit.keys["agent1"]["type"] == "ed25519"
    assert (info.name, info.latest_version, info.exportable) == ("agent1", 1, False)
    with pytest.raises(errors.KeyResolutionError, match="already exists"):
        vt.create_key("agent1", environ=ENV)
    assert vt.create_key("agent1", environ=ENV, exist_ok=True) == info
    transit.add("ec", kind="ecdsa-p256")
    with pytest.raises(errors.KeyResolutionError, match="must be ed25519"):
        vt.create_key("ec", environ=ENV, exist_ok=True)


def test_import_key_signs_identically_and_adds_versions(transit, caplog):
    caplog.set_level(logging.DEBUG)
    key, nxt = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    info = vt.import_key("byok", key, environ=ENV, allow_rotation=True)
    assert info.imported and info.current.public == bytes(key.public_key_bytes())
    with pytest.raises(errors.KeyResolutionError, match="already exists"):
        vt.import_key("byok", key, environ=ENV)
    info = vt.import_key("byok", nxt, environ=ENV, new_version=True)
    assert [v.version for v in info.versions] == [2, 1]
    w = warrant_for(key.public_key)
    with make("byok") as signer:
        assert sign_pop(signer, w, "read_file", {"a": 1}, 100) == bytes(
            w.sign(key, "read_file", {"a": 1}, 100))
    with pytest.raises(errors.KeyNotFound):
        vt.import_key("nothing", key, environ=ENV, new_version=True)
    vt.create_key("generated", environ=ENV)
    with pytest.raises(errors.KeyResolutionError,
                       match="only be used with an imported key") as denied:
        vt.import_key("generated", nxt, environ=ENV, new_version=True)
    assert denied.value.retryable is False
    assert_no_secret(caplog.text + str(denied.value), [key, nxt], "import logs and errors")


def test_public_current_and_by_holder(transit):
    v1 = tenuo_core.SigningKey.generate()
    transit.add("k", v1)
    v2 = transit.rotate("k")
    assert vt.public("k", environ=ENV).public == bytes(v2.public_key_bytes())
    found = vt.public("k", environ=ENV, holder=v1.public_key)
    assert (found.version, found.public) == (1, bytes(v1.public_key_bytes()))
    assert bytes(found.public_key.to_bytes()) == found.public
    with pytest.raises(errors.HolderMismatch):
        vt.public("k", environ=ENV, holder=tenuo_core.SigningKey.generate().public_key)
    via_url = vt.public("k", "vault-transit://vault.test/transit/{key_id}",
                        environ={"VAULT_TOKEN": TOKEN})
    assert via_url.version == 2


def test_pop_message_path_is_what_transit_signs(transit):
    key = tenuo_core.SigningKey.generate()
    transit.add("k", key)
    w = warrant_for(key.public_key)
    args = {"path": "/ü", "n": 2**70, "nested": {"b": [1, 2.5]}}
    with make("k") as signer:
        ts = int(time.time())
        assert signer.sign(pop_message(w, "read_file", args, ts)) == bytes(
            w.sign(key, "read_file", args, ts))

