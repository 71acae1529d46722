"""``engine.transitions.after_step`` directly: what one attempt's end writes.

Written for survivors of the mutation run (docs/testing.md): the engine tests reached
these branches but did not look at the effects they produce.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowmill.domain.execution import ExecutionRecord, NodeRun, NodeState
from flowmill.domain.states import ExecutionStatus, NodeRunStatus
from flowmill.engine import transitions as tx
from flowmill.engine.compiled import CompiledWorkflow
from flowmill.engine.effects import LIVE
from tests.engine_support import registry, wf

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


class Reader:
    """Other runs of the execution: ``live`` says whether any is unfinished."""

    def __init__(self, live: bool = False) -> None:
        self.live = live

    def states(self, node_ids: Collection[str]) -> Mapping[str, NodeState]:
        return {}

    def outputs(self, node_ids: Collection[str]) -> Mapping[str, Any]:
        return {}

    def has_live_runs(self, exclude: Collection[str]) -> bool:
        return self.live


def compiled() -> CompiledWorkflow:
    from flowmill.engine.validation import load_and_compile

    chain = wf([{"id": "a", "type": "noop"}, {"id": "b", "type": "noop"}], [("t", "a"), ("a", "b")])
    return load_and_compile(chain, registry())


def execution(status: ExecutionStatus = ExecutionStatus.RUNNING) -> ExecutionRecord:
    return ExecutionRecord("ex-1", "t1", "wf", 1, status, {"type": "manual"}, "manual", NOW)


def run(status: NodeRunStatus = NodeRunStatus.QUEUED) -> NodeRun:
    return NodeRun("run-a", "ex-1", "t1", "a", 2, status)


def events(fx: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, e.payload) for e in fx.events]


def test_transitions_a_step_of_an_ended_execution_is_cancelled_with_its_logs() -> None:
    started = NOW - timedelta(seconds=3)
    outcome = tx.Succeeded({"x": 1}, started_at=started, logs=["line"])  # type: ignore[list-item]
    fx = tx.after_step(
        compiled(), execution(ExecutionStatus.CANCELLED), run(), outcome, Reader(), NOW
    )
    [update] = fx.run_updates
    assert (update.run_id, update.status) == ("run-a", NodeRunStatus.CANCELLED)
    assert update.expect == LIVE  # a run that finished meanwhile keeps its result
    assert (update.started_at, update.completed_at) == (started, NOW)
    assert update.error == {"type": "ExecutionEnded", "message": "execution is cancelled"}
    assert fx.logs == ["line"]
    assert fx.new_runs == [] and fx.events == []


def test_transitions_a_success_records_start_and_completion() -> None:
    started = NOW - timedelta(milliseconds=1500)
    fx = tx.after_step(
        compiled(), execution(), run(), tx.Succeeded({"x": 1}, started_at=started), Reader(), NOW
    )
    [update] = fx.run_updates
    assert (update.status, update.output, update.started_at, update.completed_at) == (
        NodeRunStatus.SUCCEEDED,
        {"x": 1},
        started,
        NOW,
    )
    assert events(fx)[:2] == [
        (
            "node.started",
            {"node_id": "a", "attempt": 2, "execution_id": "ex-1", "workflow_id": "wf"},
        ),
        (
            "node.completed",
            {
                "node_id": "a",
                "attempt": 2,
                "duration_ms": 1500,
                "handles": None,
                "execution_id": "ex-1",
                "workflow_id": "wf",
            },
        ),
    ]


def test_transitions_an_announced_step_is_not_started_again() -> None:
    outcome = tx.Succeeded({"x": 1}, started_at=NOW, announced=True)
    fx = tx.after_step(compiled(), execution(), run(NodeRunStatus.RUNNING), outcome, Reader(), NOW)
    assert next(t for t, _ in events(fx)) == "node.completed"


def test_transitions_a_suspension_parks_the_run_and_the_execution() -> None:
    until = NOW + timedelta(hours=1)
    outcome = tx.Suspended(until, {"k": 1}, started_at=NOW)
    fx = tx.after_step(compiled(), execution(), run(), outcome, Reader(), NOW, owner="w-1")
    [update] = fx.run_updates
    assert (update.status, update.not_before, update.state, update.owner) == (
        NodeRunStatus.WAITING,
        until,
        {"k": 1},
        "w-1",
    )
    assert fx.execution_update is not None
    assert fx.execution_update.status is ExecutionStatus.WAITING
    assert events(fx)[1:] == [
        (
            "node.waiting",
            {
                "node_id": "a",
                "attempt": 2,
                "until": until.isoformat(),
                "execution_id": "ex-1",
                "workflow_id": "wf",
            },
        ),
        (
            "execution.waiting",
            {"until": until.isoformat(), "execution_id": "ex-1", "workflow_id": "wf"},
        ),
    ]
    # With another step still live, only the run parks.
    busy = tx.after_step(compiled(), execution(), run(), outcome, Reader(live=True), NOW)
    assert busy.execution_update is None


def test_transitions_a_resumed_execution_runs_again() -> None:
    fx = tx.after_step(
        compiled(),
        execution(ExecutionStatus.WAITING),
        run(NodeRunStatus.WAITING),
        tx.Succeeded({"x": 1}, started_at=NOW),
        Reader(live=True),
        NOW,
    )
    assert fx.execution_update is not None
    assert fx.execution_update.status is ExecutionStatus.RUNNING
    assert "node.started" not in [t for t, _ in events(fx)]  # it started before it parked


def test_transitions_mark_running_announces_a_queued_or_waiting_run() -> None:
    fx = tx.mark_running(execution(), run(), NOW)
    [update] = fx.run_updates
    assert (update.run_id, update.status, update.started_at) == (
        "run-a",
        NodeRunStatus.RUNNING,
        NOW,
    )
    assert update.expect == frozenset({NodeRunStatus.QUEUED, NodeRunStatus.WAITING})
    assert events(fx) == [
        (
            "node.started",
            {"node_id": "a", "attempt": 2, "execution_id": "ex-1", "workflow_id": "wf"},
        )
    ]
    assert fx.events[0].timestamp == NOW


def test_transitions_cancel_execution_ends_it_and_its_live_runs() -> None:
    fx = tx.cancel_execution(execution(), NOW, reason="by alice")
    assert fx.execution_update is not None
    assert (fx.execution_update.status, fx.execution_update.completed_at) == (
        ExecutionStatus.CANCELLED,
        NOW,
    )
    assert fx.execution_update.error == {"type": "Cancelled", "message": "by alice"}
    assert fx.cancel_live_runs is True
    assert events(fx) == [
        ("execution.cancelled", {"workflow_id": "wf", "reason": "by alice", "execution_id": "ex-1"})
    ]
    assert fx.events[0].timestamp == NOW
    assert tx.cancel_execution(execution(), NOW).execution_update.error == {  # type: ignore[union-attr]
        "type": "Cancelled",
        "message": "cancelled",
    }


def test_transitions_cancel_execution_of_an_ended_one_writes_nothing() -> None:
    fx = tx.cancel_execution(execution(ExecutionStatus.SUCCEEDED), NOW)
    assert (fx.execution_update, fx.cancel_live_runs, fx.events) == (None, False, [])


def test_transitions_time_out_execution_fails_it_for_good() -> None:
    fx = tx.time_out_execution(execution(), NOW)
    assert fx.execution_update is not None
    assert (fx.execution_update.status, fx.execution_update.completed_at) == (
        ExecutionStatus.FAILED,
        NOW,
    )
    error = {
        "type": "ExecutionTimeout",
        "message": "the execution ran past its timeout_s",
        "retriable": False,
    }
    assert fx.execution_update.error == error
    assert fx.cancel_live_runs is True
    [(kind, payload)] = events(fx)
    assert (kind, payload["error"]) == ("execution.failed", error)
    assert fx.events[0].timestamp == NOW


def test_transitions_time_out_execution_of_an_ended_one_writes_nothing() -> None:
    fx = tx.time_out_execution(execution(ExecutionStatus.CANCELLED), NOW)
    assert (fx.execution_update, fx.cancel_live_runs, fx.events) == (None, False, [])


def failing(**node: Any) -> CompiledWorkflow:
    """t -> a -> b, and a -> c on a's error handle when a routes its errors."""
    from flowmill.engine.validation import load_and_compile

    nodes = [{"id": "a", "type": "noop", **node}, {"id": "b", "type": "noop"}]
    edges: list[tuple[str, ...]] = [("t", "a"), ("a", "b")]
    if node.get("on_error") == "route":
        nodes.append({"id": "c", "type": "noop"})
        edges.append(("a", "c", "error"))
    return load_and_compile(wf(nodes, edges), registry())


