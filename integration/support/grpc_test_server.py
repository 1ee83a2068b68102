"""Plumbing shared by the loopback gRPC test servers (``gcp_sm_server.py``, ``gcp_kms_server.py``).

Each server keeps its own API behaviour (a store class, its handler table, its
command-line name); what they have in common lives here:

* :class:`Abort`: raised by store code to answer with a gRPC status and message;
* :class:`HookedStore`: the base of a store: its lock, the fault hooks every
  server has (``deny``, ``token``, ``latency_ms``, ``fail``) next to its own,
  per-method call counters, the check run before every API call
  (:meth:`HookedStore.enter`) and the ``--state`` JSON file;
* :func:`page` and :func:`timestamp`: paging by offset token, and seconds to a
  UTC ``datetime`` for message time fields;
* :func:`start_server`: a started ``grpc.Server`` with the API handlers and the
  JSON control service (``Configure``, ``Stats``, ``Reset``) for the hooks;
* :class:`JsonControlClient`: drives that control service from a test;
* :func:`run_main`: the command line (``--port``, ``--host``, ``--state``,
  ``--deny``, ``--token``, ``--latency-ms``), serving until SIGTERM/SIGINT.

The hooks every server shares: ``token``, when set, makes a request that
*sends* ``authorization: Bearer X`` with another X get UNAUTHENTICATED
(requests without the header are served); ``latency_ms`` sleeps that long in
every API call (a network RTT). With ``--state`` every change, key material
included, is written to that JSON file (atomically), and a restarted server
starts from it.

The servers run as modules from the repository root
(``python -m integration.support.gcp_sm_server``), and the fixtures import
them (for their ``ControlClient``) under the same names.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, ClassVar, Protocol

import grpc

__all__ = ["DEFAULT_PAGE", "Abort", "HandlerTable", "HookedStore", "JsonControlClient", "Serve",
           "page", "run_main", "start_server", "timestamp"]

DEFAULT_PAGE = 50

HandlerTable = dict[str, tuple[Callable[[Any], Any], Any, Callable[[Any], bytes]]]
"""Method name -> (store call, request message class, response serializer)."""


class Abort(Exception):
    """Answer the current call with ``code`` and ``message`` (a gRPC error status).

    Args:
        code: The status code.
        message: The status details the client sees.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def timestamp(seconds: float | None) -> datetime | None:
    """``seconds`` since the epoch as a UTC ``datetime`` (None stays None)."""
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


def page(items: list[Any], size: int, token: str, *, max_size: int,
         default_size: int = DEFAULT_PAGE) -> tuple[list[Any], str]:
    """One page of ``items`` and the next page token ("" on the last page).

    Args:
        items: Everything that matched, in answer order.
        size: The request's ``page_size`` (0 or less: ``default_size``).
        token: The request's ``page_token`` (an offset this server handed out).
        max_size: The largest page the service serves.
        default_size: The page size when the request sets none.

    Raises:
        Abort: INVALID_ARGUMENT for a token this server did not make.
    """
    size = default_size if size <= 0 else min(size, max_size)
    try:
        start = int(token) if token else 0
    except ValueError:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid page_token") from None
    end = start + size
    return items[start:end], (str(end) if end < len(items) else "")


