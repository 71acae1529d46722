"""The in-process queue."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from flowmill.engine.ports import Job, JobInfo, StepJob
from flowmill.queue.local import LOCAL_QUEUE, LocalQueue
from flowmill.testing import FakeClock, eventually


async def _drain(queue: LocalQueue, seen: list[Job], until: int, handler=None) -> None:  # type: ignore[no-untyped-def]
    async def _handle(job: Job) -> None:
        seen.append(job)
        if handler is not None:
            await handler(job)
        if len(seen) >= until:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(queue.stop(1)))

    await asyncio.wait_for(queue.consume(_handle, concurrency=2), timeout=5)


async def test_local_queue_dedupes_waiting_step_jobs() -> None:
    q = LocalQueue()
    job = StepJob("e", "n", 1)
    await q.put([job, job])
    await q.put([job])
    assert len(q) == 1
    assert await q.present([job]) == {job.key}


async def test_local_queue_orders_by_due_time_then_priority() -> None:
    q = LocalQueue()
    later = datetime.now(UTC) + timedelta(milliseconds=80)
    await q.put(
        [
            StepJob("e", "late", 1, not_before=later),
            StepJob("e", "low", 1),
            StepJob("e", "high", 1, priority=5),
        ]
    )
    seen: list[Job] = []
    await _drain(q, seen, 3)
    assert [j.node_id for j in seen] == ["high", "low", "late"]  # type: ignore[union-attr]


async def test_local_queue_reruns_a_job_its_own_handler_re_added() -> None:
    q = LocalQueue()
    job = StepJob("e", "park", 1)
    await q.put([job])
    seen: list[Job] = []

    async def _repark(j: Job) -> None:
        if len(seen) == 1:  # first run: the step parks itself a little later
            await q.put(
                [StepJob("e", "park", 1, not_before=datetime.now(UTC) + timedelta(milliseconds=20))]
            )

    await _drain(q, seen, 2, _repark)
    assert len(seen) == 2


async def test_local_queue_stop_is_final() -> None:
    q = LocalQueue()
    await q.stop(0)
    await asyncio.wait_for(q.consume(lambda j: asyncio.sleep(0), concurrency=1), timeout=1)


async def test_local_queue_counts_ready_and_delayed_jobs() -> None:
    q = LocalQueue()
    later = datetime.now(UTC) + timedelta(hours=1)
    await q.put(
        [StepJob("e1", "a", 1), StepJob("e1", "b", 1), StepJob("e2", "a", 1, not_before=later)]
    )
    await q.put([StepJob("e1", "a", 1)])  # the same step again: still one job
    assert await q.counts() == {"in-process": {"wait": 2, "delayed": 1, "active": 0}}


async def test_local_queue_consume_returns_when_stop_cuts_a_job_at_the_grace() -> None:
    # A step still running when the grace runs out is cancelled; the consumer then ends
    # as a stop asks, without the cancellation escaping (a worker's shutdown raised
    # CancelledError out of Engine.running(), seen on a loaded machine).
    q = LocalQueue()
    await q.put([StepJob("e", "slow", 1)])
    started = asyncio.Event()

    async def _hold(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()  # a step that outlives any grace

    consuming = asyncio.create_task(q.consume(_hold, concurrency=1))
    await asyncio.wait_for(started.wait(), 5)
    await q.stop(0.01)
    await asyncio.wait_for(consuming, 5)  # returns; does not raise CancelledError
    assert consuming.done() and not consuming.cancelled()


async def test_local_queue_holds_a_delayed_job_until_its_clock_reaches_it() -> None:
    # On a fake clock an hour's delay is tested without waiting for it: the job is due
    # when the clock says so, and the time it then waited ready is the clock's too.
    clock = FakeClock()
    q = LocalQueue(clock=clock, reserve=0)
    waited: list[float] = []  # seconds each job was ready before it was taken, in turn
    q.wait_listeners.append(lambda _queue, s: waited.append(s))
    seen: list[str] = []
    late = StepJob("e", "late", 1, not_before=clock.now() + timedelta(hours=1))
    await q.put([late, StepJob("e", "now", 1)])

    async def _record(job: Job) -> None:
        seen.append(job.node_id)  # type: ignore[union-attr]

    consuming = asyncio.create_task(q.consume(_record, concurrency=1))
    try:
        await eventually(lambda: seen == ["now"], 5, "the ready job handled")
        assert await q.inspect(late.job_id) == [JobInfo(LOCAL_QUEUE, late.job_id, "delayed")]
        clock.advance(3600 - 1)
        await q.put([StepJob("e", "early", 1)])  # a put makes the queue look at its clock
        await eventually(lambda: seen == ["now", "early"], 5, "the next ready job handled")
        assert await q.inspect(late.job_id) == [JobInfo(LOCAL_QUEUE, late.job_id, "delayed")]
        clock.advance(1 + 2)  # due, then two seconds before the queue looks again
        await q.put([StepJob("e", "next", 1)])
        await eventually(lambda: seen == ["now", "early", "late", "next"], 5, "all handled")
        assert await q.inspect(late.job_id) == []
    finally:
        await q.stop(1)
        await asyncio.wait_for(consuming, 5)
    # "late" waited from its due time, not from its put
    assert waited == [0.0, 0.0, 2.0, 0.0]