def failed(details: dict[str, Any] | None = None, *, retriable: bool = True) -> tx.Failed:
    from flowmill.domain.errors import NodeError

    error = NodeError("boom", type="HttpError", retriable=retriable, details=details or {})
    return tx.Failed(error, started_at=NOW - timedelta(milliseconds=250))


RETRY = {"retry": {"max_attempts": 3, "backoff_ms": 1000, "strategy": "fixed"}}


def test_transitions_a_retriable_failure_schedules_the_next_attempt() -> None:
    fx = tx.after_step(failing(**RETRY), execution(), run(), failed(), Reader(), NOW, owner="w-1")
    error = {"type": "HttpError", "message": "boom", "retriable": True, "attempt": 2}
    [update] = fx.run_updates
    assert (update.run_id, update.expect, update.status, update.error) == (
        "run-a",
        LIVE,
        NodeRunStatus.FAILED,
        error,
    )
    assert (update.started_at, update.completed_at) == (NOW - timedelta(milliseconds=250), NOW)
    [again] = fx.new_runs
    assert (again.execution_id, again.tenant_id, again.node_id, again.attempt) == (
        "ex-1",
        "t1",
        "a",
        3,
    )
    assert (again.status, again.created_at, again.not_before, again.owner) == (
        NodeRunStatus.QUEUED,
        NOW,
        NOW + timedelta(seconds=1),
        "w-1",
    )
    assert again.id != "run-a"
    given = NodeRun("run-a", "ex-1", "t1", "a", 2, NodeRunStatus.QUEUED, input={"x": 1})
    fx2 = tx.after_step(failing(**RETRY), execution(), given, failed(), Reader(), NOW)
    assert fx2.new_runs[0].input == {"x": 1}  # the retry gets the same input
    assert events(fx)[1:] == [
        (
            "node.failed",
            {
                "node_id": "a",
                "attempt": 2,
                "error": error,
                "will_retry": True,
                "duration_ms": 250,
                "execution_id": "ex-1",
                "workflow_id": "wf",
            },
        ),
        (
            "node.retry_scheduled",
            {
                "node_id": "a",
                "attempt": 3,
                "delay_ms": 1000,
                "execution_id": "ex-1",
                "workflow_id": "wf",
            },
        ),
    ]
    assert fx.execution_update is None


