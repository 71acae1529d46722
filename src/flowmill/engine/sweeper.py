"""The sweeper: the periodic pass that keeps the durability invariant (DESIGN §4).

Every worker runs it every ``sweep_interval_s``. It takes over the live steps of dead
workers, puts back steps the queue lost, times out executions past their deadline and
starts ``queued`` executions whose limits now allow it. Everything it does is safe to
do twice: a step that already succeeded is never run again.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog

from flowmill.clock import Clock
from flowmill.domain.execution import Effects, ExecutionRecord, NodeRun
from flowmill.engine import starts
from flowmill.engine import transitions as tx
from flowmill.engine.compiled import CompiledWorkflow
from flowmill.engine.options import EngineOptions
from flowmill.engine.ports import (
    ExecutionStore,
    Job,
    JobQueue,
    LimitCounts,
    WorkerInfo,
    WorkerRegistry,
)
from flowmill.engine.runner import StepRunner, job_for, priority_of

log = structlog.get_logger("flowmill.sweeper")


class Sweeper:
    """One worker's sweeper.

    Args:
        store: Execution state.
        workers: Worker liveness registry.
        queue: Job transport.
        runner: This worker's step runner (its running steps are not stranded).
        clock: Time.
        options: The engine's tuning (dead_after_s, orphan_grace_s).
        worker_id: This worker.
        queue_owner: Owner recorded on steps this worker dispatches (None when the
            queue is shared by all workers).
        compiled: Compiled workflow by (id, version).
        dispatch: Puts jobs on the queue.
        committed: Tells the engine about committed effects (news, listeners).
        publish: Tells listeners about committed effects only.
        execution_cap: A tenant's cap on its live top-level executions (0: none).
    """

    def __init__(
        self,
        *,
        store: ExecutionStore,
        workers: WorkerRegistry,
        queue: JobQueue,
        runner: StepRunner,
        clock: Clock,
        options: EngineOptions,
        worker_id: str,
        queue_owner: str | None,
        compiled: Callable[[str, int], Awaitable[CompiledWorkflow]],
        dispatch: Callable[[Sequence[Job]], Awaitable[None]],
        committed: Callable[[Effects], None],
        publish: Callable[[Effects], None],
        execution_cap: Callable[[str], Awaitable[int]] | None = None,
    ) -> None:
        self.store = store
        self.workers = workers
        self.queue = queue
        self.runner = runner
        self.clock = clock
        self.options = options
        self.worker_id = worker_id
        self.queue_owner = queue_owner
        self.compiled = compiled
        self.dispatch = dispatch
        self.committed = committed
        self.publish = publish
        self.execution_cap = execution_cap

    async def sweep(self) -> None:
        """One pass: take over orphaned steps, time out overdue executions, start
        executions waiting for a limit."""
        now = self.clock.now()
        workers = await self.workers.list_workers()
        dead = [w for w in workers if self._dead(w, now)]
        alive = {w.id for w in workers if w not in dead} | {self.worker_id}
        for w in dead:
            await self.workers.unregister(w.id)
        grace = None
        if not self.queue.in_process:
            grace = now - timedelta(seconds=self.options.orphan_grace_s)
        orphans = await self.store.live_runs(alive_owners=alive, unowned_older_than=grace)
        if orphans:
            await self._readopt(orphans)
        await self._redispatch_stranded(now)
        for execution_id in await self.store.overdue_executions(now):
            fx = await self.store.checkpoint(
                execution_id, lambda ex, _r: tx.time_out_execution(ex, self.clock.now())
            )
            self.committed(fx)
            self.runner.cancel_local(execution_id)
        await self.promote_queued()

    def _dead(self, w: WorkerInfo, now: datetime) -> bool:
        if w.id == self.worker_id:
            return False
        if w.heartbeat_at < now - timedelta(seconds=self.options.dead_after_s):
            return True
        return w.hostname == socket.gethostname() and not pid_alive(w.pid)

    async def _readopt(self, runs: list[Any]) -> None:
        jobs = {r.id: job_for(r, r.tenant_id) for r in runs}
        if not self.queue.in_process:
            present = await self.queue.present(list(jobs.values()))
            runs = [r for r in runs if jobs[r.id].key not in present]
        if not runs:
            return
        await self.store.set_owner([r.id for r in runs], self.queue_owner)
        log.info("recovered steps left by stopped workers", count=len(runs))
        await self.dispatch([jobs[r.id] for r in runs])

    async def _redispatch_stranded(self, now: datetime) -> None:
        """Put back this worker's own live steps that are neither queued nor running.

        A handler that failed on a transient error (a busy database, a dropped
        connection) leaves its step committed but off the queue; this recovers it
        without waiting for a restart.
        """
        older = now - timedelta(seconds=self.options.orphan_grace_s)
        candidates = await self._own_idle_runs(older)
        missing = await self._without_job(candidates)
        if not missing:
            return
        # Read again: a step whose job ran between the read and the queue's answer
        # (a loop's run, woken by every child that ends, parks under a new job id
        # each time) is not lost. Only a run unchanged since the first read, and
        # still without a job, is.
        first = {r.id: (r.status, r.not_before) for r in missing}
        again = [
            r
            for r in await self._own_idle_runs(older)
            if first.get(r.id) == (r.status, r.not_before)
        ]
        lost = await self._without_job(again)
        if lost:
            log.warning("re-dispatching steps that fell off the queue", count=len(lost))
            await self.dispatch([job_for(r, r.tenant_id) for r in lost])

    async def _own_idle_runs(self, created_before: datetime) -> list[NodeRun]:
        """This worker's live runs that it is not running now."""
        mine = await self.store.live_runs(
            alive_owners=(), owner=self.worker_id, created_before=created_before
        )
        return [r for r in mine if r.key not in self.runner.active]

    async def _without_job(self, runs: list[NodeRun]) -> list[NodeRun]:
        """Those of ``runs`` whose job is neither queued nor running."""
        if not runs:
            return []
        present = await self.queue.present([job_for(r, r.tenant_id) for r in runs])
        return [r for r in runs if r.key not in present]

    async def promote_queued(self, tenant_id: str | None = None, limit: int = 100) -> None:
        """Start ``queued`` executions whose workflow's and tenant's limits allow it,
        oldest first (only ``tenant_id``'s when given; at most ``limit`` looked at)."""
        blocked: set[str] = set()
        full: set[str] = set()  # tenants at their cap
        for ex in await self.store.queued_executions(limit=limit, tenant_id=tenant_id):
            if ex.workflow_id in blocked or ex.tenant_id in full:
                continue  # first in, first out within a workflow and within a tenant
            wf = await self.compiled(ex.workflow_id, ex.version)
            cap = await self._cap_of(ex)
            seen: list[LimitCounts] = []

            def _build(
                e: ExecutionRecord,
                counts: LimitCounts,
                wf: CompiledWorkflow = wf,
                cap: int = cap,
                seen: list[LimitCounts] = seen,
            ) -> Effects | None:
                seen.append(counts)
                if not may_start(wf, counts, fifo=False, tenant_cap=cap):
                    return None
                return starts.promote_execution(wf, e, self.clock.now(), owner=self.queue_owner)

            fx = await self.store.promote(ex.id, _build)
            if fx is None:
                if cap and seen and seen[-1].tenant_running >= cap:
                    full.add(ex.tenant_id)
                else:
                    blocked.add(ex.workflow_id)
                continue
            self.publish(fx)
            await self.dispatch([job_for(r, ex.tenant_id, priority_of(ex)) for r in fx.ready])

    async def _cap_of(self, ex: ExecutionRecord) -> int:
        if self.execution_cap is None or ex.parent_execution_id is not None:
            return 0
        return await self.execution_cap(ex.tenant_id)


def may_start(
    wf: CompiledWorkflow, counts: LimitCounts, *, fifo: bool, tenant_cap: int = 0
) -> bool:
    """Whether the workflow's limits and the tenant's cap let one more execution start.

    Args:
        wf: The workflow.
        counts: Its and its tenant's executions, counted under their locks.
        fifo: A new start must also wait behind executions already queued.
        tenant_cap: The tenant's ``concurrent_executions`` (0: none).
    """
    if tenant_cap and (counts.tenant_running >= tenant_cap or (fifo and counts.tenant_queued > 0)):
        return False
    s = wf.workflow.settings
    if fifo and counts.queued > 0:
        return False
    if s.max_concurrent is not None and counts.running >= s.max_concurrent:
        return False
    return not (s.per_minute is not None and counts.started_last_minute >= s.per_minute)


def pid_alive(pid: int) -> bool:
    """Whether a process of this host is alive (ours always is)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
