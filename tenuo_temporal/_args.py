"""Argument naming and canonicalization, identical on both sides of the wire.

The PoP signs a dict of named, JSON-shaped values. The workflow side holds
the objects the workflow passed; the activity side holds what the data
converter rebuilt from them. Both reduce values with :func:`canonical`, so a
dataclass, a pydantic model, a datetime or an enum signs and verifies the same
on either side (the 0.3.3 reference signs JSON but verifies raw objects, and
so denies every dataclass argument).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import inspect
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from .errors import TemporalConstraintViolation

__all__ = ["canonical", "canonical_args", "param_names", "positional_names"]

MAX_DEPTH = 32


def canonical(value: Any, _depth: int = 0) -> Any:
    """Reduce a value to ``None``/bool/int/float/str/list/dict with str keys.

    Raises:
        TemporalConstraintViolation: The value has no canonical form (an
            arbitrary object, a non-finite float, nesting deeper than 32).
    """
    if _depth > MAX_DEPTH:
        raise TemporalConstraintViolation(f"argument nesting deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TemporalConstraintViolation("non-finite float argument")
        return value
    if isinstance(value, enum.Enum):
        return canonical(value.value, _depth + 1)
    if isinstance(value, Mapping):
        return {str(k): canonical(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v, _depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [canonical(v, _depth + 1) for v in value]
        return sorted(items, key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name), _depth + 1)
                for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic v2
        return canonical(dump(mode="json"), _depth + 1)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (uuid.UUID, Decimal, PurePath)):
        return str(value)
    raise TemporalConstraintViolation(
        f"argument of type {type(value).__name__} has no canonical form for signing"
    )


def canonical_args(names: Sequence[str], args: Sequence[Any]) -> dict[str, Any]:
    """Name positional ``args`` and canonicalize each value."""
    if len(names) != len(args):
        raise TemporalConstraintViolation(
            f"{len(args)} argument(s) but {len(names)} name(s) in the signed view"
        )
    return {name: canonical(value) for name, value in zip(names, args, strict=True)}


def positional_names(count: int) -> list[str]:
    """``arg0``, ``arg1``, ...: the names used when the signature is unknown."""
    return [f"arg{i}" for i in range(count)]


def param_names(fn: Callable[..., Any] | None, count: int) -> list[str] | None:
    """Names of the first ``count`` positional parameters of ``fn``.

    Returns:
        The names, or None when ``fn`` is unknown or takes ``*args``.
    """
    if fn is None:
        return None
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    names: list[str] = []
    for param in params:
        if param.kind in (inspect.Parameter.POSITIONAL_ONLY,
                          inspect.Parameter.POSITIONAL_OR_KEYWORD):
            names.append(param.name)
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
    if count > len(names):
        return None
    return names[:count]