@pytest.mark.parametrize(
    ("asked", "delay_ms"),
    [(5, 5000), (0.5, 1000), (0, 1000), (-3, 1000), (True, 1000), ("9", 1000), (2.5, 2500)],
    # (asked 0 and the floor alike give the backoff: max(backoff, 0) is the backoff)
)
def test_transitions_a_retry_waits_at_least_what_the_service_asked(
    asked: Any, delay_ms: int
) -> None:
    fx = tx.after_step(
        failing(**RETRY), execution(), run(), failed({"retry_after_s": asked}), Reader(), NOW
    )
    assert fx.new_runs[0].not_before == NOW + timedelta(milliseconds=delay_ms)
    assert events(fx)[-1][1]["delay_ms"] == delay_ms


def test_transitions_a_retry_without_backoff_is_due_at_once() -> None:
    no_wait = {"retry": {"max_attempts": 3, "backoff_ms": 0, "strategy": "fixed"}}
    fx = tx.after_step(failing(**no_wait), execution(), run(), failed(), Reader(), NOW)
    assert fx.new_runs[0].not_before is None


def test_transitions_a_final_failure_fails_the_execution() -> None:
    ex = execution()
    ex.started_at = NOW - timedelta(seconds=2)
    fx = tx.after_step(failing(**RETRY), ex, run(), failed(retriable=False), Reader(), NOW)
    error = {"type": "HttpError", "message": "boom", "retriable": False, "attempt": 2}
    [update] = fx.run_updates
    assert (update.expect, update.status, update.error, update.output, update.handles) == (
        LIVE,
        NodeRunStatus.FAILED,
        error,
        None,
        None,
    )
    assert (update.started_at, update.completed_at) == (NOW - timedelta(milliseconds=250), NOW)
    assert fx.new_runs == []
    assert fx.execution_update is not None
    assert (fx.execution_update.status, fx.execution_update.completed_at) == (
        ExecutionStatus.FAILED,
        NOW,
    )
    assert fx.execution_update.error == {**error, "node_id": "a"}
    assert fx.cancel_live_runs is True
    assert events(fx)[1:] == [
        (
            "node.failed",
            {
                "node_id": "a",
                "attempt": 2,
                "error": error,
                "will_retry": False,
                "duration_ms": 250,
                "execution_id": "ex-1",
                "workflow_id": "wf",
            },
        ),
        (
            "execution.failed",
            {
                "workflow_id": "wf",
                "error": {**error, "node_id": "a"},
                "duration_ms": 2000,
                "execution_id": "ex-1",
            },
        ),
    ]


