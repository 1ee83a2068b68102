"""tenuo_keys.testing without pytest: the guard works, the suites name the extra (issue 18.1)."""

from __future__ import annotations

from pathlib import Path

import tomllib

from tests.test_errors import run_without

ROOT = Path(__file__).resolve().parent.parent


def test_the_guard_and_leak_scanner_import_without_pytest():
    out = run_without({"pytest", "pytest_asyncio", "_pytest"}, """
        import tenuo_core
        from tenuo_keys.testing import assert_no_secret, io_guard
        with io_guard() as seen:
            _ = 1 + 1
        assert seen.events == []
        assert_no_secret("nothing secret here", [tenuo_core.SigningKey.generate()])
        print("ok")
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_the_suites_without_pytest_name_the_testing_extra():
    out = run_without({"pytest", "pytest_asyncio", "_pytest"}, """
        import tenuo_keys
        import tenuo_keys.testing as kit
        assert hasattr(kit, "ResolverConformance") is False
        assert getattr(kit, "SignerHarness", None) is None
        try:
            kit.SignerConformance
        except AttributeError as exc:
            assert isinstance(exc, tenuo_keys.MissingExtraAttributeError)
            assert (exc.extra, exc.missing, exc.name) == ("testing", "pytest", "SignerConformance")
            print(exc)
        try:
            from tenuo_keys.testing import ResolverConformance
        except tenuo_keys.MissingExtraError as exc:
            print(exc)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "the conformance kit (SignerConformance) needs 'pytest', which is not installed: "
        "pip install 'tenuo-keys[testing]'",
        "the conformance kit (ResolverConformance) needs 'pytest', which is not installed: "
        "pip install 'tenuo-keys[testing]'",
    ]


def test_the_suites_with_pytest_but_not_pytest_asyncio_name_it():
    # Without its plugin, 24 of the 31 kit tests would fail at run time instead.
    out = run_without({"pytest_asyncio"}, """
        import tenuo_keys
        try:
            from tenuo_keys.testing import ResolverConformance
        except tenuo_keys.MissingExtraError as exc:
            print(exc)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "the conformance kit (ResolverConformance) needs 'pytest_asyncio', which is not "
        "installed: pip install 'tenuo-keys[testing]'")


def test_the_quickstart_runs_without_pytest():
    out = run_without({"pytest", "pytest_asyncio", "_pytest"}, f"""
        import runpy
        runpy.run_path({str(ROOT / "examples" / "quickstart.py")!r}, run_name="__main__")
    """)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "demo finished: as expected" in out.stdout


def test_the_testing_extra_declares_pytest_and_pytest_asyncio():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    names = {req.split(">")[0].split("[")[0] for req in extras["testing"]}
    assert names == {"pytest", "pytest-asyncio"}
