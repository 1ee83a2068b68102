"""Temporal plus an MCP tool server: the warrant stops a call before it reaches the tools.

An agent's workflow calls tools on an MCP server (this file run with
``--serve-tools``, started here as a subprocess and spoken to over stdio with
the official ``mcp`` SDK). Each tool call is a Temporal activity, so each one carries a
Proof-of-Possession for the workflow's warrant, and the activity worker checks
the tool's arguments against the warrant before the activity body opens the
MCP call. An out-of-scope call is denied at that boundary: the MCP server
never sees it, and its own call log proves it.

Two layers, each stopping what the other cannot:

* The MCP server's own guard is coarse and the same for every caller: it
  serves its whole ``/data`` tree (so ``..`` tricks that leave ``/data`` fail
  there too) and fetches any URL it is given. It cannot know that *this* task
  is a quarterly report that needs ``/data/reports`` only, or that a URL came
  from a prompt injection.
* The warrant is per task, signed by the control plane and bound to the
  workflow's holder key: ``read_file`` only under ``/data/reports``
  (``Subpath``, which normalizes ``..``), and ``fetch_url`` only to public
  hosts (``UrlSafe``: no cloud metadata endpoint, no private or loopback
  address). It stops ``/data/hr/salaries.csv``, which the server would have
  served, and the SSRF to ``169.254.169.254``, which the server would have
  fetched.

Run: ``python examples/temporal_mcp_layering.py`` (needs ``pip install mcp``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import posixpath
import sys
import tempfile
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    import tenuo_core
    from mcp import ClientSession, StdioServerParameters, stdio_client

    from tenuo_keys import EnvKeyResolver, encode_signing_key
    from tenuo_temporal import TenuoPluginConfig, TenuoTemporalPlugin, execute_workflow_authorized
    from tenuo_temporal.testing import Decision, decide, exit_with_verdict, local_server

SERVE_TOOLS = "--serve-tools"  # run this file with it to be the MCP tool server
VIRTUAL_ROOT = "/data"
MAX_BYTES = 64 * 1024


# --------------------------------------------------------------------------- the MCP tool server


def serve_tools(root: Path, log: Path) -> None:
    """Be a small MCP tool server on stdin/stdout (``python this_file.py --serve-tools``).

    Tools: ``read_file(path)``, a file under the virtual ``/data`` tree served
    from ``root``; ``fetch_url(url)``, an HTTP(S) GET (first 64 KiB, 5 s).

    Every call is appended to ``log`` as one JSON line *before* the tool does
    any work, and echoed to stderr, so the log is a complete record of what
    reached this server. Its one guard of its own, like most tool servers:
    ``read_file`` stays inside ``/data``. It serves the whole tree to every
    caller and fetches any URL: it cannot tell one workflow's task from
    another's. Narrowing a task to what it needs is the warrant's job, upstream.
    """
    try:  # mcp >= 2: FastMCP was renamed MCPServer
        from mcp.server.mcpserver import MCPServer as Server
        from mcp.server.mcpserver.exceptions import ToolError
    except ImportError:  # mcp 1.x
        from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]
        from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]

    root = root.resolve()
    server = Server("tenuo-example-tools")

    def record(tool: str, **args: str) -> None:
        with log.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"tool": tool, "args": args}) + "\n")
        print(f"mcp-tool-server: {tool}({', '.join(f'{k}={v!r}' for k, v in args.items())})",
              file=sys.stderr, flush=True)

    @server.tool()
    def read_file(path: str) -> str:
        """Read a text file under /data."""
        record("read_file", path=path)
        virtual = posixpath.normpath(path)
        if virtual != VIRTUAL_ROOT and not virtual.startswith(VIRTUAL_ROOT + "/"):
            raise ToolError(f"{path!r} is outside {VIRTUAL_ROOT}")
        target = (root / virtual[len(VIRTUAL_ROOT):].lstrip("/")).resolve()
        if not target.is_relative_to(root):
            raise ToolError(f"{path!r} leaves the server's root")
        try:
            return target.read_text(encoding="utf-8")[:MAX_BYTES]
        except OSError as exc:
            raise ToolError(f"cannot read {path!r}: {exc.strerror}") from None

    @server.tool()
    def fetch_url(url: str) -> str:
        """Fetch a URL (GET) and return the start of its body."""
        record("fetch_url", url=url)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read(MAX_BYTES).decode("utf-8", "replace"))
        except (OSError, ValueError) as exc:
            raise ToolError(f"cannot fetch {url!r}: {exc}") from None

    server.run("stdio")


# --------------------------------------------------------------------------- the workflow side


class McpTools:
    """Activities that forward to tools on one MCP client session."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def _call(self, tool: str, arguments: dict[str, str]) -> str:
        result = await self.session.call_tool(tool, arguments)
        text = "".join(getattr(block, "text", "") for block in result.content)
        if getattr(result, "is_error", None) or getattr(result, "isError", False):
            raise ApplicationError(f"MCP tool {tool} failed: {text}", type="MCP_TOOL_ERROR",
                                   non_retryable=True)
        return text

    @activity.defn(name="read_file")
    async def read_file(self, path: str) -> str:
        return await self._call("read_file", {"path": path})

    @activity.defn(name="fetch_url")
    async def fetch_url(self, url: str) -> str:
        return await self._call("fetch_url", {"url": url})


