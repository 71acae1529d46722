"""The batched fetches and completions of the BullMQ consumer on a real Redis.

While the node queue has jobs, the worker sends the moveToActive calls of its free
slots in one pipeline, and the moveToFinished calls of jobs that finish together in
another; while it is drained, fetches take turns waiting for BullMQ's marker. These
tests read the worker's coalescers (``_actives``, ``_completions``) to see the batching.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from flowmill.constants import NODE_QUEUE
from flowmill.engine.ports import Job
from flowmill.queue.bullmq import BullMQQueue
from tests.integration.bullmq_support import (
    MakeQueue,
    Recorder,
    consuming,
    queue_factory,
    step,
)

pytestmark = pytest.mark.redis

make_queue = pytest.fixture(queue_factory)


async def _node_worker(queue: BullMQQueue) -> Any:
    """The consumer's bullmq worker of the node queue, once it is running."""
    async with asyncio.timeout(5):
        while queue._consumer is None or not queue._consumer._workers:
            await asyncio.sleep(0.01)
    return next(w for w in queue._consumer._workers if w.name == NODE_QUEUE)


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def _all_completed(queue: BullMQQueue, count: int) -> bool:
    nodes = (await queue.counts())[NODE_QUEUE]
    return nodes["completed"] == count


def _assert_each_handled_once(recorder: Recorder, count: int) -> None:
    seen = Counter(job.job_id for job in recorder.jobs)
    assert len(seen) == count
    assert max(seen.values()) == 1, [i for i, n in seen.items() if n > 1]


async def _brief(job: Job) -> None:
    await asyncio.sleep(0.002)


async def test_bullmq_batching_a_backlog_is_fetched_and_completed_in_batches(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue()
    jobs = [step(f"n{i}") for i in range(300)]
    await queue.put(jobs)
    recorder = Recorder(_brief)
    async with consuming(queue, recorder, concurrency=32):
        worker = await _node_worker(queue)
        await recorder.wait_for(len(jobs), timeout=20)
        await _until(lambda: _all_completed(queue, len(jobs)))
        await asyncio.sleep(0.2)  # a job fetched twice would show up by now
    _assert_each_handled_once(recorder, len(jobs))
    nodes = (await queue.counts())[NODE_QUEUE]
    assert nodes == {**dict.fromkeys(nodes, 0), "completed": len(jobs)}

    actives, completions = worker._actives, worker._completions
    assert actives.items >= len(jobs)  # one fetch per job at least
    assert actives.batches * 3 <= actives.items, (actives.batches, actives.items)
    assert completions.items == len(jobs)
    assert completions.batches * 2 <= completions.items, (
        completions.batches,
        completions.items,
    )


async def test_bullmq_batching_a_trickle_onto_a_drained_queue_is_prompt_and_idle_is_quiet(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue()  # drain_delay_s=1: an idle worker polls once a second
    recorder = Recorder()
    async with consuming(queue, recorder, concurrency=32):
        worker = await _node_worker(queue)
        await asyncio.sleep(0.3)  # drained: fetches wait for the marker
        for i in range(10):
            sent = time.time()
            await queue.put([step(f"t{i}")])
            await recorder.wait_for(i + 1, timeout=3)
            assert recorder.times[i] - sent < 0.5, f"job {i} waited {recorder.times[i] - sent}"
            await asyncio.sleep(0.05)  # drained again before the next one

        await _until(lambda: _all_completed(queue, 10))
        before = worker._actives.items
        await asyncio.sleep(1.5)  # at least one blocking wait ends in this time
        idle_calls = worker._actives.items - before
    _assert_each_handled_once(recorder, 10)
    # Taking turns, one fetch polls per drain delay; all 32 slots polling would be 31+.
    assert idle_calls < 10, idle_calls


async def test_bullmq_batching_survives_lost_scripts(make_queue: MakeQueue, redis_url: str) -> None:
    queue = make_queue()
    jobs = [step(f"s{i}") for i in range(100)]
    await queue.put(jobs)
    recorder = Recorder(_brief)
    async with aioredis.Redis.from_url(redis_url) as client:
        await client.script_flush()  # as after a Redis restart
        async with consuming(queue, recorder, concurrency=16):
            worker = await _node_worker(queue)
            scripts = worker.backend.scripts.commands
            move_to_active, move_to_finished = scripts["moveToActive"], scripts["moveToFinished"]
            await recorder.wait_for(len(jobs), timeout=20)
            await _until(lambda: _all_completed(queue, len(jobs)))
        loaded = await client.script_exists(move_to_active.sha, move_to_finished.sha)
    assert loaded == [True, True]  # reloaded by the batches that got NOSCRIPT
    _assert_each_handled_once(recorder, len(jobs))
    nodes = (await queue.counts())[NODE_QUEUE]
    assert nodes == {**dict.fromkeys(nodes, 0), "completed": len(jobs)}
    assert worker._actives.items >= len(jobs)
    assert worker._completions.items == len(jobs)
