"""The Temporal benchmark in its quick shape: every variant runs and is authorized.

Speed is never asserted here (shared, noisy machines): goals are `make bench`'s to
report. This keeps the benchmark itself from rotting: the dev server starts, all
four end-to-end variants complete their workflows, and every in-process variant,
the floor and the no-plugin baseline included, produces samples. The instruction
count bench (``bench_instructions.py``, under valgrind) runs its quick shape too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_temporal.py"


def test_bench_temporal_quick_runs_every_variant(tmp_path):
    out = tmp_path / "temporal.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    result = subprocess.run([sys.executable, str(BENCH), "--quick", "--json", str(out)],
                            capture_output=True, text=True, timeout=600, check=False, env=env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    data = json.loads(out.read_text())
    e2e, micro = data["e2e"], data["micro"]
    assert set(e2e["variants"]) == {"ceiling", "ours", "ours.no_summary", "reference"}
    for name, variant in e2e["variants"].items():
        assert variant["median_activities_per_s"] > 0, name
    for key in ("ours_over_ceiling", "ours_over_reference"):
        assert e2e["goals"][key]["measured"] > 0
    variants = micro["variants"]
    for name in ("floor.per_activity", "baseline.no_plugin", "ours.total.unique_wf",
                 "verify.replay.150k_held"):
        assert len(variants[name]["samples_ns"]) == micro["rounds"] > 0, name
    assert micro["goal"]["measured"] > 0 and micro["goal"]["target_max"] == 1.15


INSTRUCTIONS = BENCH.parent / "bench_instructions.py"


def test_bench_instructions_quick_counts_the_same_loops(tmp_path):
    # The instruction counts are the deterministic companion of the timed
    # ratio above: what is asserted is the method (both loops counted; two
    # identical processes agree to a small fraction of one activity's count),
    # never a ratio.
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed on this machine")
    out = tmp_path / "instructions.json"
    result = subprocess.run([sys.executable, str(INSTRUCTIONS), "--quick", "--json", str(out)],
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    data = json.loads(out.read_text())
    per = data["per_activity"]
    assert set(per) == {"shape", "floor.per_activity", "ours.total.unique_wf"}
    assert 0 < per["shape"] < data["floor_net"] < data["ours_net"]
    assert data["noise_per_activity"] < 0.01 * data["floor_net"]
    assert len(data["process_totals"]) == 7