@workflow.defn
class AgentTask:
    """Ordinary Temporal code: one tool call per activity; the plugin signs it."""

    @workflow.run
    async def run(self, tool: str, argument: str) -> str:
        return await workflow.execute_activity(
            tool, argument, start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1))


def read_log(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@contextlib.asynccontextmanager
async def mcp_session(root: Path, log: Path, errlog: Path):
    """Start this file as the tool server, in a subprocess; open an MCP session over its stdio."""
    # The server runs on this interpreter, with this import path; mcp passes it
    # only a minimal environment otherwise, so none of our secrets (TENUO_KEY_*).
    path = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else None
    params = StdioServerParameters(
        command=sys.executable, env=path,
        args=[str(Path(__file__).resolve()), SERVE_TOOLS, "--root", str(root), "--log", str(log)])
    with errlog.open("w", encoding="utf-8") as err:
        async with stdio_client(params, errlog=err) as (read, write), \
                ClientSession(read, write) as session:
            try:
                await asyncio.wait_for(session.initialize(), 30)
            except Exception:
                err.flush()
                print("the MCP server did not start; its stderr:\n"
                      + errlog.read_text(encoding="utf-8"))
                raise
            yield session


async def main() -> tuple[list[Decision], list[str]]:
    issuer = tenuo_core.SigningKey.generate()
    holder = tenuo_core.SigningKey.generate()
    os.environ.setdefault("TENUO_ENV", "development")
    os.environ["TENUO_KEY_agent1"] = encode_signing_key(holder)
    warrant = tenuo_core.Warrant.issue(
        keypair=issuer, ttl_seconds=600, holder=holder.public_key,
        capabilities={
            "read_file": {"path": tenuo_core.Subpath("/data/reports")},
            "fetch_url": {"url": tenuo_core.UrlSafe()},
        },
    )
    print(f"warrant {warrant.id}: read_file under /data/reports, fetch_url to public hosts "
          "only, held by key 'agent1'")
    plugin = TenuoTemporalPlugin(TenuoPluginConfig(
        key_resolver=EnvKeyResolver(), trusted_roots=[issuer.public_key]))
    problems: list[str] = []

    with tempfile.TemporaryDirectory(prefix="tenuo-mcp-") as tmp:
        root, log = Path(tmp, "data"), Path(tmp, "mcp-calls.jsonl")
        (root / "reports").mkdir(parents=True)
        (root / "reports" / "q3.csv").write_text("quarter,revenue\nQ3,1250000\n")
        (root / "hr").mkdir()
        (root / "hr" / "salaries.csv").write_text("name,salary\nalice,185000\n")
        print(f"MCP tool server: this file with {SERVE_TOOLS}, over stdio, serving /data "
              f"from {root}\n")

        async with local_server() as server, \
                mcp_session(root, log, Path(tmp, "mcp-server.stderr")) as session:
            print(server)
            client = await server.connect(plugins=[plugin])
            queue = f"mcp-{uuid.uuid4().hex[:6]}"
            tools = McpTools(session)
            outcomes: list[Decision] = []

            async def call(tool: str, argument: str, without_warrant: str = "") -> None:
                before = len(read_log(log))
                outcome = await decide(
                    f"{tool}({argument})",
                    execute_workflow_authorized(
                        client, AgentTask.run, workflow_id=f"agent-{uuid.uuid4().hex[:8]}",
                        warrant=warrant, key_id="agent1", args=[tool, argument],
                        task_queue=queue))
                seen = read_log(log)[before:]
                if outcome.allowed:
                    print(f"           MCP server logged {len(seen)} call: "
                          + ", ".join(f"{c['tool']}({c['args']})" for c in seen))
                    if len(seen) != 1:
                        problems.append(f"{tool}({argument}) was allowed but logged {len(seen)}")
                elif seen:
                    print(f"           the MCP server DID see it: {seen}")
                    problems.append(f"{tool}({argument}) was denied but reached the server")
                else:
                    print("           MCP server never saw this call (its log did not grow)")
                if without_warrant:
                    print(f"           without the warrant: {without_warrant}")
                outcomes.append(outcome)

            async with Worker(client, task_queue=queue, workflows=[AgentTask],
                              activities=[tools.read_file, tools.fetch_url]):
                await call("read_file", "/data/reports/q3.csv")
                await call("read_file", "/data/reports/../../etc/passwd",
                           "the server's own /data guard refuses it too (both layers)")
                await call("read_file", "/data/hr/salaries.csv",
                           "inside the server's /data, so the server would serve it")
                await call("fetch_url",
                           "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                           "the server fetches any URL: SSRF to the cloud metadata service")

        calls = read_log(log)
        print(f"\nthe MCP server's call log holds {len(calls)} call(s):")
        for entry in calls:
            print(f"  {entry['tool']}({entry['args']})")
        allowed = [o.label for o in outcomes if o.allowed]
        logged = [f"{c['tool']}({next(iter(c['args'].values()))})" for c in calls]  # type: ignore[union-attr]
        if logged != allowed:
            problems.append(f"the call log {logged} is not the allowed calls {allowed}")
        else:
            print(f"the {len(outcomes) - len(allowed)} denied calls: the MCP server never saw "
                  "them; the warrant stopped them at the activity boundary")
        # Control: the same out-of-scope read sent straight to the server, with
        # no activity (and so no warrant) in between. Only the warrant stopped it.
        async with mcp_session(root, Path(tmp, "control.jsonl"),
                               Path(tmp, "control.stderr")) as direct:
            result = await direct.call_tool("read_file", {"path": "/data/hr/salaries.csv"})
            text = "".join(getattr(block, "text", "") for block in result.content)
        print(f"control: read_file(/data/hr/salaries.csv) sent straight to the MCP server, "
              f"bypassing the warrant, returns {text!r}")
        if "alice" not in text:
            problems.append("the control call did not reach the file")
    return outcomes, problems


def _serve_tools_from_argv() -> None:
    parser = argparse.ArgumentParser(description="the example's MCP tool server, over stdio")
    parser.add_argument(SERVE_TOOLS, action="store_true", required=True)
    parser.add_argument("--root", required=True, help="directory served as /data")
    parser.add_argument("--log", required=True, help="file that records every call")
    options = parser.parse_args()
    serve_tools(Path(options.root), Path(options.log))


if __name__ == "__main__" and SERVE_TOOLS in sys.argv:
    _serve_tools_from_argv()
elif __name__ == "__main__":
    # The SDK logs each denial with a traceback; the account above says it all.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    outcomes, problems = asyncio.run(main())
    exit_with_verdict([o.allowed for o in outcomes], [True, False, False, False], problems)
