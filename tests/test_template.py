"""The key-name template every backend parses with (``tenuo_keys._template``)."""

from __future__ import annotations

import re

import pytest

from tenuo_keys._template import NO_BRACES, PLACEHOLDER, KeyTemplate, TemplateError


def test_parse_splits_at_the_placeholder_and_renders() -> None:
    names = KeyTemplate.parse("tenuo/keys/{key_id}.pem")
    assert (names.prefix, names.suffix, names.has_key_id) == ("tenuo/keys/", ".pem", True)
    assert names.render("agent1") == "tenuo/keys/agent1.pem"
    assert names.text == "tenuo/keys/{key_id}.pem"


def test_key_id_of_reads_the_id_back_and_refuses_what_does_not_fit() -> None:
    names = KeyTemplate.parse("pre-{key_id}-post")
    assert names.key_id_of("pre-agent1-post") == "agent1"
    assert names.key_id_of(names.render("a-b")) == "a-b"
    assert names.key_id_of("pre--post") is None  # an empty id
    assert names.key_id_of("other-agent1-post") is None
    assert names.key_id_of("pre-agent1-postx") is None
    assert KeyTemplate.parse("{key_id}").key_id_of("x") == "x"


@pytest.mark.parametrize("text", ["no-placeholder", "{key_id}{key_id}", ""])
def test_a_required_placeholder_must_stand_exactly_once(text: str) -> None:
    with pytest.raises(TemplateError) as caught:
        KeyTemplate.parse(text)
    assert caught.value.chars is False
    assert isinstance(caught.value, ValueError)


def test_an_optional_placeholder_names_one_fixed_key() -> None:
    fixed = KeyTemplate.parse("agent1", optional=True)
    assert not fixed.has_key_id
    assert fixed.render("ignored") == "agent1"
    assert fixed.key_id_of("agent1") is None
    with pytest.raises(TemplateError):
        KeyTemplate.parse("a{key_id}{key_id}", optional=True)


def test_chars_apply_to_each_side_and_are_told_apart() -> None:
    chars = re.compile(r"[a-z-]*")
    assert KeyTemplate.parse("a-{key_id}-b", chars=chars).render("X") == "a-X-b"
    with pytest.raises(TemplateError) as caught:
        KeyTemplate.parse("a/{key_id}", chars=chars)
    assert caught.value.chars is True
    with pytest.raises(TemplateError) as braces:
        KeyTemplate.parse("a{b}/{key_id}", chars=NO_BRACES)
    assert braces.value.chars is True


def test_a_non_string_is_refused() -> None:
    with pytest.raises(TemplateError):
        KeyTemplate.parse(42)
    assert PLACEHOLDER == "{key_id}"
