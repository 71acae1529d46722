"""The seed documents' definition shapes, read into the canonical graph (and run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowmill.domain.definition import dump_definition, load_definition, load_with_notes
from flowmill.domain.errors import DefinitionError
from flowmill.domain.seed_shapes import read_seed_shapes
from flowmill.engine.validation import load_and_compile
from flowmill.nodes.registry import NodeRegistry
from tests.unit.conftest import Harness

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COND = {"condition": {"left": "{{data.n}}", "op": ">", "right": 5}}


def step(step_id: str, kind: str = "noop", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": kind, **extra}


def graph(doc: dict[str, Any]) -> tuple[list[str], list[tuple[str, ...]]]:
    """Node ids and (source, target[, handle]) edges of the canonical form."""
    out = dump_definition(load_definition({"name": "w", **doc}))
    edges = [
        (e["source"], e["target"], e["sourceHandle"])
        if "sourceHandle" in e
        else (e["source"], e["target"])
        for e in out["edges"]
    ]
    return [n["id"] for n in out["nodes"]], sorted(edges)


@pytest.mark.parametrize(
    ("doc", "nodes", "edges"),
    [
        pytest.param(
            {"steps": [step("a"), step("b")]},
            ["trigger", "a", "b"],
            [("a", "b"), ("trigger", "a")],
            id="plain-steps-are-a-chain",
        ),
        pytest.param(
            {
                "steps": [
                    step(
                        "c",
                        "conditional",
                        config=COND,
                        trueSteps=[step("y")],
                        falseSteps=[step("n1"), step("n2")],
                    ),
                    step("after"),
                ]
            },
            ["trigger", "c", "y", "n1", "n2", "after"],
            [
                ("c", "n1", "false"),
                ("c", "y", "true"),
                ("n1", "n2"),
                ("n2", "after"),
                ("trigger", "c"),
                ("y", "after"),
            ],
            id="conditional-branches-join-the-next-step",
        ),
        pytest.param(
            {
                "steps": [
                    step("c", "conditional", config={**COND, "trueSteps": [step("y")]}),
                    step("after"),
                ]
            },
            ["trigger", "c", "y", "after"],
            [("c", "after", "false"), ("c", "y", "true"), ("trigger", "c"), ("y", "after")],
            id="branch-inside-config-and-empty-false-branch",
        ),
        pytest.param(
            {
                "steps": [
                    step(
                        "c",
                        "conditional",
                        config=COND,
                        trueSteps=[step("y")],
                        falseSteps=[step("n")],
                    )
                ]
            },
            ["trigger", "c", "y", "n"],
            [("c", "n", "false"), ("c", "y", "true"), ("trigger", "c")],
            id="conditional-last-joins-nothing",
        ),
        pytest.param(
            {
                "steps": [
                    step(
                        "c",
                        "conditional",
                        config=COND,
                        trueSteps=[
                            step(
                                "d",
                                "conditional",
                                config=COND,
                                trueSteps=[step("dy")],
                                falseSteps=[step("dn")],
                            ),
                        ],
                    ),
                    step("after"),
                ]
            },
            ["trigger", "c", "d", "dy", "dn", "after"],
            [
                ("c", "after", "false"),
                ("c", "d", "true"),
                ("d", "dn", "false"),
                ("d", "dy", "true"),
                ("dn", "after"),
                ("dy", "after"),
                ("trigger", "c"),
            ],
            id="nested-conditional",
        ),
        pytest.param(
            {
                "steps": [
                    {"type": "noop"},
                    {"type": "conditional", "config": COND, "trueSteps": [{"type": "noop"}]},
                ]
            },
            ["trigger", "step-0", "step-1", "step-1.true.0"],
            [("step-0", "step-1"), ("step-1", "step-1.true.0", "true"), ("trigger", "step-0")],
            id="steps-without-ids-get-them",
        ),
        pytest.param(
            {"actions": [step("a")], "trigger": {"type": "webhook", "config": {"actionType": "x"}}},
            ["trigger", "a"],
            [("trigger", "a")],
            id="actions-are-steps",
        ),
    ],
)
def test_seed_shapes_graph_of_each_step_shape(
    doc: dict[str, Any], nodes: list[str], edges: list[tuple[str, ...]]
) -> None:
    assert graph(doc) == (nodes, edges)


def test_seed_shapes_loop_steps_become_a_loop_node_with_a_body() -> None:
    doc = {
        "name": "w",
        "steps": [
            step(
                "each",
                "loop",
                config={"items": "{{data.xs}}", "mode": "parallel"},
                steps=[
                    step("double", "transform", config={"mapping": {"v": "{{item}}"}}),
                    step(
                        "c",
                        "conditional",
                        config=COND,
                        trueSteps=[step("y")],
                        retry={"attempts": 2, "backoff": 50},
                    ),
                ],
            ),
            step("after"),
            step("each2", "loop", config={"count": 3, "steps": [step("inner")]}),
        ],
    }
    out = dump_definition(load_definition(doc))
    loop = next(n for n in out["nodes"] if n["id"] == "each")
    assert loop["config"] == {
        "items": "{{data.xs}}",
        "mode": "parallel",
        "body": {
            "nodes": [
                {"id": "double", "type": "transform", "config": {"mapping": {"v": "{{item}}"}}},
                {
                    "id": "c",
                    "type": "conditional",
                    "config": COND,
                    "retry": {"max_attempts": 2, "backoff_ms": 50, "strategy": "fixed"},
                },
                {"id": "y", "type": "noop"},
            ],
            "edges": [
                {"source": "double", "target": "c"},
                {"source": "c", "target": "y", "sourceHandle": "true"},
            ],
        },
    }
    inner = next(n for n in out["nodes"] if n["id"] == "each2")
    assert inner["config"] == {
        "count": 3,
        "body": {"nodes": [{"id": "inner", "type": "noop"}], "edges": []},
    }
    ids = [n["id"] for n in out["nodes"]]
    assert ids == ["trigger", "each", "after", "each2"]  # the body is not in the outer graph
    notes = load_with_notes(doc)[1]
    assert "steps[0]: (loop with nested steps) read as node each whose config.body is " \
        "the chain double → c → y" in notes  # fmt: skip


def test_seed_shapes_loop_step_without_config_gets_one_with_the_body() -> None:
    out = dump_definition(
        load_definition({"name": "w", "steps": [step("each", "loop", steps=[step("inner")])]})
    )
    loop = next(n for n in out["nodes"] if n["id"] == "each")
    assert loop["config"] == {"body": {"nodes": [{"id": "inner", "type": "noop"}], "edges": []}}


def test_seed_shapes_workflow_fields_and_retry_options() -> None:
    doc = {
        "name": "w",
        "rateLimitMaxConcurrent": 4,
        "rateLimitPerMinute": 120,
        "retryMaxAttempts": 5,
        "retryBackoffMs": 750,
        "enabled": True,
        "trigger": {"type": "schedule", "config": {"cron": "0 9 * * *"}},
        "steps": [
            step("a", retry={"attempts": 3, "backoff": {"type": "exponential", "delay": 2000}}),
            step("b", attempts=2, backoff={"type": "fixed", "delay": 10}),
            step("c", retry={"attempts": 4, "backoff": 300, "jitter": 0.1}),
        ],
    }
    wf, notes = load_with_notes(doc)
    s = wf.settings
    assert (s.max_concurrent, s.per_minute) == (4, 120)
    assert s.retry is not None and (s.retry.max_attempts, s.retry.backoff_ms) == (5, 750)
    assert wf.status == "active"
    assert wf.node("trigger").config == {"triggerType": "schedule", "cron": "0 9 * * *"}
    retries = {n.id: n.retry for n in wf.nodes if n.retry is not None}
    got = {k: (r.max_attempts, r.backoff_ms, r.strategy, r.jitter) for k, r in retries.items()}
    assert got == {
        "a": (3, 2000, "exponential", 0.0),
        "b": (2, 10, "fixed", 0.0),
        "c": (4, 300, "fixed", 0.1),
    }
    assert notes == [
        "rateLimitMaxConcurrent: read as settings.max_concurrent = 4",
        "rateLimitPerMinute: read as settings.per_minute = 120",
        "retryMaxAttempts: read as settings.retry.max_attempts = 5",
        "retryBackoffMs: read as settings.retry.backoff_ms = 750",
        "enabled: read as status active",
        "steps[a]: retry {attempts, backoff} (BullMQ job options) read as retry "
        "{max_attempts: 3, strategy: exponential, backoff_ms: 2000}",
        "steps[b]: attempts/backoff (BullMQ job options) read as retry "
        "{max_attempts: 2, strategy: fixed, backoff_ms: 10}",
        "steps[c]: retry {attempts, backoff} (BullMQ job options) read as retry "
        "{jitter: 0.1, max_attempts: 4, backoff_ms: 300, strategy: fixed}",
        "trigger.config: read as the trigger node's config",
    ]
    # The canonical form is what is stored and exported; it reads back as itself.
    once = dump_definition(wf)
    assert "rateLimitMaxConcurrent" not in once and "steps" not in once
    assert once["settings"]["max_concurrent"] == 4
    assert load_with_notes(once)[1] == []
    assert dump_definition(load_definition(once)) == once


def test_seed_shapes_graph_nodes_take_bullmq_retry_too() -> None:
    doc = {
        "name": "w",
        "nodes": [step("t", "trigger"), step("a", retry={"attempts": 3, "backoff": 1000})],
        "edges": [{"source": "t", "target": "a"}],
    }
    retry = load_definition(doc).node("a").retry
    assert retry is not None and (retry.max_attempts, retry.backoff_ms) == (3, 1000)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            {"steps": [step("c", "conditional", config=COND, trueSteps={"id": "x"})]},
            [("steps[0].trueSteps", "type")],
        ),
        (
            {"steps": [step("c", "conditional", config={**COND, "falseSteps": "no"})]},
            [("steps[0].config.falseSteps", "type")],
        ),
        ({"steps": [step("a", trueSteps=[step("b")])]}, [("steps[0].trueSteps", "invalid")]),
        ({"steps": [step("a", steps=[step("b")])]}, [("steps[0].steps", "invalid")]),
        (
            {"steps": [step("l", "loop", config={"body": {}}, steps=[step("b")])]},
            [("steps[0].steps", "invalid")],
        ),
        ({"steps": [step("a")], "actions": [step("b")]}, [("actions", "conflict")]),
        (
            {"rateLimitMaxConcurrent": 3, "settings": {"max_concurrent": 4}, "steps": [step("a")]},
            [("rateLimitMaxConcurrent", "conflict")],
        ),
        ({"retryBackoffMs": "fast", "steps": [step("a")]}, [("retryBackoffMs", "type")]),
        ({"enabled": "yes", "steps": [step("a")]}, [("enabled", "type")]),
        (
            {"steps": [step("a", retry={"attempts": 2, "backoff": {"type": "linear"}})]},
            [("steps[a].retry.backoff.type", "enum")],
        ),
        (
            {"steps": [step("a", retry={"attempts": 2, "backoff": {"delay": 1, "jitter": 1}})]},
            [("steps[a].retry.backoff.jitter", "unknown_field")],
        ),
        (
            {"steps": [step("a", attempts=2, retry={"max_attempts": 2})]},
            [("steps[a].attempts", "invalid")],
        ),
        ({"steps": []}, [("steps", "empty")]),
        ({"steps": [step("l", "loop", steps="no")]}, [("steps[0].steps", "type")]),
        ({"steps": [step("a", "nope")]}, [("nodes[a].type", "unknown_node_type")]),
        ({"steps": [{"type": "noop", "bogus": 1}]}, [("steps[step-0].bogus", "unknown_field")]),
    ],
)
def test_seed_shapes_problems_name_their_place(
    doc: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    with pytest.raises(DefinitionError) as e:
        load_and_compile({"name": "w", **doc}, NodeRegistry.from_entry_points())
    assert [(i.path, i.code) for i in e.value.issues] == expected


def test_seed_shapes_leave_the_input_and_canonical_documents_alone() -> None:
    doc = {
        "name": "w",
        "retryMaxAttempts": 2,
        "steps": [step("c", "conditional", config={**COND, "trueSteps": [step("y")]})],
    }
    before = json.dumps(doc, sort_keys=True)
    read_seed_shapes(doc)
    assert json.dumps(doc, sort_keys=True) == before
    canonical = json.loads((EXAMPLES / "graph-branch-join.json").read_text())
    shaped = read_seed_shapes(canonical)
    assert shaped.document == canonical and shaped.notes == () and not shaped.from_steps


async def test_seed_shapes_conditional_steps_run_one_branch_and_join_once(
    harness: Harness,
) -> None:
    doc = {
        "name": "w",
        "steps": [
            step(
                "c",
                "conditional",
                config=COND,
                trueSteps=[step("big", "transform", config={"mapping": {"size": "big"}})],
                falseSteps=[step("small", "transform", config={"mapping": {"size": "small"}})],
            ),
            step("after", "transform", config={"mapping": {"got": "{{input}}"}}),
        ],
    }
    definition = dump_definition(load_definition(doc))
    ex, runs = await harness.run(definition, {"n": 2})
    assert {k: r.status.value for k, r in runs.items()} == {
        "trigger": "succeeded",
        "c": "succeeded",
        "big": "skipped",
        "small": "succeeded",
        "after": "succeeded",
    }
    assert ex.output == {"got": {"small": {"size": "small"}}}
    assert [r.attempt for r in await harness.store.node_runs(ex.id) if r.node_id == "after"] == [1]


def test_seed_shapes_examples_say_what_they_were_read_as() -> None:
    expected = {
        "seed-steps-conditional.json": "steps[1]: (conditional with trueSteps/falseSteps) read "
        "as node step-1 (true → review; false → auto), both branches joining the next step",
        "seed-steps-loop.json": "steps[0]: (loop with nested steps) read as node each-line "
        "whose config.body is the chain price",
        "seed-workflow-limits.json": "rateLimitPerMinute: read as settings.per_minute = 60",
        "seed-action-retry.json": "steps[flaky]: retry {attempts, backoff} (BullMQ job "
        "options) read as retry {max_attempts: 3, strategy: exponential, backoff_ms: 200}",
    }
    for name, note in expected.items():
        assert note in load_with_notes(json.loads((EXAMPLES / name).read_text()))[1], name


def test_seed_shapes_empty_true_branch_still_reads_the_false_one() -> None:
    cond = step("c", "conditional", config=COND, trueSteps=[], falseSteps=[step("f")])
    doc = {"name": "w", "steps": [cond, step("n")]}
    notes = load_with_notes(doc)[1]
    assert sorted(graph(doc)[1]) == [
        ("c", "f", "false"),
        ("c", "n", "true"),
        ("f", "n"),
        ("trigger", "c"),
    ]
    assert notes == [
        "steps[0]: (conditional with trueSteps/falseSteps) read as node c "
        "(true → the next step; false → f), both branches joining the next step"
    ]


@pytest.mark.parametrize("config", [{"body": {}}, {"workflow_id": "w2"}])
def test_seed_shapes_loop_with_nested_steps_and_a_body_is_refused_saying_so(
    config: dict[str, Any],
) -> None:
    doc = {"name": "w", "steps": [step("l", "loop", config=config, steps=[step("b")])]}
    with pytest.raises(DefinitionError) as e:
        load_definition(doc)
    assert [(i.path, i.message) for i in e.value.issues] == [
        ("steps[0].steps", "give nested steps or config.body/workflow_id, not both")
    ]


def test_seed_shapes_loop_body_of_no_objects_is_read_as_empty_and_left_to_the_loader() -> None:
    for body in ([], ["identity"]):
        doc = {"name": "w", "steps": [step("l", "loop", steps=body)]}
        wf, notes = load_with_notes(doc)
        assert wf.node("l").config["body"] == {"nodes": body, "edges": []}
        assert notes == [
            "steps[0]: (loop with nested steps) read as node l whose config.body is "
            "the chain (empty)"
        ]


def test_seed_shapes_conditional_with_two_empty_branches_leads_on_without_a_handle() -> None:
    cond = step("c", "conditional", config=COND, trueSteps=[], falseSteps=[])
    assert graph({"steps": [cond, step("n")]})[1] == [("c", "n"), ("trigger", "c")]


def test_seed_shapes_branch_step_that_is_not_an_object_is_left_to_the_loader() -> None:
    cond = step("c", "conditional", config=COND, trueSteps=["identity", step("x")])
    with pytest.raises(DefinitionError) as e:
        load_definition({"name": "w", "steps": [cond]})
    assert [i.message for i in e.value.issues] == ["must be an object"]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (
            step("c", "conditional", config={**COND, "trueSteps": [step("x")]}, trueSteps=[]),
            ("steps[0].trueSteps", "give trueSteps on the step or in its config, not both"),
        ),
        (
            step("a", falseSteps=[step("b")]),
            ("steps[0].falseSteps", "only conditional steps have trueSteps/falseSteps"),
        ),
        (step("a", steps=[step("b")]), ("steps[0].steps", "only loop steps have nested steps")),
    ],
)
def test_seed_shapes_misplaced_nested_steps_are_refused_saying_why(
    bad: dict[str, Any], problem: tuple[str, str]
) -> None:
    with pytest.raises(DefinitionError) as e:
        load_definition({"name": "w", "steps": [bad]})
    assert [(i.path, i.message) for i in e.value.issues] == [problem]


def test_seed_shapes_conditional_and_loop_steps_without_nested_steps_are_read_as_they_are() -> None:
    body = {"nodes": [{"id": "x", "type": "noop"}], "edges": []}
    doc = {
        "name": "w",
        "steps": [
            step("c", "conditional", config=COND),
            step("l", "loop", config={"count": 2, "body": body}),
        ],
    }
    wf, notes = load_with_notes(doc)
    assert notes == []
    assert wf.node("l").config == {"count": 2, "body": body}
    assert graph(doc)[1] == [("c", "l"), ("trigger", "c")]


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"steps": "no"}, ("steps", "type", "must be a list of nodes")),
        ({"steps": []}, ("steps", "empty", "must hold at least one step")),
        (
            {"steps": [step("l", "loop", steps="no")]},
            ("steps[0].steps", "type", "must be a list of steps"),
        ),
    ],
)
def test_seed_shapes_step_list_problems_say_what_is_wrong(
    doc: dict[str, Any], problem: tuple[str, str, str]
) -> None:
    with pytest.raises(DefinitionError) as e:
        load_definition({"name": "w", **doc})
    assert [(i.path, i.code, i.message) for i in e.value.issues] == [problem]


def test_seed_shapes_steps_without_a_trigger_get_a_manual_one() -> None:
    out = dump_definition(load_definition({"name": "w", "steps": [step("a")]}))
    assert out["nodes"][0] == {
        "id": "trigger",
        "type": "trigger",
        "name": "Trigger",
        "config": {"triggerType": "manual"},
    }
    assert out["edges"] == [{"source": "trigger", "target": "a"}]


def test_seed_shapes_a_first_step_that_is_a_trigger_is_the_trigger() -> None:
    start = step("start", "trigger", config={"triggerType": "webhook"})
    assert graph({"steps": [start, step("a")]}) == (["start", "a"], [("start", "a")])


@pytest.mark.parametrize("trigger", ["webhook", {"type": 5}, {"path": "/x"}])
def test_seed_shapes_a_trigger_without_a_type_is_refused_saying_so(trigger: Any) -> None:
    with pytest.raises(DefinitionError) as e:
        load_definition({"name": "w", "trigger": trigger, "steps": [step("a")]})
    assert [(i.path, i.code, i.message) for i in e.value.issues] == [
        ("trigger", "invalid", 'must be an object with a type, e.g. {"type": "manual"}')
    ]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        # counted among the nodes, after the trigger that was added
        ("junk", ("steps[1]", "type", "must be an object")),
        ({"id": 5, "type": "noop"}, ("steps[1].id", "type", "must be a non-empty string")),
    ],
)
def test_seed_shapes_a_step_the_loader_refuses_does_not_hide_the_next_ones(
    bad: Any, problem: tuple[str, str, str]
) -> None:
    with pytest.raises(DefinitionError) as e:
        load_definition({"name": "w", "steps": [bad, step("a", bogus=1)]})
    first, *rest = e.value.issues
    assert (first.path, first.code, first.message) == problem
    assert [(i.path, i.code) for i in rest] == [("steps[a].bogus", "unknown_field")]


def test_seed_shapes_a_retry_problem_in_a_branch_is_named_by_the_step_id() -> None:
    bad = step("x", attempts=2, backoff={"type": "linear"})
    doc = {"name": "w", "steps": [step("c", "conditional", config=COND, trueSteps=[bad])]}
    with pytest.raises(DefinitionError) as e:
        load_definition(doc)
    assert [(i.path, i.code) for i in e.value.issues] == [("steps[x].backoff.type", "enum")]


def test_seed_shapes_steps_without_an_id_are_named_by_their_place() -> None:
    wf, notes = load_with_notes({"name": "w", "steps": [{"id": None, "type": "noop"}, step("a")]})
    assert [n.id for n in wf.nodes] == ["trigger", "step-0", "a"]
    assert notes == ["steps[0]: has no id; read as node step-0"]


def test_seed_shapes_a_branch_of_several_steps_is_noted_by_their_ids() -> None:
    cond = step("c", "conditional", config=COND, trueSteps=[step("a"), step("b")])
    assert load_with_notes({"name": "w", "steps": [cond]})[1] == [
        "steps[0]: (conditional with trueSteps/falseSteps) read as node c "
        "(true → a, b; false → the next step), both branches joining the next step"
    ]


def _node_issues(node: dict[str, Any]) -> list[tuple[str, str, str]]:
    doc = {"nodes": [step("t", "trigger"), node], "edges": [{"source": "t", "target": "a"}]}
    return [(i.path, i.message, i.code) for i in read_seed_shapes(doc).issues]


@pytest.mark.parametrize(
    ("node", "issues"),
    [
        (
            step("a", attempts=2, retry={"max_attempts": 2}),
            [("nodes[a].attempts", "give retry or attempts/backoff, not both", "invalid")],
        ),
        (  # a node without a usable id is named by its place
            {"id": 5, "type": "noop", "attempts": 2, "retry": {"max_attempts": 2}},
            [("nodes[1].attempts", "give retry or attempts/backoff, not both", "invalid")],
        ),
        (
            step("a", retry={"attempts": 3, "max_attempts": 4}),
            [("nodes[a].retry.attempts", "disagrees with max_attempts", "conflict")],
        ),
        (
            step("a", retry={"attempts": 2, "backoff": {"delay": 5, "jitter": 1}}),
            [
                (
                    "nodes[a].retry.backoff.jitter",
                    "unknown field; expected one of: delay, type",
                    "unknown_field",
                )
            ],
        ),
        (
            step("a", retry={"attempts": 2, "backoff": {"type": "linear"}}),
            [("nodes[a].retry.backoff.type", "must be fixed or exponential", "enum")],
        ),
        (
            step("a", attempts=2, backoff="2s"),
            [
                (
                    "nodes[a].backoff",
                    'must be a delay in ms or {"type": "exponential", "delay": 2000}',
                    "type",
                )
            ],
        ),
        (
            step("a", retry={"attempts": 2, "backoff": True}),
            [
                (
                    "nodes[a].retry.backoff",
                    'must be a delay in ms or {"type": "exponential", "delay": 2000}',
                    "type",
                )
            ],
        ),
        (step("a", retry={"attempts": 2, "backoff": None}), []),
    ],
    ids=[
        "both forms", "named by place", "attempts disagree", "unknown backoff key",
        "unknown strategy", "backoff text", "backoff boolean", "backoff null",
    ],
)  # fmt: skip
def test_seed_shapes_bullmq_retry_problems_are_named_exactly(
    node: dict[str, Any], issues: list[tuple[str, str, str]]
) -> None:
    assert _node_issues(node) == issues


@pytest.mark.parametrize(
    ("retry", "expected"),
    [
        ({"attempts": 2}, (2, 1000, "exponential")),  # the rest: Flowmill's defaults
        ({"backoff": 100}, (1, 100, "fixed")),
        ({"attempts": 3, "max_attempts": 3}, (3, 1000, "exponential")),  # agreeing: fine
    ],
)
def test_seed_shapes_bullmq_retry_with_one_of_its_keys_is_read(
    retry: dict[str, Any], expected: tuple[int, int, str]
) -> None:
    doc = {
        "name": "w",
        "nodes": [step("t", "trigger"), step("a", retry=retry)],
        "edges": [{"source": "t", "target": "a"}],
    }
    got = load_definition(doc).node("a").retry
    assert got is not None and (got.max_attempts, got.backoff_ms, got.strategy) == expected


_NODES = {"nodes": [step("t", "trigger"), step("a")], "edges": [{"source": "t", "target": "a"}]}


@pytest.mark.parametrize(
    ("doc", "notes", "issues", "read"),
    [
        (
            {"tenantId": "t1", **_NODES},
            ["tenantId: read as tenant_id"],
            [],
            {"tenant_id": "t1"},
        ),
        (
            {"tenantId": "t1", "tenant_id": "t1", **_NODES},
            ["tenantId: read as tenant_id"],
            [],
            {"tenant_id": "t1"},
        ),
        (
            {"tenantId": "t1", "tenant_id": "t2", **_NODES},
            [],
            [("tenantId", "disagrees with tenant_id", "conflict")],
            {"tenant_id": "t2"},
        ),
        ({"enabled": True, **_NODES}, ["enabled: read as status active"], [], {"status": "active"}),
        (
            {"enabled": False, **_NODES},
            ["enabled: read as status inactive"],
            [],
            {"status": "inactive"},
        ),
        ({"enabled": "yes", **_NODES}, [], [("enabled", "must be true or false", "type")], {}),
        (
            {"enabled": True, "status": "inactive", **_NODES},
            [],
            [("enabled", "disagrees with status 'inactive'", "conflict")],
            {"status": "inactive"},
        ),
        (
            {"steps": [step("a")], "actions": [step("b")]},
            [],
            [("actions", "give steps or actions (one list), not both", "conflict")],
            {},
        ),
        (
            {"rateLimitPerMinute": 60, "retryBackoffMs": 5, **_NODES},
            [
                "rateLimitPerMinute: read as settings.per_minute = 60",
                "retryBackoffMs: read as settings.retry.backoff_ms = 5",
            ],
            [],
            {"settings": {"per_minute": 60, "retry": {"backoff_ms": 5}}},
        ),
        (
            {"rateLimitPerMinute": "60", "retryMaxAttempts": 2.5, **_NODES},
            [],
            [
                ("rateLimitPerMinute", "must be a whole number", "type"),
                ("retryMaxAttempts", "must be a whole number", "type"),
            ],
            {},
        ),
        (
            {"retryMaxAttempts": 3, "settings": {"retry": {"max_attempts": 4}}, **_NODES},
            [],
            [("retryMaxAttempts", "disagrees with settings.retry.max_attempts (4)", "conflict")],
            {"settings": {"retry": {"max_attempts": 4}}},
        ),
        (  # settings.retry not an object: left for the loader, nothing read, nothing noted
            {"retryMaxAttempts": 3, "settings": {"retry": 7}, **_NODES},
            [],
            [],
            {"settings": {"retry": 7}},
        ),
        ({"rateLimitMaxConcurrent": None, **_NODES}, [], [], {}),  # Prisma's null: not given
    ],
    ids=[
        "tenantId", "tenantId agreeing", "tenantId disagreeing", "enabled", "disabled",
        "enabled text", "enabled against status", "steps and actions", "seed settings",
        "seed settings not whole", "seed setting disagreeing", "settings.retry not an object",
        "a null seed setting",
    ],
)  # fmt: skip
def test_seed_shapes_document_fields_are_read_and_named_word_for_word(
    doc: dict[str, Any], notes: list[str], issues: list[tuple[str, str, str]], read: dict[str, Any]
) -> None:
    shaped = read_seed_shapes(doc)
    assert list(shaped.notes) == notes
    assert [(i.path, i.message, i.code) for i in shaped.issues] == issues
    for key, value in read.items():
        assert shaped.document[key] == value, key


def test_seed_shapes_actions_alone_are_the_steps_and_anything_else_passes_through() -> None:
    shaped = read_seed_shapes({"actions": [step("a")]})
    assert "actions: read as steps" in shaped.notes
    assert [n["id"] for n in shaped.document["nodes"] if n["id"] != "trigger"] == ["a"]
    assert read_seed_shapes([1]).document == [1]  # not an object: left to the loader


def test_seed_shapes_a_disagreeing_seed_setting_does_not_stop_the_next() -> None:
    doc = {"retryMaxAttempts": 3, "retryBackoffMs": 5, "settings": {"retry": {"max_attempts": 4}}}
    shaped = read_seed_shapes({**doc, **_NODES})
    assert [i.path for i in shaped.issues] == ["retryMaxAttempts"]
    assert shaped.document["settings"]["retry"] == {"max_attempts": 4, "backoff_ms": 5}
