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
from tests._warrants import WORKFLOW_SCOPE, read_file_warrant

ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
CHILD = tenuo_core.SigningKey.generate()
WARRANT = read_file_warrant(ROOT, HOLDER)


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


# -- the verifier's single read: activity_headers -----------------------------------


def proto_map(headers: dict[str, Payload]):
    """The headers as the protobuf map a Temporal worker hands to interceptors."""
    from temporalio.bridge.proto.activity_task import activity_task_pb2

    start = activity_task_pb2.Start()
    for name, payload in headers.items():
        start.header_fields[name].CopyFrom(payload)
    return start.header_fields


def activity_payloads(pop: bytes = b"p" * 64, arg_keys: bytes = b"path") -> dict[str, Payload]:
    return {**H.WarrantContext.build(WARRANT, "agent1").payloads,
            H.POP: Payload(data=base64.b64encode(pop)), H.ARG_KEYS: Payload(data=arg_keys)}


def test_activity_headers_read_the_protobuf_map_like_the_dict():
    headers = activity_payloads()
    for given_headers in (headers, proto_map(headers)):
        context, raw_pop, raw_arg_keys = H.activity_headers(given_headers)
        assert context is not None and context.warrant.id == WARRANT.id
        assert context.key_id == "agent1" and len(context.chain) == 1
        assert H.pop_of(raw_pop) == b"p" * 64
        assert H.arg_keys_of(raw_arg_keys) == ("path",)
    # The same header bytes give the same decoded context, once it is kept.
    assert H.decode_context(headers) is H.activity_headers(proto_map(headers))[0]
    assert H.activity_headers({}) == (None, None, None)
    assert H.activity_headers(None) == (None, None, None)


def test_activity_headers_without_a_warrant_still_return_the_pop():
    headers = activity_payloads()
    del headers[H.WARRANT]
    context, raw_pop, raw_arg_keys = H.activity_headers(proto_map(headers))
    assert context is None and raw_pop is not None and raw_arg_keys == b"path"


@pytest.mark.parametrize("name", [H.WARRANT, H.POP, H.ARG_KEYS, H.CHAIN])
def test_every_header_is_capped_before_decoding(name):
    # The context headers are capped by activity_headers (on a context-map miss:
    # nothing oversized is ever in the map); the PoP and the argument names by
    # their decoders, which the verifier always calls next.
    headers = activity_payloads()
    headers[name] = Payload(data=b"x" * (H.MAX_HEADER_BYTES + 1))
    with pytest.raises(HeaderError, match=f"header {name} is .* bytes"):
        _context, raw_pop, raw_arg_keys = H.activity_headers(proto_map(headers))
        H.pop_of(raw_pop)
        H.arg_keys_of(raw_arg_keys)


def test_an_oversized_value_never_hits_the_context_map():
    headers = activity_payloads()
    H.activity_headers(proto_map(headers))  # the real value is in the map now
    oversized = b"x" * (H.MAX_HEADER_BYTES + 1)
    for name in (H.WARRANT, H.KEY_ID, H.CHAIN):
        bad = {**headers, name: Payload(data=oversized)}
        with pytest.raises(HeaderError, match=f"header {name} is .* bytes"):
            H.activity_headers(proto_map(bad))
    assert all(len(digest[0]) == 32 and context.cost <= H.SMALL_CONTEXT_BYTES + 2 * 65536
               for digest, context in H._context_cache.items())


def test_activity_headers_refuse_what_decode_context_refuses():
    headers = activity_payloads()
    headers[H.WIRE_FORMAT] = Payload(data=b"9")
    with pytest.raises(HeaderError, match="unknown wire format"):
        H.activity_headers(proto_map(headers))


def test_decoded_contexts_are_bounded_by_the_bytes_they_hold():
    count = H.CONTEXT_CACHE_BYTES // 4096 + 50  # more than fit, at 4 KiB of overhead each
    for i in range(count):
        H.decode_context({**H.WarrantContext.build(WARRANT, f"key-{i}").payloads})
    assert H._context_cache.currsize <= H.CONTEXT_CACHE_BYTES
    assert len(H._context_cache) < count
    assert H._context_cache.view.keys() == set(H._context_cache.keys())  # the hot path's view


def test_the_activity_side_keeps_a_context_only_once_it_is_remembered():
    headers = activity_payloads()
    headers[H.KEY_ID] = Payload(data=b"never-trusted")
    first = H.activity_headers(proto_map(headers))[0]
    assert first is not None and first.digest is not None
    assert first.digest not in H._context_cache  # decoded, checked by nobody: not kept
    assert H.activity_headers(proto_map(headers))[0] is not first
    H.remember(first)  # what the verifier does once the chain is trusted
    assert H.activity_headers(proto_map(headers))[0] is first


def test_a_large_context_is_never_kept_nor_hashed():
    headers = H.WarrantContext.build(WARRANT, "agent1", compress=False).payloads
    context = H.decode_context(headers)
    assert context is not None and context.digest in H._context_cache  # small: kept
    # Padding the gzip header's comment field makes a large value that still decodes.
    padded = gzip.compress(bytes(WARRANT.to_bytes()))
    padded = padded[:3] + bytes([padded[3] | 0x10]) + padded[4:10] + b"c" * 40_000 + b"\0" \
        + padded[10:]
    large = {**headers, H.WARRANT: Payload(data=padded), H.COMPRESSED: Payload(data=b"1")}
    decoded = H.decode_context(large)
    assert decoded is not None and decoded.digest is None
    assert all(kept is not decoded for kept in H._context_cache.values())


