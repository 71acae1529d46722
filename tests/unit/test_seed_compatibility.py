"""docs/seed-compatibility.md against the OpenAPI document: every Flowmill route it
names exists, every seed endpoint it lists is served (but the ones it says are not),
and every route tagged "seed compatibility" is in it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from flowmill.api.app import build_app
from flowmill.api.seed_routes import SEED_003_ROUTES, SEED_TAG
from flowmill.config import Settings
from flowmill.constants import NODE_QUEUE, TRIGGER_QUEUE

DOC = Path(__file__).resolve().parents[2] / "docs" / "seed-compatibility.md"
ROUTE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s(]*)")
# Seed endpoints the page says Flowmill does not serve (none since the read side landed).
NOT_SERVED: set[tuple[str, str]] = set()


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return build_app(Settings()).openapi()


def section(title: str) -> list[list[str]]:
    """The rows (cells) of the table under ``## title``."""
    text = DOC.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    rows = []
    for line in text[start : end if end > 0 else None].splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows[1:]  # without the header


def served(spec: dict[str, Any], method: str, path: str) -> bool:
    return method.lower() in spec["paths"].get(path, {})


def _shape(path: str) -> list[str | None]:
    """Path segments with every parameter (``:id``, ``[id]``, ``{id}``) as ``None``."""
    return [
        None if re.fullmatch(r":\w+|\[\w+\]|\{\w+\}", part) else part
        for part in path.strip("/").split("/")
    ]


def test_seed_compatibility_flowmill_routes_named_exist(spec: dict[str, Any]) -> None:
    rows = section("Endpoints")
    named = [(m, p) for row in rows for m, p in ROUTE.findall(row[2])]
    assert len(named) > 60
    missing = [f"{m} {p}" for m, p in named if not served(spec, m, p)]
    assert missing == []


def test_seed_compatibility_every_seed_endpoint_is_served(spec: dict[str, Any]) -> None:
    shapes = {
        (method.upper(), tuple(_shape(path)))
        for path, ops in spec["paths"].items()
        for method in ops
    }
    unserved = set()
    seen = 0
    for row in section("Endpoints"):
        for method, path in ROUTE.findall(row[1]):
            seen += 1
            if (method, tuple(_shape(path))) not in shapes:
                unserved.add((method, path))
    assert seen >= 40
    assert unserved == NOT_SERVED
    for method, path in NOT_SERVED:
        row = next(r for r in section("Endpoints") if f"{method} {path}" in r[1])
        assert row[2] == "—" and "not on this branch" in row[3]


def test_seed_compatibility_seed_routes_are_in_the_table(spec: dict[str, Any]) -> None:
    text = DOC.read_text()
    tagged = [
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if SEED_TAG in op.get("tags", [])
    ]
    assert len(tagged) == len(SEED_003_ROUTES) + 2
    for method, path in tagged:
        assert f"`{method} {path}`" in text, (method, path)
    for method, path, api_method, api_path in SEED_003_ROUTES:
        assert f"`{method} {path}` (= `{api_method} {api_path}`)" in text


def test_seed_compatibility_queue_names_and_settings_exist() -> None:
    queues = section("Queues")
    assert ["000, 004", "`workflow-trigger`", f"`{TRIGGER_QUEUE}`"] == queues[0][:3]
    assert ["000, 004", "`workflow-node-execution`", f"`{NODE_QUEUE}`"] == queues[1][:3]
    fields = {f"FLOWMILL_{name.upper()}" for name in Settings.model_fields}
    named = set(re.findall(r"`(FLOWMILL_[A-Z_]+[A-Z])`", DOC.read_text()))
    assert named and named <= fields, named - fields
