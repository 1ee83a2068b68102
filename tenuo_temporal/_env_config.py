"""``TenuoPluginConfig.from_env()``: the plugin's configuration read from ``TENUO_*`` variables.

:data:`VARIABLES` is the table (variable, field, form). Values are never
echoed in errors or warnings: a resolver or Redis URL can hold a token or a
password, so an error names the variable and the form it expects, nothing
more. Unknown ``TENUO_*`` variables are warned about (a typo would otherwise
silently leave a default in place); holder keys under the env resolver's
prefix (``TENUO_KEY_<id>``) and the variables ``tenuo`` itself reads are not.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tenuo_keys import EnvKeyResolver, ResolverConfigError, resolver_from_url

from ._redis_store import RedisReplayStore
from ._replay import InMemoryReplayStore

__all__ = ["DEFAULT_KEY_RESOLVER", "VARIABLES", "EnvSetting", "TenuoEnvWarning", "env_options"]

DEFAULT_KEY_RESOLVER = "env://"
"""The resolver when ``TENUO_KEY_RESOLVER`` is unset: keys in ``TENUO_KEY_<id>``."""

#: Variables of the ``tenuo`` package itself (control plane, test mode...): not ours, not unknown.
TENUO_OWN = frozenset({
    "TENUO_ENV", "TENUO_ROOT_KEY", "TENUO_TEST_MODE", "TENUO_API_KEY", "TENUO_CONNECT_TOKEN",
    "TENUO_CONTROL_PLANE_URL", "TENUO_AUTHORIZER_NAME", "TENUO_WARRANT",
    "TENUO_REQUIRE_EXTENSION",
})
SIGNING_KEY_VAR = "TENUO_SIGNING_KEY"


class TenuoEnvWarning(UserWarning):
    """A ``TENUO_*`` variable that ``from_env`` does not read."""


class _Malformed(Exception):
    """A value not of the expected form (the caller names the variable)."""


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise _Malformed


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise _Malformed from None


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise _Malformed
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise _Malformed
    return value


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _roots(text: str) -> list[str] | str:
    if "://" in text:
        return text.strip()  # a root-set document URL, read by TenuoPluginConfig
    roots = _names(text)
    if not roots:
        raise _Malformed
    return roots  # decoded, each named by index, by TenuoPluginConfig


def _mappings(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in _names(text):
        activity, sep, tool = pair.partition("=")
        if not sep or not activity.strip() or not tool.strip():
            raise _Malformed
        out[activity.strip()] = tool.strip()
    return out


def _replay_protection(text: str) -> bool | str:
    lowered = text.strip().lower()
    if lowered in ("run", "strict"):
        return lowered
    return _bool(lowered)


def _replay_store(text: str) -> Any:
    value = text.strip()
    if value == "memory":
        return InMemoryReplayStore()
    if value.startswith(("redis://", "rediss://", "valkey://", "valkeys://")):
        return RedisReplayStore(value.replace("valkey", "redis", 1))
    raise _Malformed


def _key_resolver(text: str) -> Any:
    value = text.strip()
    if value.lower() == "none":
        return None
    return resolver_from_url(value)


@dataclass(frozen=True)
class EnvSetting:
    """One row of the table: a variable, the config field it sets, and its form.

    Attributes:
        variable: The environment variable.
        field: The ``TenuoPluginConfig`` field.
        form: What the value must look like (shown in errors instead of the value).
        parse: Turns the text into the field's value.
    """

    variable: str
    field: str
    form: str
    parse: Callable[[str], Any]


_BOOL = "true or false (also 1/0, yes/no, on/off)"
VARIABLES: tuple[EnvSetting, ...] = (
    EnvSetting("TENUO_KEY_RESOLVER", "key_resolver",
               "a resolver URL (env://, vault://, awssm://, gcpsm://, ...; default env://), "
               "or none for a verify-only worker", _key_resolver),
    EnvSetting("TENUO_TRUSTED_ROOTS", "trusted_roots",
               "comma-separated Ed25519 public keys, each 32 bytes in hex, base64 or "
               "base64url; or a root-set document URL (vault://, awssm://, gcpsm://, "
               "file:///)", _roots),
    EnvSetting("TENUO_REQUIRE_WARRANT", "require_warrant", _BOOL, _bool),
    EnvSetting("TENUO_POP_MAX_WINDOWS", "pop_max_windows", "an integer >= 1", _positive_int),
    EnvSetting("TENUO_CLOCK_TOLERANCE_SECS", "clock_tolerance_secs", "an integer >= 0",
               _non_negative_int),
    EnvSetting("TENUO_MAX_CHAIN_DEPTH", "max_chain_depth", "an integer >= 1", _positive_int),
    EnvSetting("TENUO_REPLAY_PROTECTION", "replay_protection",
               "run, strict, or false (true means run)", _replay_protection),
    EnvSetting("TENUO_REPLAY_STORE", "replay_store",
               "memory, or a redis://, rediss://, valkey:// or valkeys:// URL",
               _replay_store),
    EnvSetting("TENUO_PRELOAD_KEY_IDS", "preload_key_ids", "comma-separated key ids", _names),
    EnvSetting("TENUO_PRELOAD_ALL", "preload_all", _BOOL, _bool),
    EnvSetting("TENUO_TOOL_MAPPINGS", "tool_mappings",
               "comma-separated activity=tool pairs", _mappings),
    EnvSetting("TENUO_METRICS", "metrics", _BOOL, _bool),
    EnvSetting("TENUO_DELEGATION", "delegation", _BOOL, _bool),
    EnvSetting("TENUO_ACTIVITY_SUMMARIES", "activity_summaries", _BOOL, _bool),
    EnvSetting("TENUO_REQUIRE_WORKFLOW_BINDING", "require_workflow_binding", _BOOL, _bool),
    EnvSetting("TENUO_NEXUS_ENDPOINT", "nexus_endpoint",
               "the Nexus endpoint name this worker's Nexus handlers serve", str.strip),
)
_BY_VARIABLE = {setting.variable: setting for setting in VARIABLES}


def env_options(environ: Mapping[str, str] | None = None,
                skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``TenuoPluginConfig`` keyword arguments from the ``TENUO_*`` variables.

    Args:
        environ: Read instead of ``os.environ``.
        skip: Fields given explicitly: their variables are not read.

    Returns:
        The fields the variables set (``trusted_roots`` as the key strings).

    Raises:
        ResolverConfigError: A malformed value, naming the variable and the form
            it expects, never the value.
    """
    env = os.environ if environ is None else environ
    options: dict[str, Any] = {}
    for setting in VARIABLES:
        text = env.get(setting.variable)
        if setting.field in skip or text is None or not text.strip():
            continue
        try:
            options[setting.field] = setting.parse(text)
        except _Malformed:
            raise ResolverConfigError(
                f"${setting.variable} is malformed: expected {setting.form}") from None
        except ResolverConfigError as error:  # tenuo_keys' own: URLs redacted
            raise ResolverConfigError(f"${setting.variable}: {error}") from None
        except Exception as error:  # another library's message may quote the URL
            raise ResolverConfigError(
                f"${setting.variable} is not usable ({type(error).__name__}): expected "
                f"{setting.form}") from None
    if "key_resolver" not in skip and "key_resolver" not in options:
        options["key_resolver"] = resolver_from_url(DEFAULT_KEY_RESOLVER)
    _warn_unknown(env, options.get("key_resolver"))
    return options


def _warn_unknown(env: Mapping[str, str], resolver: Any) -> None:
    key_prefixes = ["TENUO_KEY_"]
    if isinstance(resolver, EnvKeyResolver):
        key_prefixes.append(resolver.prefix)
    for name in sorted(env):
        if not name.startswith("TENUO_") or name in _BY_VARIABLE or name in TENUO_OWN:
            continue
        if name != "TENUO_KEY_RESOLVER" and name.startswith(tuple(key_prefixes)):
            continue  # a holder key the env resolver serves
        if name == SIGNING_KEY_VAR:
            warnings.warn(
                f"${name} is tenuo.temporal 0.3.3's one signing key; tenuo_temporal signs "
                "with keys by key id: put it in TENUO_KEY_<key id> (the default env:// "
                "resolver) instead. It is not read", TenuoEnvWarning, stacklevel=4)
            continue
        close = difflib.get_close_matches(name, list(_BY_VARIABLE), n=1)
        hint = f" (did you mean ${close[0]}?)" if close else ""
        warnings.warn(f"${name} is not a tenuo_temporal setting and is ignored{hint}",
                      TenuoEnvWarning, stacklevel=4)
