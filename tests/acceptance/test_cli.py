"""The command line, black box."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.acceptance.conftest import Flowmill

BRANCHING = {
    "name": "branching",
    "nodes": [
        {"id": "t", "type": "trigger", "config": {"triggerType": "webhook", "actionType": "x"}},
        {
            "id": "c",
            "type": "conditional",
            "config": {"condition": {"left": "{{data.n}}", "op": ">", "right": 5}},
        },
        {"id": "big", "type": "transform", "config": {"mapping": {"size": "big"}}},
        {"id": "small", "type": "transform", "config": {"mapping": {"size": "small"}}},
        {"id": "pause", "type": "delay", "config": {"ms": 50}},
        {"id": "out", "type": "response", "config": {"template": "{{size}}:{{trigger.type}}"}},
    ],
    "edges": [
        {"source": "t", "target": "c"},
        {"source": "c", "target": "big", "sourceHandle": "true"},
        {"source": "c", "target": "small", "sourceHandle": "false"},
        {"source": "big", "target": "pause"},
        {"source": "pause", "target": "out"},
    ],
}


def write(tmp_path: Path, name: str, doc: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def test_cli_run_json_reports_every_node(flowmill: Flowmill, tmp_path: Path) -> None:
    path = write(tmp_path, "wf.json", BRANCHING)
    result = flowmill("run", path, "--input", '{"n": 9}', "--json")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["status"] == "succeeded"
    assert doc["output"] == "big:webhook.x"
    assert doc["nodes"]["small"]["status"] == "skipped"
    assert doc["nodes"]["pause"] == {
        "attempts": 1,
        "status": "succeeded",
        "output": {"size": "big"},
        "error": None,
    }
    assert set(doc) == {"execution_id", "status", "output", "error", "nodes", "logs"}


def test_cli_run_failure_exits_one(flowmill: Flowmill, tmp_path: Path) -> None:
    doc = {
        "name": "fails",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "boom", "type": "fail", "config": {"message": "no {{data.who}}"}},
        ],
        "edges": [{"source": "t", "target": "boom"}],
    }
    result = flowmill("run", write(tmp_path, "f.json", doc), "--input", '{"who": "luck"}', "--json")
    assert result.code == 1
    out = result.json()
    assert out["status"] == "failed"
    assert out["error"]["message"] == "no luck"
    assert out["nodes"]["boom"]["error"]["type"] == "WorkflowFailed"


def test_cli_run_human_output_shows_the_nodes(flowmill: Flowmill, tmp_path: Path) -> None:
    result = flowmill("run", write(tmp_path, "wf.json", BRANCHING), "--input", '{"n": 1}')
    assert result.code == 0, result.stderr
    assert "small" in result.stdout and "succeeded" in result.stdout
    assert '"size": "small"' in result.stdout  # the response is on the branch not taken


def test_cli_run_yaml(flowmill: Flowmill, tmp_path: Path) -> None:
    yaml_text = """
name: yaml flow
nodes:
  - id: t
    type: trigger
  - id: c
    type: conditional
    config: {condition: {left: "{{data.ok}}", op: "==", right: true}}
  - id: "yes"
    type: response
    config: {body: {answer: "{{trigger.data.ok}}"}}
edges:
  - {source: t, target: c}
  - {source: c, target: "yes", sourceHandle: true}
"""
    (tmp_path / "wf.yaml").write_text(yaml_text)
    result = flowmill("run", str(tmp_path / "wf.yaml"), "--input", '{"ok": true}', "--json")
    assert result.code == 0, result.stderr
    assert result.json()["output"] == {"answer": True}


def test_cli_yaml_boolean_id_is_explained(flowmill: Flowmill, tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(
        "name: y\nnodes: [{id: t, type: trigger}, {id: on, "
        "type: noop}]\nedges: [{source: t, target: 'on'}]\n"
    )
    result = flowmill("validate", str(tmp_path / "wf.yaml"))
    assert result.code == 1
    assert "put it in quotes" in result.stderr


def _versions(tmp_path: Path) -> tuple[list[int], dict[str, int]]:
    """The stored versions of every workflow, and the version each execution ran."""
    db = sqlite3.connect(tmp_path / "home" / "flowmill.db")
    try:
        stored = [v for (v,) in db.execute("SELECT version FROM workflow_versions ORDER BY 1")]
        ran = dict(db.execute("SELECT id, version FROM workflow_executions"))
    finally:
        db.close()
    return stored, ran


def test_cli_run_stores_a_new_version_only_when_changed(flowmill: Flowmill, tmp_path: Path) -> None:
    path = write(tmp_path, "wf.json", BRANCHING)
    first = flowmill("run", path, "--input", '{"n": 1}', "--json").json()
    second = flowmill("run", path, "--input", '{"n": 1}', "--json").json()
    assert first["execution_id"] != second["execution_id"]
    assert _versions(tmp_path) == ([1], {first["execution_id"]: 1, second["execution_id"]: 1})
    write(tmp_path, "wf.json", dict(BRANCHING, description="now different"))
    third = flowmill("run", path, "--input", '{"n": 1}', "--json")
    assert third.code == 0, third.stderr
    stored, ran = _versions(tmp_path)
    assert stored == [1, 2]
    assert ran[third.json()["execution_id"]] == 2


def test_cli_validate_names_each_problem(flowmill: Flowmill, tmp_path: Path) -> None:
    doc = {
        "name": "bad",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "a", "type": "nope"},
            {"id": "b", "type": "noop", "on_error": "route"},
        ],
        "edges": [
            {"source": "t", "target": "a"},
            {"source": "a", "target": "ghost"},
            {"source": "t", "target": "b"},
        ],
    }
    result = flowmill("validate", write(tmp_path, "bad.json", doc))
    assert result.code == 1
    assert "nodes[a].type" in result.stderr and "unknown node type 'nope'" in result.stderr
    assert "edges[1].target" in result.stderr and "ghost" in result.stderr
    assert "nodes[b].on_error" in result.stderr


def test_cli_validate_ok(flowmill: Flowmill, tmp_path: Path) -> None:
    result = flowmill("validate", write(tmp_path, "wf.json", BRANCHING))
    assert result.code == 0
    assert "valid" in result.stdout


def test_cli_bad_input_is_a_usage_error(flowmill: Flowmill, tmp_path: Path) -> None:
    result = flowmill("run", write(tmp_path, "wf.json", BRANCHING), "--input", "{nope")
    assert result.code == 2
    assert "--input is not valid JSON" in result.stderr


def test_cli_missing_file(flowmill: Flowmill, tmp_path: Path) -> None:
    result = flowmill("run", str(tmp_path / "absent.json"))
    assert result.code == 2
    assert "cannot read the file" in result.stderr


def test_cli_not_json(flowmill: Flowmill, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{")
    result = flowmill("validate", str(tmp_path / "x.json"))
    assert result.code == 1
    assert "not valid JSON" in result.stderr


def test_cli_help_explains(flowmill: Flowmill) -> None:
    for args in (
        ("--help",),
        ("run", "--help"),
        ("validate", "--help"),
        ("worker", "--help"),
        ("db", "--help"),
        ("db", "upgrade", "--help"),
    ):
        result = flowmill(*args)
        assert result.code == 0, args
        assert "Usage" in result.stdout


def test_cli_db_upgrade_and_current(flowmill: Flowmill) -> None:
    first = flowmill("db", "upgrade")
    assert first.code == 0
    assert "migrated" in first.stdout
    assert "up to date" in flowmill("db", "upgrade").stdout
    from flowmill.store.migrations import HEAD

    assert f"database: {HEAD}" in flowmill("db", "current").stdout
