"""check_document: every problem of a definition at once, by node id, with "did you mean"."""

from __future__ import annotations

import copy

from flowmill.validation import check_document
from tests.validation_support import EXPECTED, MANY_PROBLEMS


def test_validation_reports_every_problem_at_once() -> None:
    report = check_document(MANY_PROBLEMS)
    by_path = {i.path: i.message for i in report.issues}
    for path, message in EXPECTED.items():
        assert by_path.get(path) == message, (path, by_path)
    codes = {i.code for i in report.issues}
    assert {"unknown_field", "dangling_edge", "cycle", "unknown_node_type"} <= codes
    assert report.compiled is None


def test_validation_names_nodes_by_id_not_position() -> None:
    report = check_document(MANY_PROBLEMS)
    node_paths = [i.path for i in report.issues if i.path.startswith("nodes[")]
    assert node_paths
    assert not any(p.split("]")[0][len("nodes[") :].isdigit() for p in node_paths)


def test_validation_cycle_names_its_nodes() -> None:
    (cycle,) = [i for i in check_document(MANY_PROBLEMS).issues if i.code == "cycle"]
    assert "b, c" in cycle.message


def test_validation_without_a_close_match_lists_the_fields() -> None:
    doc = copy.deepcopy(MANY_PROBLEMS)
    doc["nodes"][1] = {"id": "process-1", "type": "transform", "zzzz": 1, "config": {}}
    messages = {i.path: i.message for i in check_document(doc).issues}
    assert messages["nodes[process-1].zzzz"].startswith("unknown field 'zzzz'; expected one of:")
    assert "on_error" in messages["nodes[process-1].zzzz"]


def test_validation_valid_document_compiles() -> None:
    doc = {
        "name": "ok",
        "nodes": [
            {"id": "t", "type": "trigger", "config": {"triggerType": "manual"}},
            {"id": "d", "type": "delay", "config": {"ms": 1}},
        ],
        "edges": [{"source": "t", "target": "d"}],
    }
    report = check_document(doc)
    assert report.issues == []
    assert report.compiled is not None
    assert report.raise_for_issues() is report.compiled


def test_validation_not_an_object_is_one_issue() -> None:
    report = check_document(["nodes"])
    assert [i.message for i in report.issues] == ["a workflow definition must be a JSON object"]
