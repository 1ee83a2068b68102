"""The key-name template every backend uses: ``tenuo/keys/{key_id}`` and the like.

A template is a backend name with ``{key_id}`` where the key id goes. It is
parsed once (:meth:`KeyTemplate.parse`) into the text before and after the
placeholder; :meth:`KeyTemplate.render` makes a key id's name and
:meth:`KeyTemplate.key_id_of` reads the key id back out of a listed name.
What may stand around the placeholder is the backend's business (``chars``),
and so is the wording of the error, which each backend keeps its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["NO_BRACES", "PLACEHOLDER", "KeyTemplate", "TemplateError"]

PLACEHOLDER: Final = "{key_id}"
"""Where the key id goes in a name template."""
NO_BRACES: Final = re.compile(r"[^{}]*")
"""``chars`` for a template that may hold anything around the placeholder but braces."""


class TemplateError(ValueError):
    """A template that does not parse; backends turn it into their own config error.

    Attributes:
        chars: True when the placeholder count was right but the text around
            it holds a character the backend does not allow.
    """

    def __init__(self, template: object, *, chars: bool) -> None:
        super().__init__(f"bad key-name template {template!r}")
        self.chars = chars


@dataclass(frozen=True)
class KeyTemplate:
    """A parsed name template: the text around its ``{key_id}``.

    Attributes:
        text: The template as given.
        prefix: The text before the placeholder (the whole text when it has none).
        suffix: The text after it ('' when it has none).
        has_key_id: Whether it holds the placeholder; without it, it names
            one fixed key.
    """

    text: str
    prefix: str
    suffix: str
    has_key_id: bool

    @classmethod
    def parse(cls, text: object, *, optional: bool = False,
              chars: re.Pattern[str] | None = None) -> KeyTemplate:
        """Split ``text`` at its placeholder.

        Args:
            text: The template.
            optional: Accept a template without the placeholder (one fixed
                name); else it must hold it exactly once.
            chars: What the text before and after the placeholder must each
                fully match (None: anything).

        Raises:
            TemplateError: Not a string, the placeholder missing (unless
                ``optional``) or repeated (``chars=False``), or a character
                outside ``chars`` (``chars=True``).
        """
        if not isinstance(text, str):
            raise TemplateError(text, chars=False)
        count = text.count(PLACEHOLDER)
        if count > 1 or (count == 0 and not optional):
            raise TemplateError(text, chars=False)
        prefix, _, suffix = text.partition(PLACEHOLDER)
        if chars is not None and not (chars.fullmatch(prefix) and chars.fullmatch(suffix)):
            raise TemplateError(text, chars=True)
        return cls(text, prefix, suffix, count == 1)

    def render(self, key_id: str) -> str:
        """The name of ``key_id`` (the fixed name when there is no placeholder)."""
        return f"{self.prefix}{key_id}{self.suffix}" if self.has_key_id else self.text

    def key_id_of(self, name: str) -> str | None:
        """The non-empty key id whose name is ``name``, or None when it does not fit."""
        prefix, suffix = self.prefix, self.suffix
        if not self.has_key_id or len(name) <= len(prefix) + len(suffix):
            return None
        if not (name.startswith(prefix) and name.endswith(suffix)):
            return None
        return name[len(prefix):len(name) - len(suffix)]
