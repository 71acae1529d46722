"""``domain.errors``: the shapes stored on node runs and shown to users.

Written for survivors of the mutation run (docs/testing.md).
"""

from __future__ import annotations

from flowmill.domain.errors import DefinitionError, Issue, NodeError


def test_node_error_to_dict_names_every_field() -> None:
    err = NodeError("boom", type="HttpError", retriable=False, details={"status": 502})
    assert err.to_dict(attempt=3) == {
        "type": "HttpError",
        "message": "boom",
        "retriable": False,
        "attempt": 3,
        "details": {"status": 502},
    }


def test_node_error_to_dict_leaves_out_what_is_unknown() -> None:
    assert NodeError("boom").to_dict() == {
        "type": "NodeError",
        "message": "boom",
        "retriable": True,
    }


def test_node_error_str_names_its_type() -> None:
    assert str(NodeError("boom", type="SandboxTimeout")) == "SandboxTimeout: boom"


def test_definition_error_str_lists_every_issue_with_its_path() -> None:
    err = DefinitionError([Issue("nodes[a]", "unknown type"), Issue("edges[2]", "no target")])
    assert str(err) == "nodes[a]: unknown type; edges[2]: no target"
    assert err.issues[0].code == "invalid"
