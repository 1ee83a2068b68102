"""A small MCP tool server over stdio, for ``temporal_mcp_layering.py``.

Tools:
    read_file(path): a file under the virtual ``/data`` tree, served from ``--root``.
    fetch_url(url): an HTTP(S) GET, first 64 KiB, 5 s timeout.

Every call is appended to the ``--log`` file as one JSON line *before* the
tool does any work, and echoed to stderr, so the log is a complete record of
what reached this server.

The server has one guard of its own, like most tool servers: ``read_file``
stays inside its ``/data`` tree. It serves the whole tree to every caller
and fetches any URL: it cannot tell one workflow's task from another's.
Narrowing a task to what it needs is the warrant's job, upstream.

Run by the example as a subprocess (``python _mcp_tool_server.py --root DIR
--log FILE``); it speaks MCP on stdin/stdout.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import sys
import urllib.request
from pathlib import Path

try:  # mcp >= 2: FastMCP was renamed MCPServer
    from mcp.server.mcpserver import MCPServer as _Server
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as _Server  # type: ignore[no-redef]
    from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]

VIRTUAL_ROOT = "/data"
MAX_BYTES = 64 * 1024

server = _Server("tenuo-example-tools")
_root = Path(".")
_log = Path("mcp-calls.jsonl")


def _record(tool: str, **args: str) -> None:
    with _log.open("a", encoding="utf-8") as log:
        log.write(json.dumps({"tool": tool, "args": args}) + "\n")
    print(f"mcp-tool-server: {tool}({', '.join(f'{k}={v!r}' for k, v in args.items())})",
          file=sys.stderr, flush=True)


@server.tool()
def read_file(path: str) -> str:
    """Read a text file under /data."""
    _record("read_file", path=path)
    virtual = posixpath.normpath(path)
    if virtual != VIRTUAL_ROOT and not virtual.startswith(VIRTUAL_ROOT + "/"):
        raise ToolError(f"{path!r} is outside {VIRTUAL_ROOT}")
    target = (_root / virtual[len(VIRTUAL_ROOT):].lstrip("/")).resolve()
    if not target.is_relative_to(_root):
        raise ToolError(f"{path!r} leaves the server's root")
    try:
        return target.read_text(encoding="utf-8")[:MAX_BYTES]
    except OSError as exc:
        raise ToolError(f"cannot read {path!r}: {exc.strerror}") from None


@server.tool()
def fetch_url(url: str) -> str:
    """Fetch a URL (GET) and return the start of its body."""
    _record("fetch_url", url=url)
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read(MAX_BYTES).decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        raise ToolError(f"cannot fetch {url!r}: {exc}") from None


def main() -> None:
    global _root, _log
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="directory served as /data")
    parser.add_argument("--log", required=True, help="file that records every call")
    options = parser.parse_args()
    _root = Path(options.root).resolve()
    _log = Path(options.log)
    server.run("stdio")


if __name__ == "__main__":
    main()
