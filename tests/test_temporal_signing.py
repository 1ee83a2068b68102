"""``signed_view``: the one signed view both the outbound interceptor and presigning use."""

from __future__ import annotations

import pytest
import tenuo_core
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tenuo_temporal import _headers as H
from tenuo_temporal._signing import signed_view
from tests._warrants import WORKFLOW_SCOPE, read_file_warrant

ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
PLAIN = read_file_warrant(ROOT, HOLDER)
SCOPED = read_file_warrant(ROOT, HOLDER, **WORKFLOW_SCOPE)
HALF = read_file_warrant(ROOT, HOLDER, _workflow_id=tenuo_core.Pattern("wf-*"))


@activity.defn
async def read_file(path: str, limit: int) -> str:
    return path


def context(warrant: object) -> H.WarrantContext:
    return H.WarrantContext.build(warrant, "agent1")


def no_identity() -> tuple[str | None, str | None]:
    raise AssertionError("asked for the workflow identity without a scoped capability")


def test_names_come_from_the_function_else_positions() -> None:
    assert signed_view(read_file, ["/data/a", 3], "read_file", context(PLAIN), no_identity) \
        == (("path", "limit"), {"path": "/data/a", "limit": 3})
    assert signed_view(None, ["/data/a", 3], "read_file", context(PLAIN), no_identity) \
        == (("arg0", "arg1"), {"arg0": "/data/a", "arg1": 3})


def test_a_scoped_capability_adds_the_workflow_identity() -> None:
    names, signed = signed_view(read_file, ["/data/a", 3], "read_file", context(SCOPED),
                                lambda: ("default", "wf-1"))
    assert names == ("path", "limit")
    assert signed == {"path": "/data/a", "limit": 3, "_workflow_namespace": "default",
                      "_workflow_id": "wf-1"}


@pytest.mark.parametrize(("warrant", "fn", "args", "identity", "message"), [
    (PLAIN, None, [object()], no_identity, "has no canonical form"),
    (PLAIN, None, [2**60], no_identity, r"outside ±2\*\*53"),
    (SCOPED, None, [{"a": 1}], lambda: (None, "wf-1"), "no complete workflow identity"),
    (HALF, None, ["/data/a"], no_identity, "must constrain both"),
])
def test_a_view_that_cannot_be_signed_is_a_typed_denial(
        warrant: object, fn: object, args: list[object], identity: object, message: str) -> None:
    with pytest.raises(ApplicationError, match=message) as caught:
        signed_view(fn, args, "read_file", context(warrant), identity)  # type: ignore[arg-type]
    assert caught.value.non_retryable
    assert caught.value.type == "TENUO_CONSTRAINT_VIOLATION"


def test_reserved_names_are_refused() -> None:
    @activity.defn
    async def sneaky(_workflow_id: str) -> None:
        return None

    with pytest.raises(ApplicationError, match="reserved for the workflow scope") as caught:
        signed_view(sneaky, ["wf-2"], "read_file", context(PLAIN), no_identity)
    assert caught.value.type == "TENUO_CONSTRAINT_VIOLATION"
