"""The built distributions, as PyPI and a new user get them (issue 18.4 and 18.5).

Each extra goes into a fresh venv from the built wheel, and the venv is asked
what it can import: what the extra promises, and nothing more.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from concurrent.futures import ThreadPoolExecutor
from email.parser import HeaderParser
from pathlib import Path

import pytest

from .conftest import ROOT, Built

PROBE = textwrap.dedent("""
    import importlib, json, os, sys
    import tenuo_keys, tenuo_keys.testing

    def importable(name):
        try:
            importlib.import_module(name)
        except tenuo_keys.MissingExtraError:
            return "hint"
        except ImportError:
            return False
        return True

    bin_dir = os.path.dirname(sys.executable)
    print(json.dumps({
        "resolvers": sorted(n for n in tenuo_keys._LAZY if hasattr(tenuo_keys, n)),
        "kit": sorted(n for n in tenuo_keys.testing._LAZY if hasattr(tenuo_keys.testing, n)),
        "modules": {m: importable(m) for m in %r},
        "temporal_binary": os.path.exists(os.path.join(bin_dir, "temporal")),
        "cli": os.path.exists(os.path.join(bin_dir, "tenuo-keys")),
    }))
""")
MODULES = ["tenuo_temporal", "opentelemetry.sdk", "redis", "pytest", "pytest_asyncio"]
KIT = ["FAST_POLICY", "ResolverConformance", "ResolverHarness", "SignerConformance",
       "SignerHarness", "wait_for_sync"]
NOTHING = {m: False for m in MODULES} | {"tenuo_temporal": "hint"}

# The venvs see only what is installed in them: not this checkout, nor the test venv.
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}

# What each extra promises; everything not named must be absent.
EXTRAS: dict[str, dict[str, object]] = {
    "": {},
    "vault": {"resolvers": ["VaultKeyResolver", "VaultTransitSigner"]},
    "aws": {"resolvers": ["AWSKMSSigner", "AWSSecretsManagerKeyResolver"]},
    "gcp": {"resolvers": ["GCPKMSSigner", "GCPSecretManagerKeyResolver"]},
    "temporal": {"modules": {"tenuo_temporal": True}},
    "otel": {"modules": {"opentelemetry.sdk": True}},
    "redis": {"modules": {"redis": True}},
    "testing": {"kit": KIT, "modules": {"pytest": True, "pytest_asyncio": True}},
    "demo": {"modules": {"tenuo_temporal": True}, "temporal_binary": True},
}


def install(venv: Path, requirement: str) -> subprocess.CompletedProcess[str]:
    """Make a fresh venv at ``venv`` and pip-install ``requirement`` (PyPI and the local wheel)."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", "--no-compile", requirement],
        capture_output=True, text=True, timeout=600, check=False, env=CLEAN_ENV)


@pytest.fixture(scope="module")
def venvs(built: Built, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """One venv per extra, installed a few at a time (pip mostly waits on I/O)."""
    root = tmp_path_factory.mktemp("venvs")

    def one(extra: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
        venv = root / (extra or "none")
        return venv, install(venv, f"{built.wheel}[{extra}]" if extra else str(built.wheel))

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(EXTRAS, pool.map(one, EXTRAS), strict=True))


@pytest.mark.parametrize("extra", list(EXTRAS), ids=lambda e: e or "no-extras")
def test_each_extra_brings_what_it_promises_and_nothing_more(venvs, tmp_path: Path, extra: str):
    venv, installed = venvs[extra]
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "does not provide the extra" not in installed.stderr, installed.stderr
    python = venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", PROBE % (MODULES,)], capture_output=True,
                           text=True, timeout=120, check=False, cwd=tmp_path, env=CLEAN_ENV)
    assert probe.returncode == 0, probe.stderr
    promised = EXTRAS[extra]
    expected = {
        "resolvers": promised.get("resolvers", []),
        "kit": promised.get("kit", []),
        "modules": NOTHING | dict(promised.get("modules", {})),  # type: ignore[call-overload]
        "temporal_binary": promised.get("temporal_binary", False),
        "cli": True,
    }
    assert json.loads(probe.stdout) == expected, probe.stdout
    if not extra:
        # The quickstart needs no extra (in particular not pytest).
        run = subprocess.run([str(python), str(ROOT / "examples" / "quickstart.py")],
                             capture_output=True, text=True, timeout=120, check=False,
                             cwd=tmp_path, env=CLEAN_ENV)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "demo finished: as expected" in run.stdout
    if extra == "demo":
        # `make demo` on this venv alone: a Temporal dev server and the plugin.
        run = subprocess.run([str(python), str(ROOT / "examples" / "demo.py")],
                             capture_output=True, text=True, timeout=300, check=False,
                             cwd=tmp_path,
                             env=CLEAN_ENV | {"PATH": f"{python.parent}:/usr/bin:/bin"})
        assert run.returncode == 0, run.stdout + run.stderr


def test_the_build_has_no_deprecation_warning(built: Built):
    assert "deprecated" not in built.log.lower(), built.log


def test_twine_check_passes(built: Built):
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(built.sdist), str(built.wheel)],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_sdist_carries_the_docs_examples_and_license(built: Built):
    with tarfile.open(built.sdist) as sdist:
        names = {name.partition("/")[2] for name in sdist.getnames()}
    wanted = {"LICENSE", "README.md", "MANIFEST.in", "mkdocs.yml"}
    wanted |= {str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")}
    wanted |= {str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*.py")}
    assert wanted <= names, sorted(wanted - names)


def test_the_wheel_metadata_has_the_license_urls_and_classifiers(built: Built):
    with zipfile.ZipFile(built.wheel) as wheel:
        (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        headers = HeaderParser().parsestr(wheel.read(metadata).decode())
        names = wheel.namelist()
    assert headers["License-Expression"] == "Apache-2.0"
    assert headers.get("License") is None  # the deprecated free-text field
    assert headers["License-File"] == "LICENSE"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "Typing :: Typed" in headers.get_all("Classifier")
    assert len(headers.get_all("Project-URL")) >= 1
    assert {"testing", "demo"} <= set(headers.get_all("Provides-Extra"))
    # The wheel is the packages only: no tests, docs or examples installed.
    assert {n.split("/")[0] for n in names if "/" in n} == {
        "tenuo_keys", "tenuo_temporal", "tenuo_keys-0.1.0.dist-info"}
