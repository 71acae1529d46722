"""``domain.diffing``: what changed between two versions of a definition.

Written for survivors of the mutation run (docs/testing.md): the one API test reached
these functions but looked at a single node change.
"""

from __future__ import annotations

from typing import Any

from flowmill.domain.diffing import EdgeKey, FieldChange, diff_definitions


def doc(**extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": "w",
        "nodes": [{"id": "t", "type": "trigger"}, {"id": "a", "type": "noop"}],
        "edges": [{"source": "t", "target": "a"}],
    }
    out.update(extra)
    return out


def test_diffing_same_definition_is_identical() -> None:
    moved = doc(nodes=list(reversed(doc()["nodes"])), id="other", version=9, active=True)
    assert diff_definitions(doc(), moved).identical


def test_diffing_each_kind_of_change_makes_it_not_identical() -> None:
    edge = {"source": "a", "target": "t"}
    changed = [
        doc(name="v"),
        doc(nodes=[*doc()["nodes"], {"id": "b", "type": "noop"}]),
        doc(nodes=doc()["nodes"][:1]),
        doc(nodes=[{"id": "t", "type": "trigger"}, {"id": "a", "type": "merge"}]),
        doc(edges=[*doc()["edges"], edge]),
        doc(edges=[]),
    ]
    for other in changed:
        assert not diff_definitions(doc(), other).identical, other


def test_diffing_edges_are_told_apart_by_their_source_handle() -> None:
    before = doc(edges=[{"source": "t", "target": "a", "sourceHandle": "true"}])
    after = doc(edges=[{"source": "t", "target": "a", "source_handle": "false"}])
    diff = diff_definitions(before, after)
    assert diff.edges_added == [EdgeKey("t", "a", "false")]
    assert diff.edges_removed == [EdgeKey("t", "a", "true")]
    assert diff_definitions(doc(), before).edges_added == [EdgeKey("t", "a", "true")]
    assert diff_definitions(doc(), before).edges_removed == [EdgeKey("t", "a", None)]


def test_diffing_a_handle_that_is_not_text_is_compared_as_text() -> None:
    before = doc(edges=[{"source": "t", "target": "a", "sourceHandle": 1}])
    after = doc(edges=[{"source": "t", "target": "a", "sourceHandle": "1"}])
    assert diff_definitions(before, after).identical


def test_diffing_nodes_added_and_removed_are_named() -> None:
    after = doc(nodes=[{"id": "t", "type": "trigger"}, {"id": "b", "type": "noop"}])
    diff = diff_definitions(doc(), after)
    assert (diff.nodes_added, diff.nodes_removed) == (["b"], ["a"])


def test_diffing_node_changes_name_each_field_by_path_with_absent_as_none() -> None:
    before = doc(nodes=[{"id": "t", "type": "trigger", "config": {"x": 1, "gone": True}}])
    after = doc(nodes=[{"id": "t", "type": "trigger", "config": {"x": 2, "new": "y"}}])
    assert diff_definitions(before, after).nodes_changed == {
        "t": [
            FieldChange("config.gone", True, None),
            FieldChange("config.new", None, "y"),
            FieldChange("config.x", 1, 2),
        ]
    }


def test_diffing_a_value_of_another_type_is_a_change() -> None:
    diff = diff_definitions(doc(settings={"retries": 1}), doc(settings={"retries": True}))
    assert diff.fields == [FieldChange("settings.retries", 1, True)]


def test_diffing_changed_nodes_are_listed_by_id() -> None:
    before = doc(nodes=[{"id": "z", "type": "noop"}, {"id": "b", "type": "noop"}])
    after = doc(nodes=[{"id": "z", "type": "merge"}, {"id": "b", "type": "merge"}])
    assert list(diff_definitions(before, after).nodes_changed) == ["b", "z"]


def test_diffing_ignores_nodes_without_an_id_and_edges_that_are_not_objects() -> None:
    before = doc(nodes=[{"type": "noop"}, "junk", *doc()["nodes"]], edges=["junk", *doc()["edges"]])
    assert diff_definitions(before, doc()).identical


def test_diffing_an_object_replaced_by_a_value_is_one_change() -> None:
    before, after = doc(settings={"x": {"a": 1}}), doc(settings={"x": 5})
    assert diff_definitions(before, after).fields == [FieldChange("settings.x", {"a": 1}, 5)]
    assert diff_definitions(after, before).fields == [FieldChange("settings.x", 5, {"a": 1})]


def test_diffing_a_field_added_as_null_is_a_change() -> None:
    before, after = doc(settings={}), doc(settings={"timezone": None})
    assert diff_definitions(before, after).fields == [FieldChange("settings.timezone", None, None)]
    assert diff_definitions(after, before).fields == [FieldChange("settings.timezone", None, None)]
