"""``domain.workflow``: the loaded graph's lookups.

Written for survivors of the mutation run (docs/testing.md).
"""

from __future__ import annotations

import pytest

from flowmill.domain.definition import load_definition


def test_workflow_node_missing_id_is_named_in_the_key_error() -> None:
    wf = load_definition({"name": "w", "nodes": [{"id": "t", "type": "trigger"}], "edges": []})
    assert wf.node("t").id == "t"
    with pytest.raises(KeyError) as e:
        wf.node("nope")
    assert e.value.args == ("nope",)
