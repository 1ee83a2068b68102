"""The load scenario in its quick shape: zero errors, backend calls bounded by keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_load.py"


def test_load_quick_has_no_errors_and_bounded_backend_calls(tmp_path):
    out = tmp_path / "load.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    result = subprocess.run([sys.executable, str(BENCH), "--quick", "--json", str(out)],
                            capture_output=True, text=True, timeout=300, check=False, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    assert data["errors"] == 0
    assert data["authorizations"] == data["activities"] == 250
    # Backend traffic follows distinct keys, not activities.
    assert data["backend_calls_within_bound"]
    assert sum(data["backend_calls"].values()) <= 2 * data["keys"] < data["activities"]
