"""docs/guarantees.md cannot rot: every test it names exists, every mutation id it
uses is written out in tests/guarantees.toml, every written-out mutation still applies
(its text occurs once in its file, its tests exist) and appears in the table."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from tests.guarantees import TABLE, load

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "guarantees.md"
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[[^\]]*\])?`")
MUTATION_ID = re.compile(r"\bM\d{2,}\b")


def _rows() -> list[str]:
    return [
        line for line in DOC.read_text().splitlines() if line.startswith("| ") and "---" not in line
    ]


@cache
def _functions(path: str) -> frozenset[str]:
    tree = ast.parse((ROOT / path).read_text())
    return frozenset(
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    )


def _test_exists(ref: str) -> bool:
    path, _, rest = ref.partition("::")
    if not (ROOT / path).is_file():
        return False
    return not rest or rest.split("[")[0] in _functions(path)


def test_guarantees_table_every_named_test_exists() -> None:
    refs = [m for row in _rows() for m in TEST_REF.findall(row)]
    assert len(refs) >= 40, "the table names fewer tests than it should: is the format intact?"
    missing = [f"{path}::{name}" for path, name in refs if not _test_exists(f"{path}::{name}")]
    assert missing == [], f"docs/guarantees.md names tests that do not exist: {missing}"


def test_guarantees_table_every_row_names_a_test_and_a_mutation() -> None:
    for row in _rows():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if cells[0] == "Promise":
            continue
        assert len(cells) == 4, row
        assert TEST_REF.search(cells[2]), f"no test named in: {row}"
        assert cells[3], f"no mutation named in: {row}"


def test_guarantees_table_ids_and_mutations_match() -> None:
    used = {m for row in _rows() for m in MUTATION_ID.findall(row)}
    written = {m.id for m in load()}
    assert used - written == set(), f"ids in the table but not in {TABLE.name}"
    assert written - used == set(), f"mutations in {TABLE.name} that no row uses"


@pytest.mark.parametrize("mutation", load(), ids=lambda m: m.id)
def test_guarantees_table_each_mutation_still_applies(mutation: object) -> None:
    from tests.guarantees import Mutation

    assert isinstance(mutation, Mutation)
    text = (ROOT / mutation.file).read_text()
    assert text.count(mutation.old) == 1, f"{mutation.id}: its text is not once in {mutation.file}"
    missing = [t for t in mutation.tests if not _test_exists(t)]
    assert missing == [], f"{mutation.id} names tests that do not exist: {missing}"