class HookedStore:
    """Base of a test server's store: lock, fault hooks, call counters, state file.

    Subclasses set up their own containers *before* calling ``__init__`` here
    (which loads the state file) and implement :meth:`_default_faults`,
    :meth:`_counts`, :meth:`_dump` and :meth:`_restore`.

    Args:
        state_file: JSON file to load at start and rewrite after each change.

    Attributes:
        state_file: As given.
        faults: The current hooks, by name.
        calls: API calls served per method since the last reset.
    """

    unauthenticated_message: ClassVar[str] = "Request had invalid authentication credentials."
    """Status details of the UNAUTHENTICATED answer to a wrong bearer token."""
    state_prefix: ClassVar[str] = ".state-"
    """Prefix of the temporary file the state file is written through."""

    def __init__(self, state_file: str | None = None) -> None:
        self._lock = threading.RLock()
        self.state_file = state_file
        self.faults: dict[str, Any] = {}
        self.calls: dict[str, int] = {}
        self.reset_faults()
        if state_file and os.path.exists(state_file):
            with open(state_file) as f:
                self._restore(json.load(f))

    # -- for subclasses --------------------------------------------------------

    def _default_faults(self) -> dict[str, Any]:
        """Every hook this server knows, at its "off" value (a fresh dict each call)."""
        raise NotImplementedError

    def _counts(self) -> dict[str, int]:
        """What :meth:`stats` reports next to the calls (e.g. how many items are held)."""
        raise NotImplementedError

    def _dump(self) -> Any:
        """The whole state as a JSON document (called with the lock held)."""
        raise NotImplementedError

    def _restore(self, doc: Any) -> None:
        """Load a document :meth:`_dump` wrote."""
        raise NotImplementedError

    # -- hooks -----------------------------------------------------------------

    def reset_faults(self) -> None:
        """Clear every fault hook."""
        with self._lock:
            self.faults = self._default_faults()

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Set the hooks named in ``changes``; return them all."""
        with self._lock:
            for name, value in changes.items():
                if name not in self.faults:
                    raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown hook {name!r}")
                self.faults[name] = value
            return dict(self.faults)

    def stats(self) -> dict[str, Any]:
        """Calls served per method, and the server's own counts."""
        with self._lock:
            return {"calls": dict(self.calls), **self._counts()}

    def reset_stats(self) -> None:
        """Zero the call counters."""
        with self._lock:
            self.calls.clear()

    def enter(self, method: str, context: grpc.ServicerContext) -> None:
        """Run before every API call: count it, then apply ``fail``, ``latency_ms``, ``token``.

        Raises:
            Abort: The injected failure, or UNAUTHENTICATED for a request that
                sends a bearer token other than the ``token`` hook.
        """
        with self._lock:
            self.calls[method] = self.calls.get(method, 0) + 1
            faults = self.faults
            latency = float(faults["latency_ms"] or 0)
            fail = faults["fail"]
            if fail and int(fail.get("count", 1)) > 0:
                methods = fail.get("methods")
                if not methods or method in methods:
                    fail["count"] = int(fail.get("count", 1)) - 1
                    code = grpc.StatusCode[str(fail.get("code", "UNAVAILABLE"))]
                    raise Abort(code, f"injected failure ({code.name})")
            token = faults["token"]
        if latency:
            time.sleep(latency / 1000.0)
        if token:
            for key, value in context.invocation_metadata():
                if key == "authorization" and value != f"Bearer {token}":
                    raise Abort(grpc.StatusCode.UNAUTHENTICATED, self.unauthenticated_message)

    # -- persistence -------------------------------------------------------------

    def _save(self) -> None:
        """Rewrite the state file (atomically), if there is one."""
        if not self.state_file:
            return
        doc = self._dump()
        directory = os.path.dirname(os.path.abspath(self.state_file))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=self.state_prefix)
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out)
        os.replace(tmp, self.state_file)


# -- gRPC plumbing ---------------------------------------------------------


def _json_load(data: bytes) -> Any:
    return json.loads(data or b"{}")


