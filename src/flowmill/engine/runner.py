"""Runs steps: load, execute the node, checkpoint, then hand on what became ready.

The checkpoint commits the result, its events and the rows of the next steps in one
transaction, and only then are jobs dispatched (DESIGN §4). A step found finished
when its job runs again is not executed again. After a checkpoint the first step it
made ready may run here at once, without a queue round trip: its row is already
committed and owned by this worker, so a crash leaves it to the sweeper.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog

from flowmill.clock import Clock
from flowmill.domain.errors import NodeError
from flowmill.domain.execution import (
    Effects,
    ExecutionRecord,
    NodeRun,
    RunUpdate,
    StaleStepError,
    StepKey,
)
from flowmill.domain.states import ExecutionStatus, NodeRunStatus
from flowmill.engine import transitions as tx
from flowmill.engine.compiled import CompiledWorkflow
from flowmill.engine.control import WAKE_KEY, Control, loop_scope
from flowmill.engine.middleware import Invocation, NodeCall
from flowmill.engine.ports import ExecutionStore, Job, StepJob
from flowmill.engine.services import NodeServices
from flowmill.fairness import tenant_scope
from flowmill.nodes.base import NodeContext, NodeLogger, NodeResult, Suspend

log = structlog.get_logger("flowmill.runner")

CompiledLookup = Callable[[ExecutionRecord], Awaitable[CompiledWorkflow]]
Dispatch = Callable[[Sequence[Job]], Awaitable[None]]
Notify = Callable[[Effects], None]


@dataclass
class RunnerOptions:
    """Tuning of the step runner.

    Attributes:
        inline_limit: Steps of one execution run back to back before yielding to the
            queue (fairness between executions).
        announce_after_s: A step still running after this long is recorded as
            ``running`` (fast steps skip that extra write).
        inline: Whether to run the next ready step without a queue round trip.
    """

    inline_limit: int = 100
    announce_after_s: float = 0.2
    inline: bool = True


def priority_of(ex: ExecutionRecord) -> int:
    """The queue priority of an execution's steps (fixed when it started)."""
    value = ex.trigger.get("priority", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def job_for(run: NodeRun, tenant_id: str, priority: int = 0) -> StepJob:
    """The queue job of a run that is ready, or parked until ``not_before``."""
    wake = 0
    if run.status is NodeRunStatus.WAITING and run.not_before is not None:
        wake = int(run.not_before.timestamp() * 1000)
    return StepJob(
        run.execution_id,
        run.node_id,
        run.attempt,
        tenant_id=tenant_id,
        not_before=run.not_before,
        priority=priority,
        wake=wake,
    )


class Carry(Protocol):
    """A start offered to the checkpoints of a drive (:meth:`StepRunner.drive`): the
    checkpoint that ends the execution as the carry wants writes it in its own
    transaction (:class:`~flowmill.domain.execution.FollowingStart`). A loop's next
    iteration starts so, with the commit that ends one before it."""

    def claim(self) -> bool:
        """Before a checkpoint: whether a start is on offer to it (claimed for it)."""
        ...

    def attach(self, fx: Effects) -> Effects:
        """In the checkpoint's transaction: ``fx``, carrying the start if it ends the
        execution as wanted."""
        ...

    def settle(self, fx: Effects | None) -> None:
        """After the checkpoint: what it committed (``None``: nothing); a claim it did
        not carry is given back."""
        ...


class StepRunner:
    """Executes step jobs for one worker.

    Args:
        store: Durable execution state.
        compiled: Returns the compiled workflow of a (workflow id, version).
        services: Handed to nodes.
        clock: Time.
        call: The node call, wrapped in middleware.
        dispatch: Puts jobs on the queue (called only after commits).
        notify: Told about every committed effect (progress displays, live streams).
        worker_id: This worker; owner of the steps it runs inline.
        queue_owner: Owner recorded on steps handed to the queue: this worker's id for
            an in-process queue, ``None`` for a shared one.
        control: Child executions and signals, handed to nodes (and used to wake them).
    """

    def __init__(
        self,
        *,
        store: ExecutionStore,
        compiled: CompiledLookup,
        services: NodeServices,
        clock: Clock,
        call: NodeCall,
        dispatch: Dispatch,
        notify: Notify,
        worker_id: str,
        queue_owner: str | None,
        options: RunnerOptions | None = None,
        control: Control | None = None,
    ) -> None:
        self.store = store
        self.control = control
        self._compiled = compiled
        self.services = services
        self.clock = clock
        self._call = call
        self._dispatch = dispatch
        self._notify = notify
        self.worker_id = worker_id
        self._queue_owner = queue_owner
        self.options = options or RunnerOptions()
        self._rng = random.Random()
        self._tasks: dict[str, set[asyncio.Task[Any]]] = {}
        self.active: set[StepKey] = set()  # steps this worker is executing right now
        # Wake jobs of steps that were running here when they came: run once the step
        # is done (a parked parent woken by many children runs once for all of them).
        self._deferred: dict[StepKey, StepJob] = {}

    async def run_job(self, job: StepJob) -> None:
        """Run the step of ``job`` (and what follows inline), if it still needs running."""
        # Pools and the store serve tenants in turn by this (see flowmill.fairness).
        with tenant_scope(job.tenant_id):
            await self._run_job(job)

    async def _run_job(self, job: StepJob) -> None:
        if job.wake and job.key in self.active:
            # Running here right now: what woke it is seen by this run or by its
            # recheck after it parks; one more run afterwards covers the rest.
            self._deferred[job.key] = job
            return
        loaded = await self.store.load_step(job.key, ())
        if loaded is None:
            log.warning("step has no record; dropping its job", job_id=job.job_id)
            return
        ex, run = loaded.execution, loaded.run
        if run.status.terminal:
            return  # already done: a repeated job must not run it again
        if ex.status.terminal:
            await self._checkpoint(ex.id, lambda e, _r: tx.abandon_run(e, run, self.clock.now()))
            return
        if job.wake and run.status is NodeRunStatus.RUNNING and run.state is not None:
            # Another copy of this resumed step holds it (claim_resumed): what woke it
            # is seen by that copy or by its re-check once it parks again.
            return
        if run.not_before is not None and run.not_before > self.clock.now():
            # Early (recovered, or the queue fired before the clock): park it again.
            await self._dispatch([job_for(run, ex.tenant_id, priority_of(ex))])
            return
        if run.status is NodeRunStatus.WAITING:
            # One copy of a resumed step at a time, across workers: take the run first.
            claimed = await self._checkpoint(
                ex.id,
                lambda e, _r: tx.claim_resumed(e, run, self.clock.now(), owner=self._queue_owner),
            )
            if claimed is None or not claimed.run_updates:
                return  # another copy took it, or the execution ended meanwhile
            run = dataclasses.replace(run, status=NodeRunStatus.RUNNING)
            if claimed.execution_update is not None:
                ex.status = claimed.execution_update.status
        wf = await self._compiled(ex)
        await self._run_chain(wf, ex, run)

    async def _checkpoint(
        self,
        execution_id: str,
        build: Callable[[ExecutionRecord, tx.StateReader], Effects],
        assumed: ExecutionRecord | None = None,
    ) -> Effects | None:
        try:
            fx = await self.store.checkpoint(execution_id, build, assumed=assumed)
        except StaleStepError:
            return None
        self._notify(fx)
        return fx

    async def drive(
        self,
        wf: CompiledWorkflow,
        ex: ExecutionRecord,
        run: NodeRun,
        carry: Carry | None = None,
    ) -> ExecutionStatus | None:
        """Run a step this worker holds (``run.owner``) and what follows it inline, now,
        in the caller's task. Returns the execution's status if it ended meanwhile.
        ``carry`` is offered to the checkpoint that ends the execution inline."""
        status = await self._run_chain(wf, ex, run, carry)
        return status if status is not None and status.terminal else None

    async def _run_chain(
        self,
        wf: CompiledWorkflow,
        ex: ExecutionRecord,
        run: NodeRun,
        carry: Carry | None = None,
    ) -> ExecutionStatus | None:
        """Returns the last status the chain's checkpoints gave the execution."""
        chain_outputs: dict[str, Any] = {}
        status = None
        for depth in range(self.options.inline_limit + 1):
            inline = self.options.inline and depth < self.options.inline_limit
            fx = await self._run_one(wf, ex, run, chain_outputs, inline=inline, carry=carry)
            if fx is None:
                return status
            if fx.execution_update is not None:
                status = fx.execution_update.status
            next_run = None
            if inline:
                next_run = next(
                    (r for r in fx.ready if r.owner == self.worker_id and r.not_before is None),
                    None,
                )
            to_queue = [
                job_for(r, ex.tenant_id, priority_of(ex)) for r in fx.ready if r is not next_run
            ]
            if to_queue:
                await self._dispatch(to_queue)
            if next_run is None:
                return status
            if fx.execution_update is not None:
                ex.status = fx.execution_update.status
            run = next_run
        return status

    async def _run_one(
        self,
        wf: CompiledWorkflow,
        ex: ExecutionRecord,
        run: NodeRun,
        chain_outputs: dict[str, Any],
        *,
        inline: bool,
        carry: Carry | None = None,
    ) -> Effects | None:
        self.active.add(run.key)
        try:
            return await self._run_step(wf, ex, run, chain_outputs, inline=inline, carry=carry)
        finally:
            self.active.discard(run.key)
            deferred = self._deferred.pop(run.key, None)
            if deferred is not None:
                await self._dispatch([deferred])

    async def _run_step(
        self,
        wf: CompiledWorkflow,
        ex: ExecutionRecord,
        run: NodeRun,
        chain_outputs: dict[str, Any],
        *,
        inline: bool,
        carry: Carry | None = None,
    ) -> Effects | None:
        node = wf.node(run.node_id)
        outputs = {k: chain_outputs[k] for k in node.references if k in chain_outputs}
        missing = node.references - outputs.keys()
        if missing:
            outputs.update(await self.store.load_outputs(ex.id, missing))
        started = self.clock.now()
        timeout = node.timeout_s
        if ex.deadline_at is not None:
            left = (ex.deadline_at - started).total_seconds()
            if left <= 0:
                await self._checkpoint(
                    ex.id, lambda e, _r: tx.time_out_execution(e, self.clock.now())
                )
                return None
            timeout = min(timeout, left) if timeout is not None else left
        ctx = self._context(wf, ex, run, outputs, started)
        outcome = await self._execute(ex, run, Invocation(node, ctx, timeout))
        if outcome is None:
            return None
        inline_owner = self.worker_id if inline else None
        offer = carry if carry is not None and carry.claim() else None

        def build(e: ExecutionRecord, reader: tx.StateReader) -> Effects:
            fx = tx.after_step(
                wf,
                e,
                run,
                outcome,
                reader,
                self.clock.now(),
                owner=self._queue_owner,
                inline_owner=inline_owner,
                rng=self._rng,
            )
            return offer.attach(fx) if offer is not None else fx

        fx = None
        try:
            fx = await self._checkpoint(ex.id, build, assumed=ex)
        finally:
            if offer is not None:
                offer.settle(fx)
        if fx is None:
            log.info(
                "step finished elsewhere; result dropped",
                execution_id=ex.id,
                node_id=run.node_id,
                attempt=run.attempt,
            )
            return None
        if isinstance(outcome, tx.Suspended):
            parked = NodeRun(
                id=run.id,
                execution_id=ex.id,
                tenant_id=ex.tenant_id,
                node_id=run.node_id,
                attempt=run.attempt,
                status=NodeRunStatus.WAITING,
                not_before=outcome.until,
            )
            await self._dispatch([job_for(parked, ex.tenant_id, priority_of(ex))])
            if outcome.recheck is not None and outcome.wake_on and await outcome.recheck():
                # It arrived while the node was deciding to wait: its wake may have
                # been overwritten by this suspension, so wake it now.
                await self.wake(ex.id, outcome.wake_on)
        elif isinstance(outcome, tx.Succeeded):
            chain_outputs[run.node_id] = outcome.output
        return fx

    async def _execute(
        self, ex: ExecutionRecord, run: NodeRun, inv: Invocation
    ) -> tx.Outcome | None:
        started = inv.ctx.now
        logs = inv.ctx.log.lines
        task = asyncio.ensure_future(self._call(inv))  # copies current_tenant (run_job)
        tasks = self._tasks.setdefault(ex.id, set())
        tasks.add(task)
        announced = run.status is NodeRunStatus.RUNNING
        try:
            if not announced:
                done, _ = await asyncio.wait({task}, timeout=self.options.announce_after_s)
                if not done:
                    marked = await self._checkpoint(
                        ex.id, lambda e, _r: tx.mark_running(e, run, self.clock.now())
                    )
                    if marked is None:  # finished elsewhere meanwhile
                        task.cancel()
                        return None
                    announced = True
            try:
                result = await task
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if me is not None and me.cancelling():
                    raise  # this worker is shutting down
                return None  # the execution was cancelled under the step
            except NodeError as e:
                return tx.Failed(e, started, logs, announced)
            except Exception as e:
                # A node's bug fails its attempt, never the worker.
                log.exception("node raised", node_id=run.node_id, execution_id=ex.id)
                err = NodeError(str(e) or type(e).__name__, type=type(e).__name__)
                return tx.Failed(err, started, logs, announced)
        finally:
            tasks.discard(task)
            if not tasks:
                self._tasks.pop(ex.id, None)
        if isinstance(result, Suspend):
            state = dict(result.state)
            if result.wake_on is not None:
                state[WAKE_KEY] = result.wake_on
            return tx.Suspended(
                result.until,
                state,
                started,
                logs,
                announced,
                wake_on=result.wake_on,
                recheck=result.recheck,
            )
        if isinstance(result, NodeResult):
            return tx.Succeeded(
                result.output, result.handles, started, logs, announced, list(result.turns)
            )
        return tx.Succeeded(result, None, started, logs, announced)

    def _context(
        self,
        wf: CompiledWorkflow,
        ex: ExecutionRecord,
        run: NodeRun,
        outputs: dict[str, Any],
        now: datetime,
    ) -> NodeContext:
        node = wf.node(run.node_id).node
        execution: dict[str, Any] = {
            "id": ex.id,
            "workflow_id": ex.workflow_id,
            "version": ex.version,
            "started_at": ex.started_at.isoformat() if ex.started_at else None,
            "attempt": run.attempt,
        }
        if ex.parent_execution_id is not None:
            execution["parent_id"] = ex.parent_execution_id
        if self.control is not None:
            execution["resume_url"] = self.control.resume_url(ex.id)
        return NodeContext(
            node=node,
            execution_id=ex.id,
            workflow_id=ex.workflow_id,
            tenant_id=ex.tenant_id,
            attempt=run.attempt,
            input=run.input,
            trigger=ex.trigger,
            nodes={k: {"output": v} for k, v in outputs.items()},
            variables=wf.workflow.settings.variables,
            execution=execution,
            idempotency_key=run.key.idempotency_key,
            now=now,
            services=self.services,
            log=NodeLogger(node.id, run.attempt, now),
            # Parked before, and now claimed (or recovered after a crash while claimed):
            # its state is what the last suspension saved.
            resumed=run.status is NodeRunStatus.WAITING
            or (run.status is NodeRunStatus.RUNNING and run.state is not None),
            state=run.state,
            predecessors=wf.graph.predecessors[node.id],
            extra_scope=loop_scope(ex.trigger),
            control=self.control,
        )

    async def wake(self, execution_id: str, kind: str) -> int:
        """Wake the execution's runs parked for ``kind`` (children, signal): they run
        again now. Returns how many; 0 when none was parked (or one moved on meanwhile,
        in which case its own recheck sees what arrived)."""
        if self.control is None:
            return 0
        now = self.clock.now()
        # A run already due was woken (or is running after a wake): its job, or its
        # recheck once it parks again, sees what happened; waking it again would only
        # run it once more for nothing.
        parked = [
            p
            for p in await self.control.store.parked(execution_id)
            if p.state.get(WAKE_KEY) == kind and (p.not_before is None or p.not_before > now)
        ]
        if not parked:
            return 0

        def _build(e: ExecutionRecord, _r: tx.StateReader) -> Effects:
            fx = Effects(execution_id=e.id, tenant_id=e.tenant_id)
            if e.status.terminal:
                return fx
            for p in parked:
                fx.run_updates.append(
                    RunUpdate(
                        p.run_id,
                        frozenset({NodeRunStatus.WAITING}),
                        NodeRunStatus.WAITING,
                        state=p.state,
                        not_before=now,
                    )
                )
            return fx

        fx = await self._checkpoint(execution_id, _build)
        if fx is None or not fx.run_updates:
            return 0
        tenant = fx.tenant_id
        await self._dispatch(
            [
                StepJob(execution_id, p.node_id, p.attempt, tenant_id=tenant, not_before=now,
                        wake=int(now.timestamp() * 1000))
                for p in parked
            ]
        )  # fmt: skip
        return len(parked)

    def cancel_local(self, execution_id: str) -> int:
        """Interrupt this worker's running steps of an execution. Returns how many."""
        tasks = self._tasks.get(execution_id, set())
        for t in tasks:
            t.cancel()
        return len(tasks)

    @property
    def running(self) -> int:
        """Steps running in this worker now."""
        return sum(len(t) for t in self._tasks.values())


def dispatchable(runs: Sequence[NodeRun], tenant_id: str) -> list[StepJob]:
    """Jobs for every ready run of a set of effects."""
    return [job_for(r, tenant_id) for r in runs if r.status is NodeRunStatus.QUEUED]
