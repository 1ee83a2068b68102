"""Wire format: encode, decode, and refuse anything malformed with a typed error."""

from __future__ import annotations

import base64
import gzip

import pytest
import tenuo_core
from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload

from tenuo_temporal import _headers as H
from tenuo_temporal.errors import HeaderError

ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
CHILD = tenuo_core.SigningKey.generate()
WARRANT = tenuo_core.Warrant.issue(
    keypair=ROOT, capabilities={"read_file": {"path": tenuo_core.Subpath("/data")}},
    ttl_seconds=600, holder=HOLDER.public_key)


def payloads(**raw: bytes) -> dict[str, Payload]:
    return {name.replace("_", "-"): Payload(data=value) for name, value in raw.items()}


def test_round_trip_compressed_and_plain():
    for compress in (True, False):
        ctx = H.WarrantContext.build(WARRANT, "agent1", compress=compress)
        assert ctx.payloads[H.COMPRESSED].data == (b"1" if compress else b"0")
        assert ctx.payloads[H.WIRE_FORMAT].data == b"2"
        back = H.decode_context(ctx.payloads)
        assert back is not None and back.key_id == "agent1"
        assert back.warrant.id == WARRANT.id and len(back.chain) == 1
        assert H.CHAIN not in ctx.payloads  # only for delegated chains


def test_chain_round_trip_and_mismatch():
    child = WARRANT.attenuate({"read_file": {"path": tenuo_core.Subpath("/data/a")}},
                              signing_key=HOLDER, ttl_seconds=60, holder=CHILD.public_key)
    ctx = H.WarrantContext.build(child, "child", [WARRANT, child])
    back = H.decode_context(ctx.payloads)
    assert back is not None and [w.id for w in back.chain] == [WARRANT.id, child.id]
    other = dict(ctx.payloads)
    other[H.WARRANT] = H.WarrantContext.build(WARRANT, "x").payloads[H.WARRANT]
    with pytest.raises(HeaderError, match="does not end with the presented warrant"):
        H.decode_context(other)


def test_absent_warrant_is_none():
    assert H.decode_context({}) is None
    assert H.decode_context({"other": Payload(data=b"x")}) is None


def flipped(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index % len(out)] ^= 0x01
    return bytes(out)


RAW = bytes(WARRANT.to_bytes())


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (payloads(x_tenuo_warrant=RAW[:-7], x_tenuo_compressed=b"0"), "does not decode"),
        (payloads(x_tenuo_warrant=flipped(RAW, 40), x_tenuo_compressed=b"0"), "does not decode"),
        (payloads(x_tenuo_warrant=b"not gzip", x_tenuo_compressed=b"1"), "not valid gzip"),
        (payloads(x_tenuo_warrant=gzip.compress(b"\0" * (10 * 1024 * 1024)),
                  x_tenuo_compressed=b"1"), "exceeds"),
        (payloads(x_tenuo_warrant=b"x" * (H.MAX_HEADER_BYTES + 1)), "limit"),
        (payloads(x_tenuo_warrant=RAW, x_tenuo_wire_format=b"3"), "unknown wire format"),
        (payloads(x_tenuo_warrant=RAW, x_tenuo_compressed=b"yes"), "must be 0 or 1"),
        (payloads(x_tenuo_warrant=RAW, x_tenuo_key_id=b"\xff\xfe"), "not UTF-8"),
        (payloads(x_tenuo_warrant=RAW, x_tenuo_key_id=b"a" * 300), "limit"),
        (payloads(x_tenuo_warrant=RAW, x_tenuo_warrant_chain=b"@@@"), "chain does not decode"),
    ],
    ids=["truncated", "bit-flip", "bad-gzip", "gzip-bomb", "oversized", "wire-format",
         "compressed-flag", "key-id-utf8", "key-id-long", "chain-garbage"],
)
def test_malformed_headers_raise_header_error(headers, message):
    with pytest.raises(HeaderError, match=message) as info:
        H.decode_context(headers)
    assert info.value.type == "TENUO_HEADER_INVALID"


@pytest.mark.parametrize(
    ("value", "message"),
    [(b"!!!", "not base64"), (base64.b64encode(b"x" * 63), "63 bytes"),
     (base64.b64encode(b"x" * 65), "65 bytes")],
)
def test_pop_header_validation(value, message):
    with pytest.raises(HeaderError, match=message):
        H.decode_pop({H.POP: value})
    assert H.decode_pop({}) is None
    assert H.decode_pop({H.POP: base64.b64encode(b"x" * 64)}) == b"x" * 64


def test_arg_keys_validation():
    assert H.decode_arg_keys({H.ARG_KEYS: b"path,body"}) == ["path", "body"]
    assert H.decode_arg_keys({H.ARG_KEYS: b""}) == []
    for bad in (b"a,a", b"a,,b", b"\xff"):
        with pytest.raises(HeaderError):
            H.decode_arg_keys({H.ARG_KEYS: bad})


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(
    st.sampled_from([*sorted(H.TENUO_HEADERS), "other"]),
    st.one_of(st.binary(max_size=300), st.just(RAW), st.just(gzip.compress(RAW))),
    max_size=6,
))
def test_any_headers_give_context_none_or_header_error(raw):
    headers = {name: Payload(data=value) for name, value in raw.items()}
    try:
        ctx = H.decode_context(headers)
    except HeaderError:
        return
    if ctx is not None:
        assert ctx.warrant.id == WARRANT.id
