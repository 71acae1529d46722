"""Execution semantics (DESIGN §4) on the in-memory fakes."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest

from flowmill.domain.events import EventType
from flowmill.domain.states import ExecutionStatus as X
from flowmill.domain.states import NodeRunStatus as S
from flowmill.engine.ports import StepJob, TriggerJob
from flowmill.testing import eventually
from tests.engine_support import CALLS, Harness, wf


def statuses(runs: dict[str, Any]) -> dict[str, str]:
    return {k: r.status.value for k, r in runs.items()}


async def test_engine_runs_a_chain_to_its_response(harness: Harness) -> None:
    definition = wf(
        [
            {"id": "shape", "type": "transform", "config": {"mapping": {"m": "{{data.msg}}!"}}},
            {"id": "out", "type": "response", "config": {"template": "said {{m}}"}},
        ],
        [("t", "shape"), ("shape", "out")],
    )
    ex, runs = await harness.run(definition, {"msg": "hi"})
    assert ex.status is X.SUCCEEDED
    assert ex.output == "said hi!"
    assert statuses(runs) == {"t": "succeeded", "shape": "succeeded", "out": "succeeded"}
    assert runs["shape"].input["data"] == {"msg": "hi"}


async def test_engine_branches_skip_and_join(harness: Harness) -> None:
    definition = wf(
        [
            {
                "id": "c",
                "type": "conditional",
                "config": {"condition": {"left": "{{data.n}}", "op": ">", "right": 5}},
            },
            {"id": "big", "type": "noop"},
            {"id": "small", "type": "noop"},
            {"id": "after_small", "type": "noop"},
            {"id": "side", "type": "transform", "config": {"mapping": {"side": True}}},
            {"id": "j", "type": "merge", "config": {"mode": "object"}},
        ],
        [
            ("t", "c"),
            ("c", "big", "true"),
            ("c", "small", "false"),
            ("small", "after_small"),
            ("t", "side"),
            ("big", "j"),
            ("after_small", "j"),
            ("side", "j"),
        ],
    )
    ex, runs = await harness.run(definition, {"n": 9})
    assert ex.status is X.SUCCEEDED
    assert statuses(runs) == {
        "t": "succeeded",
        "c": "succeeded",
        "big": "succeeded",
        "small": "skipped",
        "after_small": "skipped",
        "side": "succeeded",
        "j": "succeeded",
    }
    assert set(runs["j"].output) == {"big", "side"}
    assert ex.output == runs["j"].output


async def test_engine_retries_with_backoff_then_succeeds(harness: Harness) -> None:
    definition = wf(
        [
            {
                "id": "f",
                "type": "flaky",
                "config": {"fail_times": 2},
                "retry": {"max_attempts": 3, "backoff_ms": 20, "strategy": "exponential"},
            }
        ],
        [("t", "f")],
    )
    ex, _ = await harness.run(definition)
    runs = await harness.store.node_runs(ex.id)
    attempts = [(r.attempt, r.status.value) for r in runs if r.node_id == "f"]
    assert attempts == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    assert ex.status is X.SUCCEEDED
    assert [c[2] for c in CALLS] == [f"{ex.id}:f:{a}" for a in (1, 2, 3)]
    f2, f3 = [r for r in runs if r.node_id == "f"][1:]
    assert f2.not_before is not None and f3.not_before is not None
    gap2 = (f2.not_before - f2.created_at).total_seconds()
    gap3 = (f3.not_before - f3.created_at).total_seconds()
    assert gap2 == pytest.approx(0.02, abs=0.005)
    assert gap3 == pytest.approx(0.04, abs=0.005)


async def test_engine_fails_after_last_attempt_and_cancels_the_rest(harness: Harness) -> None:
    definition = wf(
        [
            {
                "id": "f",
                "type": "flaky",
                "config": {"fail_times": 5},
                "retry": {"max_attempts": 2, "backoff_ms": 1},
            },
            {"id": "slow", "type": "slow", "config": {"seconds": 5}},
            {"id": "next", "type": "noop"},
        ],
        [("t", "f"), ("t", "slow"), ("f", "next")],
    )
    ex, runs = await harness.run(definition)
    assert ex.status is X.FAILED
    assert ex.error is not None and ex.error["node_id"] == "f"
    assert ex.error["type"] == "Flaky" and ex.error["attempt"] == 2
    assert runs["slow"].status is S.CANCELLED
    assert "next" not in runs


async def test_engine_non_retriable_error_is_not_retried(harness: Harness) -> None:
    definition = wf(
        [
            {
                "id": "f",
                "type": "flaky",
                "config": {"fail_times": 5, "retriable": False},
                "retry": {"max_attempts": 5, "backoff_ms": 1},
            }
        ],
        [("t", "f")],
    )
    ex, runs = await harness.run(definition)
    assert ex.status is X.FAILED
    assert runs["f"].attempt == 1


async def test_engine_on_error_continue_passes_the_error_on(harness: Harness) -> None:
    definition = wf(
        [
            {"id": "f", "type": "flaky", "config": {"fail_times": 1}, "on_error": "continue"},
            {"id": "next", "type": "noop"},
        ],
        [("t", "f"), ("f", "next")],
    )
    ex, runs = await harness.run(definition)
    assert ex.status is X.SUCCEEDED
    assert runs["f"].status is S.FAILED
    assert runs["next"].input["error"]["type"] == "Flaky"
    assert runs["next"].input["error"]["node_id"] == "f"


async def test_engine_on_error_route_follows_the_error_edge(harness: Harness) -> None:
    definition = wf(
        [
            {"id": "f", "type": "flaky", "config": {"fail_times": 1}, "on_error": "route"},
            {"id": "ok_path", "type": "noop"},
            {"id": "handler", "type": "error_handler", "config": {"output": {"recovered": True}}},
            {"id": "fb", "type": "fallback", "config": {"value": {"plan": "b"}}},
            {"id": "j", "type": "merge"},
        ],
        [
            ("t", "f"),
            ("f", "ok_path"),
            ("f", "handler", "error"),
            ("handler", "fb"),
            ("ok_path", "j"),
            ("fb", "j"),
        ],
    )
    ex, runs = await harness.run(definition)
    assert ex.status is X.SUCCEEDED
    assert statuses(runs)["ok_path"] == "skipped"
    assert runs["handler"].output == {"recovered": True}
    assert runs["j"].output == {"fb": {"plan": "b"}}
    logs = [line.message for line in harness.store.logs if line.node_id == "handler"]
    assert logs == ["handled error from f: attempt 1 failed"]


async def test_engine_node_timeout_fails_the_attempt(harness: Harness) -> None:
    definition = wf(
        [
            {
                "id": "s",
                "type": "slow",
                "config": {"seconds": 5},
                "timeout_s": 0.05,
                "retry": {"max_attempts": 2, "backoff_ms": 1},
            }
        ],
        [("t", "s")],
    )
    ex, runs = await harness.run(definition)
    assert ex.status is X.FAILED
    assert ex.error is not None and ex.error["type"] == "NodeTimeout"
    assert runs["s"].attempt == 2


async def test_engine_execution_timeout(harness: Harness) -> None:
    definition = wf(
        [{"id": "s", "type": "slow", "config": {"seconds": 5}}, {"id": "after", "type": "noop"}],
        [("t", "s"), ("s", "after")],
        settings={"timeout_s": 0.1},
    )
    ex, runs = await harness.run(definition)
    assert ex.status is X.FAILED
    assert ex.error is not None and ex.error["type"] in ("ExecutionTimeout", "NodeTimeout")
    assert "after" not in runs


async def test_engine_cancel_interrupts_a_running_execution(harness: Harness) -> None:
    definition = wf(
        [{"id": "s", "type": "slow", "config": {"seconds": 30}}, {"id": "after", "type": "noop"}],
        [("t", "s"), ("s", "after")],
    )
    execution_id = await harness.start(definition)

    async def running() -> bool:
        runs = await harness.latest(execution_id)
        return runs.get("s") is not None and runs["s"].status is S.RUNNING

    await eventually(running, 10, "the slow step running")
    assert await harness.engine.cancel(execution_id) is True
    ex = await harness.engine.wait(execution_id, timeout=15)
    assert ex.status is X.CANCELLED
    runs = await harness.latest(execution_id)
    assert runs["s"].status is S.CANCELLED
    assert "after" not in runs
    assert await harness.engine.cancel(execution_id) is False


async def test_engine_delay_is_durable_not_sleeping(harness: Harness) -> None:
    definition = wf(
        [{"id": "d", "type": "delay", "config": {"ms": 1000}}, {"id": "after", "type": "noop"}],
        [("t", "d"), ("d", "after")],
    )
    execution_id = await harness.start(definition, {"v": 1})

    async def parked() -> bool:
        ex = await harness.engine.store.get_execution(execution_id)
        return ex is not None and ex.status is X.WAITING

    await eventually(parked, 10, "the execution parked on its delay")
    runs = await harness.latest(execution_id)
    assert runs["d"].status is S.WAITING and runs["d"].not_before is not None
    assert harness.engine.runner.running == 0  # nobody holds a worker while waiting
    ex = await harness.engine.wait(execution_id, timeout=15)
    assert ex.status is X.SUCCEEDED
    runs = await harness.latest(execution_id)
    assert runs["after"].input == runs["t"].output
    types = [e.type for e in harness.store.events if e.stream_id == execution_id]
    assert EventType.NODE_WAITING.value in types and EventType.EXECUTION_WAITING.value in types


async def test_engine_repeated_job_after_the_execution_ended_runs_nothing(
    harness: Harness,
) -> None:
    definition = wf([{"id": "f", "type": "flaky"}], [("t", "f")])
    ex, _ = await harness.run(definition)
    await harness.engine.handle(StepJob(ex.id, "f", 1, "t1"))
    assert [c[0] for c in CALLS] == ["f"]
    succeeded = [r for r in await harness.store.node_runs(ex.id) if r.status is S.SUCCEEDED]
    assert len(succeeded) == len({r.node_id for r in succeeded})


async def test_engine_repeated_job_of_a_finished_step_does_not_run_it_again(
    harness: Harness,
) -> None:
    """The step-finished guard on its own: the step's job comes again while its
    execution still runs (a queue delivering twice, a sweeper racing the worker)."""
    definition = wf(
        [{"id": "f", "type": "flaky"}, {"id": "s", "type": "slow", "config": {"seconds": 30}}],
        [("t", "f"), ("f", "s")],
    )
    execution_id = await harness.start(definition)

    async def slow_step_running() -> bool:
        runs = await harness.latest(execution_id)
        return "s" in runs and runs["s"].status is S.RUNNING

    await eventually(slow_step_running, 10, "the step after f running")
    ex = await harness.store.get_execution(execution_id)
    assert ex is not None and ex.status is X.RUNNING  # not the execution-ended guard
    try:
        await harness.engine.handle(StepJob(execution_id, "f", 1, "t1"))
    finally:
        assert await harness.engine.cancel(execution_id)
    assert [c[0] for c in CALLS] == ["f", "s"]  # f ran once, never again
    completed = [
        e.payload["node_id"]
        for e in harness.store.events
        if e.stream_id == execution_id and e.type == EventType.NODE_COMPLETED.value
    ]
    assert completed.count("f") == 1


async def test_engine_dedupe_key_starts_one_execution(harness: Harness) -> None:
    definition = wf([{"id": "f", "type": "noop"}], [("t", "f")])
    first = await harness.start(definition, dedupe_key="evt-1")
    second = await harness.start(definition, dedupe_key="evt-1")
    assert first == second
    assert len(harness.store.executions) == 1


async def test_engine_max_concurrent_queues_then_promotes(harness: Harness) -> None:
    definition = wf(
        [{"id": "s", "type": "slow", "config": {"seconds": 0.2}}],
        [("t", "s")],
        settings={"max_concurrent": 1},
    )
    a = await harness.start(definition)
    b = await harness.start(definition)
    c = await harness.start(definition)
    exb = await harness.store.get_execution(b)
    assert exb is not None and exb.status is X.QUEUED
    results = [await harness.engine.wait(x, timeout=5) for x in (a, b, c)]
    assert [r.status for r in results] == [X.SUCCEEDED] * 3
    spans = sorted((r.started_at, r.completed_at) for r in results)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start is not None and end is not None and start >= end  # never overlapping


async def test_engine_recovers_steps_of_a_dead_worker(harness: Harness) -> None:
    definition = wf([{"id": "f", "type": "flaky"}], [("t", "f")])
    harness.definitions.add("wf", definition)
    # Simulate another process that committed the start and died before running it.
    from datetime import UTC, datetime

    from flowmill.domain.execution import ExecutionRecord
    from flowmill.domain.states import ExecutionStatus
    from flowmill.engine import starts

    compiled = await harness.engine.compiled("wf", 1)
    now = datetime.now(UTC)
    ex = ExecutionRecord(
        "e-dead",
        "t1",
        "wf",
        1,
        ExecutionStatus.PENDING,
        {"type": "manual", "data": None},
        "manual",
        now,
    )
    fx = starts.start_execution(compiled, ex, "t", None, now, owner="ghost-worker")
    await harness.store.start(ex, lambda _c: fx)
    done = await harness.engine.wait("e-dead", timeout=15)
    assert done.status is X.SUCCEEDED
    assert [c[0] for c in CALLS] == ["f"]


async def test_engine_stranded_own_step_is_redispatched(harness: Harness) -> None:
    harness.engine.options.orphan_grace_s = 0.0
    harness.store.fail_next_checkpoint = RuntimeError("database is locked")
    definition = wf([{"id": "f", "type": "flaky"}], [("t", "f")])
    ex, runs = await harness.run(definition, timeout=15)
    assert ex.status is X.SUCCEEDED
    assert runs["f"].status is S.SUCCEEDED


async def test_engine_other_triggers_are_skipped(harness: Harness) -> None:
    definition = wf(
        [
            {
                "id": "t2",
                "type": "trigger",
                "config": {"triggerType": "schedule", "cron": "0 * * * *"},
            },
            {"id": "a", "type": "noop"},
            {"id": "b", "type": "noop"},
        ],
        [("t", "a"), ("t2", "b")],
    )
    ex, runs = await harness.run(definition)
    assert ex.status is X.SUCCEEDED
    assert statuses(runs) == {"t": "succeeded", "t2": "skipped", "a": "succeeded", "b": "skipped"}


async def test_engine_events_tell_the_story_in_order(harness: Harness) -> None:
    definition = wf([{"id": "a", "type": "noop"}], [("t", "a")])
    ex, _ = await harness.run(definition)
    types = [e.type for e in harness.store.events if e.stream_id == ex.id]
    assert types == [
        "execution.started",
        "node.started",
        "node.completed",
        "node.started",
        "node.completed",
        "execution.completed",
    ]


async def test_engine_retry_from_the_failed_node_reuses_earlier_outputs(
    harness: Harness,
) -> None:
    definition = wf(
        [
            {"id": "a", "type": "flaky", "config": {"output": {"v": 1}}},
            {
                "id": "c",
                "type": "conditional",
                "config": {"condition": {"left": "{{v}}", "op": "==", "right": 1}},
            },
            {"id": "b", "type": "flaky", "config": {"fail_calls": 1}},
            {"id": "no", "type": "noop"},
            {"id": "after", "type": "noop"},
        ],
        [("t", "a"), ("a", "c"), ("c", "b", "true"), ("c", "no", "false"), ("b", "after")],
    )
    ex, runs = await harness.run(definition)
    assert ex.status is X.FAILED
    before = len(CALLS)
    new_id = await harness.engine.retry(ex.id)
    retried = await harness.engine.wait(new_id, timeout=5)
    assert retried.status is X.SUCCEEDED
    assert retried.retry_of == ex.id
    assert [c[0] for c in CALLS[before:]] == ["b"]  # a was not run again
    new_runs = await harness.latest(new_id)
    assert new_runs["a"].output == {"v": 1}
    assert new_runs["a"].state == {"copied_from": runs["a"].id}
    assert new_runs["no"].status is S.SKIPPED
    assert new_runs["b"].input == runs["b"].input


async def test_engine_retry_from_start_runs_everything_again(harness: Harness) -> None:
    definition = wf([{"id": "a", "type": "flaky", "config": {"fail_calls": 1}}], [("t", "a")])
    ex, _ = await harness.run(definition, {"k": 1})
    assert ex.status is X.FAILED
    new_id = await harness.engine.retry(ex.id, from_start=True)
    retried = await harness.engine.wait(new_id, timeout=5)
    assert retried.status is X.SUCCEEDED
    assert retried.trigger["data"] == {"k": 1}
    assert [c[0] for c in CALLS] == ["a", "a"]


async def test_engine_worker_taken_for_dead_registers_again(harness: Harness) -> None:
    """After an outage longer than dead_after_s others remove this worker's row; its
    next heartbeat puts it back, or its steps would look orphaned to them for good."""
    engine = harness.engine
    await engine.workers.unregister(engine.worker_id)
    await engine._heartbeat()
    assert engine.worker_id in {w.id for w in await engine.workers.list_workers()}


async def test_engine_hands_webhook_jobs_to_the_handler_registered_after_it(
    harness: Harness,
) -> None:
    seen: list[TriggerJob] = []

    async def handle(job: TriggerJob) -> list[str]:
        seen.append(job)
        return ["e1"]

    job = TriggerJob(tenant_id="t1", workflow_id="", trigger_type="webhook", data=None)
    job = replace(job, webhook_event_id="ev1")
    # nothing registered yet: the event is left for the trigger service to recover
    assert await harness.engine.handle(job) == {"executionId": None, "executionIds": []}
    harness.engine.trigger_handlers.register_webhook(handle)
    assert await harness.engine.handle(job) == {"executionId": "e1", "executionIds": ["e1"]}
    assert seen == [job]
    with pytest.raises(RuntimeError, match="registered already"):
        harness.engine.trigger_handlers.register_webhook(handle)