def test_transitions_the_last_attempt_is_final_even_when_retriable() -> None:
    fx = tx.after_step(failing(**RETRY), execution(), run(), failed(), Reader(), NOW)
    assert fx.new_runs and fx.execution_update is None  # attempt 2 of 3: once more
    last = NodeRun("run-a", "ex-1", "t1", "a", 3, NodeRunStatus.QUEUED)
    fx = tx.after_step(failing(**RETRY), execution(), last, failed(), Reader(), NOW)
    assert fx.new_runs == []
    assert fx.execution_update is not None
    assert fx.execution_update.status is ExecutionStatus.FAILED


@pytest.mark.parametrize(("on_error", "handles"), [("continue", None), ("route", ["error"])])
def test_transitions_a_failure_that_goes_on_records_its_error_as_output(
    on_error: str, handles: list[str] | None
) -> None:
    fx = tx.after_step(
        failing(on_error=on_error), execution(), run(), failed(retriable=False), Reader(), NOW
    )
    error = {"type": "HttpError", "message": "boom", "retriable": False, "attempt": 2}
    [update] = fx.run_updates
    assert (update.expect, update.status, update.error) == (LIVE, NodeRunStatus.FAILED, error)
    assert update.output == {"error": {**error, "node_id": "a"}}
    assert update.handles == handles
    assert (update.started_at, update.completed_at) == (NOW - timedelta(milliseconds=250), NOW)
    assert fx.execution_update is None
    skipped = [] if on_error == "continue" else ["node.skipped"]  # b: not on the error path
    assert [t for t, _ in events(fx)] == ["node.started", "node.failed", *skipped]
    # "continue" leads on to b; "route" only along the error edge, to c.
    queued = [r.node_id for r in fx.new_runs if r.status is NodeRunStatus.QUEUED]
    assert queued == (["b"] if on_error == "continue" else ["c"])


def test_transitions_claim_resumed_takes_a_parked_run_keeping_its_state() -> None:
    parked = NodeRun("run-a", "ex-1", "t1", "a", 2, NodeRunStatus.WAITING, state={"k": 1})
    fx = tx.claim_resumed(execution(ExecutionStatus.WAITING), parked, NOW, owner="w-2")
    [update] = fx.run_updates
    assert (update.run_id, update.expect, update.status, update.state, update.owner) == (
        "run-a",
        frozenset({NodeRunStatus.WAITING}),  # only if still parked: one copy wins
        NodeRunStatus.RUNNING,
        {"k": 1},
        "w-2",
    )
    assert fx.execution_update is not None
    assert fx.execution_update.status is ExecutionStatus.RUNNING
    assert fx.events == []  # the node started when it first ran
    # An execution already running keeps its row; an ended one is left alone.
    assert tx.claim_resumed(execution(), parked, NOW).execution_update is None
    ended = tx.claim_resumed(execution(ExecutionStatus.CANCELLED), parked, NOW)
    assert (ended.run_updates, ended.execution_update) == ([], None)


