"""The in-process job queue of the embedded deployment.

Jobs live in memory; the database is the truth. At start the engine's sweeper puts
back every step a dead process left behind, so nothing is lost with the memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Collection, Sequence

import structlog

from flowmill.clock import Clock, SystemClock
from flowmill.constants import NODE_QUEUE, TRIGGER_QUEUE
from flowmill.domain.execution import StepKey
from flowmill.engine.ports import Job, JobHandler, JobInfo, StepJob

log = structlog.get_logger("flowmill.queue")
LOCAL_QUEUE = "local"  # the name the in-process queue reports in JobInfo


def _job_id(job: Job) -> str | None:
    return job.job_id if isinstance(job, StepJob) else None


class LocalQueue:
    """A priority queue with delays, deduplicating step jobs by id, fair to tenants.

    Like BullMQ, a step job whose id is already waiting is not added twice. A job that
    re-adds its own id while its handler runs (a step parking itself until later) is
    queued again once the handler returns.

    Ready jobs are kept per tenant; the next job is the highest priority among the
    tenants' first jobs (the engine folds each tenant's recent demand into priorities,
    see :mod:`flowmill.fairness`). ``reserve`` extra consumers take only jobs of tenants
    with nothing running, so a tenant arriving while another fills every consumer starts
    at once; ``max_per_tenant`` caps the jobs one tenant runs at a time (0: no cap).

    Args:
        reserve: Consumers beyond ``concurrency`` for tenants with nothing running.
        max_per_tenant: Most jobs of one tenant running at once (0: no limit), or a
            function of the tenant giving it (its ``concurrent_steps`` quota).
        clock: When delayed jobs are due (``not_before`` against its ``now``) and how
            long jobs waited (its ``monotonic``): the engine's clock, so the two agree.
            A fake clock holds delayed jobs until it is advanced; the queue notices at
            its next put, finished job, or the due time as it stood when it last looked.
    """

    def __init__(
        self,
        *,
        reserve: int = 1,
        max_per_tenant: int | Callable[[str], int] = 0,
        clock: Clock | None = None,
    ) -> None:
        self.reserve = reserve
        self._clock = clock or SystemClock()
        self._cap: Callable[[str], int] = (
            max_per_tenant if callable(max_per_tenant) else (lambda _t: max_per_tenant)
        )
        # tenant -> heap of (-priority, seq, job): highest first, then oldest
        self._ready: dict[str, list[tuple[int, int, Job]]] = {}
        self._ready_count = 0
        self._busy: Counter[str] = Counter()  # running jobs per tenant
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
        return self._ready_count + len(self._delayed)

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
        clock = self._clock
        wait = 0.0 if not_before is None else (not_before - clock.now()).total_seconds()
        if wait > 0:
            heapq.heappush(self._delayed, (clock.monotonic() + wait, next(self._seq), job))
        else:
            seq = next(self._seq)
            self._ready_at[seq] = clock.monotonic()
            self._push_ready(job, seq)

    def _push_ready(self, job: Job, seq: int) -> None:
        heap = self._ready.get(job.tenant_id)
        if heap is None:
            heap = self._ready[job.tenant_id] = []
        heapq.heappush(heap, (-job.priority, seq, job))
        self._ready_count += 1

    def _pop_ready(self, *, reserve: bool) -> tuple[int, Job] | None:
        """The best ready job this consumer may take (``reserve``: only of an idle tenant).

        Looks at each tenant's first job: cost grows with the tenants that have jobs
        ready, not with the jobs.
        """
        best: tuple[int, int, Job] | None = None
        for tenant, heap in self._ready.items():
            busy = self._busy[tenant]
            if reserve and busy:
                continue
            if busy and (cap := self._cap(tenant)) and busy >= cap:
                continue
            if best is None or heap[0] < best:
                best = heap[0]
        if best is None:
            return None
        tenant = best[2].tenant_id
        heap = self._ready[tenant]
        heapq.heappop(heap)
        if not heap:
            del self._ready[tenant]
        self._ready_count -= 1
        return best[1], best[2]

    async def counts(self) -> dict[str, dict[str, int]]:
        """Jobs per state, in the shape of BullMQ's counts: ``{"in-process": {...}}``."""
        return {
            "in-process": {
                "wait": self._ready_count,
                "delayed": len(self._delayed),
                "active": len(self._running),
            }
        }

    async def present(self, jobs: Collection[StepJob]) -> set[StepKey]:
        return {j.key for j in jobs if j.job_id in self._waiting or j.job_id in self._running}

    async def inspect(self, job_id: str) -> list[JobInfo]:
        """The step job with this id while it waits or runs (finished ones are gone)."""
        if job_id in self._running:
            return [JobInfo(LOCAL_QUEUE, job_id, "active")]
        if job_id in self._waiting:
            delayed = any(_job_id(j) == job_id for _, _, j in self._delayed)
            return [JobInfo(LOCAL_QUEUE, job_id, "delayed" if delayed else "waiting")]
        return []

    async def _next(self, *, reserve: bool = False) -> Job | None:
        while not self._stopping:
            now = self._clock.monotonic()
            while self._delayed and self._delayed[0][0] <= now:
                due, seq, due_job = heapq.heappop(self._delayed)
                self._ready_at[seq] = due
                self._push_ready(due_job, seq)
            taken = self._pop_ready(reserve=reserve) if self._ready else None
            if taken is not None:
                seq, job = taken
                ready_at = self._ready_at.pop(seq, now)
                for listener in self.wait_listeners:
                    listener(
                        NODE_QUEUE if isinstance(job, StepJob) else TRIGGER_QUEUE, now - ready_at
                    )
                self._busy[job.tenant_id] += 1
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
        self._busy[job.tenant_id] -= 1
        if not self._busy[job.tenant_id]:
            del self._busy[job.tenant_id]
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

        async def _consumer(reserve: bool) -> None:
            while True:
                job = await self._next(reserve=reserve)
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

        self._consumers = [
            asyncio.create_task(_consumer(reserve=i >= concurrency), name=f"local-queue-{i}")
            for i in range(concurrency + self.reserve)
        ]
        try:
            # A consumer cancelled by stop() past its grace has ended as asked: gather
            # would re-raise its CancelledError here, out of a clean shutdown. (The
            # consumers catch every Exception themselves; a cancel of consume() itself
            # still propagates.)
            await asyncio.gather(*self._consumers, return_exceptions=True)
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
