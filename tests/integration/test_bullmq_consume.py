"""BullMQQueue.consume on a real Redis: concurrency, handler errors, graceful stop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

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


async def test_bullmq_consume_concurrency_caps_handlers_over_both_queues(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue()
    running = peak = 0

    async def busy(job: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.1)  # not a wait: the handler's work
        running -= 1

    recorder = Recorder(busy)
    triggers = [TriggerJob("t", f"wf{i}", "manual", None) for i in range(4)]
    await queue.put([*(step(f"n{i}") for i in range(8)), *triggers])
    async with consuming(queue, recorder, concurrency=3):
        await recorder.wait_for(12)
    assert peak == 3


async def test_bullmq_consume_a_failing_handler_fails_its_job_only(
    make_queue: MakeQueue, redis_url: str, redis_prefix: str
) -> None:
    queue = make_queue()

    async def explode(job: Job) -> None:
        if isinstance(job, StepJob) and job.key.node_id == "boom":
            raise ValueError("node exploded")

    recorder = Recorder(explode)
    async with consuming(queue, recorder, concurrency=1):
        await queue.put([step("boom"), step("fine")])
        await recorder.wait_for(2)
        async with bull_queue(redis_url, redis_prefix) as raw:

            async def settled() -> bool:
                boom = await raw.getJobState(step("boom").job_id)
                fine = await raw.getJobState(step("fine").job_id)
                assert (boom, fine) == ("failed", "completed"), (boom, fine)
                return True

            await eventually(settled, 10, "boom failed and fine completed")
            failed = await raw.getJob(step("boom").job_id)
    assert failed.failedReason == "node exploded"
    assert failed.attemptsMade == 1  # no retry by BullMQ: the engine retries


async def test_bullmq_consume_stop_lets_the_running_job_finish_and_leaves_the_rest_queued(
    make_queue: MakeQueue, redis_url: str, redis_prefix: str
) -> None:
    queue = make_queue()
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(job: Job) -> None:
        started.set()
        await asyncio.sleep(0.5)  # not a wait: the handler's work
        finished.set()

    first, second, third = step("1"), step("2"), step("3")
    await queue.put([first])
    await queue.put([second, third])
    consumer = asyncio.create_task(queue.consume(Recorder(slow), concurrency=1))
    await asyncio.wait_for(started.wait(), 5)
    await queue.stop(grace_s=5)
    await consumer
    assert finished.is_set()
    async with bull_queue(redis_url, redis_prefix) as raw:
        assert await raw.getJobState(first.job_id) == "completed"
    assert await queue.present([first, second, third]) == {second.key, third.key}

    # The next worker takes what this one left.
    recorder = Recorder()
    async with consuming(make_queue(), recorder):
        jobs = await recorder.wait_for(2)
    assert {j.key for j in jobs} == {second.key, third.key}


async def test_bullmq_consume_after_the_grace_a_running_job_is_handed_back(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue()
    started = asyncio.Event()

    async def stuck(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    job = step("stuck")
    await queue.put([job])
    consumer = asyncio.create_task(queue.consume(Recorder(stuck), concurrency=2))
    await asyncio.wait_for(started.wait(), 5)
    async with asyncio.timeout(15):  # the job never ends: only the grace ends the stop
        await queue.stop(grace_s=0.3)
        await consumer
    assert await queue.present([job]) == {job.key}

    # Back in the queue at once, not after its lock expires (30 s here).
    recorder = Recorder()
    async with consuming(make_queue(), recorder):
        assert await recorder.wait_for(1, timeout=10) == [job]


async def test_bullmq_consume_a_handler_asking_for_its_own_job_gets_it_again_later(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue()
    job = step("park")
    due = datetime.now(UTC) + timedelta(milliseconds=400)

    async def park_once(got: Job) -> None:
        if len(recorder.jobs) == 1:  # woken early: the runner parks the step again
            await queue.put([step("park", not_before=due)])

    recorder = Recorder(park_once)
    async with consuming(queue, recorder):
        await queue.put([job])
        await recorder.wait_for(2, timeout=10)
    assert recorder.times[1] >= due.timestamp()


async def test_bullmq_consume_stop_before_any_job_returns_promptly(make_queue: MakeQueue) -> None:
    """Idle workers block on Redis for the drain delay (60 s here): stop must not wait
    for that blocking call to end."""
    queue = make_queue(drain_delay_s=60)
    consumer = asyncio.create_task(queue.consume(Recorder(), concurrency=4))

    def blocked() -> bool:
        workers = queue._consumer._workers if queue._consumer is not None else []
        return bool(workers) and all(w.drained for w in workers)

    await eventually(blocked, 10, "idle workers blocked waiting for jobs")
    async with asyncio.timeout(15):
        await queue.stop()
        await consumer
