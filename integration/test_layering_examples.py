"""The defence-in-depth examples run as a user runs them, each starting its own servers.

``cloud_iam_layering.py`` starts a ``moto_server`` (S3, Secrets Manager, IAM)
and a Temporal dev server; ``temporal_mcp_layering.py`` starts a Temporal dev
server and an MCP tool server over stdio (needs the ``mcp`` package).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"



def run_example(script: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    for name in ("TEMPORAL_ADDRESS", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True,
        timeout=180, check=False, env=env, cwd=EXAMPLES.parent,
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    ("script", "allowed", "denied", "must_show"),
    [
        pytest.param("cloud_iam_layering.py", 2, 3, [
            "IAM enforced",
            "-> 'tenant-a,Q3,revenue,1250000'",
            "TENUO_CONSTRAINT_VIOLATION",
            "S3 was not called: 0 requests from the activity worker",
            "IAM: AccessDenied (HTTP 403) on s3:GetObject",
            "IAM: AccessDenied (HTTP 403) on secretsmanager:GetSecretValue",
            "tenant-b/contracts/nda.pdf never appears",
            "-> 'tenant-b confidential NDA'",
        ], id="cloud_iam"),
        pytest.param("temporal_mcp_layering.py", 1, 3, [
            "MCP server logged 1 call: read_file({'path': '/data/reports/q3.csv'})",
            "TENUO_CONSTRAINT_VIOLATION",
            "MCP server never saw this call",
            "the MCP server's call log holds 1 call(s)",
            "the MCP server never saw them",
            "returns 'name,salary\\nalice,185000\\n'",
        ], id="temporal_mcp"),
    ],
)
def test_layering_example_runs_and_reports(script, allowed, denied, must_show):
    result, elapsed = run_example(script)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert out.count("ALLOWED") == allowed and out.count("DENIED") == denied, out
    assert f"{allowed} allowed, {denied} denied: as expected" in out
    assert "UNEXPECTED" not in out
    for text in must_show:
        assert text in out, f"{text!r} missing from:\n{out}"
    print(f"{script}: {elapsed:.1f}s")
