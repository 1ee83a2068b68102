"""The load scenario in its quick shape: zero errors, backend calls bounded by keys."""

from __future__ import annotations

import pytest

from integration.support.procs import run_bench_quick

pytestmark = pytest.mark.integration


def test_load_quick_has_no_errors_and_bounded_backend_calls(tmp_path):
    data = run_bench_quick("bench_load.py", tmp_path, timeout=300)
    assert data["errors"] == 0
    assert data["authorizations"] == data["activities"] == 250
    # Backend traffic follows distinct keys, not activities.
    assert data["backend_calls_within_bound"]
    assert sum(data["backend_calls"].values()) <= 2 * data["keys"] < data["activities"]
