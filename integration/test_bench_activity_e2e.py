"""The Temporal benchmarks in their quick shape: every variant runs and is authorized.

Speed is never asserted here (shared, noisy machines): goals are `make bench`'s to
report. This keeps the benchmarks themselves from rotting: the dev server starts,
all four end-to-end variants complete their workflows (``bench_e2e``), and every
in-process variant, the floor and the no-plugin baseline included, produces
samples (``bench_activity``). The instruction
count bench (``bench_instructions.py``, under valgrind) runs its quick shape too.
"""

from __future__ import annotations

import shutil

import pytest

from integration.support.procs import run_bench_quick

pytestmark = pytest.mark.integration


def test_bench_e2e_quick_runs_every_variant(tmp_path):
    e2e = run_bench_quick("bench_e2e.py", tmp_path, timeout=600)["e2e"]
    assert set(e2e["variants"]) == {"ceiling", "ours", "ours.no_summary", "reference"}
    for name, variant in e2e["variants"].items():
        assert variant["median_activities_per_s"] > 0, name
        for sample in variant["samples"]:
            # The server closed the last workflow within the client's window
            # (same host clock); what stalled a slow batch is named, if anything.
            assert 0 < sample["server_seconds"] <= sample["seconds"] + 0.5, name
            assert isinstance(sample["anomalies"], dict), name
    for key in ("ours_over_ceiling", "ours_over_reference"):
        assert e2e["goals"][key]["measured"] > 0


def test_bench_activity_quick_runs_every_variant(tmp_path):
    micro = run_bench_quick("bench_activity.py", tmp_path, timeout=600)["micro"]
    variants = micro["variants"]
    for name in ("floor.per_activity", "baseline.no_plugin", "ours.total.unique_wf",
                 "verify.replay.150k_held", "whatif.verify_chain", "ours.total.revocation_10k"):
        assert len(variants[name]["samples_ns"]) == micro["rounds"] > 0, name
    assert micro["goal"]["measured"] > 0 and micro["goal"]["target_max"] == 1.15
    assert micro["goal"]["revocation_measured"] > 0
    assert micro["goal"]["revocation_target_max"] == 1.03
    # The what-if subtracts the chain's own verification, a part of check_chain.
    assert 0 < variants["whatif.verify_chain"]["median_ns"] < variants["verify.check"]["median_ns"]
    # Tracing and audit: every variant sampled (the span ones checked their spans).
    for name in ("tracing.absent", "tracing.api_only", "tracing.span", "tracing.audit",
                 "tracing.span_audit", "tracing.sdk_floor"):
        assert len(variants[name]["samples_ns"]) == micro["rounds"], name
    tracing = micro["tracing"]
    assert tracing["goal"]["target_max"] == 1.15 and tracing["goal"]["measured"] > 0


def test_bench_tracing_quick_records_one_span_per_activity(tmp_path):
    data = run_bench_quick("bench_tracing.py", tmp_path, timeout=600)
    for name in ("off", "span+audit"):
        assert len(data[name]["samples_ns"]) == data["meta"]["rounds"] > 0, name
    assert data["span_audit_over_off"] > 0


def test_bench_instructions_quick_counts_the_same_loops(tmp_path):
    # The instruction counts are the deterministic companion of the timed
    # ratio above: what is asserted is the method (both loops counted; two
    # identical processes agree to a small fraction of one activity's count),
    # never a ratio.
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed on this machine")
    data = run_bench_quick("bench_instructions.py", tmp_path, timeout=900)
    per = data["per_activity"]
    assert set(per) == {"shape", "floor.per_activity", "ours.total.unique_wf"}
    assert 0 < per["shape"] < data["floor_net"] < data["ours_net"]
    assert data["noise_per_activity"] < 0.01 * data["floor_net"]
    assert len(data["process_totals"]) == 7
