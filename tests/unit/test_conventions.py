"""The test suite's own rules, checked so they do not erode (STYLE.md, "Tests"):

- a test is named ``test_<unit>_<behaviour>``, its unit a run of words of its module's
  name (``test_api_workflows.py``: ``api``, ``workflows`` or ``api_workflows``);
- no test module imports another one (shared pieces live in ``tests/*_support.py`` or
  ``flowmill.testing``);
- no sleep stands in for waiting on a state: a test waits with
  ``flowmill.testing.eventually``. A sleep that is not a wait (a handler's work, an
  outage's length, a window in which nothing may happen) says so on its line with
  ``# not a wait``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
MODULES = sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)
TEST_MODULES = [p for p in MODULES if p.name.startswith("test_")]
SLEEP = re.compile(r"\b(?:asyncio|time)\.sleep\((?!0\)|0\.0\))")


def _units(module: Path) -> set[str]:
    words = module.stem.removeprefix("test_").split("_")
    return {"_".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)}


def _tests(module: Path) -> list[str]:
    tree = ast.parse(module.read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    ]


def test_conventions_tests_are_named_after_their_unit() -> None:
    off = [
        f"{module.relative_to(TESTS.parent)}::{name}"
        for module in TEST_MODULES
        for name in _tests(module)
        if not any(name.startswith(f"test_{unit}_") for unit in _units(module))
    ]
    assert off == [], f"name these test_<unit>_<behaviour> (unit from the module name): {off}"


def _imported_modules(module: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_conventions_no_test_module_imports_another() -> None:
    found = [
        f"{module.relative_to(TESTS.parent)} imports {name}"
        for module in MODULES
        for name in _imported_modules(module)
        if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")
    ]
    assert found == [], f"move what they share into tests/*_support.py: {found}"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(TESTS)))
def test_conventions_no_sleep_stands_in_for_a_wait(module: Path) -> None:
    lines = module.read_text().splitlines()
    sleeps = [
        f"{module.name}:{n}: {line.strip()}"
        for n, line in enumerate(lines, 1)
        if SLEEP.search(line) and "# not a wait" not in line
    ]
    assert sleeps == [], (
        "wait for the state with flowmill.testing.eventually(predicate, timeout, what); "
        f"a sleep that is not a wait says '# not a wait: why' on its line: {sleeps}"
    )
