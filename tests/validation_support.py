"""A workflow with one problem of each kind, for the validation tests (unit and API)."""

from __future__ import annotations

from typing import Any

# a misspelt node field, a dangling edge, a cycle (that no trigger reaches), an unknown
# node type and a misspelt config field: all must be reported together
MANY_PROBLEMS: dict[str, Any] = {
    "name": "many problems",
    "nodes": [
        {"id": "t", "type": "trigger", "config": {"triggerType": "manual"}},
        {"id": "process-1", "type": "transform", "on_eror": "continue", "config": {}},
        {"id": "a", "type": "transfrom", "config": {"mapping": {}}},
        {"id": "b", "type": "delay", "config": {"msx": 5}},
        {"id": "c", "type": "noop"},
    ],
    "edges": [
        {"source": "t", "target": "process-1"},
        {"source": "process-1", "target": "a"},
        {"source": "a", "target": "proces-1"},
        {"source": "b", "target": "c"},
        {"source": "c", "target": "b"},
    ],
}

EXPECTED = {
    "nodes[process-1].on_eror": "unknown field 'on_eror'; did you mean 'on_error'?",
    "edges[2].target": "no node with id 'proces-1'; did you mean 'process-1'?",
    "nodes[a].type": "unknown node type 'transfrom'; did you mean 'transform'?",
    "nodes[b].config.msx": "unknown field 'msx' for a delay node; did you mean 'ms'?",
}
