"""The I/O guard must catch what it claims to, or the no-I/O conformance tests prove nothing."""

from __future__ import annotations

import os
import socket
import threading

from tenuo_keys.testing import io_guard


def test_guard_sees_socket_file_and_environ_access(tmp_path):
    with io_guard() as seen:
        os.environ.get("HOME")
        list(os.environ)
        s = socket.socket()
        s.close()
        (tmp_path / "f").write_text("x")
    assert any(e.startswith("os.environ") for e in seen.events)
    assert "socket.__new__" in seen.events
    assert "open" in seen.events


def test_guard_sees_environ_through_a_stored_reference():
    environ = os.environ  # as a resolver would keep it
    with io_guard() as seen:
        _ = environ.get("PATH")
    assert "os.environ.__getitem__" in seen.events


def test_guard_ignores_other_threads_and_restores_environ():
    original = type(os.environ).__getitem__
    with io_guard() as seen:
        t = threading.Thread(target=lambda: os.environ.get("HOME"))
        t.start()
        t.join()
    assert seen.events == []
    assert type(os.environ).__getitem__ is original


def test_pure_computation_is_clean():
    with io_guard() as seen:
        sum(range(1000))
    assert seen.events == []
