"""Each example runs as a user who copied it alone would run it.

The file is copied by itself into an empty directory and run there, with
nothing of this repository on the import path but the two packages (what an
install gives): no sibling module, no ``sys.path`` edit, no repo root. Each
Temporal example starts its own dev server (through ``tenuo_temporal.testing``);
``cloud_iam_layering.py`` also starts a ``moto_server`` (S3, Secrets Manager,
IAM), and ``temporal_mcp_layering.py`` its MCP tool server over stdio (itself,
run with ``--serve-tools``; needs the ``mcp`` package).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PACKAGES = ("tenuo_keys", "tenuo_temporal")

CASES = [
    pytest.param("quickstart.py", 1, 2, [
        "ConstraintViolation", "ToolNotAuthorized", "demo finished: as expected",
    ], id="quickstart"),
    pytest.param("demo.py", 2, 3, [
        "2 allowed, 3 denied: as expected",
        "TENUO_CONSTRAINT_VIOLATION", "TENUO_TOOL_NOT_AUTHORIZED", "TENUO_WARRANT_MISSING",
    ], id="demo"),
    pytest.param("delegation.py", 1, 3, [
        "1 allowed, 3 denied: as expected",
        "delegation refused", "TENUO_CONSTRAINT_VIOLATION",
    ], id="delegation"),
    pytest.param("multi_warrant.py", 2, 2, [
        "2 allowed, 2 denied: as expected",
        "holder mismatch", "TENUO_CONSTRAINT_VIOLATION",
    ], id="multi_warrant"),
    pytest.param("own_plugin.py", 1, 1, [
        "1 allowed, 1 denied: as expected",
        "plugins: OpenTelemetryPlugin, example.PlatformPlugin",
        "TENUO_CONSTRAINT_VIOLATION",
        "OpenTelemetry traced 2 activity run(s) beside Tenuo",
    ], id="own_plugin"),
    pytest.param("cloud_iam_layering.py", 2, 3, [
        "2 allowed, 3 denied: as expected",
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
        "1 allowed, 3 denied: as expected",
        "MCP server logged 1 call: read_file({'path': '/data/reports/q3.csv'})",
        "TENUO_CONSTRAINT_VIOLATION",
        "MCP server never saw this call",
        "the MCP server's call log holds 1 call(s)",
        "the MCP server never saw them",
        "returns 'name,salary\\nalice,185000\\n'",
    ], id="temporal_mcp"),
]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding only this checkout's two packages, as an install places them.

    The venv's editable install may map the packages to another checkout
    (a worktree); this puts the code under test first, and nothing else of
    the repository on the path.
    """
    site = tmp_path_factory.mktemp("site-packages")
    for name in PACKAGES:
        (site / name).symlink_to(ROOT / name, target_is_directory=True)
    return site


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(c.values[0] for c in CASES)


def test_no_example_edits_sys_path():
    for path in EXAMPLES.glob("*.py"):
        assert "sys.path" not in path.read_text(encoding="utf-8"), path.name


@pytest.mark.parametrize(("script", "allowed", "denied", "must_show"), CASES)
def test_example_copied_alone_runs_and_reports(script, allowed, denied, must_show, tmp_path,
                                               installed):
    shutil.copy(EXAMPLES / script, tmp_path / script)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(installed)}
    for name in ("TEMPORAL_ADDRESS", "AWS_ENDPOINT_URL", "PYTHONHOME", "PYTHONSTARTUP"):
        env.pop(name, None)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, script], capture_output=True, text=True, timeout=180, check=False,
        env=env, cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert out.count("ALLOWED") == allowed and out.count("DENIED") == denied, out
    assert "UNEXPECTED" not in out, out
    for text in must_show:
        assert text in out, f"{text!r} missing from:\n{out}"
    assert [p.name for p in tmp_path.iterdir()] == [script]  # it ran alone, and left nothing
    print(f"{script}: {time.monotonic() - started:.1f}s")
