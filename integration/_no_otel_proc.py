"""A plugin worker in a process where ``opentelemetry`` cannot be imported.

Usage, from the repository root::

    python -m integration._no_otel_proc TARGET NAMESPACE

``opentelemetry`` is hidden the standard way (``None`` in ``sys.modules``,
before anything is imported), as if ``opentelemetry-api`` were not installed.
The worker runs one allowed and one denied activity and prints a JSON report
as its last line.
"""

from __future__ import annotations

import sys

sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # "not installed"

import asyncio  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402

import tenuo_core  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from integration import _plugin_workflows as wf  # noqa: E402
from tenuo_keys import StaticKeyResolver  # noqa: E402
from tenuo_temporal import (  # noqa: E402
    TenuoPluginConfig,
    TenuoTemporalPlugin,
    execute_workflow_authorized,
)
from tenuo_temporal.testing import denial_of  # noqa: E402


async def main(target: str, namespace: str) -> dict[str, Any]:
    root, holder = tenuo_core.SigningKey.generate(), tenuo_core.SigningKey.generate()
    warrant = tenuo_core.Warrant.issue(
        keypair=root, capabilities={"read_file": {"path": tenuo_core.Subpath("/data")}},
        ttl_seconds=600, holder=holder.public_key)
    plugin = TenuoTemporalPlugin(TenuoPluginConfig(
        key_resolver=StaticKeyResolver({"agent1": holder}), trusted_roots=[root.public_key]))
    client = await Client.connect(target, namespace=namespace, plugins=[plugin])
    queue = f"no-otel-{uuid.uuid4().hex[:8]}"

    def read(path: str) -> Any:
        return execute_workflow_authorized(
            client, wf.ReadWorkflow.run, workflow_id=f"no-otel-{uuid.uuid4().hex[:8]}",
            warrant=warrant, key_id="agent1", args=[path], task_queue=queue)

    async with Worker(client, task_queue=queue, workflows=[wf.ReadWorkflow],
                      activities=[wf.read_file]):
        allowed = await read("/data/a.csv")
        try:
            await read("/etc/passwd")
            denied: str | None = "allowed"
        except Exception as error:
            found = denial_of(error)
            denied = found.type if found is not None else repr(error)
    return {
        "opentelemetry_importable": importlib.util.find_spec("opentelemetry") is not None,
        "tracing_available": plugin.interceptor.tracing.available,
        "allowed": allowed,
        "denied": denied,
        "opentelemetry_loaded": any(
            name.startswith("opentelemetry") and module is not None
            for name, module in list(sys.modules.items())),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))), flush=True)
