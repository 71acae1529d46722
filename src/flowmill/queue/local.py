"""The in-process job queue of the embedded deployment.

Jobs live in memory; the database is the truth. At start the engine's sweeper puts
back every step a dead process left behind, so nothing is lost with the memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

import structlog

from flowmill.domain.execution import StepKey
from flowmill.engine.ports import Job, JobHandler, StepJob

log = structlog.get_logger("flowmill.queue")


def _job_id(job: Job) -> str | None:
    return job.job_id if isinstance(job, StepJob) else None


class LocalQueue:
    """A priority queue with delays, deduplicating step jobs by id."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, Job]] = []
        self._seq = itertools.count()
        self._ids: set[str] = set()  # waiting, delayed or active step jobs
        self._keys: dict[StepKey, int] = {}
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._active: set[asyncio.Task[None]] = set()
        self._consumers: list[asyncio.Task[None]] = []

    @property
    def in_process(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self._heap)

    async def put(self, jobs: Sequence[Job]) -> None:
        now_wall = datetime.now(UTC)
        now = time.monotonic()
        for job in jobs:
            jid = _job_id(job)
            if jid is not None:
                if jid in self._ids:
                    continue
                self._ids.add(jid)
                key = job.key  # type: ignore[union-attr]
                self._keys[key] = self._keys.get(key, 0) + 1
            due = now
            not_before = getattr(job, "not_before", None)
            if not_before is not None:
                due = now + max(0.0, (not_before - now_wall).total_seconds())
            heapq.heappush(self._heap, (due, -job.priority, next(self._seq), job))
        self._wakeup.set()

    async def present(self, jobs: Collection[StepJob]) -> set[StepKey]:
        return {j.key for j in jobs if j.key in self._keys}

    def _forget(self, job: Job) -> None:
        jid = _job_id(job)
        if jid is None:
            return
        self._ids.discard(jid)
        key = job.key  # type: ignore[union-attr]
        left = self._keys.get(key, 1) - 1
        if left <= 0:
            self._keys.pop(key, None)
        else:
            self._keys[key] = left

    async def _next(self) -> Job | None:
        while not self._stopping:
            if self._heap:
                due = self._heap[0][0]
                wait = due - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._heap)[3]
            else:
                wait = None
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=wait)
        return None

    async def consume(self, handler: JobHandler, *, concurrency: int) -> None:
        # A stop that came first wins: consume then returns at once (stop is final).

        async def _consumer() -> None:
            while True:
                job = await self._next()
                if job is None:
                    return
                task = asyncio.current_task()
                assert task is not None
                try:
                    await handler(job)
                except Exception:
                    log.exception("job handler failed", job=repr(job))
                finally:
                    self._forget(job)
                    # Wake another consumer: the heap may hold more due jobs.
                    if self._heap:
                        self._wakeup.set()

        self._consumers = [asyncio.create_task(_consumer()) for _ in range(concurrency)]
        try:
            await asyncio.gather(*self._consumers)
        finally:
            self._consumers = []

    async def stop(self, grace_s: float = 10.0) -> None:
        self._stopping = True
        self._wakeup.set()
        consumers = list(self._consumers)
        if consumers:
            _, pending = await asyncio.wait(consumers, timeout=grace_s)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def close(self) -> None:
        await self.stop(0)
