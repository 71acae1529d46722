"""CompiledWorkflow.linear: which graphs may finish without asking for other live steps."""

from __future__ import annotations

from typing import Any

import pytest

from flowmill.engine.validation import load_and_compile
from tests.engine_support import registry, wf

NOOP = {"type": "noop"}
COND = {"type": "conditional", "config": {"condition": {"left": 1, "op": "==", "right": 1}}}


def _nodes(*ids: str, kind: dict[str, Any] = NOOP) -> list[dict[str, Any]]:
    return [{"id": i, **kind} for i in ids]


CASES = [
    ("a path", wf(_nodes("a", "b"), [("t", "a"), ("a", "b")]), True),
    ("the trigger alone", wf([], []), True),
    ("fan-out", wf(_nodes("a", "b"), [("t", "a"), ("t", "b")]), False),
    ("join", wf(_nodes("a", "b", "j"), [("t", "a"), ("t", "b"), ("a", "j"), ("b", "j")]), False),
    (
        "a branch with two ends",
        wf(
            [{"id": "c", **COND}, *_nodes("y", "n")],
            [("t", "c"), ("c", "y", "true"), ("c", "n", "false")],
        ),
        False,
    ),
    (
        "one branch taken or not",
        wf([{"id": "c", **COND}, *_nodes("y")], [("t", "c"), ("c", "y", "true")]),
        True,
    ),
    (
        "two triggers",
        {
            **wf(_nodes("a"), [("t", "a"), ("t2", "a")]),
            "nodes": [
                {"id": "t", "type": "trigger"},
                {
                    "id": "t2",
                    "type": "trigger",
                    "config": {"triggerType": "schedule", "cron": "* * * * *"},
                },
                {"id": "a", "type": "noop"},
            ],
        },
        False,
    ),
]


@pytest.mark.parametrize(("name", "definition", "linear"), CASES, ids=[c[0] for c in CASES])
def test_compiled_linear(name: str, definition: dict[str, Any], linear: bool) -> None:
    assert load_and_compile(definition, registry()).linear is linear