def test_the_map_key_holds_digests_and_small_values_only():
    key = H._digest((b"w" * 1000, b"1", b"2", b"agent", b"c" * 2000))
    assert key is not None and all(part is None or len(part) <= 32 for part in key)
    assert H._digest((b"w", b"1", b"2", b"agent", None)) != H._digest((b"w", b"1", b"2",
                                                                        b"agent", b""))
    assert H._digest((b"ab", b"1", None, None, None)) != H._digest((b"ab", None, b"1", None,
                                                                     None))
    for oversized in ((b"w", b"1", b"2", b"k" * (H.MAX_KEY_ID_BYTES + 1), None),
                      (b"w", b"11", b"2", None, None), (b"w", b"1", b"22", None, None)):
        assert H._digest(oversized) is None  # refused by the decoder; never kept


def test_trailing_data_after_the_gzip_stream_is_refused():
    headers = H.WarrantContext.build(WARRANT, "agent1").payloads
    junk = {**headers, H.WARRANT: Payload(data=headers[H.WARRANT].data + b"\0" * 100)}
    with pytest.raises(HeaderError, match="after its gzip stream"):
        H.decode_context(junk)
    second_member = headers[H.WARRANT].data * 2  # two gzip members: the second is trailing
    with pytest.raises(HeaderError, match="after its gzip stream"):
        H.decode_context({**headers, H.WARRANT: Payload(data=second_member)})


def test_trailing_bytes_after_the_warrant_are_refused():
    headers = H.WarrantContext.build(WARRANT, "agent1", compress=False).payloads
    junk = {**headers, H.WARRANT: Payload(data=headers[H.WARRANT].data + b"junk")}
    with pytest.raises(HeaderError, match="bytes after the warrant"):
        H.decode_context(junk)


def test_trailing_bytes_after_the_chain_are_refused():
    root = tenuo_core.SigningKey.from_bytes(bytes([7]) * 32)
    parent = tenuo_core.Warrant.issue(keypair=root, capabilities={"read": {}}, ttl_seconds=600,
                                      holder=HOLDER.public_key)
    child = parent.attenuate({"read": {}}, signing_key=HOLDER, ttl_seconds=300,
                             holder=HOLDER.public_key)
    headers = H.WarrantContext.build(child, "agent1", [parent, child]).payloads
    assert H.decode_context(headers) is not None
    encoded = headers[H.CHAIN].data
    stack = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
    candidates = [encoded + b"QUFBQQ==", *(encode(stack + b"x" * n) for n in range(1, 9)
                                          for encode in (base64.urlsafe_b64encode,
                                                         base64.b64encode))]
    accepted = [tail for tail in candidates if _decodes(tail)]
    assert accepted, "tenuo_core refuses every tail: nothing to prove"
    for tail in accepted:
        with pytest.raises(HeaderError, match="after the chain"):
            H.decode_context({**headers, H.CHAIN: Payload(data=tail)})


def _decodes(tail: bytes) -> bool:
    try:
        return len(tenuo_core.decode_warrant_stack_base64(tail.decode())) == 2
    except Exception:
        return False


def test_long_argument_name_lists_are_decoded_but_never_kept():
    value = ",".join(f"name{i}" for i in range(400)).encode()
    held = H._small_arg_keys.cache_info().currsize
    assert len(H.arg_keys_of(value) or ()) == 400
    assert H._small_arg_keys.cache_info().currsize == held  # decoded, not kept
    assert H.arg_keys_of(b"long,b") == ("long", "b")
    assert H._small_arg_keys.cache_info().currsize == held + 1


def test_arg_keys_of_is_memoized_and_still_validates():
    assert H.arg_keys_of(b"a,b") == ("a", "b")
    assert H.arg_keys_of(b"a,b") is H.arg_keys_of(b"a,b")
    assert H.arg_keys_of(None) is None
    for bad in (b"a,a", b",", b"\xff", b"a,\x00"):
        with pytest.raises(HeaderError):
            H.arg_keys_of(bad)


def test_pop_of_is_strict_base64():
    good = base64.b64encode(b"q" * 64)
    assert H.pop_of(good) == b"q" * 64
    for bad in (good[:-1], good + b"=", b" " + good, b"*" + good[1:]):
        with pytest.raises(HeaderError):
            H.pop_of(bad)


def test_workflow_scoped_is_read_once_per_context():
    scoped = read_file_warrant(ROOT, HOLDER, **WORKFLOW_SCOPE)
    context = H.WarrantContext.build(scoped, "agent1")
    assert context.workflow_scoped("read_file") is True
    assert context.workflow_scoped("read_file") is True  # from the memo
    assert H.WarrantContext.build(WARRANT, "agent1").workflow_scoped("read_file") is False
    assert context.holder.to_bytes() == HOLDER.public_key.to_bytes()
    assert str(context.warrant.id) == str(scoped.id)
