"""Argument canonicalization: identical on both sides, typed denial otherwise."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from decimal import Decimal
from pathlib import PurePosixPath

import pytest
import tenuo_core
from hypothesis import given, settings
from hypothesis import strategies as st

from tenuo_temporal._args import canonical, canonical_args, param_names, positional_names
from tenuo_temporal.errors import TemporalConstraintViolation


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Inner:
    when: dt.datetime
    tags: tuple[str, ...]


@dataclasses.dataclass
class Outer:
    name: str
    inner: Inner
    color: Color
    blob: bytes


def test_structured_values_canonicalize():
    when = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.timezone.utc)
    value = Outer("x", Inner(when, ("a", "b")), Color.RED, b"\x00\x01")
    assert canonical(value) == {
        "name": "x",
        "inner": {"when": "2026-11-29T12:00:00+00:00", "tags": ["a", "b"]},
        "color": "red",
        "blob": "AAE=",
    }
    # What a data converter hands the activity side canonicalizes the same.
    assert canonical(dataclasses.asdict(value)) == canonical(value)
    assert canonical({"name": "x", "inner": {"when": when, "tags": ["a", "b"]},
                      "color": Color.RED, "blob": b"\x00\x01"}) == canonical(value)
    assert canonical(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert canonical(Decimal("1.5")) == "1.5"
    assert canonical(PurePosixPath("/a/b")) == "/a/b"
    assert canonical({3, 1, 2}) == [1, 2, 3]
    assert canonical(dt.timedelta(seconds=90)) == 90.0


def test_pydantic_models_canonicalize():
    pydantic = pytest.importorskip("pydantic")

    class Model(pydantic.BaseModel):
        path: str
        when: dt.date

    assert canonical(Model(path="/a", when=dt.date(2026, 1, 2))) == {"path": "/a",
                                                                     "when": "2026-01-02"}


def test_pydantic_models_bind_excluded_fields_and_secrets_without_holding_them():
    pydantic = pytest.importorskip("pydantic")

    class Inner(pydantic.BaseModel):
        hidden: int = pydantic.Field(default=0, exclude=True)

    class Request(pydantic.BaseModel):
        path: str
        force: bool = pydantic.Field(default=False, exclude=True)
        token: pydantic.SecretStr
        inner: Inner = Inner()

    calm = canonical(Request(path="/a", token=pydantic.SecretStr("s3cr3t")))
    # An excluded field is delivered all the same: it is signed, nested ones too.
    assert calm["force"] is False and calm["inner"] == {"hidden": 0}
    assert canonical(Request(path="/a", force=True, token=pydantic.SecretStr("s3cr3t"))) != calm
    assert canonical(Request(path="/a", token=pydantic.SecretStr("s3cr3t"),
                             inner=Inner(hidden=1))) != calm
    # A secret is bound by a digest: another value signs differently, and the
    # view never holds the secret (nor its mask).
    other = canonical(Request(path="/a", token=pydantic.SecretStr("attacker")))
    assert other["token"] != calm["token"]
    assert calm["token"].startswith("tenuo-secret-sha256:") and "s3cr3t" not in repr(calm)
    assert "*" not in calm["token"]


def test_pydantic_extra_fields_are_signed():
    pydantic = pytest.importorskip("pydantic")

    class Open(pydantic.BaseModel, extra="allow"):
        path: str

    assert canonical(Open(path="/a", mode="x")) == {"path": "/a", "mode": "x"}


@pytest.mark.parametrize("value", [2**53 + 1, -(2**53) - 1, 2**63 + 1000, 10**400,
                                   18446744073709555712])
def test_integers_tenuo_core_cannot_hold_exactly_are_refused(value):
    with pytest.raises(TemporalConstraintViolation, match="2\\*\\*53"):
        canonical_args(["n"], [value])
    with pytest.raises(TemporalConstraintViolation, match="2\\*\\*53"):
        canonical({"nested": [value]})


def test_integers_within_2_53_sign_unchanged():
    for value in (0, 2**53, -(2**53), 2**31, 12345):
        assert canonical_args(["n"], [value]) == {"n": value}
        assert type(canonical_args(["n"], [value])["n"]) is int  # never turned into a float
    assert canonical_args(["n"], [True]) == {"n": True}


@pytest.mark.parametrize("bad", [object(), float("nan"), float("inf"), lambda: 1])
def test_uncanonicalizable_values_are_typed_denials(bad):
    with pytest.raises(TemporalConstraintViolation):
        canonical(bad)


def test_deep_nesting_is_refused():
    value: list = []
    for _ in range(40):
        value = [value]
    with pytest.raises(TemporalConstraintViolation, match="nesting"):
        canonical(value)


def test_names_from_signatures():
    async def activity_fn(path: str, body: str, *, mode: str = "w") -> None: ...

    class Holder:
        def method(self, a: int, b: int) -> None: ...

    def variadic(*args: str) -> None: ...

    assert param_names(activity_fn, 2) == ["path", "body"]
    assert param_names(Holder.method, 2) == ["a", "b"]
    assert param_names(variadic, 2) is None
    assert param_names(None, 1) is None
    assert param_names(activity_fn, 3) is None  # more args than parameters
    assert positional_names(2) == ["arg0", "arg1"]
    with pytest.raises(TemporalConstraintViolation, match="2 argument"):
        canonical_args(["a"], [1, 2])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)

KEY = tenuo_core.SigningKey.generate()
WARRANT = tenuo_core.Warrant.issue(keypair=KEY, capabilities={"t": {}}, ttl_seconds=600,
                                   holder=KEY.public_key)


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, max_size=4))
def test_canonical_args_are_signable_and_stable(values):
    names = positional_names(len(values))
    first = canonical_args(names, values)
    assert canonical_args(names, values) == first
    assert canonical(first) == first  # idempotent
    # tenuo_core accepts every canonical form for signing.
    assert len(bytes(WARRANT.sign(KEY, "t", first, 1_700_000_000))) == 64


def test_positional_names_are_memoized_only_for_short_lists():
    from tenuo_temporal import _args

    assert _args.positional(3) is _args.positional(3)
    held = _args._positional.cache_info().currsize
    assert len(_args.positional(100_000)) == 100_000  # a sender's count: built, never kept
    assert _args._positional.cache_info().currsize == held
