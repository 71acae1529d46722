"""The planner as tables: graph, what just resolved, what is known → ready and skipped."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import pytest

from flowmill.domain.execution import NodeState
from flowmill.domain.states import NodeRunStatus as S
from flowmill.engine import planner
from tests.unit.graphs import graph

OK = NodeState(S.SUCCEEDED)
SKIP = NodeState(S.SKIPPED)
RUNNING = NodeState(S.RUNNING)
QUEUED = NodeState(S.QUEUED)


def ok(*handles: str) -> NodeState:
    return NodeState(S.SUCCEEDED, handles)


def failed(*handles: str) -> NodeState:
    return NodeState(S.FAILED, handles or None)


CASES = [
    # id, graph, resolved now, already known, ready (node: sources), skipped
    ("chain", "t>a, a>b", {"t": OK}, {}, {"a": ("t",)}, []),
    ("chain middle", "t>a, a>b", {"a": OK}, {}, {"b": ("a",)}, []),
    ("fan-out", "t>a, t>b, t>c", {"t": OK}, {}, {"a": ("t",), "b": ("t",), "c": ("t",)}, []),
    ("join waits for the other branch", "t>a, t>b, a>j, b>j", {"a": OK}, {"b": RUNNING}, {}, []),
    ("join waits for unstarted branch", "t>a, t>b, a>j, b>j", {"a": OK}, {}, {}, []),
    (
        "join fires when the last arrives",
        "t>a, t>b, a>j, b>j",
        {"b": OK},
        {"a": OK},
        {"j": ("a", "b")},
        [],
    ),
    ("branch true", "t>c, c:true>y, c:false>n", {"c": ok("true")}, {}, {"y": ("c",)}, ["n"]),
    ("branch false", "t>c, c:true>y, c:false>n", {"c": ok("false")}, {}, {"n": ("c",)}, ["y"]),
    (
        "skip propagates down a chain",
        "t>c, c:true>y, c:false>n, n>n2, n2>n3",
        {"c": ok("true")},
        {},
        {"y": ("c",)},
        ["n", "n2", "n3"],
    ),
    (
        "join after a branch runs with the taken side",
        "t>c, c:true>y, c:false>n, y>j, n>j",
        {"y": OK},
        {"c": ok("true"), "n": SKIP},
        {"j": ("y",)},
        [],
    ),
    (
        "skip reaching a join leaves it waiting for the live branch",
        "t>c, c:true>y, c:false>n, y>j, n>j",
        {"c": ok("true")},
        {},
        {"y": ("c",)},
        ["n"],
    ),
    (
        "all inputs skipped skips the join",
        "t>c, c:true>y, c:false>n, y>j, n>j, t>z",
        {"c": ok()},
        {},
        {},
        ["y", "n", "j"],
    ),
    (
        "unlabelled edge of a branching node is always taken",
        "t>c, c:true>y, c>always",
        {"c": ok("false")},
        {},
        {"always": ("c",)},
        ["y"],
    ),
    (
        "switch case",
        "t>s, s:a>A, s:b>B, s:default>D",
        {"s": ok("b")},
        {},
        {"B": ("s",)},
        ["A", "D"],
    ),
    (
        "switch mode all",
        "t>s, s:a>A, s:b>B, s:default>D",
        {"s": ok("a", "b")},
        {},
        {"A": ("s",), "B": ("s",)},
        ["D"],
    ),
    (
        "error route taken on failure",
        "t>h, h>next, h:error>fix",
        {"h": failed("error")},
        {},
        {"fix": ("h",)},
        ["next"],
    ),
    (
        "error route not taken on success",
        "t>h, h>next, h:error>fix",
        {"h": OK},
        {},
        {"next": ("h",)},
        ["fix"],
    ),
    (
        "continue on error takes the normal edges",
        "t>h, h>next, h:error>fix",
        {"h": failed()},
        {},
        {"next": ("h",)},
        ["fix"],
    ),
    (
        "error handler joins back",
        "t>h, h>j, h:error>fix, fix>j",
        {"h": OK},
        {},
        {"j": ("h",)},
        ["fix"],
    ),
    (
        "error handler joins back after failure",
        "t>h, h>j, h:error>fix, fix>j",
        {"fix": OK},
        {"h": failed("error")},
        {"j": ("fix",)},
        [],
    ),
    ("join any fires on the first", "t>a, t>b, a>j*, b>j*", {"a": OK}, {}, {"j": ("a",)}, []),
    ("join any fires once", "t>a, t>b, a>j*, b>j*", {"b": OK}, {"a": OK, "j": RUNNING}, {}, []),
    (
        "join any skipped when all skipped",
        "t>c, c:true>a, c:false>b, a>j*, b>j*, t>z",
        {"c": ok()},
        {},
        {},
        ["a", "b", "j"],
    ),
    (
        "join any waits while a branch may still come",
        "t>c, c:true>a, c:false>b, a>j*, b>j*",
        {"c": ok("true")},
        {},
        {"a": ("c",)},
        ["b"],
    ),
    ("cancelled source takes no edge", "t>a, a>b", {"a": NodeState(S.CANCELLED)}, {}, {}, ["b"]),
    (
        "diamond with one branch retrying waits",
        "t>a, t>b, a>j, b>j",
        {"a": OK},
        {"b": QUEUED},
        {},
        [],
    ),
    # Written for mutation survivors: each decides differently if one loop stops early.
    (
        "a started join any does not hold back the source's other successors",
        "t>a, t>b, a>j*, b>j*, a>k",
        {"a": OK},
        {"j": RUNNING},
        {"k": ("a",)},
        [],
    ),
    (
        "join any fires though a branch before it in the edge list still runs",
        "t>a, t>b, a>j*, b>j*",
        {"b": OK},
        {"a": RUNNING},
        {"j": ("b",)},
        [],
    ),
    (
        "a wide join any that already started is looked up, not started again",
        ", ".join(f"t>b{i}, b{i}>j*" for i in range(6)),
        {"b0": OK},
        {"j": RUNNING, **{f"b{i}": RUNNING for i in range(1, 6)}},
        {},
        [],
    ),
    (
        "a wide join still waiting does not keep the next successor from its reads",
        ", ".join(f"t>b{i}, b{i}>j" for i in range(6)) + ", t>x, b0>k, x>k",
        {"b0": OK},
        {"x": OK, **{f"b{i}": RUNNING for i in range(1, 6)}},
        {"k": ("b0", "x")},
        [],
    ),
]


@pytest.mark.parametrize(
    ("spec", "resolved", "known", "ready", "skipped"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_planner_decides_ready_and_skipped(
    spec: str,
    resolved: dict[str, NodeState],
    known: dict[str, NodeState],
    ready: dict[str, tuple[str, ...]],
    skipped: list[str],
) -> None:
    g = graph(spec)

    def lookup(ids: Collection[str]) -> Mapping[str, NodeState]:
        return {i: known[i] for i in ids if i in known}

    plan = planner.plan(g, resolved, lookup)
    assert {r.node_id: r.sources for r in plan.ready} == ready
    assert sorted(plan.skipped) == sorted(skipped)


def test_planner_asks_only_for_what_a_decision_needs() -> None:
    chain = ", ".join(f"n{i}>n{i + 1}" for i in range(1000))
    g = graph(f"t>n0, {chain}")
    asked: list[set[str]] = []

    def lookup(ids: Collection[str]) -> Mapping[str, NodeState]:
        asked.append(set(ids))
        return {}

    plan = planner.plan(g, {"n500": OK}, lookup)
    assert [r.node_id for r in plan.ready] == ["n501"]
    assert asked == []  # a chain step needs no lookup at all


def _wide_join(width: int) -> str:
    return ", ".join(f"t>b{i}, b{i}>j" for i in range(width))


@pytest.mark.parametrize(
    ("done", "reads_at_most", "ready"),
    [
        (range(100), planner.PROBE, False),  # the last branches still run: a probe
        (range(199), 200, False),  # only b199 left: the probe meets it
        (range(200), 200, True),  # all done: every state is read once
        (range(1, 200), 200, False),  # b0 left, behind the probe: all read, not yet
    ],
    ids=["first half done", "all but the last", "all done", "all but the first"],
)
def test_planner_probes_a_wide_join_before_reading_all(
    done: range, reads_at_most: int, ready: bool
) -> None:
    g = graph(f"{_wide_join(200)}")
    known = {f"b{i}": OK for i in done}
    asked: list[str] = []

    def lookup(ids: Collection[str]) -> Mapping[str, NodeState]:
        asked.extend(ids)
        return {i: known[i] for i in ids if i in known}

    last = f"b{done[-1]}"
    plan = planner.plan(g, {last: OK}, lookup)
    assert len(asked) <= reads_at_most
    assert len(asked) == len(set(asked))  # nothing read twice
    assert [r.node_id for r in plan.ready] == (["j"] if ready else [])
    if ready:
        assert len(plan.ready[0].sources) == 200


def test_planner_start_skips_other_triggers() -> None:
    g = graph("t>a, t2>b, a>j, b>j", triggers=("t", "t2"))
    plan = planner.start_plan(g, "t", lambda ids: {})
    assert [r.node_id for r in plan.ready] == ["a"]
    assert sorted(plan.skipped) == ["b", "t2"]


@pytest.mark.parametrize(
    ("handle", "state", "taken"),
    [
        (None, OK, True),
        ("true", OK, False),
        ("true", ok("true"), True),
        (None, ok("true"), True),
        ("error", ok("true"), False),
        ("error", failed("error"), True),
        (None, failed("error"), False),
        (None, failed(), True),
        (None, SKIP, False),
        (None, RUNNING, False),
    ],
)
def test_planner_edge_taken(handle: str | None, state: NodeState, taken: bool) -> None:
    from flowmill.domain.workflow import Edge

    assert planner.edge_taken(Edge("a", "b", handle), state) is taken
