"""The Temporal examples run as a user runs them, each starting its own dev server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "allowed", "denied", "must_show"),
    [
        ("demo.py", 2, 3, ["TENUO_CONSTRAINT_VIOLATION", "TENUO_TOOL_NOT_AUTHORIZED",
                           "TENUO_WARRANT_MISSING"]),
        ("delegation.py", 1, 3, ["delegation refused", "TENUO_CONSTRAINT_VIOLATION"]),
        ("multi_warrant.py", 2, 2, ["holder mismatch", "TENUO_CONSTRAINT_VIOLATION"]),
    ],
)
def test_example_runs_and_reports(script, allowed, denied, must_show):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    env.pop("TEMPORAL_ADDRESS", None)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True,
        timeout=180, check=False, env=env, cwd=EXAMPLES.parent,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert out.count("ALLOWED") == allowed and out.count("DENIED") == denied, out
    assert f"{allowed} allowed, {denied} denied: as expected" in out
    for text in must_show:
        assert text in out
