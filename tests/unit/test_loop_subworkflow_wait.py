"""Loop, sub_workflow and wait nodes on the engine with fakes (tables of cases)."""

from __future__ import annotations

from typing import Any

import pytest

from flowmill.domain.states import ExecutionStatus as X
from tests.engine_support import Harness, wf

FAIL_ODD = {
    "id": "check",
    "type": "conditional",
    "config": {"condition": {"left": "{{item}}", "op": "<", "right": 0}},
}


def loop_wf(
    config: dict[str, Any], body_nodes: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body = {
        "nodes": body_nodes
        or [
            {
                "id": "double",
                "type": "transform",
                "config": {"mapping": {"v": "{{item}}", "i": "{{index}}"}},
            }
        ],
        "edges": [],
    }
    return wf([{"id": "each", "type": "loop", "config": {"body": body, **config}}], [("t", "each")])


LOOPS = [
    (
        "sequential",
        {"items": "{{data.xs}}"},
        {"xs": [3, 1, 2]},
        [{"v": 3, "i": 0}, {"v": 1, "i": 1}, {"v": 2, "i": 2}],
    ),
    (
        "parallel",
        {"items": "{{data.xs}}", "mode": "parallel", "concurrency": 2},
        {"xs": list(range(7))},
        [{"v": i, "i": i} for i in range(7)],
    ),
    ("empty", {"items": "{{data.xs}}"}, {"xs": []}, []),
    ("count", {"count": 3}, {}, [{"v": i, "i": i} for i in range(3)]),
]


@pytest.mark.parametrize(("name", "config", "data", "expected"), LOOPS, ids=[c[0] for c in LOOPS])
async def test_loop_outputs_in_item_order(
    harness: Harness, name: str, config: dict[str, Any], data: Any, expected: Any
) -> None:
    ex, runs = await harness.run(loop_wf(config), data)
    assert ex.status is X.SUCCEEDED, ex.error
    assert runs["each"].output == expected
    kids = [e for e in harness.store.executions.values() if e.parent_execution_id == ex.id]
    assert sorted(k.iteration or 0 for k in kids) == list(range(len(expected)))
    assert all(k.status is X.SUCCEEDED for k in kids)