def _json_dump(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _unary(call: Callable[[Any, grpc.ServicerContext], Any], deserialize: Callable[[bytes], Any],
           serialize: Callable[[Any], bytes]) -> grpc.RpcMethodHandler:
    """A unary-unary handler running ``call``; an :class:`Abort` becomes the call's status."""

    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return call(request, context)
        except Abort as exc:
            context.abort(exc.code, exc.message)

    return grpc.unary_unary_rpc_method_handler(
        handler, request_deserializer=deserialize, response_serializer=serialize,
    )


def _api_handlers(store: HookedStore, service: str, table: HandlerTable
                  ) -> grpc.GenericRpcHandler:
    def method(name: str, call: Callable[[Any], Any], request_type: Any,
               serialize: Callable[[Any], bytes]) -> grpc.RpcMethodHandler:
        def enter_then_call(request: Any, context: grpc.ServicerContext) -> Any:
            store.enter(name, context)
            return call(request)

        return _unary(enter_then_call, request_type.deserialize, serialize)

    return grpc.method_handlers_generic_handler(service, {
        name: method(name, call, req, ser) for name, (call, req, ser) in table.items()
    })


def _control_handlers(store: HookedStore, control_service: str) -> grpc.GenericRpcHandler:
    def wrap(fn: Callable[[dict[str, Any]], Any]) -> grpc.RpcMethodHandler:
        return _unary(lambda request, _context: fn(request), _json_load, _json_dump)

    def reset(_: dict[str, Any]) -> dict[str, Any]:
        store.reset_faults()
        store.reset_stats()
        return {}

    def stats(req: dict[str, Any]) -> dict[str, Any]:
        out = store.stats()
        if req.get("reset"):
            store.reset_stats()
        return out

    return grpc.method_handlers_generic_handler(control_service, {
        "Configure": wrap(store.configure),
        "Stats": wrap(stats),
        "Reset": wrap(reset),
    })


def start_server(
    store: HookedStore, service: str, table: HandlerTable, control_service: str, *,
    port: int, host: str = "127.0.0.1", max_workers: int = 32,
) -> grpc.Server:
    """Start a gRPC server for ``store`` in this process; returns it, already started.

    Args:
        store: Serves the calls; :meth:`HookedStore.enter` runs before each.
        service: Full name of the API service (``package.Service``).
        table: The API methods.
        control_service: Full name of the JSON control service for the hooks.
        port: The port to listen on.
        host: The address to listen on.
        max_workers: Threads serving calls.

    Raises:
        OSError: The port could not be bound.
    """
    server = grpc.server(ThreadPoolExecutor(max_workers=max_workers))
    server.add_generic_rpc_handlers((_api_handlers(store, service, table),
                                     _control_handlers(store, control_service)))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    server.start()
    return server


class JsonControlClient:
    """Drive the test hooks of a running server through its JSON control service.

    Subclasses name the service in :attr:`service`.

    Args:
        target: ``host:port`` of the server.
    """

    service: ClassVar[str]
    """Full name of the control service (``package.Service``)."""

    def __init__(self, target: str) -> None:
        # Reconnect fast: readiness polling starts before the server listens.
        self._channel = grpc.insecure_channel(target, options=[
            ("grpc.initial_reconnect_backoff_ms", 50),
            ("grpc.min_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 250),
        ])

        def method(name: str) -> Callable[..., Any]:
            return self._channel.unary_unary(
                f"/{self.service}/{name}",
                request_serializer=_json_dump, response_deserializer=_json_load,
            )

        self._configure = method("Configure")
        self._stats = method("Stats")
        self._reset = method("Reset")

    def configure(self, timeout: float = 5.0, **hooks: Any) -> dict[str, Any]:
        """Set hooks (the server's module docstring lists them); returns them all."""
        return dict(self._configure(hooks, timeout=timeout))

    def stats(self, reset: bool = False, timeout: float = 5.0) -> dict[str, Any]:
        """Calls per method since the last reset, and the server's own counts."""
        return dict(self._stats({"reset": reset}, timeout=timeout))

    def calls(self, method: str) -> int:
        """Calls of one API method since the last reset."""
        return int(self.stats()["calls"].get(method, 0))

    def reset(self, timeout: float = 5.0) -> None:
        """Clear every hook and the call counters (the data stays)."""
        self._reset({}, timeout=timeout)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


class Serve(Protocol):
    """A server module's ``serve``: start it in this process, return it and its store."""

    def __call__(self, port: int, *, host: str = ..., state_file: str | None = ...,
                 ) -> tuple[grpc.Server, HookedStore]: ...


def run_main(argv: Iterable[str] | None, serve: Serve, *, name: str, description: str,
             deny_help: str) -> int:
    """Parse the command line, serve until SIGTERM/SIGINT, then stop.

    Args:
        argv: The arguments (None: ``sys.argv``).
        serve: Starts the server.
        name: For the "listening" line.
        description: For ``--help``.
        deny_help: Help for ``--deny`` (what the server denies).

    Returns:
        The exit status (0).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state", default=None, help="JSON file that survives restarts")
    parser.add_argument("--deny", action="append", default=[], help=deny_help)
    parser.add_argument("--token", default=None, help="bearer token to insist on, if sent")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(list(argv) if argv is not None else None)
    server, store = serve(args.port, host=args.host, state_file=args.state)
    store.configure({"deny": args.deny, "token": args.token, "latency_ms": args.latency_ms})
    done = threading.Event()

    def stop(_signum: int, _frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"{name} listening on {args.host}:{args.port}", flush=True)
    done.wait()
    server.stop(0).wait(5)
    return 0
