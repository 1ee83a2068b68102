"""No module of the harness, the benches, the tests or the examples edits ``sys.path``.

Shared test code is the package ``integration.support`` (pytest finds it
through ``pythonpath = ["."]``); the benches and the subprocesses the tests
start run as modules from the repository root (``python -m bench.bench_x``).
Building a *subprocess's* environment is fine; changing this process's import
path is not.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIRS = ("bench", "integration", "tests", "examples")
# Text forms, for what the AST walk below would not see (exec'd strings, say).
TEXT = re.compile(r"sys\.path\s*(\.\s*(insert|append|extend|remove|pop|clear)\s*\(|\[|\+?=)")


def _files() -> list[Path]:
    found = sorted(p for d in DIRS for p in (ROOT / d).rglob("*.py"))
    assert len(found) > 50, found  # the four directories were found
    return found


def _is_sys_path(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "path"
            and isinstance(node.value, ast.Name) and node.value.id == "sys")


def _edits(source: str) -> list[int]:
    """Line numbers where ``source`` changes ``sys.path``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and _is_sys_path(node.func.value):
            lines.append(node.lineno)  # sys.path.insert(...), .append(...), ...
        elif isinstance(node, ast.Subscript) and _is_sys_path(node.value):
            lines.append(node.lineno)  # sys.path[...]
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            lines += [node.lineno for t in targets if _is_sys_path(t)]
    return sorted(set(lines))


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_sys_path_edit(path: Path) -> None:
    if path == Path(__file__).resolve():
        return  # this file names the forms it looks for
    source = path.read_text(encoding="utf-8")
    assert _edits(source) == [], f"{path.relative_to(ROOT)} edits sys.path"
    assert TEXT.search(source) is None, f"{path.relative_to(ROOT)} edits sys.path"


@pytest.mark.parametrize("snippet", [
    "import sys\nsys.path.insert(0, 'x')\n",
    "import sys\nsys.path.append('x')\n",
    "import sys\nsys.path[:0] = ['x']\n",
    "import sys\nsys.path = ['x'] + sys.path\n",
    "import sys\nsys.path += ['x']\n",
])
def test_the_check_sees_each_form(snippet: str) -> None:
    assert _edits(snippet) == [2]
    assert TEXT.search(snippet) is not None


def test_a_subprocess_environment_is_not_an_edit() -> None:
    snippet = "import os, sys\nenv = {**os.environ, 'PYTHONPATH': os.pathsep.join(sys.path)}\n"
    assert _edits(snippet) == []
    assert TEXT.search(snippet) is None
