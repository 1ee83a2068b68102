"""The one key decoder: every accepted form, precise errors, and no other exception."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
import tenuo_core
from hypothesis import given, settings
from hypothesis import strategies as st

from tenuo_keys import KeyFormatError, decode_signing_key, encode_signing_key
from tenuo_keys.testing import MATERIAL_FORMS, assert_no_secret, material

KEY = tenuo_core.SigningKey.generate()
SEED = bytes(KEY.secret_key_bytes())
PUB = bytes(KEY.public_key_bytes())


@pytest.mark.parametrize("form", sorted(MATERIAL_FORMS))
def test_every_form_decodes_to_the_same_key(form):
    value = material(KEY, form)
    assert bytes(decode_signing_key(value).public_key_bytes()) == PUB
    if isinstance(value, str):  # bytes holding the same text decode too
        assert bytes(decode_signing_key(value.encode()).public_key_bytes()) == PUB


@pytest.mark.parametrize("fmt", ["base64", "base64url", "hex", "pem"])
def test_encode_round_trips(fmt):
    assert bytes(decode_signing_key(encode_signing_key(KEY, fmt)).public_key_bytes()) == PUB


def test_encode_rejects_unknown_format():
    with pytest.raises(ValueError, match="unknown key encoding"):
        encode_signing_key(KEY, "der")


def test_json_custom_field_and_nested_forms():
    doc = json.dumps({"private_key": SEED.hex(), "kid": "agent1"})
    assert bytes(decode_signing_key(doc, field="private_key").public_key_bytes()) == PUB
    pem_doc = json.dumps({"key": KEY.to_pem()})
    assert bytes(decode_signing_key(pem_doc).public_key_bytes()) == PUB


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (base64.b64encode(SEED[:31]).decode(), "decoded to 31 bytes; expected 32"),
        (SEED[:31], "binary value of 31 bytes"),
        (SEED[:31].hex(), "hex value decodes to 31 bytes"),
        (base64.b64encode(SEED + bytes(32)).decode(), "does not match its seed"),
        (SEED + bytes(32), "does not match its seed"),
        ('{"other": 1}', "no field 'key'"),
        ('{"key": 5}', "is int; expected a string"),
        ('{"key": {"key": "x"}}', "is dict; expected a string"),
        (json.dumps({"key": json.dumps({"key": "x"})}), "nested JSON object"),
        ("[1, 2]", "not a key"),
        ('{"key": ', "not valid JSON"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "not a PKCS#8"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "not an Ed25519"),
        ("   ", "empty"),
        ("x" * 70_000, "far shorter"),
        (12345, "expected bytes or text"),
    ],
)
def test_bad_values_say_what_was_wrong(value, expected):
    with pytest.raises(KeyFormatError) as info:
        decode_signing_key(value, key_id="agent1", backend="vault")
    err = info.value
    assert expected in str(err)
    assert err.key_id == "agent1" and err.backend == "vault" and not err.retryable
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    assert_no_secret(str(err) + repr(err), [KEY])


def test_json_field_names_are_not_echoed():
    secret_name = base64.b64encode(SEED).decode()
    with pytest.raises(KeyFormatError) as info:
        decode_signing_key(json.dumps({secret_name: "x"}))
    assert_no_secret(str(info.value), [KEY])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_any_input_gives_a_key_or_key_format_error(value):
    try:
        key = decode_signing_key(value, key_id="k")
    except KeyFormatError as err:
        assert err.key_id == "k"
    else:
        assert len(bytes(key.public_key_bytes())) == 32


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_any_32_byte_seed_round_trips_through_every_form(seed):
    key = tenuo_core.SigningKey.from_bytes(seed)
    for form in MATERIAL_FORMS:
        decoded = decode_signing_key(material(key, form))
        assert bytes(decoded.public_key_bytes()) == bytes(key.public_key_bytes())


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                     max_size=3),
        max_leaves=10,
    ),
    st.sampled_from(["key", "k", ""]),
)
def test_any_json_document_gives_a_key_or_key_format_error(doc, field):
    with contextlib.suppress(KeyFormatError):
        decode_signing_key(json.dumps(doc), field=field)


@pytest.mark.parametrize(
    "doc",
    [
        '{"key": "%s", "key": "%s"}',
        '{"key": "%s", "note": 1, "note": 2, "x": "%s"}',
        '{"key": "%s", "nested": {"a": 1, "a": "%s"}}',
    ],
)
def test_json_with_a_field_given_twice_is_refused(doc):
    other = tenuo_core.SigningKey.generate()
    text = doc % (encode_signing_key(KEY), encode_signing_key(other))
    with pytest.raises(KeyFormatError, match="more than once") as info:
        decode_signing_key(text, key_id="k", backend="b")
    assert_no_secret(str(info.value) + repr(info.value), [KEY, other])
