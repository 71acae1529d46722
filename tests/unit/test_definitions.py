"""Loading, validating and exporting workflow definitions."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from flowmill.domain.definition import (
    _EDGE_KEYS,
    _RETRY_KEYS,
    _SETTINGS_KEYS,
    _WORKFLOW_KEYS,
    closest,
    dump_definition,
    load_definition,
    load_partial,
    unknown_field_message,
)
from flowmill.domain.diffing import EdgeKey, FieldChange, diff_definitions
from flowmill.domain.errors import DefinitionError, Issue, NodeError
from flowmill.domain.workflow import RetryPolicy
from flowmill.engine.validation import compile_workflow, load_and_compile
from flowmill.nodes.registry import NodeRegistry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REGISTRY = NodeRegistry.from_entry_points()


def issues_of(doc: dict[str, Any], *, expressions: bool = True) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as e:
        load_and_compile(doc, REGISTRY, expressions_enabled=expressions)
    return [(i.path, i.code) for i in e.value.issues]


def base(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "w",
        "nodes": [{"id": "t", "type": "trigger"}, {"id": "a", "type": "noop"}],
        "edges": [{"source": "t", "target": "a"}],
    }
    doc.update(extra)
    return doc


def workflow_examples() -> list[Path]:
    """The example workflows (not the inputs written beside them, ``*.input.json``)."""
    return [p for p in sorted(EXAMPLES.glob("*.json")) if not p.name.endswith(".input.json")]


def test_definitions_seed_examples_load() -> None:
    for path in workflow_examples():
        wf = load_definition(json.loads(path.read_text()))
        assert wf.nodes, path


def test_definitions_steps_become_a_chain_with_a_trigger() -> None:
    doc = json.loads((EXAMPLES / "steps-order-followup.json").read_text())
    wf = load_definition(doc)
    assert [n.id for n in wf.nodes] == ["trigger", "fetch", "summarise", "pause", "notify"]
    assert [(e.source, e.target) for e in wf.edges] == [
        ("trigger", "fetch"),
        ("fetch", "summarise"),
        ("summarise", "pause"),
        ("pause", "notify"),
    ]
    assert wf.nodes[0].config == {"triggerType": "manual"}
    assert wf.settings.retry is not None and wf.settings.retry.max_attempts == 3
    assert wf.settings.max_concurrent == 5


def test_definitions_export_import_round_trips() -> None:
    for path in workflow_examples():
        once = dump_definition(load_definition(json.loads(path.read_text())))
        twice = dump_definition(load_definition(once))
        assert once == twice, path


def test_definitions_yaml_booleans_as_handles() -> None:
    doc = base(
        nodes=[
            {"id": "t", "type": "trigger"},
            {
                "id": "c",
                "type": "conditional",
                "config": {"condition": {"left": 1, "op": "==", "right": 1}},
            },
            {"id": "y", "type": "noop"},
        ],
        edges=[
            {"source": "t", "target": "c"},
            {"source": "c", "target": "y", "sourceHandle": True},
        ],
    )
    wf = load_definition(doc)
    assert wf.edges[1].source_handle == "true"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            base(nodes=[{"id": "t", "type": "trigger"}, {"id": "a", "type": "nope"}]),
            [("nodes[a].type", "unknown_node_type")],
        ),
        (
            base(
                nodes=[
                    {"id": "t", "type": "trigger"},
                    {"id": "a", "type": "noop"},
                    {"id": "a", "type": "noop"},
                ]
            ),
            [("nodes[a]", "duplicate_id")],
        ),
        (
            base(edges=[{"source": "t", "target": "a"}, {"source": "a", "target": "ghost"}]),
            [("edges[1].target", "dangling_edge")],
        ),
        (
            base(
                nodes=[
                    {"id": "t", "type": "trigger"},
                    {"id": "a", "type": "noop"},
                    {"id": "b", "type": "noop"},
                ],
                edges=[
                    {"source": "t", "target": "a"},
                    {"source": "a", "target": "b"},
                    {"source": "b", "target": "a"},
                ],
            ),
            [("edges", "cycle")],
        ),
        (base(nodes=[{"id": "a", "type": "noop"}], edges=[]), [("nodes", "no_trigger")]),
        (
            base(
                nodes=[
                    {"id": "t", "type": "trigger"},
                    {"id": "a", "type": "noop"},
                    {"id": "lost", "type": "noop"},
                ]
            ),
            [("nodes[lost]", "unreachable")],
        ),
        (
            base(
                nodes=[
                    {"id": "t", "type": "trigger"},
                    {"id": "a", "type": "delay", "config": {"ms": 1, "seconds": 2}},
                ]
            ),
            [("nodes[a].config", "invalid_config")],
        ),
        (
            base(
                nodes=[
                    {"id": "t", "type": "trigger"},
                    {"id": "a", "type": "transform", "config": {"mapping": {}, "bogus": 1}},
                ]
            ),
            [("nodes[a].config.bogus", "invalid_config")],
        ),
        (
            base(edges=[{"source": "t", "target": "a", "sourceHandle": "true"}]),
            [("edges[0].sourceHandle", "unknown_handle")],
        ),
        (
            base(edges=[{"source": "t", "target": "a", "sourceHandle": "error"}]),
            [("edges[0].sourceHandle", "error_edge")],
        ),
        (
            base(
                nodes=[
                    {"id": "t", "type": "trigger"},
                    {"id": "a", "type": "noop", "on_error": "route"},
                ]
            ),
            [("nodes[a].on_error", "error_edge")],
        ),
        (
            base(
                nodes=[
                    {"id": "t", "type": "trigger"},
                    {"id": "a", "type": "noop", "retry": {"max_attempts": 0}},
                ]
            ),
            [("nodes[a].retry.max_attempts", "range")],
        ),
        (
            base(
                nodes=[
                    {"id": "t", "type": "trigger"},
                    {"id": "a", "type": "noop", "on_eror": "route"},
                ]
            ),
            [("nodes[a].on_eror", "unknown_field")],
        ),
        ({"nodes": []}, [("name", "missing")]),
        (base(settings={"timezone": "Mars/Olympus"}), [("settings.timezone", "enum")]),
        (
            base(
                nodes=[
                    {"id": "t", "type": "trigger"},
                    {"id": "a", "type": "response", "config": {"template": "{{ a + }}"}},
                ]
            ),
            [],
        ),  # an expression: fine when the sandbox exists (syntax checked when it runs)
    ],
)
def test_definitions_validation_names_the_problem(
    doc: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    if not expected:
        load_and_compile(doc, REGISTRY, expressions_enabled=True)
        return
    found = issues_of(doc)
    for item in expected:
        assert item in found, found


def test_definitions_expressions_rejected_without_a_sandbox() -> None:
    doc = base(
        nodes=[
            {"id": "t", "type": "trigger"},
            {"id": "a", "type": "response", "config": {"template": "{{ 1 + 1 }}"}},
        ]
    )
    assert ("nodes[a].config", "invalid_config") in issues_of(doc, expressions=False)


def test_definitions_every_problem_is_reported_at_once() -> None:
    doc = base(
        nodes=[
            {"id": "t", "type": "trigger"},
            {"id": "a", "type": "nope"},
            {"id": "b", "type": "noop"},
        ],
        edges=[{"source": "t", "target": "a"}, {"source": "a", "target": "zz"}],
    )
    found = issues_of(doc)
    assert len(found) >= 3


def test_definitions_compile_collects_references() -> None:
    doc = base(
        nodes=[
            {"id": "t", "type": "trigger"},
            {"id": "a", "type": "noop"},
            {
                "id": "b",
                "type": "response",
                "config": {"template": "{{nodes.a.output}} {{nodes.nothere.output}}"},
            },
        ],
        edges=[{"source": "t", "target": "a"}, {"source": "a", "target": "b"}],
    )
    compiled = compile_workflow(load_definition(doc), REGISTRY)
    assert compiled.node("b").references == {"a"}


def test_definitions_registry_refuses_duplicates() -> None:
    from flowmill.nodes.noop import NoopNode
    from flowmill.nodes.registry import DuplicateNodeTypeError

    with pytest.raises(DuplicateNodeTypeError, match="noop"):
        NodeRegistry([NoopNode, NoopNode])


def test_definitions_empty_steps_are_refused_naming_the_field() -> None:
    """A survivor of the mutation run: nothing checked the empty ``steps`` list."""
    assert issues_of({"name": "x", "steps": []}) == [("steps", "empty")]


def test_definitions_dump_keeps_settings_that_differ_from_the_defaults() -> None:
    """A survivor of the mutation run: the dump of ``timezone`` and ``variables``."""
    doc = {
        "name": "x",
        "settings": {"timezone": "Europe/Paris", "variables": {"region": "eu"}, "priority": 7},
        "nodes": [{"id": "t", "type": "trigger"}, {"id": "a", "type": "noop"}],
        "edges": [{"source": "t", "target": "a"}],
    }
    dumped = dump_definition(load_definition(doc))
    assert dumped["settings"]["timezone"] == "Europe/Paris"
    assert dumped["settings"]["variables"] == {"region": "eu"}
    assert dumped["settings"]["priority"] == 7
    assert "timezone" not in dump_definition(load_definition({**doc, "settings": {}})).get(
        "settings", {}
    )


@pytest.mark.parametrize(
    ("word", "guess"),
    [
        ("on_eror", "on_error"),  # a typo (difflib)
        ("TIMEOUTS", "timeout_s"),  # case and a missing underscore
        ("ERROR_WORKFLOW_ID", "error_workflow_id"),  # case alone
        ("MAX-CONCURRENT", "max_concurrent"),  # a dash for the underscore
        ("zzz", None),
    ],
)
def test_definitions_closest_names_the_field_a_word_misspells(word: str, guess: str | None) -> None:
    fields = ["on_error", "timeout_s", "error_workflow_id", "max_concurrent"]
    assert closest(word, fields) == guess
    assert closest(word, iter(fields)) == guess  # choices that can be read only once


def test_definitions_unknown_field_says_which_was_meant_or_lists_them() -> None:
    doc = base()
    doc["nodes"][1]["on_eror"] = "continue"
    doc["nodes"][0]["zzz"] = 1
    with pytest.raises(DefinitionError) as e:
        load_definition(doc)
    messages = {i.path: (i.code, i.message) for i in e.value.issues}
    assert messages["nodes[a].on_eror"] == (
        "unknown_field",
        "unknown field 'on_eror'; did you mean 'on_error'?",
    )
    assert messages["nodes[t].zzz"] == (
        "unknown_field",
        "unknown field 'zzz'; expected one of: config, description, id, join, name, notes, "
        "on_error, position, retry, timeout_s, type",
    )


def test_definitions_dump_writes_only_what_differs_from_the_node_defaults() -> None:
    doc = base()
    doc["nodes"] += [
        {"id": "m", "type": "merge", "join": "any", "timeout_s": 5},
        {"id": "n", "type": "noop", "name": "n"},
        {"id": "o", "type": "noop", "name": "Other"},
    ]
    nodes = {n["id"]: n for n in dump_definition(load_definition(doc))["nodes"]}
    assert nodes["m"] == {"id": "m", "type": "merge", "config": {}, "timeout_s": 5, "join": "any"}
    assert nodes["n"] == {"id": "n", "type": "noop", "config": {}}  # a name equal to the id
    assert nodes["o"] == {"id": "o", "type": "noop", "name": "Other", "config": {}}


def test_definitions_unknown_time_zone_is_named_and_read_as_utc() -> None:
    doc = {**base(), "settings": {"timezone": "Mars/Olympus"}}
    wf, _notes, issues = load_partial(doc)
    assert [(i.path, i.code, i.message) for i in issues] == [
        ("settings.timezone", "enum", "unknown time zone 'Mars/Olympus'; use an IANA name")
    ]
    assert wf is not None and wf.settings.timezone == "UTC"


# Version diffs (domain.diffing), the lookups of a loaded workflow and the error
# shapes: written for survivors of the mutation run (docs/testing.md).


def diff_doc(**extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": "w",
        "nodes": [{"id": "t", "type": "trigger"}, {"id": "a", "type": "noop"}],
        "edges": [{"source": "t", "target": "a"}],
    }
    out.update(extra)
    return out


def test_definitions_diff_same_definition_is_identical() -> None:
    moved = diff_doc(nodes=list(reversed(diff_doc()["nodes"])), id="other", version=9, active=True)
    assert diff_definitions(diff_doc(), moved).identical


def test_definitions_diff_each_kind_of_change_makes_it_not_identical() -> None:
    edge = {"source": "a", "target": "t"}
    changed = [
        diff_doc(name="v"),
        diff_doc(nodes=[*diff_doc()["nodes"], {"id": "b", "type": "noop"}]),
        diff_doc(nodes=diff_doc()["nodes"][:1]),
        diff_doc(nodes=[{"id": "t", "type": "trigger"}, {"id": "a", "type": "merge"}]),
        diff_doc(edges=[*diff_doc()["edges"], edge]),
        diff_doc(edges=[]),
    ]
    for other in changed:
        assert not diff_definitions(diff_doc(), other).identical, other


def test_definitions_diff_edges_are_told_apart_by_their_source_handle() -> None:
    before = diff_doc(edges=[{"source": "t", "target": "a", "sourceHandle": "true"}])
    after = diff_doc(edges=[{"source": "t", "target": "a", "source_handle": "false"}])
    diff = diff_definitions(before, after)
    assert diff.edges_added == [EdgeKey("t", "a", "false")]
    assert diff.edges_removed == [EdgeKey("t", "a", "true")]
    assert diff_definitions(diff_doc(), before).edges_added == [EdgeKey("t", "a", "true")]
    assert diff_definitions(diff_doc(), before).edges_removed == [EdgeKey("t", "a", None)]


def test_definitions_diff_a_handle_that_is_not_text_is_compared_as_text() -> None:
    before = diff_doc(edges=[{"source": "t", "target": "a", "sourceHandle": 1}])
    after = diff_doc(edges=[{"source": "t", "target": "a", "sourceHandle": "1"}])
    assert diff_definitions(before, after).identical


def test_definitions_diff_nodes_added_and_removed_are_named() -> None:
    after = diff_doc(nodes=[{"id": "t", "type": "trigger"}, {"id": "b", "type": "noop"}])
    diff = diff_definitions(diff_doc(), after)
    assert (diff.nodes_added, diff.nodes_removed) == (["b"], ["a"])


def test_definitions_diff_node_changes_name_each_field_by_path_with_absent_as_none() -> None:
    before = diff_doc(nodes=[{"id": "t", "type": "trigger", "config": {"x": 1, "gone": True}}])
    after = diff_doc(nodes=[{"id": "t", "type": "trigger", "config": {"x": 2, "new": "y"}}])
    assert diff_definitions(before, after).nodes_changed == {
        "t": [
            FieldChange("config.gone", True, None),
            FieldChange("config.new", None, "y"),
            FieldChange("config.x", 1, 2),
        ]
    }


def test_definitions_diff_a_value_of_another_type_is_a_change() -> None:
    diff = diff_definitions(diff_doc(settings={"retries": 1}), diff_doc(settings={"retries": True}))
    assert diff.fields == [FieldChange("settings.retries", 1, True)]


def test_definitions_diff_changed_nodes_are_listed_by_id() -> None:
    before = diff_doc(nodes=[{"id": "z", "type": "noop"}, {"id": "b", "type": "noop"}])
    after = diff_doc(nodes=[{"id": "z", "type": "merge"}, {"id": "b", "type": "merge"}])
    assert list(diff_definitions(before, after).nodes_changed) == ["b", "z"]


def test_definitions_diff_ignores_nodes_without_an_id_and_edges_that_are_not_objects() -> None:
    before = diff_doc(
        nodes=[{"type": "noop"}, "junk", *diff_doc()["nodes"]], edges=["junk", *diff_doc()["edges"]]
    )
    assert diff_definitions(before, diff_doc()).identical


def test_definitions_diff_an_object_replaced_by_a_value_is_one_change() -> None:
    before, after = diff_doc(settings={"x": {"a": 1}}), diff_doc(settings={"x": 5})
    assert diff_definitions(before, after).fields == [FieldChange("settings.x", {"a": 1}, 5)]
    assert diff_definitions(after, before).fields == [FieldChange("settings.x", 5, {"a": 1})]


def test_definitions_diff_a_field_added_as_null_is_a_change() -> None:
    before, after = diff_doc(settings={}), diff_doc(settings={"timezone": None})
    assert diff_definitions(before, after).fields == [FieldChange("settings.timezone", None, None)]
    assert diff_definitions(after, before).fields == [FieldChange("settings.timezone", None, None)]


def test_definitions_workflow_node_missing_id_is_named_in_the_key_error() -> None:
    wf = load_definition({"name": "w", "nodes": [{"id": "t", "type": "trigger"}], "edges": []})
    assert wf.node("t").id == "t"
    with pytest.raises(KeyError) as e:
        wf.node("nope")
    assert e.value.args == ("nope",)


def test_definitions_node_error_to_dict_names_every_field() -> None:
    err = NodeError("boom", type="HttpError", retriable=False, details={"status": 502})
    assert err.to_dict(attempt=3) == {
        "type": "HttpError",
        "message": "boom",
        "retriable": False,
        "attempt": 3,
        "details": {"status": 502},
    }


def test_definitions_node_error_to_dict_leaves_out_what_is_unknown() -> None:
    assert NodeError("boom").to_dict() == {
        "type": "NodeError",
        "message": "boom",
        "retriable": True,
    }


def test_definitions_node_error_survives_pickling() -> None:
    """Errors cross process boundaries (sandboxes, worker pools) pickled, by their args."""
    err = NodeError("boom", type="HttpError", retriable=False, details={"status": 502})
    assert err.args == ("boom",)
    assert pickle.loads(pickle.dumps(err)).to_dict() == err.to_dict()


def test_definitions_node_error_str_names_its_type() -> None:
    assert str(NodeError("boom", type="SandboxTimeout")) == "SandboxTimeout: boom"


def test_definitions_error_str_lists_every_issue_with_its_path() -> None:
    err = DefinitionError([Issue("nodes[a]", "unknown type"), Issue("edges[2]", "no target")])
    assert str(err) == "nodes[a]: unknown type; edges[2]: no target"
    assert err.issues[0].code == "invalid"


def _graph_issues(node_ids: list[str], edges: str) -> list[tuple[str, str, str]]:
    """structural_issues of a workflow whose trigger is ``t``; edges as ``"a>b, b>c"``."""
    from flowmill.domain.graph import structural_issues
    from flowmill.domain.workflow import Edge, Node, Workflow

    nodes = tuple(Node(id=n, type="trigger" if n == "t" else "noop") for n in node_ids)
    pairs = [p.strip().split(">") for p in edges.split(",") if p.strip()]
    workflow = Workflow(name="g", nodes=nodes, edges=tuple(Edge(s, t) for s, t in pairs))
    return [(i.path, i.message, i.code) for i in structural_issues(workflow)]


@pytest.mark.parametrize(
    ("node_ids", "edges", "issues"),
    [
        (["t", "a", "a"], "t>a", [("nodes[a]", "node id is used 2 times", "duplicate_id")]),
        (
            ["t", "a"],
            "t>a, x>a, a>y, x>y",
            [
                ("edges[1].source", "no node with id 'x'", "dangling_edge"),
                ("edges[2].target", "no node with id 'y'", "dangling_edge"),
                ("edges[3].source", "no node with id 'x'", "dangling_edge"),
                ("edges[3].target", "no node with id 'y'", "dangling_edge"),
            ],
        ),
        # A self-loop is told once, as itself, and kept out of the cycle search.
        (["t", "b"], "t>b, b>b", [("edges[1]", "node 'b' points at itself", "cycle")]),
        (
            ["a"],
            "",
            [
                (
                    "nodes",
                    "the workflow has no trigger node; add one of type 'trigger'",
                    "no_trigger",
                )
            ],
        ),
        (
            ["t", "a"],
            "t>a, a>t",
            [
                ("nodes[t]", "a trigger node cannot have incoming edges", "trigger_input"),
                (
                    "edges",
                    "the graph has a cycle through: a, t; use a loop node to repeat work",
                    "cycle",
                ),
            ],
        ),
        (
            ["t", "a", "z"],
            "t>a",
            [("nodes[z]", "no trigger reaches this node; connect it or remove it", "unreachable")],
        ),
    ],
    ids=["duplicate", "dangling", "self-loop", "no trigger", "trigger input", "unreachable"],
)
def test_definitions_graph_rules_name_each_problem_exactly(
    node_ids: list[str], edges: str, issues: list[tuple[str, str, str]]
) -> None:
    assert _graph_issues(node_ids, edges) == issues


@pytest.mark.parametrize("bad", ["10", True, None, [1]])
def test_definitions_a_number_field_refuses_what_is_not_a_number(bad: Any) -> None:
    doc = {
        "name": "w",
        "nodes": [{"id": "t", "type": "trigger"}, {"id": "a", "type": "noop", "timeout_s": bad}],
        "edges": [{"source": "t", "target": "a"}],
    }
    if bad is None:  # absent and null alike: no timeout
        assert load_definition(doc).node("a").timeout_s is None
        return
    with pytest.raises(DefinitionError) as e:
        load_definition(doc)
    assert [(i.path, i.message, i.code) for i in e.value.issues] == [
        ("nodes[a].timeout_s", "must be a number", "type")
    ]


_T = {"id": "t", "type": "trigger"}
_A = {"id": "a", "type": "noop"}
_TA = [{"source": "t", "target": "a"}]


def _doc(**over: Any) -> dict[str, Any]:
    return {"name": "w", "nodes": [_T, _A], "edges": _TA, **over}


def _a(**fields: Any) -> dict[str, Any]:
    return _doc(nodes=[_T, {**_A, **fields}])


_SHAPE_PROBLEMS: list[tuple[str, Any, list[tuple[str, str, str]]]] = [
    ("not an object", [1], [("", "a workflow definition must be a JSON object", "type")]),
    ("description", _doc(description=5), [("description", "must be a string", "type")]),
    ("tags text", _doc(tags="x"), [("tags", "must be a list of strings", "type")]),
    ("tags numbers", _doc(tags=[1]), [("tags", "must be a list of strings", "type")]),
    ("tenant_id", _doc(tenant_id=5), [("tenant_id", "must be a string", "type")]),
    ("status", _doc(status=5), [("status", "must be a string", "type")]),
    (
        "nodes and steps",
        _doc(steps=[{"id": "b", "type": "noop"}]),
        [("steps", "give either nodes+edges or steps, not both", "conflict")],
    ),
    (
        "nodes and a trigger",
        _doc(trigger={"type": "manual"}),
        [("trigger", "a top-level trigger goes with steps; add a trigger node", "conflict")],
    ),
    (
        "no nodes",
        {"name": "w"},
        [("nodes", "is required (or give an ordered list of steps)", "missing")],
    ),
    ("no edges at all", {"name": "w", "nodes": [_T]}, []),
    ("nodes text", _doc(nodes="x"), [("nodes", "must be a list of nodes", "type")]),
    ("node not an object", _doc(nodes=[_T, 5]), [("nodes[1]", "must be an object", "type")]),
    (
        "node without type",
        _doc(nodes=[_T, {"id": "a"}]),
        [("nodes[a].type", "is required", "missing")],
    ),
    ("node name", _a(name=5), [("nodes[a].name", "must be a string", "type")]),
    ("node config", _a(config=[]), [("nodes[a].config", "must be an object", "type")]),
    ("node timeout", _a(timeout_s=0), [("nodes[a].timeout_s", "must be at least 0.001", "range")]),
    (
        "node on_error",
        _a(on_error="explode"),
        [("nodes[a].on_error", "must be one of: fail, continue, route", "enum")],
    ),
    ("node join", _a(join="some"), [("nodes[a].join", "must be one of: all, any", "enum")]),
    ("edges text", _doc(edges="x"), [("edges", "must be a list of edges", "type")]),
    (
        "edge not an object",
        _doc(edges=[5]),
        [("edges[0]", "must be an object with source and target", "type")],
    ),
    (
        "edge handle",
        _doc(edges=[{"source": "t", "target": "a", "sourceHandle": 5}]),
        [("edges[0].sourceHandle", "must be a string", "type")],
    ),
    ("edge target", _doc(edges=[{"source": "t"}]), [("edges[0].target", "is required", "missing")]),
    (
        "retry text",
        _a(retry="x"),
        [
            (
                "nodes[a].retry",
                'must be an object like {"max_attempts": 3, "backoff_ms": 500}',
                "type",
            )
        ],
    ),
    (
        "retry attempts",
        _a(retry={"max_attempts": 0}),
        [("nodes[a].retry.max_attempts", "must be at least 1", "range")],
    ),
    (
        "retry fraction",
        _a(retry={"max_attempts": 1.5}),
        [("nodes[a].retry.max_attempts", "must be a whole number", "type")],
    ),
    (
        "retry strategy",
        _a(retry={"strategy": "linear"}),
        [("nodes[a].retry.strategy", "must be fixed or exponential", "enum")],
    ),
    (
        "retry jitter",
        _a(retry={"jitter": 2}),
        [("nodes[a].retry.jitter", "must be between 0 and 1 (a fraction of the delay)", "range")],
    ),
    (
        "retry backoff fraction",
        _a(retry={"backoff_ms": 1.5}),
        [("nodes[a].retry.backoff_ms", "must be a whole number", "type")],
    ),
    (
        "retry cap fraction",
        _a(retry={"max_backoff_ms": 1.5}),
        [("nodes[a].retry.max_backoff_ms", "must be a whole number", "type")],
    ),
    (
        "retry unknown key",
        _a(retry={"tries": 3}),
        [("nodes[a].retry.tries", unknown_field_message("tries", _RETRY_KEYS), "unknown_field")],
    ),
    (
        "a boolean for a string",
        _doc(nodes=[_T, {"id": True, "type": "noop"}]),
        [
            (
                "nodes[1].id",
                "must be a string, not a boolean (YAML reads yes/no/on/off/true/false as "
                "booleans: put it in quotes)",
                "type",
            )
        ],
    ),
    ("an empty string", _doc(name=" "), [("name", "must be a non-empty string", "type")]),
    (
        "top-level unknown key",
        _doc(colour=1),
        [("colour", unknown_field_message("colour", _WORKFLOW_KEYS), "unknown_field")],
    ),
    (
        "settings per_minute",
        _doc(settings={"per_minute": 0}),
        [("settings.per_minute", "must be at least 1", "range")],
    ),
    (
        "settings fractions",
        _doc(settings={"per_minute": 1.5, "max_concurrent": 2.5}),
        [
            ("settings.max_concurrent", "must be a whole number", "type"),
            ("settings.per_minute", "must be a whole number", "type"),
        ],
    ),
    (
        "settings unknown key",
        _doc(settings={"colour": 1}),
        [("settings.colour", unknown_field_message("colour", _SETTINGS_KEYS), "unknown_field")],
    ),
    (
        "edge unknown key",
        _doc(edges=[{"source": "t", "target": "a", "weight": 2}]),
        [("edges[0].weight", unknown_field_message("weight", _EDGE_KEYS), "unknown_field")],
    ),
    ("edge source", _doc(edges=[{"target": "a"}]), [("edges[0].source", "is required", "missing")]),
    (
        "retry jitter text",
        _a(retry={"jitter": "x"}),
        [("nodes[a].retry.jitter", "must be a number", "type")],
    ),
    (
        "settings retry",
        _doc(settings={"retry": "x"}),
        [
            (
                "settings.retry",
                'must be an object like {"max_attempts": 3, "backoff_ms": 500}',
                "type",
            )
        ],
    ),
    (
        "settings timeout",
        _doc(settings={"timeout_s": 0}),
        [("settings.timeout_s", "must be at least 0.001", "range")],
    ),
    (
        "settings priority fraction",
        _doc(settings={"priority": 1.5}),
        [("settings.priority", "must be a whole number", "type")],
    ),
    ("settings text", _doc(settings="x"), [("settings", "must be an object", "type")]),
    (
        "settings variables",
        _doc(settings={"variables": "x"}),
        [("settings.variables", "must be an object", "type")],
    ),
    (
        "settings timezone",
        _doc(settings={"timezone": 5}),
        [("settings.timezone", "must be an IANA zone name like Europe/Paris", "type")],
    ),
    (
        "settings error workflow",
        _doc(settings={"error_workflow_id": 5}),
        [("settings.error_workflow_id", "must be a workflow id", "type")],
    ),
    (
        "settings priority high",
        _doc(settings={"priority": 101}),
        [("settings.priority", "must be at most 100", "range")],
    ),
    (
        "settings priority low",
        _doc(settings={"priority": -101}),
        [("settings.priority", "must be at least -100", "range")],
    ),
    (
        "settings max_concurrent",
        _doc(settings={"max_concurrent": 0}),
        [("settings.max_concurrent", "must be at least 1", "range")],
    ),
]


@pytest.mark.parametrize(
    ("doc", "issues"), [c[1:] for c in _SHAPE_PROBLEMS], ids=[c[0] for c in _SHAPE_PROBLEMS]
)
def test_definitions_every_shape_problem_is_named_word_for_word(
    doc: Any, issues: list[tuple[str, str, str]]
) -> None:
    assert [(i.path, i.message, i.code) for i in load_partial(doc)[2]] == issues


def test_definitions_retry_reads_every_field_and_a_boolean_jitter() -> None:
    retry = {"max_attempts": 1, "backoff_ms": 10, "max_backoff_ms": 20, "jitter": True}
    wf, _, issues = load_partial(_a(retry=retry))
    assert issues == [] and wf is not None
    got = next(n for n in wf.nodes if n.id == "a").retry
    assert got == RetryPolicy(1, 10, "exponential", 0.25, 20)
    wf, _, _ = load_partial(_a(retry={"jitter": False}))
    assert wf is not None and next(n for n in wf.nodes if n.id == "a").retry == RetryPolicy()


def test_definitions_bad_workflow_fields_fall_back_to_empty() -> None:
    wf, _, issues = load_partial(_doc(description=5, tags="x", tenant_id=5, status=5))
    assert len(issues) == 4 and wf is not None
    assert (wf.description, wf.tags, wf.tenant_id, wf.status) == ("", (), None, None)
    wf, _, _ = load_partial(_doc(description="d", tags=["x"], tenant_id="t1", status="draft"))
    assert wf is not None
    assert (wf.description, wf.tags, wf.tenant_id, wf.status) == ("d", ("x",), "t1", "draft")


def test_definitions_a_partly_bad_node_keeps_sound_defaults() -> None:
    wf, _, issues = load_partial(_a(name=5, config=[]))
    assert len(issues) == 2 and wf is not None
    node = next(n for n in wf.nodes if n.id == "a")
    assert (node.name, node.config) == ("a", {})  # the id for a name, an empty config
    wf, _, issues = load_partial(_a(config=None))
    assert issues == [] and wf is not None
    assert next(n for n in wf.nodes if n.id == "a").config == {}


def test_definitions_settings_are_read_field_by_field() -> None:
    raw = {
        "vars": {"k": 1},
        "timezone": "Europe/Paris",
        "error_workflow_id": "wf-err",
        "max_concurrent": 1,
        "per_minute": 1,
        "priority": -100,
        "timeout_s": 2.5,
    }
    s = load_definition(_doc(settings=raw)).settings
    assert (s.variables, s.timezone, s.error_workflow_id) == ({"k": 1}, "Europe/Paris", "wf-err")
    assert (s.max_concurrent, s.per_minute, s.priority, s.timeout_s) == (1, 1, -100, 2.5)
    assert load_definition(_doc(settings={"priority": 100})).settings.priority == 100
    wf, _, issues = load_partial(
        _doc(settings={"variables": "x", "timezone": 5, "error_workflow_id": 5, "priority": 101})
    )
    assert len(issues) == 4 and wf is not None
    s = wf.settings
    assert (s.variables, s.timezone, s.error_workflow_id, s.priority) == ({}, "UTC", None, 0)


def test_definitions_edges_read_handles_their_aliases_and_yaml_booleans() -> None:
    nodes = [_T, *({"id": n, "type": "noop"} for n in ("c", "y", "n"))]
    wf, _, issues = load_partial(
        _doc(
            nodes=nodes,
            edges=[
                5,  # refused, and the edges after it are still read
                {"source": "t", "target": "c", "sourceHandle": ""},
                {"source": "c", "target": "y", "sourceHandle": True},
                {"source": "c", "target": "n", "source_handle": False},
                {"source": "c"},
            ],
        )
    )
    assert wf is not None
    assert [(e.source, e.target, e.source_handle) for e in wf.edges] == [
        ("t", "c", None),
        ("c", "y", "true"),
        ("c", "n", "false"),
    ]
    assert [i.path for i in issues] == ["edges[0]", "edges[4].target"]


def test_definitions_partial_loads_keep_what_they_can_and_no_more() -> None:
    wf, _, _ = load_partial({"nodes": [_T, {"id": "b"}, {**_A, "position": {"x": 1}}]})
    assert wf is not None
    assert (wf.name, wf.description) == ("", "")  # absent: empty, not made up
    assert [n.id for n in wf.nodes] == ["t", "a"]  # b has no type: left out
    assert wf.nodes[1].extra == {"position": {"x": 1}}
    wf, _, issues = load_partial(_a(retry={"strategy": "linear", "jitter": 2}))
    assert len(issues) == 2 and wf is not None
    assert wf.nodes[1].retry == RetryPolicy()  # the defaults in place of what was refused
    wf, _, issues = load_partial(_a(retry={"jitter": 1}))
    assert issues == [] and wf is not None and wf.nodes[1].retry == RetryPolicy(jitter=1.0)
