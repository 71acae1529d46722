"""BullMQQueue when things die: a consumer killed mid-job, Redis restarted."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from flowmill.engine.ports import Job, StepJob, TriggerJob
from flowmill.queue.bullmq import BullMQQueue
from tests.integration.bullmq_support import Recorder, consuming, fast_options, step
from tests.integration.private_servers import PrivateRedis

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
LOCK_MS, STALLED_MS = 1000, 500

# A consumer process that announces each job and then hangs on it.
CHILD = f"""
import asyncio, sys
from flowmill.engine.ports import Job, StepJob, TriggerJob
from flowmill.queue.bullmq import BullMQQueue
from tests.integration.bullmq_support import fast_options

async def main(url, prefix):
    queue = BullMQQueue(url, fast_options(prefix, lock_duration_ms={LOCK_MS},
                                          stalled_interval_ms={STALLED_MS}))
    async def hang(job):
        print("started", job.job_id, flush=True)
        await asyncio.Event().wait()
    await queue.consume(hang, concurrency=1)

asyncio.run(main(*sys.argv[1:]))
"""


async def _read_started(stream: asyncio.StreamReader) -> str:
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError("the child consumer exited")
        if line.startswith("started "):
            return line.split()[1]


async def test_bullmq_recovery_the_job_of_a_killed_consumer_goes_to_another(
    redis_url: str, redis_prefix: str
) -> None:
    job = step("crash")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, redis_url, redis_prefix,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    queue = BullMQQueue(
        redis_url,
        fast_options(redis_prefix, lock_duration_ms=LOCK_MS, stalled_interval_ms=STALLED_MS),
    )
    try:
        await queue.put([job])
        assert child.stdout is not None
        assert await asyncio.wait_for(_read_started(child.stdout), 15) == job.job_id
        child.send_signal(signal.SIGKILL)
        await child.wait()
        assert await queue.present([job]) == {job.key}  # still active, locked by the dead

        # The lock lapses within LOCK_MS and the stalled check needs two passes to move
        # the job; without that machinery it would stay active for good.
        recorder = Recorder()
        async with consuming(queue, recorder):
            assert await recorder.wait_for(1, timeout=20) == [job]
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await queue.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
async def outage_queue(private_redis: PrivateRedis) -> AsyncIterator[BullMQQueue]:
    queue = BullMQQueue(private_redis.url, fast_options("fm"))
    yield queue
    await queue.close()


async def test_bullmq_recovery_consumer_rides_out_a_redis_restart(
    private_redis: PrivateRedis, outage_queue: BullMQQueue
) -> None:
    queue = outage_queue
    recorder = Recorder()
    async with consuming(queue, recorder) as consumer:
        await queue.put([step("before")])
        await recorder.wait_for(1)

        private_redis.kill()
        async with asyncio.timeout(15):  # fails, does not hang
            with pytest.raises(RedisConnectionError):
                await queue.put([step("during")])
        await asyncio.sleep(1.5)  # not a wait: the outage lasts this long
        assert not consumer.done()  # and the consumer did not crash

        # Empty: no jobs, and no Lua scripts either (the adds are redone once loaded).
        private_redis.start()
        await queue.put([TriggerJob("t", "first", "manual", None)])
        # The add script is loaded now, the revive script not: only the step part is redone.
        await queue.put([step("after"), TriggerJob("t", "second", "manual", None)])
        await recorder.wait_for(4, timeout=10)
    # Stopped: anything fetched twice is in the recorder by now.
    assert sorted(_name(j) for j in recorder.jobs) == ["after", "before", "first", "second"]
    assert consumer.exception() is None


def _name(job: Job) -> str:
    return job.key.node_id if isinstance(job, StepJob) else job.workflow_id


async def test_bullmq_recovery_stop_returns_while_redis_is_down(
    private_redis: PrivateRedis, outage_queue: BullMQQueue
) -> None:
    queue = outage_queue
    recorder = Recorder()
    consumer = asyncio.create_task(queue.consume(recorder, concurrency=4))
    await queue.put([step()])
    await recorder.wait_for(1)
    private_redis.kill()
    await asyncio.sleep(0.5)  # not a wait: the outage lasts this long before the stop
    async with asyncio.timeout(15):  # reconnecting forever would never get here
        await queue.stop(grace_s=1)
        await consumer
