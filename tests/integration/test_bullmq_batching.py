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
from typing import Any

import pytest
import redis.asyncio as aioredis

from flowmill.constants import NODE_QUEUE
from flowmill.engine.ports import Job
from flowmill.queue.bullmq import BullMQQueue
from flowmill.testing import eventually
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
    await eventually(
        lambda: queue._consumer is not None and queue._consumer._workers, 10, "workers running"
    )
    assert queue._consumer is not None
    return next(w for w in queue._consumer._workers if w.name == NODE_QUEUE)


async def _all_completed(queue: BullMQQueue, count: int) -> bool:
    nodes = (await queue.counts())[NODE_QUEUE]
    return nodes["completed"] == count


def _assert_each_handled_once(recorder: Recorder, count: int) -> None:
    seen = Counter(job.job_id for job in recorder.jobs)
    assert len(seen) == count
    assert max(seen.values()) == 1, [i for i, n in seen.items() if n > 1]


async def _brief(job: Job) -> None:
    await asyncio.sleep(0.002)  # not a wait: the handler's work takes a moment


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
        await eventually(lambda: _all_completed(queue, len(jobs)), 10, "every job completed")
    # Stopped: a job fetched twice before it completed is in the recorder by now.
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


@pytest.mark.serial  # counts polls in a time window: measured with the machine to itself
async def test_bullmq_batching_a_trickle_onto_a_drained_queue_is_prompt_and_idle_is_quiet(
    make_queue: MakeQueue,
) -> None:
    drain_s = 3.0
    queue = make_queue(drain_delay_s=drain_s)  # an idle worker polls every 3 s
    recorder = Recorder()
    async with consuming(queue, recorder, concurrency=32):
        worker = await _node_worker(queue)
        await eventually(lambda: worker.drained, 10, "the worker drained")
        waited = []
        for i in range(10):
            sent = time.time()
            await queue.put([step(f"t{i}")])
            await recorder.wait_for(i + 1, timeout=10)
            waited.append(recorder.times[i] - sent)
            await eventually(lambda: worker.drained, 10, "the worker drained again")
        # Woken by the queue's marker, not by the next poll: a poll would leave half of
        # them waiting over half the drain delay (all ten under it by chance: 1 in 1024).
        assert max(waited) < drain_s / 2, waited

        await eventually(lambda: _all_completed(queue, 10), 10, "every job completed")
        before = worker._actives.items
        await asyncio.sleep(drain_s + 0.5)  # not a wait: the window idle polls are counted in
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
            await eventually(lambda: _all_completed(queue, len(jobs)), 10, "every job completed")
        loaded = await client.script_exists(move_to_active.sha, move_to_finished.sha)
    assert loaded == [True, True]  # reloaded by the batches that got NOSCRIPT
    _assert_each_handled_once(recorder, len(jobs))
    nodes = (await queue.counts())[NODE_QUEUE]
    assert nodes == {**dict.fromkeys(nodes, 0), "completed": len(jobs)}
    assert worker._actives.items >= len(jobs)
    assert worker._completions.items == len(jobs)
