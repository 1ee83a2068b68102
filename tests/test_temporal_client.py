"""The client helpers take temporalio's calling convention as well as tenuo.temporal 0.3.3's."""

from __future__ import annotations

from typing import Any

import pytest
import tenuo_core

from tenuo_keys import ResolverConfigError
from tenuo_temporal import execute_workflow_authorized, start_workflow_authorized
from tenuo_temporal._interceptors import TenuoClientInterceptor
from tenuo_temporal._state import client_context

ROOT = tenuo_core.SigningKey.generate()
HOLDER = tenuo_core.SigningKey.generate()
WARRANT = tenuo_core.Warrant.issue(keypair=ROOT, capabilities={"read_file": {}},
                                   ttl_seconds=600, holder=HOLDER.public_key)


class Handle:
    async def result(self) -> str:
        return "done"


class FakeClient:
    """Records what ``start_workflow`` was given, and the warrant context it ran under."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def config(self, *, active_config: bool = False) -> dict[str, Any]:
        return {"interceptors": [TenuoClientInterceptor()]}

    async def start_workflow(self, workflow: Any, **kwargs: Any) -> Handle:
        context = client_context.get()
        assert context is not None and context.key_id == "agent1"
        self.calls.append((workflow, kwargs))
        return Handle()


def common() -> dict[str, Any]:
    return {"warrant": WARRANT, "key_id": "agent1", "task_queue": "q"}


@pytest.mark.parametrize("helper", [start_workflow_authorized, execute_workflow_authorized])
@pytest.mark.parametrize(("args", "kwargs", "expected_args"), [
    # temporalio's convention: one positional argument and id=.
    (("/data/a.txt",), {"id": "w1"}, ["/data/a.txt"]),
    ((None,), {"id": "w1"}, [None]),
    ((), {"id": "w1", "args": ["a", "b"]}, ["a", "b"]),
    # tenuo.temporal 0.3.3's names.
    ((), {"workflow_id": "w1", "args": ["/data/a.txt"]}, ["/data/a.txt"]),
    ((), {"workflow_id": "w1"}, []),
])
async def test_both_calling_conventions_start_the_same_workflow(helper, args, kwargs,
                                                                expected_args):
    client = FakeClient()
    await helper(client, "Wf.run", *args, **kwargs, **common())
    assert client.calls == [("Wf.run", {"args": expected_args, "id": "w1", "task_queue": "q"})]


async def test_the_reference_keyword_form_still_works():
    client = FakeClient()
    result = await execute_workflow_authorized(
        client=client, workflow_run_fn="Wf.run", workflow_id="w1", args=["x"],
        execution_timeout=None, **common())
    assert result == "done"
    assert client.calls[0][1] == {"args": ["x"], "id": "w1", "task_queue": "q",
                                  "execution_timeout": None}


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((), {"id": "w1", "workflow_id": "w1"}, "give the workflow id once"),
    ((), {}, "a workflow id is required"),
    ((), {"id": ""}, "a workflow id is required"),
    (("x",), {"id": "w1", "args": ["y"]}, "give the workflow arguments once"),
])
async def test_ambiguous_calls_are_refused_before_anything_starts(args, kwargs, message):
    client = FakeClient()
    for helper in (start_workflow_authorized, execute_workflow_authorized):
        with pytest.raises(ResolverConfigError, match=message):
            await helper(client, "Wf.run", *args, **kwargs, **common())
    assert client.calls == []
