"""The examples run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_prints_allowed_and_denied():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ALLOWED") == 1
    assert result.stdout.count("DENIED") == 2
    assert "ConstraintViolation" in result.stdout and "ToolNotAuthorized" in result.stdout