def test_transitions_a_success_keeps_its_handles_and_turns() -> None:
    from flowmill.domain.execution import ConversationTurn

    turn = ConversationTurn("conv", "client", "user", "hi", NOW, 0)
    outcome = tx.Succeeded({"x": 1}, handles=["true"], started_at=NOW, turns=[turn])
    fx = tx.after_step(compiled(), execution(), run(), outcome, Reader(), NOW)
    [update] = fx.run_updates
    assert update.handles == ["true"]
    assert (fx.turns, fx.turns_of) == ([turn], run().key)
    completed = dict(events(fx))["node.completed"]
    assert completed["handles"] == ["true"]


def test_transitions_a_suspension_records_when_the_step_started() -> None:
    started = NOW - timedelta(seconds=7)
    outcome = tx.Suspended(NOW + timedelta(hours=1), {}, started_at=started)
    fx = tx.after_step(compiled(), execution(), run(), outcome, Reader(), NOW)
    assert fx.run_updates[0].started_at == started


def test_transitions_a_retry_honours_a_sub_second_retry_after() -> None:
    no_wait = {"retry": {"max_attempts": 3, "backoff_ms": 0, "strategy": "fixed"}}
    fx = tx.after_step(
        failing(**no_wait), execution(), run(), failed({"retry_after_s": 0.5}), Reader(), NOW
    )
    assert fx.new_runs[0].not_before == NOW + timedelta(milliseconds=500)


def test_transitions_a_retry_jitters_with_the_given_randomness() -> None:
    import random

    jittery = {"retry": {"max_attempts": 3, "backoff_ms": 1000, "strategy": "fixed", "jitter": 0.5}}
    expected = int(1000 * (1 - 0.5 * random.Random(7).random()))
    for _ in range(2):  # the same seed, the same delay: the caller's rng is the one used
        fx = tx.after_step(
            failing(**jittery), execution(), run(), failed(), Reader(), NOW, rng=random.Random(7)
        )
        assert fx.new_runs[0].not_before == NOW + timedelta(milliseconds=expected)


def test_transitions_a_success_gives_the_first_ready_step_to_the_inline_owner() -> None:
    from flowmill.engine.validation import load_and_compile

    fan = load_and_compile(
        wf(
            [{"id": "a", "type": "noop"}, {"id": "b", "type": "noop"}, {"id": "c", "type": "noop"}],
            [("t", "a"), ("a", "b"), ("a", "c")],
        ),
        registry(),
    )
    fx = tx.after_step(
        fan, execution(), run(), tx.Succeeded({}), Reader(), NOW, owner="w-1", inline_owner="w-in"
    )
    assert [(r.node_id, r.owner) for r in fx.new_runs] == [("b", "w-in"), ("c", "w-1")]


def test_transitions_a_failure_that_goes_on_hands_its_successors_to_the_owners() -> None:
    from flowmill.engine.validation import load_and_compile

    fan = load_and_compile(
        wf(
            [
                {"id": "a", "type": "noop", "on_error": "continue"},
                {"id": "b", "type": "noop"},
                {"id": "c", "type": "noop"},
            ],
            [("t", "a"), ("a", "b"), ("a", "c")],
        ),
        registry(),
    )
    fx = tx.after_step(
        fan,
        execution(),
        run(),
        failed(retriable=False),
        Reader(),
        NOW,
        owner="w-1",
        inline_owner="w-in",
    )
    assert [(r.node_id, r.owner) for r in fx.new_runs] == [("b", "w-in"), ("c", "w-1")]
