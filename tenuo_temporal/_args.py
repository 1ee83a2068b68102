"""Argument naming and canonicalization, identical on both sides of the wire.

The PoP signs a dict of named, JSON-shaped values. The workflow side holds
the objects the workflow passed; the activity side holds what the data
converter rebuilt from them. Both reduce values with :func:`canonical`, so a
dataclass, a pydantic model, a datetime or an enum signs and verifies the same
on either side (the 0.3.3 reference signs JSON but verifies raw objects, and
so denies every dataclass argument).

What is signed is every value the activity body receives:

* integers only within ±2**53: ``tenuo_core`` signs and compares numbers as
  64-bit floats, so a larger integer would sign (and satisfy a ``Range``)
  for its neighbours too; it is refused on both sides instead;
* a pydantic model by its fields, not by ``model_dump``: a field with
  ``exclude=True`` is still delivered to the activity (the data converter
  rebuilds it from whatever the payload holds), so it is signed too;
* a ``SecretStr``/``SecretBytes`` by a SHA-256 digest of its value, so the
  PoP binds the secret while no view, audit event or error ever holds it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import functools
import hashlib
import inspect
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from ._bounded import BoundedMap
from .errors import TemporalConstraintViolation

__all__ = ["WORKFLOW_SCOPE_ARGS", "add_workflow_scope", "canonical", "canonical_args",
           "check_reserved", "exact_int", "names_for", "param_names", "positional",
           "positional_names", "workflow_scoped"]

MAX_DEPTH = 32
MAX_EXACT_INT = 2**53
"""Largest integer magnitude ``tenuo_core`` signs and compares exactly (a 64-bit float)."""
SECRET_PREFIX = "tenuo-secret-sha256:"  # noqa: S105 - a label, not a secret
"""How a pydantic secret is signed: this prefix and the hex SHA-256 of its value."""

WORKFLOW_NAMESPACE_ARG = "_workflow_namespace"
WORKFLOW_ID_ARG = "_workflow_id"
WORKFLOW_SCOPE_ARGS = frozenset({WORKFLOW_NAMESPACE_ARG, WORKFLOW_ID_ARG})
"""Reserved names filled from Temporal, never from the caller (``tenuo.temporal`` 0.3.3)."""


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
        return exact_int(int(value))
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
    fields = getattr(type(value), "model_fields", None)
    if isinstance(fields, Mapping) and callable(getattr(value, "model_dump", None)):
        return _model(value, fields, _depth)
    secret = getattr(value, "get_secret_value", None)
    if callable(secret):  # pydantic SecretStr / SecretBytes
        raw = secret()
        data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
        return SECRET_PREFIX + hashlib.sha256(data).hexdigest()
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


def exact_int(value: int) -> int:
    """``value`` when ``tenuo_core`` represents it exactly.

    Raises:
        TemporalConstraintViolation: Its magnitude is over 2**53.
    """
    if -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
        return value
    raise TemporalConstraintViolation(
        "an integer argument is outside ±2**53: tenuo_core signs and compares numbers as "
        "64-bit floats, so it cannot bind it exactly; pass it as a string")


def _model(value: Any, fields: Mapping[str, Any], depth: int) -> dict[str, Any]:
    """A pydantic v2 model: every field, excluded ones too, and any extra fields."""
    out = {name: canonical(getattr(value, name), depth + 1) for name in fields}
    extra = getattr(value, "__pydantic_extra__", None)
    for key, item in (extra or {}).items():
        if str(key) in out:
            raise TemporalConstraintViolation(
                f"extra field {str(key)!r} of {type(value).__name__} shadows a declared one")
        out[str(key)] = canonical(item, depth + 1)
    return out


def canonical_args(names: Sequence[str], args: Sequence[Any]) -> dict[str, Any]:
    """Name positional ``args`` and canonicalize each value."""
    if len(names) != len(args):
        raise TemporalConstraintViolation(
            f"{len(args)} argument(s) but {len(names)} name(s) in the signed view"
        )
    out: dict[str, Any] = {}
    for name, value in zip(names, args, strict=True):
        # Exact str/int/bool/None are already canonical: skip the dispatch
        # (this runs on both sides of every activity).
        kind = type(value)
        if kind is str or kind is bool or value is None:
            out[name] = value
        elif kind is int:
            out[name] = value if -MAX_EXACT_INT <= value <= MAX_EXACT_INT else exact_int(value)
        else:
            out[name] = canonical(value)
    return out


def positional_names(count: int) -> list[str]:
    """``arg0``, ``arg1``, ...: the names used when the signature is unknown."""
    return list(positional(count))


def positional(count: int) -> tuple[str, ...]:
    """:func:`positional_names` as a tuple, memoized up to 64 arguments (the hot path).

    The count comes from the delivered arguments, which a sender chooses: a
    longer list is built afresh, never kept.
    """
    if count <= _POSITIONAL_MEMO:
        return _positional(count)
    return tuple(f"arg{i}" for i in range(count))


_POSITIONAL_MEMO = 64


@functools.lru_cache(maxsize=_POSITIONAL_MEMO + 1)
def _positional(count: int) -> tuple[str, ...]:
    return tuple(f"arg{i}" for i in range(count))


def param_names(fn: Callable[..., Any] | None, count: int) -> list[str] | None:
    """Names of the first ``count`` positional parameters of ``fn``.

    Returns:
        The names, or None when ``fn`` is unknown or takes ``*args``.
    """
    names = names_for(fn, count)
    return None if names is None else list(names)


def names_for(fn: Callable[..., Any] | None, count: int) -> tuple[str, ...] | None:
    """:func:`param_names` as a tuple, memoized per ``(fn, count)`` (the hot path)."""
    if fn is None:
        return None
    try:
        return _names_view[fn, count]  # a plain dict read
    except KeyError:
        pass
    except TypeError:  # unhashable callable
        return _slice(_positional_params.__wrapped__(fn), count)
    names = _slice(_positional_params(fn), count)
    _names_memo[fn, count] = names
    return names


def _slice(names: tuple[str, ...] | None, count: int) -> tuple[str, ...] | None:
    if names is None or count > len(names):
        return None
    return names[:count]


_names_memo: BoundedMap[tuple[Any, int], tuple[str, ...] | None] = BoundedMap(4096)
_names_view = _names_memo.view


@functools.lru_cache(maxsize=1024)
def _positional_params(fn: Callable[..., Any]) -> tuple[str, ...] | None:
    # inspect.signature costs microseconds; it runs for every activity otherwise.
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
    return tuple(names)


def check_reserved(args: Mapping[str, Any]) -> None:
    """Refuse arguments named like the workflow scope.

    Raises:
        TemporalConstraintViolation: An argument uses a reserved name.
    """
    if WORKFLOW_NAMESPACE_ARG in args or WORKFLOW_ID_ARG in args:
        reserved = sorted(WORKFLOW_SCOPE_ARGS.intersection(args))
        raise TemporalConstraintViolation(
            f"argument name(s) {reserved} are reserved for the workflow scope")


def workflow_scoped(capabilities: Mapping[str, Any], tool: str) -> bool:
    """Whether the capability for ``tool`` binds calls to the running workflow.

    Args:
        capabilities: ``Warrant.capabilities`` of the leaf warrant.
        tool: The tool called.

    Raises:
        TemporalConstraintViolation: The capability constrains only one of
            ``_workflow_namespace`` and ``_workflow_id``.
    """
    fields = capabilities.get(tool, capabilities.get("*"))
    if not isinstance(fields, Mapping):
        return False
    has_namespace, has_id = WORKFLOW_NAMESPACE_ARG in fields, WORKFLOW_ID_ARG in fields
    if has_namespace != has_id:
        raise TemporalConstraintViolation(
            f"workflow scoping of {tool!r} must constrain both {WORKFLOW_NAMESPACE_ARG!r} "
            f"and {WORKFLOW_ID_ARG!r}: a workflow id is unique only within its namespace")
    return has_namespace


def add_workflow_scope(args: Mapping[str, Any], namespace: str | None,
                       workflow_id: str | None) -> dict[str, Any]:
    """``args`` plus the workflow identity, for a workflow-scoped capability.

    Raises:
        TemporalConstraintViolation: Temporal gave no complete workflow identity.
    """
    if not namespace or not workflow_id:
        raise TemporalConstraintViolation("Temporal gave no complete workflow identity")
    return {**args, WORKFLOW_NAMESPACE_ARG: namespace, WORKFLOW_ID_ARG: workflow_id}
