"""Our PoP message builder equals tenuo_core's signing, byte for byte."""

from __future__ import annotations

import pytest
import tenuo_core
from hypothesis import given, settings
from hypothesis import strategies as st

from tenuo_keys._pop import PopFormatChanged, pop_message, self_test

ISSUER = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
WARRANT = tenuo_core.Warrant.issue(keypair=ISSUER, capabilities={"t": {}}, ttl_seconds=600,
                                   holder=HOLDER.public_key)

scalars = (
    st.none() | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1,
                       -(2**63), -24, -25, 2**63, -(2**63) - 1])
    | st.floats(allow_nan=False, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, 1.0, 0.5, 65504.0, 65505.0, 1e-8, 3.4028234663852886e38,
                       1e300])
    | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=500, deadline=None)
@given(
    st.text(min_size=1, max_size=20),
    st.dictionaries(st.text(max_size=12), values, max_size=5),
    st.integers(min_value=0, max_value=2**33),
)
def test_pop_message_matches_tenuo_core(tool, args, ts):
    expected = bytes(WARRANT.sign(HOLDER, tool, args, ts))
    assert bytes(HOLDER.sign_raw(pop_message(WARRANT, tool, args, ts))) == expected


def test_window_truncates_and_self_test_passes():
    a = pop_message(WARRANT, "t", {}, 1_700_000_010)
    assert a == pop_message(WARRANT, "t", {}, 1_700_000_019)
    assert a != pop_message(WARRANT, "t", {}, 1_700_000_040)
    self_test()  # the installed tenuo matches


def test_self_test_fails_closed_when_the_format_changes(monkeypatch):
    import tenuo_keys._pop as pop

    monkeypatch.setattr(pop, "_self_test_result", None)
    monkeypatch.setattr(pop, "DOMAIN", b"tenuo-warrant-v2tenuo-pop-v2")
    with pytest.raises(PopFormatChanged, match="remote signers are disabled"):
        pop.self_test()
    monkeypatch.setattr(pop, "_self_test_result", None)


def test_unknown_types_are_refused():
    with pytest.raises(TypeError, match="bytes"):
        pop_message(WARRANT, "t", {"x": b"raw"}, 0)
