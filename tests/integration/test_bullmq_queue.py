"""BullMQQueue on a real Redis: adding, present(), delays, priorities, re-adding."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowmill.constants import TRIGGER_QUEUE
from flowmill.engine.ports import Job, StepJob, TriggerJob
from flowmill.testing import eventually
from tests.integration.bullmq_support import (
    MakeQueue,
    Recorder,
    bull_queue,
    consuming,
    queue_factory,
    step,
)

pytestmark = pytest.mark.redis

make_queue = pytest.fixture(queue_factory)
# A delayed job later than this waited for something else (a blocking wait, the drain
# delay of 1 s): the bug this guards made jobs minutes late.
LATE_S = 1.5


async def _is(value: Awaitable[Any], expected: Any) -> bool:
    got = await value
    assert got == expected, got
    return True


async def test_bullmq_queue_putting_a_step_twice_adds_one_job(
    make_queue: MakeQueue, redis_url: str, redis_prefix: str
) -> None:
    queue = make_queue()
    job = step()
    await queue.put([job, job])
    await queue.put([job])
    async with bull_queue(redis_url, redis_prefix) as raw:
        counts = await raw.getJobCounts("waiting", "prioritized", "delayed")
        assert sum(counts.values()) == 1
        assert await raw.getJobState(job.job_id) in ("waiting", "prioritized")
        stored = await raw.getJob(job.job_id)
    assert stored.data == {
        "execution_id": "ex-1",
        "node_id": "n",
        "attempt": 1,
        "tenant_id": "tenant-1",
        "wake": 0,
    }
    assert stored.opts["attempts"] == 1


async def test_bullmq_queue_present_names_queued_delayed_and_active_steps_only(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue()
    waiting, delayed, active, absent = step("w"), step("d"), step("a"), step("x")
    later = datetime.now(UTC) + timedelta(seconds=30)
    await queue.put([waiting, StepJob("ex-1", "d", 1, not_before=later)])
    assert await queue.present([waiting, delayed, absent]) == {waiting.key, delayed.key}

    release = asyncio.Event()

    async def hold(job: Job) -> None:
        if job == step("a"):
            await release.wait()

    recorder = Recorder(hold)
    async with consuming(queue, recorder, concurrency=2):
        await queue.put([active])
        await recorder.wait_for(2)  # "w" done, "a" running

        async def w_completed() -> bool:
            found = await queue.present([waiting, delayed, active])
            return found == {delayed.key, active.key}

        await eventually(w_completed, 10, '"w" marked completed while "a" runs')
        release.set()
    assert await queue.present([waiting, delayed, active]) == {delayed.key}


async def test_bullmq_queue_present_answers_for_hundreds_of_steps(make_queue: MakeQueue) -> None:
    queue = make_queue()
    jobs = [step(f"n{i}") for i in range(1200)]
    await queue.put(jobs[::2])
    assert await queue.present(jobs) == {j.key for j in jobs[::2]}


async def test_bullmq_queue_a_finished_step_put_again_runs_again(
    make_queue: MakeQueue, redis_url: str, redis_prefix: str
) -> None:
    queue = make_queue()
    ok, bad = step("ok"), step("bad")
    fail_once = {bad.job_id}

    async def maybe_fail(job: Job) -> None:
        if isinstance(job, StepJob) and job.job_id in fail_once:
            fail_once.discard(job.job_id)
            raise RuntimeError("database went away")

    recorder = Recorder(maybe_fail)
    async with consuming(queue, recorder), bull_queue(redis_url, redis_prefix) as raw:
        await queue.put([ok, bad])
        await recorder.wait_for(2)

        async def states() -> tuple[str, str]:
            return await raw.getJobState(ok.job_id), await raw.getJobState(bad.job_id)

        await eventually(
            lambda: _is(states(), ("completed", "failed")), 10, "ok completed, bad failed"
        )
        assert (await raw.getJob(bad.job_id)).failedReason == "database went away"
        assert await queue.present([ok, bad]) == set()

        # The engine re-dispatches both (its database says they are not done).
        await queue.put([ok, bad])
        await recorder.wait_for(4)
        await eventually(
            lambda: _is(states(), ("completed", "completed")), 10, "both completed the 2nd time"
        )
    assert sorted(j.key.node_id for j in recorder.jobs) == ["bad", "bad", "ok", "ok"]


async def test_bullmq_queue_a_delayed_step_runs_at_its_time_never_before(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue()
    recorder = Recorder()
    async with consuming(queue, recorder):
        due = datetime.now(UTC) + timedelta(milliseconds=700)
        await queue.put([step(not_before=due)])
        await recorder.wait_for(1, timeout=10)
    assert recorder.times[0] >= due.timestamp()  # never before
    # On time means within the drain delay here, not a blocking wait or more late;
    # how many milliseconds late is bench/bullmq_floor.py's measurement, not a test's.
    assert recorder.times[0] - due.timestamp() < LATE_S


@pytest.mark.slow
async def test_bullmq_queue_a_step_delayed_longer_than_a_blocking_wait_is_on_time(
    make_queue: MakeQueue,
) -> None:
    # Longer than redis-py's default socket timeout (5 s) and the drain delay: with
    # bullmq's own client the job came minutes late.
    queue = make_queue()
    recorder = Recorder()
    async with consuming(queue, recorder):
        due = datetime.now(UTC) + timedelta(seconds=5.5)
        await queue.put([step(not_before=due)])
        await recorder.wait_for(1, timeout=15)
    assert 0 <= recorder.times[0] - due.timestamp() < LATE_S


async def test_bullmq_queue_higher_priority_runs_first_and_equal_priorities_in_order(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue()
    priorities = {"a": 0, "b": 5, "c": -5, "d": 0, "e": 10, "f": 5}
    await queue.put([step(node, priority=p) for node, p in priorities.items()])
    recorder = Recorder()
    async with consuming(queue, recorder, concurrency=1):
        jobs = await recorder.wait_for(len(priorities))
    assert [j.key.node_id for j in jobs] == ["e", "b", "f", "a", "d", "c"]
    assert [j.priority for j in jobs] == [10, 5, 5, 0, 0, -5]


async def test_bullmq_queue_a_trigger_job_arrives_as_it_was_put(make_queue: MakeQueue) -> None:
    queue = make_queue()
    full = TriggerJob(
        tenant_id="tenant-1",
        workflow_id="wf-1",
        trigger_type="webhook.test",
        data={"message": "hi", "items": [1, 2.5, None, {"x": True}]},
        version=3,
        node_id="trigger-1",
        dedupe_key="evt-1",
        metadata={"headers": {"x-id": "1"}},
        priority=2,
    )
    bare = TriggerJob(tenant_id="t", workflow_id="w", trigger_type="manual", data=None)
    recorder = Recorder()
    async with consuming(queue, recorder, concurrency=1):
        await queue.put([full, bare])
        jobs = await recorder.wait_for(2)
    assert jobs == [full, bare]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"tenantId": "t", "triggerType": "webhook"}, "workflow_id: Field required"),
        ({"tenant_id": "t", "workflow_id": "w", "trigger_type": ""}, "trigger_type"),
        ({"tenant_id": "t", "tenantId": "u", "workflow_id": "w", "trigger_type": "x"}, "disagree"),
        ({"tenant_id": "t", "workflow_id": "w", "trigger_type": "x", "version": "2"}, "version"),
        ("just a string", "must be a JSON object"),
    ],
)
async def test_bullmq_queue_garbage_trigger_data_fails_that_job_with_a_reason(
    make_queue: MakeQueue, redis_url: str, redis_prefix: str, data: object, reason: str
) -> None:
    queue = make_queue()
    recorder = Recorder()
    async with (
        consuming(queue, recorder, concurrency=1),
        bull_queue(redis_url, redis_prefix, TRIGGER_QUEUE) as raw,
    ):
        bad = await raw.add("process", data)
        good = TriggerJob(tenant_id="t", workflow_id="w", trigger_type="manual", data={})
        await queue.put([good])
        assert await recorder.wait_for(1) == [good]  # the worker lives on
        await eventually(
            lambda: _is(raw.getJobState(bad.id), "failed"), 10, "the garbage job failed"
        )
        failed = await raw.getJob(bad.id)
    assert failed.failedReason.startswith("invalid job data: ")
    assert reason in failed.failedReason
