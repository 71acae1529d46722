"""Loop, sub_workflow and wait nodes on the engine with fakes (tables of cases)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowmill.domain.errors import DefinitionError
from flowmill.domain.events import EventType
from flowmill.domain.states import ExecutionStatus as X
from flowmill.engine.control import ControlSettings
from flowmill.engine.services import NodeServices
from flowmill.engine.validation import load_and_compile
from flowmill.nodes.loop import _Indexes
from flowmill.testing import FakeCodeRunner, eventually
from tests.engine_support import Harness, open_harness, registry, spy_on_starts, wf


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


SIGNED_BODY = [
    {
        "id": "check",
        "type": "conditional",
        "config": {"condition": {"left": "{{item}}", "op": "<", "right": 0}},
    },
    {"id": "boom", "type": "fail", "config": {"message": "negative {{item}}"}},
    {"id": "ok", "type": "transform", "config": {"mapping": {"v": "{{item}}"}}},
]
SIGNED_EDGES = [
    {"source": "check", "target": "boom", "sourceHandle": "true"},
    {"source": "check", "target": "ok", "sourceHandle": "false"},
]


def signed_loop(**config: Any) -> dict[str, Any]:
    body = {"nodes": SIGNED_BODY, "edges": SIGNED_EDGES}
    node = {
        "id": "each",
        "type": "loop",
        "config": {"items": "{{data.xs}}", "body": body, **config},
    }
    return wf([node], [("t", "each")])


FAILURES = [
    # (name, config, data, status, output or error type)
    ("fail-sequential", {}, {"xs": [1, -2, 3]}, X.FAILED, "ChildFailed"),
    ("fail-parallel", {"mode": "parallel"}, {"xs": [1, -2, 3, 4]}, X.FAILED, "ChildFailed"),
    (
        "continue",
        {"on_item_error": "continue", "mode": "parallel"},
        {"xs": [1, -2, 3]},
        X.SUCCEEDED,
        {"results": [{"v": 1}, None, {"v": 3}], "errors": [{"index": 1}]},
    ),
    ("max-iterations", {"max_iterations": 2}, {"xs": [1, 2, 3]}, X.FAILED, "MaxIterationsExceeded"),
    ("not-an-array", {}, {"xs": "abc"}, X.FAILED, "InvalidLoop"),
]


@pytest.mark.parametrize(
    ("name", "config", "data", "status", "expected"), FAILURES, ids=[c[0] for c in FAILURES]
)
async def test_loop_item_errors_and_limits(
    harness: Harness, name: str, config: dict[str, Any], data: Any, status: X, expected: Any
) -> None:
    ex, runs = await harness.run(signed_loop(**config), data)
    assert ex.status is status, (ex.error, runs["each"].output)
    if status is X.FAILED:
        assert ex.error is not None and ex.error["type"] == expected, ex.error
        return
    out = runs["each"].output
    assert out["results"] == expected["results"]
    assert [e["index"] for e in out["errors"]] == [e["index"] for e in expected["errors"]]
    assert out["errors"][0]["error"]["message"] == "negative -2"


async def test_loop_nested_loops_see_their_own_items(harness: Harness) -> None:
    inner = {
        "id": "inner",
        "type": "loop",
        "config": {
            "items": "{{item.ys}}",
            "body": {
                "nodes": [
                    {"id": "pair", "type": "transform", "config": {"mapping": {"y": "{{item}}"}}}
                ],
                "edges": [],
            },
        },
    }
    outer = {
        "id": "outer",
        "type": "loop",
        "config": {
            "items": "{{data.xss}}",
            "mode": "parallel",
            "body": {"nodes": [inner], "edges": []},
        },
    }
    ex, runs = await harness.run(
        wf([outer], [("t", "outer")]), {"xss": [{"ys": [1, 2]}, {"ys": []}, {"ys": [3]}]}
    )
    assert ex.status is X.SUCCEEDED, ex.error
    assert runs["outer"].output == [[{"y": 1}, {"y": 2}], [], [{"y": 3}]]
    grandchildren = [e for e in harness.store.executions.values() if e.trigger.get("depth") == 2]
    assert len(grandchildren) == 3


async def test_loop_while_runs_until_the_condition_fails(harness: Harness) -> None:
    node = {
        "id": "again",
        "type": "loop",
        "config": {
            "while": {"left": "{{index}}", "op": "<", "right": 4},
            "body": {
                "nodes": [
                    {"id": "sq", "type": "transform", "config": {"mapping": {"i": "{{index}}"}}}
                ],
                "edges": [],
            },
        },
    }
    ex, runs = await harness.run(wf([node], [("t", "again")]), {})
    assert ex.status is X.SUCCEEDED, ex.error
    assert runs["again"].output == [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}]


def js_while_loop(condition: str, **config: Any) -> dict[str, Any]:
    body = {
        "nodes": [{"id": "sq", "type": "transform", "config": {"mapping": {"i": "{{index}}"}}}],
        "edges": [],
    }
    node = {"id": "again", "type": "loop", "config": {"while": condition, "body": body, **config}}
    return wf([node], [("t", "again")])


def _last_i(scope: Any) -> int:
    last = scope["last"]
    return -1 if last is None else int(last["i"])


JS_WHILE = [
    # (name, condition, scripted answer from the scope, config, status, output or error)
    (
        "sees-index-and-last",
        "last === null || last.i < 2",
        lambda s: s["index"] < 10 and _last_i(s) < 2,
        {},
        X.SUCCEEDED,
        [{"i": 0}, {"i": 1}, {"i": 2}],
    ),
    ("false-at-once", "false", lambda s: False, {}, X.SUCCEEDED, []),
    (
        "max-iterations",
        "true",
        lambda s: True,
        {"max_iterations": 3},
        X.FAILED,
        "MaxIterationsExceeded",
    ),
]


@pytest.mark.parametrize(
    ("name", "condition", "answer", "config", "status", "expected"),
    JS_WHILE,
    ids=[c[0] for c in JS_WHILE],
)
async def test_loop_while_javascript_runs_in_the_sandbox(
    name: str, condition: str, answer: Any, config: dict[str, Any], status: X, expected: Any
) -> None:
    fake = FakeCodeRunner({condition: answer})
    async with open_harness(NodeServices(code=fake, expressions=fake)) as harness:
        ex, runs = await harness.run(js_while_loop(condition, **config), {})
    assert ex.status is status, ex.error
    if status is X.FAILED:
        assert ex.error is not None and ex.error["type"] == expected, ex.error
        return
    assert runs["again"].output == expected
    # tested before each iteration and once more to stop
    assert fake.calls == [("expression", condition)] * (len(expected) + 1)


def test_loop_while_javascript_needs_the_sandbox() -> None:
    doc = js_while_loop("index < 3")
    with pytest.raises(DefinitionError) as caught:
        load_and_compile(doc, registry())
    assert "JavaScript and needs the sandbox" in str(caught.value)
    load_and_compile(doc, registry(), expressions_enabled=True)


def parks_of(harness: Harness, execution_id: str, node_id: str) -> int:
    """How many times the node parked (suspended) in the execution."""
    return sum(
        1
        for e in harness.store.events
        if e.stream_id == execution_id
        and e.type == EventType.NODE_WAITING.value
        and e.payload.get("node_id") == node_id
    )


DRIVEN = [
    # (name, config, items)
    ("sequential", {}, 40),
    ("parallel", {"mode": "parallel", "concurrency": 4}, 40),
]


@pytest.mark.parametrize(("name", "config", "n"), DRIVEN, ids=[c[0] for c in DRIVEN])
async def test_loop_inline_body_iterations_run_in_the_loop_step_without_parking(
    name: str, config: dict[str, Any], n: int
) -> None:
    # A budget no run of this test reaches: the whole loop is one run of its step.
    async with open_harness(control=ControlSettings(poll_s=5.0, drive_s=60)) as harness:
        ex, runs = await harness.run(loop_wf({"count": n, **config}), {})
    assert ex.status is X.SUCCEEDED, ex.error
    assert runs["each"].output == [{"v": i, "i": i} for i in range(n)]
    assert parks_of(harness, ex.id, "each") == 0
    kids = [e for e in harness.store.executions.values() if e.parent_execution_id == ex.id]
    assert sorted(k.iteration or 0 for k in kids) == list(range(n))  # each a child, once
    assert all(k.status is X.SUCCEEDED for k in kids)


async def test_loop_drive_budget_spent_parks_and_goes_on() -> None:
    # No budget: each run of the step parks as soon as a window runs, leaving it to its
    # next run, which comes at once (long before the 60 s poll) and takes it over.
    async with open_harness(control=ControlSettings(poll_s=60.0, drive_s=1e-9)) as harness:
        ex, runs = await harness.run(loop_wf({"count": 6}), {}, timeout=20)
    assert ex.status is X.SUCCEEDED, ex.error
    assert runs["each"].output == [{"v": i, "i": i} for i in range(6)]
    assert parks_of(harness, ex.id, "each") >= 1
    kids = [e for e in harness.store.executions.values() if e.parent_execution_id == ex.id]
    assert sorted(k.iteration or 0 for k in kids) == list(range(6))


@pytest.mark.parametrize(("name", "config", "n"), DRIVEN, ids=[c[0] for c in DRIVEN])
async def test_loop_drive_budget_spent_keeps_the_window_full_across_the_park(
    name: str, config: dict[str, Any], n: int
) -> None:
    # Every run of the step spends its budget at once and parks with its iterations
    # running; a relay longer than any run takes keeps them starting the next ones, and
    # each next run of the step takes them over. So only the first window is started by
    # a write of its own: every later iteration is carried by the end of another.
    settings = ControlSettings(poll_s=60.0, drive_s=1e-9, relay_s=30.0)
    async with open_harness(control=settings) as harness:
        spy = spy_on_starts(harness.store)
        ex, runs = await harness.run(loop_wf({"count": n, **config}), {}, timeout=20)
    assert ex.status is X.SUCCEEDED, ex.error
    assert runs["each"].output == [{"v": i, "i": i} for i in range(n)]
    assert parks_of(harness, ex.id, "each") >= 2  # the budget was spent, more than once
    window = config.get("concurrency", 1)
    assert spy.batches == [window]
    assert len(spy.carriers) == n - window
    kids = [e for e in harness.store.executions.values() if e.parent_execution_id == ex.id]
    assert sorted(k.iteration or 0 for k in kids) == list(range(n))


async def test_loop_driven_body_slower_than_the_loop_step_time_out_still_ends() -> None:
    # Each iteration sleeps 1.5 s; the loop's own step may run 1 s. Children still
    # running when the drive budget is spent go on without the step, which parks.
    body = [{"id": "nap", "type": "slow", "config": {"seconds": 1.5}}]
    doc = loop_wf({"count": 2, "mode": "parallel"}, body)
    doc["nodes"][1]["timeout_s"] = 1.0
    async with open_harness(control=ControlSettings(poll_s=5.0, drive_s=0.2)) as harness:
        ex, runs = await harness.run(doc, {}, timeout=20)
    assert ex.status is X.SUCCEEDED, ex.error
    assert runs["each"].output == [{"slept": 1.5}, {"slept": 1.5}]


async def test_loop_driven_window_is_started_in_one_write() -> None:
    # The free places of the window are started together: one start_many of three,
    # never a start of one child alone; each later iteration is started by the commit
    # that ends one before it, in its place.
    async with open_harness(control=ControlSettings(poll_s=5.0, drive_s=60)) as harness:
        spy = spy_on_starts(harness.store)
        ex, runs = await harness.run(
            loop_wf({"count": 7, "mode": "parallel", "concurrency": 3}), {}
        )
    assert ex.status is X.SUCCEEDED, ex.error
    assert runs["each"].output == [{"v": i, "i": i} for i in range(7)]
    assert spy.batches == [3]
    assert len(spy.carriers) == 4  # iterations 3 to 6, each by an ending one
    assert spy.singles == [ex.id]  # the parent alone: no child started one by one


async def test_loop_start_carried_past_the_budget_is_driven_and_found() -> None:
    # The first iteration's end is committed only after the loop's step has spent its
    # budget and parked, yet it carries the next start (claimed while time was left).
    # The step's next run is elsewhere (it does not take over what this run left), so
    # the iterations left running here drive that one; that run, which saved it as
    # perhaps not started, finds it by its key; every iteration runs once. (A budget of
    # 1 s: the claim must come before it ends, even on a loaded machine.)
    async with open_harness(control=ControlSettings(poll_s=60.0, drive_s=1.0)) as harness:
        assert harness.engine.control is not None
        harness.engine.control.pick_up = lambda *_: None  # type: ignore[method-assign]
        spy = spy_on_starts(harness.store)
        gate = asyncio.Event()
        held: list[str] = []
        checkpoint = harness.store.checkpoint

        async def first_waits(execution_id: str, build: Any, **kwargs: Any) -> Any:
            ex = harness.store.executions.get(execution_id)
            if ex is not None and ex.iteration == 0 and not held:
                held.append(execution_id)
                await gate.wait()  # until the loop's step has parked
            return await checkpoint(execution_id, build, **kwargs)

        harness.store.checkpoint = first_waits  # type: ignore[method-assign]
        execution_id = await harness.start(loop_wf({"count": 3}), {})
        await eventually(
            lambda: parks_of(harness, execution_id, "each") >= 1, 10, "the loop's step parked"
        )
        gate.set()
        ex = await harness.engine.wait(execution_id, timeout=10)
        runs = await harness.latest(execution_id)
    assert ex.status is X.SUCCEEDED, ex.error
    assert runs["each"].output == [{"v": i, "i": i} for i in range(3)]
    kids = [e for e in harness.store.executions.values() if e.parent_execution_id == ex.id]
    assert sorted(k.iteration or 0 for k in kids) == [0, 1, 2]
    assert held and held[0] in spy.carriers  # its end, after the park, started iteration 1


CARRIED = [
    # (name, config, items, iterations started, started by the commit ending the last)
    ("all succeed", {}, [1, 2, 3, 4, 5], [0, 1, 2, 3, 4], 4),
    ("fail stops at the failure", {}, [1, -2, 3, 4], [0, 1], 1),
    ("continue goes past it", {"on_item_error": "continue"}, [1, -2, 3, 4], [0, 1, 2, 3], 3),
]


@pytest.mark.parametrize(
    ("name", "config", "items", "iterations", "carried"), CARRIED, ids=[c[0] for c in CARRIED]
)
async def test_loop_sequential_iteration_starts_with_the_commit_that_ends_the_last(
    name: str, config: dict[str, Any], items: list[int], iterations: list[int], carried: int
) -> None:
    # Driven here, a sequential loop writes one commit per iteration, not two: the
    # first iteration alone is started by a write of its own (start_many); each next
    # one is carried by the checkpoint that ends the one before, if that end lets the
    # loop go on. After a failure under ``fail`` no iteration starts.
    async with open_harness(control=ControlSettings(poll_s=5.0, drive_s=60)) as harness:
        spy = spy_on_starts(harness.store)
        ex, _runs = await harness.run(signed_loop(**config), {"xs": items})
    kids = sorted(
        (e for e in harness.store.executions.values() if e.parent_execution_id == ex.id),
        key=lambda e: e.iteration or 0,
    )
    assert [k.iteration for k in kids] == iterations
    assert spy.batches == [1]
    assert len(spy.carriers) == carried
    by_id = {k.id: k.iteration for k in kids}
    assert [by_id[c] for c in spy.carriers] == iterations[:carried]  # each by the one before
    assert ex.status is (X.FAILED if name.startswith("fail") else X.SUCCEEDED), ex.error


async def test_loop_child_driven_elsewhere_frees_its_place_when_it_ends() -> None:
    # The first iteration parks (a wait), so the loop's step stops driving it; with a
    # window of one, the next iteration starts only once it ends. Its end (a signal)
    # must reach the step still driving, at once: the budget (60 s) is far off, and
    # no wake comes to a step that drives.
    body = [
        {"id": "gate", "type": "wait", "config": {"signal": "go"}},
        {"id": "echo", "type": "transform", "config": {"mapping": {"i": "{{index}}"}}},
    ]
    doc = loop_wf({"count": 2}, body)
    doc["nodes"][1]["config"]["body"]["edges"] = [{"source": "gate", "target": "echo"}]
    async with open_harness(control=ControlSettings(poll_s=60.0, drive_s=60)) as harness:
        execution_id = await harness.start(doc, {})

        def kid(i: int) -> Any:
            return next(
                (
                    e
                    for e in harness.store.executions.values()
                    if e.parent_execution_id == execution_id and e.iteration == i
                ),
                None,
            )

        for i in range(2):
            await eventually(
                lambda i=i: kid(i) is not None and kid(i).status is X.WAITING,
                5,
                f"iteration {i} waiting",
            )
            assert await harness.engine.signals.send("t1", kid(i).id, "go", {})
        ex = await harness.engine.wait(execution_id, timeout=10)
    assert ex.status is X.SUCCEEDED, ex.error
    assert parks_of(harness, execution_id, "each") == 0


async def test_loop_cancelling_the_parent_cancels_its_children(harness: Harness) -> None:
    body = {"nodes": [{"id": "hold", "type": "wait", "config": {"signal": "never"}}], "edges": []}
    node = {"id": "each", "type": "loop", "config": {"count": 3, "mode": "parallel", "body": body}}
    execution_id = await harness.start(wf([node], [("t", "each")]), {})

    def kids() -> list[Any]:
        return [
            e for e in harness.store.executions.values() if e.parent_execution_id == execution_id
        ]

    await eventually(
        lambda: len(kids()) == 3 and all(k.status is X.WAITING for k in kids()),
        5,
        "3 waiting children",
    )
    assert await harness.engine.cancel(execution_id)
    await eventually(lambda: all(k.status is X.CANCELLED for k in kids()), 5, "children cancelled")


CHILD = wf(
    [{"id": "twice", "type": "transform", "config": {"mapping": {"n": "{{data.n}}"}}}],
    [("t", "twice")],
)
FAILING_CHILD = wf(
    [{"id": "boom", "type": "fail", "config": {"message": "child broke"}}], [("t", "boom")]
)


def caller(**config: Any) -> dict[str, Any]:
    node = {"id": "call", "type": "sub_workflow", "config": {"input": "{{data}}", **config}}
    return wf([node], [("t", "call")])


SUBS = [
    # (name, child definition, caller config, node on_error, status, output or error type)
    ("wait", CHILD, {"workflow_id": "child"}, "fail", X.SUCCEEDED, {"n": 7}),
    ("failure-fails", FAILING_CHILD, {"workflow_id": "child"}, "fail", X.FAILED, "ChildFailed"),
    (
        "failure-continues",
        FAILING_CHILD,
        {"workflow_id": "child"},
        "continue",
        X.SUCCEEDED,
        "ChildFailed",
    ),
    ("unknown-workflow", CHILD, {"workflow_id": "nope"}, "fail", X.FAILED, "SubWorkflowNotFound"),
    (
        "unknown-version",
        CHILD,
        {"workflow_id": "child", "version": 9},
        "fail",
        X.FAILED,
        "SubWorkflowNotFound",
    ),
]


@pytest.mark.parametrize(
    ("name", "child", "config", "on_error", "status", "expected"), SUBS, ids=[c[0] for c in SUBS]
)
async def test_subworkflow_waits_and_propagates(
    harness: Harness,
    name: str,
    child: dict[str, Any],
    config: dict[str, Any],
    on_error: str,
    status: X,
    expected: Any,
) -> None:
    harness.definitions.add("child", child)
    doc = caller(**config)
    doc["nodes"][1]["on_error"] = on_error
    ex, runs = await harness.run(doc, {"n": 7})
    assert ex.status is status, ex.error
    if status is X.FAILED:
        assert ex.error is not None and ex.error["type"] == expected
    elif on_error == "continue":
        assert runs["call"].output["error"]["type"] == expected
        assert "child broke" in runs["call"].output["error"]["message"]
    else:
        assert ex.output == expected
        (kid,) = [e for e in harness.store.executions.values() if e.parent_execution_id == ex.id]
        assert kid.parent_node_id == "call" and kid.status is X.SUCCEEDED


async def test_subworkflow_fire_and_forget_returns_the_child_id(harness: Harness) -> None:
    harness.definitions.add("child", CHILD)
    ex, runs = await harness.run(caller(workflow_id="child", wait=False), {"n": 1})
    assert ex.status is X.SUCCEEDED
    child_id = runs["call"].output["execution_id"]
    done = await harness.engine.wait(child_id, timeout=5)
    assert done.status is X.SUCCEEDED and done.output == {"n": 1}
    assert done.parent_execution_id == ex.id


async def test_subworkflow_recursion_stops_at_the_depth_limit() -> None:
    async with open_harness(control=ControlSettings(max_depth=3, poll_s=5)) as h:
        doc = caller(workflow_id="wf")
        ex, _ = await h.run(doc, {"n": 1})
        assert ex.status is X.FAILED
        assert ex.error is not None and ex.error["type"] == "ChildFailed"
        assert "nest 4 deep, over the limit of 3" in ex.error["message"]
        assert len(h.store.executions) == 4  # the top and three levels of children


def waiting(**config: Any) -> dict[str, Any]:
    return wf(
        [
            {"id": "pause", "type": "delay", "config": {"ms": "{{data.delay}}"}},
            {"id": "approve", "type": "wait", "config": config},
            {"id": "after", "type": "transform", "config": {"mapping": {"got": "{{input}}"}}},
        ],
        [("t", "pause"), ("pause", "approve"), ("approve", "after")],
    )


@pytest.mark.parametrize("moment", ["before", "during"])
async def test_wait_takes_a_signal_sent_before_or_during_it(harness: Harness, moment: str) -> None:
    delay = 300 if moment == "before" else 0
    execution_id = await harness.start(waiting(signal="approved"), {"delay": delay})
    if moment == "during":
        await eventually(
            lambda: (
                (r := harness.store.runs.get(execution_id)) is not None
                and any(x.node_id == "approve" and x.status.value == "waiting" for x in r)
            ),
            5,
            "the wait parked",
        )
    assert await harness.engine.signals.send("t1", execution_id, "approved", {"ok": True})
    ex = await harness.engine.wait(execution_id, timeout=5)
    assert ex.status is X.SUCCEEDED, ex.error
    assert ex.output == {"got": {"ok": True}}


async def test_wait_signal_after_the_end_is_refused(harness: Harness) -> None:
    ex, _ = await harness.run(waiting(timeout=0.05, on_timeout="continue"), {"delay": 0})
    assert ex.status is X.SUCCEEDED
    assert not await harness.engine.signals.send("t1", ex.id, "resume", {})
    assert not await harness.engine.signals.send("other-tenant", ex.id, "resume", {})


async def test_wait_resume_url_works_once(harness: Harness) -> None:
    execution_id = await harness.start(waiting(), {"delay": 0})
    control = harness.engine.control
    assert control is not None
    token = control.resume_token(execution_id)
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert harness.engine.signals.execution_of(forged) is None
    assert await harness.engine.signals.resume(token + "x", {}) == (None, "unknown")
    await eventually(
        lambda: harness.store.executions[execution_id].status is X.WAITING, 5, "waiting"
    )
    assert await harness.engine.signals.resume(token, {"by": "ada"}) == (execution_id, "resumed")
    assert await harness.engine.signals.resume(token, {"by": "eve"}) == (execution_id, "used")
    ex = await harness.engine.wait(execution_id, timeout=5)
    assert ex.output == {"got": {"by": "ada"}}


TIMEOUTS = [
    ("fail", {"timeout": 0.1}, X.FAILED, "WaitTimeout"),
    (
        "continue",
        {"timeout": 0.1, "on_timeout": "continue", "default": {"late": True}},
        X.SUCCEEDED,
        {"got": {"late": True}},
    ),
]


@pytest.mark.parametrize(
    ("name", "config", "status", "expected"), TIMEOUTS, ids=[c[0] for c in TIMEOUTS]
)
async def test_wait_timeout_fails_or_continues(
    harness: Harness, name: str, config: dict[str, Any], status: X, expected: Any
) -> None:
    ex, _ = await harness.run(waiting(**config), {"delay": 0})
    assert ex.status is status
    if status is X.FAILED:
        assert ex.error is not None and ex.error["type"] == expected
    else:
        assert ex.output == expected


def test_loop_body_problems_are_found_when_the_workflow_is_checked() -> None:
    bad = {
        "nodes": [{"id": "x", "type": "nope"}, {"id": "y", "type": "transform"}],
        "edges": [{"source": "x", "target": "ghost"}],
    }
    doc = wf([{"id": "each", "type": "loop", "config": {"count": 2, "body": bad}}], [("t", "each")])
    with pytest.raises(DefinitionError) as caught:
        load_and_compile(doc, registry())
    paths = [i.path for i in caught.value.issues]
    assert any(p.startswith("nodes[each].config.body.") for p in paths), paths
    assert "unknown node type 'nope'" in str(caught.value)


async def test_loop_body_may_be_another_workflow(harness: Harness) -> None:
    child = wf(
        [
            {
                "id": "n",
                "type": "transform",
                "config": {"mapping": {"v": "{{data.item}}", "i": "{{index}}"}},
            }
        ],
        [("t", "n")],
    )
    harness.definitions.add("per-item", child)
    node = {
        "id": "each",
        "type": "loop",
        "config": {"items": "{{data.xs}}", "workflow_id": "per-item"},
    }
    ex, runs = await harness.run(wf([node], [("t", "each")]), {"xs": ["a", "b"]})
    assert ex.status is X.SUCCEEDED, ex.error
    assert runs["each"].output == [{"v": "a", "i": 0}, {"v": "b", "i": 1}]


async def test_subworkflow_fire_and_forget_child_outlives_a_failing_parent(
    harness: Harness,
) -> None:
    hold = wf([{"id": "hold", "type": "wait", "config": {"signal": "go"}}], [("t", "hold")])
    harness.definitions.add("child", hold)
    doc = wf(
        [
            {
                "id": "call",
                "type": "sub_workflow",
                "config": {"workflow_id": "child", "wait": False},
            },
            {"id": "boom", "type": "fail", "config": {"message": "parent breaks"}},
        ],
        [("t", "call"), ("call", "boom")],
    )
    ex, runs = await harness.run(doc, {})
    assert ex.status is X.FAILED
    child_id = runs["call"].output["execution_id"]
    await eventually(
        lambda: harness.store.executions[child_id].status is X.WAITING, 5, "the child parked"
    )
    assert await harness.engine.signals.send("t1", child_id, "go", {"still": "here"})
    done = await harness.engine.wait(child_id, timeout=5)
    assert done.status is X.SUCCEEDED and done.output == {"still": "here"}


def test_loop_indexes_given_back_come_first_and_bound_what_is_saved() -> None:
    # A run of the loop's step hands out iterations in order, an index given back (a
    # claim whose checkpoint did not carry the start) before any new one; what a
    # suspension saves as started is below every index not surely started.
    idx = _Indexes(4)
    assert idx.take(2, 10) == [4, 5]
    assert idx.claim(10) == 6 and idx.claim(10) == 7
    assert idx.issued == 6  # 6 and 7 are claimed: maybe not started
    idx.back(6)
    idx.claimed.discard(7)  # 7 was started by its carrier
    assert idx.issued == 6  # 6 was given back: not started
    assert idx.take(3, 10) == [6, 8, 9]
    assert idx.take(1, 10) == [] and idx.claim(10) is None
    assert idx.issued == 10
