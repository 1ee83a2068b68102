"""Attributes that import an optional dependency on first use, with an install hint.

``tenuo_keys`` (the cloud resolvers) and ``tenuo_keys.testing`` (the
conformance suites, which need pytest) share this: a missing extra is an
``AttributeError`` for ``hasattr``/``getattr`` and an ``ImportError`` for
``from package import name``, both naming the ``pip install`` line.
"""

from __future__ import annotations

import dis
import importlib
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

from .errors import MissingExtraAttributeError, MissingExtraError

__all__ = ["Lazy", "lazy_attribute"]


class Lazy(NamedTuple):
    """Where a lazy attribute lives and what it needs.

    Attributes:
        module: The module that defines it.
        extra: The ``tenuo-keys`` extra that installs its dependencies.
        dependency: The distribution to name in the hint; ``None`` names the
            module that failed to import.
    """

    module: str
    extra: str
    dependency: str | None = None


def lazy_attribute(package: str, table: Mapping[str, Lazy], name: str, *,
                   subject: str | None = None) -> Any:
    """Import and return ``package.name`` from ``table``, for a module ``__getattr__``.

    Args:
        package: The module whose ``__getattr__`` calls this (for the error).
        table: The lazy attributes of ``package``.
        name: The attribute asked for.
        subject: What the hint says needs the dependency (default: the
            ``name`` resolver).

    Raises:
        AttributeError: ``name`` is not in ``table``.
        MissingExtraError: The dependency is missing, under ``from package import name``.
        MissingExtraAttributeError: The dependency is missing, otherwise.
    """
    try:
        lazy = table[name]
    except KeyError:
        raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
    try:
        module = importlib.import_module(lazy.module)
    except ImportError as exc:
        if exc.name and exc.name.startswith("tenuo_keys"):
            raise
        missing = lazy.dependency or exc.name or lazy.extra
        if _importing_from(sys._getframe(2)):
            raise MissingExtraError(name, lazy.extra, missing, subject=subject) from None
        # An AttributeError, so that hasattr(package, name) is False.
        raise MissingExtraAttributeError(name, lazy.extra, missing, subject=subject) from None
    return getattr(module, name)


def _importing_from(frame: Any) -> bool:
    """Whether ``frame`` is running ``from <package> import <name>``.

    There Python would replace an AttributeError by a bare "cannot import
    name", losing the install hint; so that statement gets the ImportError.
    """
    return bool(dis.opname[frame.f_code.co_code[frame.f_lasti]] == "IMPORT_FROM")
