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
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime

import structlog

from flowmill.constants import NODE_QUEUE, TRIGGER_QUEUE
from flowmill.domain.execution import StepKey
from flowmill.engine.ports import Job, JobHandler, StepJob

log = structlog.get_logger("flowmill.queue")


def _job_id(job: Job) -> str | None:
    return job.job_id if isinstance(job, StepJob) else None


class LocalQueue:
    """A priority queue with delays, deduplicating step jobs by id.

    Like BullMQ, a step job whose id is already waiting is not added twice. A job that
    re-adds its own id while its handler runs (a step parking itself until later) is
    queued again once the handler returns.
    """

    def __init__(self) -> None:
        self._ready: list[tuple[int, int, Job]] = []  # (-priority, seq): highest first
        self._ready_at: dict[int, float] = {}  # seq -> when it became ready (monotonic)
        # told (queue, seconds a job was ready before a consumer took it): the metrics
        self.wait_listeners: list[Callable[[str, float], None]] = []
        self._delayed: list[tuple[float, int, Job]] = []  # (due, seq)
        self._seq = itertools.count()
        self._waiting: set[str] = set()  # ids in the heap (ready or delayed)
        self._running: dict[str, StepKey] = {}  # ids whose handler runs now
        self._rerun: dict[str, Job] = {}  # re-added by their own handler
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._consumers: list[asyncio.Task[None]] = []

    @property
    def in_process(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self._ready) + len(self._delayed)

    async def put(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            jid = _job_id(job)
            if jid is not None:
                if jid in self._waiting:
                    continue
                if jid in self._running:
                    self._rerun[jid] = job
                    continue
                self._waiting.add(jid)
            self._push(job)
        self._wakeup.set()

    def _push(self, job: Job) -> None:
        not_before = getattr(job, "not_before", None)
        wait = 0.0 if not_before is None else (not_before - datetime.now(UTC)).total_seconds()
        if wait > 0:
            heapq.heappush(self._delayed, (time.monotonic() + wait, next(self._seq), job))
        else:
            seq = next(self._seq)
            self._ready_at[seq] = time.monotonic()
            heapq.heappush(self._ready, (-job.priority, seq, job))

    async def present(self, jobs: Collection[StepJob]) -> set[StepKey]:
        return {j.key for j in jobs if j.job_id in self._waiting or j.job_id in self._running}

    async def _next(self) -> Job | None:
        while not self._stopping:
            now = time.monotonic()
            while self._delayed and self._delayed[0][0] <= now:
                due, seq, due_job = heapq.heappop(self._delayed)
                self._ready_at[seq] = due
                heapq.heappush(self._ready, (-due_job.priority, seq, due_job))
            if self._ready:
                _, seq, job = heapq.heappop(self._ready)
                ready_at = self._ready_at.pop(seq, now)
                for listener in self.wait_listeners:
                    listener(
                        NODE_QUEUE if isinstance(job, StepJob) else TRIGGER_QUEUE, now - ready_at
                    )
                jid = _job_id(job)
                if jid is not None:
                    self._waiting.discard(jid)
                    self._running[jid] = job.key  # type: ignore[union-attr]
                return job
            wait = self._delayed[0][0] - now if self._delayed else None
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=wait)
        return None

    def _finished(self, job: Job) -> None:
        jid = _job_id(job)
        if jid is None:
            return
        self._running.pop(jid, None)
        again = self._rerun.pop(jid, None)
        if again is not None:
            self._waiting.add(jid)
            self._push(again)

    async def consume(self, handler: JobHandler, *, concurrency: int) -> None:
        # A stop that came first wins: consume then returns at once (stop is final).

        async def _consumer() -> None:
            while True:
                job = await self._next()
                if job is None:
                    return
                try:
                    await handler(job)
                except Exception:
                    log.exception("job handler failed", job=repr(job))
                finally:
                    self._finished(job)
                    # Wake another consumer: more jobs may be due.
                    if self._ready or self._delayed:
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
