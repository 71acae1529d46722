"""Helpers of the BullMQ adapter tests: consumers in the background, job inspection, and
Node.js scripts using BullMQ (the packages installed once into a cache directory,
``FLOWMILL_TEST_NODE_CACHE``, default ``~/.cache/flowmill-tests``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from bullmq import Queue

from flowmill.constants import NODE_QUEUE
from flowmill.engine.ports import Job, JobHandler, StepJob
from flowmill.queue.bullmq import BullMQQueue
from flowmill.queue.bullmq_options import BullMQOptions
from flowmill.queue.bullmq_redis import make_client

MakeQueue = Callable[..., BullMQQueue]
# The Node.js release line of the Python bullmq package pinned in pyproject.toml.


async def queue_factory(redis_url: str, redis_prefix: str) -> AsyncIterator[MakeQueue]:
    """Fixture body (``make_queue = pytest.fixture(queue_factory)``): makes queues on
    the test's prefix and closes them afterwards."""
    made: list[BullMQQueue] = []

    def make(**overrides: Any) -> BullMQQueue:
        made.append(BullMQQueue(redis_url, fast_options(redis_prefix, **overrides)))
        return made[-1]

    yield make
    for queue in made:
        await queue.close()


def fast_options(prefix: str, **overrides: Any) -> BullMQOptions:
    """Options with test-sized timings."""
    values: dict[str, Any] = {
        "prefix": prefix,
        "drain_delay_s": 1,
        "reconnect_delay_ms": 200,
        "hand_back_timeout_s": 2.0,
    }
    values.update(overrides)
    return BullMQOptions(**values)


class Recorder:
    """A handler that records the jobs it gets, optionally running ``then`` on each."""

    def __init__(self, then: Callable[[Job], Awaitable[None]] | None = None) -> None:
        self.jobs: list[Job] = []
        self.times: list[float] = []  # epoch seconds at which each job started
        self._then = then
        self._changed = asyncio.Condition()

    async def __call__(self, job: Job) -> None:
        self.times.append(time.time())
        async with self._changed:
            self.jobs.append(job)
            self._changed.notify_all()
        if self._then is not None:
            await self._then(job)

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Job]:
        """The first ``count`` jobs, once they have come."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.jobs) >= count)
        return self.jobs[:count]


@contextlib.asynccontextmanager
async def consuming(
    queue: BullMQQueue, handler: JobHandler, *, concurrency: int = 4, grace_s: float = 5.0
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``queue.consume`` in the background inside the block."""
    task = asyncio.create_task(queue.consume(handler, concurrency=concurrency))
    try:
        yield task
    finally:
        await queue.stop(grace_s)
        await task


@contextlib.asynccontextmanager
async def bull_queue(url: str, prefix: str, name: str = NODE_QUEUE) -> AsyncIterator[Any]:
    """A plain bullmq ``Queue`` on the test's prefix, to look at or add raw jobs."""
    queue = Queue(name, {"connection": make_client(url), "prefix": prefix})
    try:
        yield queue
    finally:
        await queue.close()


def step(node: str = "n", attempt: int = 1, execution: str = "ex-1", **kw: Any) -> StepJob:
    """A step job with test defaults."""
    return StepJob(execution, node, attempt, tenant_id="tenant-1", **kw)
