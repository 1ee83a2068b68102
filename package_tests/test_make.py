"""What `make demo` and `make test` do on a fresh machine (issue 18.5, the docs site)."""

from __future__ import annotations

import subprocess

from .conftest import ROOT


def test_make_demo_installs_the_demo_extra_only(tmp_path):
    # -n prints the recipe without running it; the venv does not exist yet.
    plan = subprocess.run(["make", "-n", "demo", f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True).stdout
    installs = [line for line in plan.splitlines() if " pip install" in line]
    assert installs and all("-e '.[demo]'" in line for line in installs), plan
    assert "examples/demo.py" in plan


def test_make_test_installs_everything_and_runs_the_package_tests(tmp_path):
    plan = subprocess.run(["make", "-n", "test", f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True).stdout
    assert "-e '.[all,dev,demo]'" in plan
    assert "mkdocs build --strict" in plan
    assert any("-m pytest" in line and line.endswith(" package_tests")
               for line in plan.splitlines()), plan
