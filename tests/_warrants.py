"""The warrants the in-process ``tenuo_temporal`` tests sign and check."""

from __future__ import annotations

from typing import Any

import tenuo_core

WORKFLOW_SCOPE: dict[str, Any] = {
    "_workflow_namespace": tenuo_core.Exact("default"),
    "_workflow_id": tenuo_core.Pattern("wf-*"),
}
"""Constraints that bind ``read_file`` to namespace ``default`` and workflow ids ``wf-*``."""


def read_file_warrant(root: Any, holder: Any, *, ttl_seconds: int = 600, **extra: Any) -> Any:
    """A warrant from ``root`` to ``holder`` for ``read_file`` under ``/data``.

    Args:
        root: The issuer's ``SigningKey``.
        holder: The holder's ``SigningKey``.
        ttl_seconds: Its lifetime.
        **extra: More constraints on ``read_file`` (e.g. ``**WORKFLOW_SCOPE``).
    """
    constraints = {"path": tenuo_core.Subpath("/data"), **extra}
    return tenuo_core.Warrant.issue(keypair=root, capabilities={"read_file": constraints},
                                    ttl_seconds=ttl_seconds, holder=holder.public_key)
