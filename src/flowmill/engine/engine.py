"""The engine: starts executions, runs steps, recovers what crashed processes left.

One :class:`Engine` per process. It knows its ports (store, queue, worker registry),
never which deployment it runs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from flowmill.clock import Clock, SystemClock
from flowmill.domain.errors import ExecutionNotFound, NotATrigger
from flowmill.domain.execution import Effects, ExecutionRecord, FollowingStart, NodeRun
from flowmill.domain.states import ExecutionStatus
from flowmill.engine import starts
from flowmill.engine import transitions as tx
from flowmill.engine.compiled import CompiledWorkflow, body_definition
from flowmill.engine.control import (
    WAKE_CHILDREN,
    ChildDrive,
    Control,
    ControlSettings,
    ControlStore,
    Driven,
    Successor,
)
from flowmill.engine.hub import EventHub
from flowmill.engine.middleware import (
    Middleware,
    chain,
    logging_middleware,
    output_limit_middleware,
    timeout_middleware,
)
from flowmill.engine.news import BLIND_POLL_S, EndedNews, NewsChannel
from flowmill.engine.options import EngineOptions as EngineOptions  # re-exported: its old home
from flowmill.engine.ports import (
    DefinitionSource,
    DuplicateExecutionError,
    ExecutionStore,
    Job,
    JobQueue,
    LimitCounts,
    NewExecution,
    StepJob,
    TriggerHandlers,
    TriggerJob,
    WorkerRegistry,
)
from flowmill.engine.runner import StepRunner, job_for, priority_of
from flowmill.engine.services import NodeServices
from flowmill.engine.signals import SignalBox
from flowmill.engine.sweeper import Sweeper, may_start
from flowmill.engine.validation import load_and_compile
from flowmill.fairness import FairShare, tenant_scope
from flowmill.ids import uuid7
from flowmill.nodes.base import TriggerNodeType
from flowmill.nodes.registry import NodeRegistry
from flowmill.observability.logcontext import bound, job_context
from flowmill.tasks import log_failure, run_every, spawn

log = structlog.get_logger("flowmill.engine")


def _no_build(_counts: LimitCounts) -> Effects:  # pragma: no cover - replaced at once
    raise AssertionError("a prepared start without its builder")


#: Arguments of :meth:`Engine._start`, in order (for :meth:`Engine.drive_child`).
_START_ARGS = (
    "tenant_id", "workflow_id", "version", "data", "trigger_type", "node_id", "dedupe_key",
    "metadata", "parent_execution_id", "retry_of", "execution_metadata", "parent_node_id",
    "iteration", "priority",
)  # fmt: skip


class Engine:
    """Runs workflows durably.

    Args:
        store: Execution state (the source of truth).
        definitions: Stored workflow versions.
        queue: Job transport.
        registry: Node types.
        services: Services handed to nodes.
        workers: Worker liveness registry.
        clock: Time.
        options: Tuning.
        middlewares: Extra node middleware (outermost first), around the built-in ones.
        kind: What this process is (``embedded``, ``worker``, ``api``), for the registry.
        control_store: Children and signals; without it loop, sub_workflow and wait
            nodes refuse to run.
        control_settings: Limits of those nodes.
        resume_key: Key of resume URLs' HMAC (shared by every process of a deployment).
        execution_cap: A tenant's cap on its live top-level executions (0: none; the
            ``concurrent_executions`` quota); starts beyond it wait in ``queued``.
        trigger_handlers: Where trigger jobs that carry a webhook event or a seed route
            go; the trigger side registers its dispatcher there once it is built.
    """

    def __init__(
        self,
        *,
        store: ExecutionStore,
        definitions: DefinitionSource,
        queue: JobQueue,
        registry: NodeRegistry,
        services: NodeServices | None = None,
        workers: WorkerRegistry,
        clock: Clock | None = None,
        options: EngineOptions | None = None,
        middlewares: Sequence[Middleware] = (),
        kind: str = "worker",
        news: NewsChannel | None = None,
        control_store: ControlStore | None = None,
        control_settings: ControlSettings | None = None,
        resume_key: bytes | None = None,
        execution_cap: Callable[[str], Awaitable[int]] | None = None,
        trigger_handlers: TriggerHandlers | None = None,
    ) -> None:
        self.store = store
        self._execution_cap = execution_cap
        self.definitions = definitions
        self.queue = queue
        self.registry = registry
        self.services = services or NodeServices()
        self.workers = workers
        self.clock = clock or SystemClock()
        self.options = options or EngineOptions()
        self.kind = kind
        self.worker_id = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid7()[-8:]}"
        self._queue_owner = self.worker_id if queue.in_process else None
        self.hub = EventHub()
        self.fair_share = FairShare()
        self.news = EndedNews(news)
        # Whether this process has met a workflow with limits: only then can an ended
        # execution free a place for a queued one at once (the sweeper promotes in any
        # case), so only then is the queued list read after each end.
        self._limited_seen = False
        self._cache: OrderedDict[tuple[str, int], CompiledWorkflow] = OrderedDict()
        self._bodies: OrderedDict[tuple[str, int, str], CompiledWorkflow] = OrderedDict()
        self.control: Control | None = None
        if control_store is not None:
            self.control = Control(
                store=control_store,
                start_child=self.start_execution,
                drive_child=self.drive_child,
                drive_children=self.drive_children,
                keep=self._keep,
                resolve_version=definitions.resolve_version,
                cancel=self.cancel,
                resume_key=resume_key or os.urandom(32),
                settings=control_settings,
            )
        self._background: set[asyncio.Task[Any]] = set()
        self._in_place = 0  # executions start_and_wait is running in place right now
        call = chain(
            [
                *middlewares,
                logging_middleware,
                output_limit_middleware(self.options.max_output_bytes),
                timeout_middleware,
            ]
        )
        self.runner = StepRunner(
            store=store,
            compiled=self.compiled_for,
            control=self.control,
            services=self.services,
            clock=self.clock,
            call=call,
            dispatch=self.dispatch,
            notify=self._committed,
            worker_id=self.worker_id,
            queue_owner=self._queue_owner,
            options=self.options.runner,
        )
        # Signals and resume URLs (wait nodes), when this engine has a control store.
        self.signals: SignalBox | None = None
        if self.control is not None:
            self.signals = SignalBox(
                control=self.control, store=store, wake=self.runner.wake, clock=self.clock
            )
        self._sweeper = Sweeper(
            store=store,
            workers=workers,
            queue=queue,
            runner=self.runner,
            clock=self.clock,
            options=self.options,
            worker_id=self.worker_id,
            queue_owner=self._queue_owner,
            compiled=self.compiled,
            dispatch=self.dispatch,
            committed=self._committed,
            publish=self.hub.publish,
            execution_cap=execution_cap,
        )
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self.trigger_handlers = trigger_handlers or TriggerHandlers()

    # --- definitions ---------------------------------------------------------------

    async def compiled(self, workflow_id: str, version: int) -> CompiledWorkflow:
        """The compiled form of a stored version (cached: versions never change)."""
        key = (workflow_id, version)
        wf = self._cache.get(key)
        if wf is not None:
            self._cache.move_to_end(key)
            return wf
        definition = await self.definitions.get_definition(workflow_id, version)
        wf = self.compile(definition)
        limits = wf.workflow.settings
        if limits.max_concurrent is not None or limits.per_minute is not None:
            self._limited_seen = True
        self._cache[key] = wf
        if len(self._cache) > 512:
            self._cache.popitem(last=False)
        return wf

    async def compiled_for(self, ex: ExecutionRecord) -> CompiledWorkflow:
        """The compiled graph an execution runs: its version, or a loop body in it."""
        body = ex.trigger.get("body")
        return await self.compiled_body(ex.workflow_id, ex.version, body if body else None)

    async def compiled_body(
        self, workflow_id: str, version: int, body: str | None
    ) -> CompiledWorkflow:
        """The version's graph, or with ``body`` (a ``/``-joined path of loop node ids)
        the inline body of that loop, given a trigger of its own."""
        wf = await self.compiled(workflow_id, version)
        if not body:
            return wf
        key = (workflow_id, version, body)
        found = self._bodies.get(key)
        if found is not None:
            return found
        for node_id in body.split("/"):
            wf = self.compile(body_definition(wf, node_id))
        self._bodies[key] = wf
        if len(self._bodies) > 512:
            self._bodies.popitem(last=False)
        return wf

    async def wake(self, execution_id: str, kind: str) -> int:
        """Wake an execution's steps parked for ``kind`` (see :mod:`.control`)."""
        return await self.runner.wake(execution_id, kind)

    async def _end_children(self, parent_id: str) -> None:
        """Cancel the live children of an execution that failed or was cancelled."""
        assert self.control is not None
        seen: set[str] = set()
        while True:
            ids = [i for i in await self.control.store.live_children(parent_id) if i not in seen]
            if not ids:
                return
            for child in ids:
                seen.add(child)
                await self.cancel(child, "its parent execution ended")

    def compile(self, definition: dict[str, Any]) -> CompiledWorkflow:
        """Validate and compile a definition with this engine's node types.

        Raises:
            DefinitionError: It does not validate.
        """
        return load_and_compile(
            definition, self.registry, expressions_enabled=self.services.sandbox_available
        )

    # --- executions ----------------------------------------------------------------

    async def start_execution(
        self,
        *,
        tenant_id: str,
        workflow_id: str,
        version: int,
        data: Any = None,
        trigger_type: str = "manual",
        node_id: str | None = None,
        dedupe_key: str | None = None,
        metadata: dict[str, Any] | None = None,
        parent_execution_id: str | None = None,
        retry_of: str | None = None,
        execution_metadata: dict[str, Any] | None = None,
        parent_node_id: str | None = None,
        iteration: int | None = None,
        priority: int | None = None,
    ) -> str:
        """Create an execution of a stored version and dispatch its first steps.

        ``metadata`` adds keys to the trigger output; ``execution_metadata`` is what the
        execution is about (``{"customerId", "clientId"}``): stored on the execution,
        filterable in lists, and ``trigger.metadata`` in templates. A child execution
        names its parent, the parent's node and (a loop's) iteration; ``metadata`` with
        ``body`` runs that loop body of the version instead of the whole graph.
        ``priority`` (default: the workflow's ``settings.priority``) orders its steps in
        the queue, higher first; it is kept in the trigger output for every later step.

        Returns:
            The execution id (the existing one when ``dedupe_key`` was seen before).
        """
        with tenant_scope(tenant_id):
            execution_id, _held = await self._start(
                tenant_id=tenant_id, workflow_id=workflow_id, version=version, data=data,
                trigger_type=trigger_type, node_id=node_id, dedupe_key=dedupe_key,
                metadata=metadata, parent_execution_id=parent_execution_id,
                retry_of=retry_of, execution_metadata=execution_metadata,
                parent_node_id=parent_node_id, iteration=iteration, priority=priority,
            )  # fmt: skip
            return execution_id

    @property
    def runs_here(self) -> bool:
        """Whether this process's worker runs (consumer, sweeper, heartbeat), so that a
        request may run an execution's steps in place: the steps it holds are owned by
        this worker, and only its heartbeat keeps others from taking them over."""
        return self._ready.is_set() and not self._stop.is_set()

    async def start_and_wait(
        self,
        wait_s: float | None,
        **start: Any,
    ) -> tuple[str, ExecutionStatus | None]:
        """Start an execution (arguments of :meth:`start_execution`) for a caller that
        waits for its end (``execute?wait``, a ``last_node`` webhook), up to ``wait_s``.

        When this process runs the engine (:attr:`runs_here`), the first step and those
        that follow it run here and now, as after any checkpoint: no queue round trip,
        no reload of the step, no read of the execution to learn that it ended. The
        rules are those of an inline step: the start is committed before the step runs,
        each step's result before the next, and the steps held are owned by this
        worker, so a crash leaves them to the sweeper. The steps run in a task of their
        own, held by the engine: a caller that stops waiting (``wait_s`` over, its
        client gone) does not stop them. Beyond ``options.concurrency`` executions run
        in place at once, or without a worker here, the start takes the queue as usual.

        Returns:
            The execution id and, if it ended within ``wait_s`` while running here, its
            final status; ``None`` otherwise (parked, branches on the queue, still
            running, not run here, or existing already): then :meth:`wait` for it.
        """
        args = _start_args(start)
        hold = self.runs_here and self._in_place < self.options.concurrency
        with tenant_scope(args["tenant_id"]):
            execution_id, held = await self._start(**args, hold=hold)
            if held is None:
                return execution_id, None
            self._in_place += 1
            task = asyncio.ensure_future(self.runner.drive(*held))  # copies the tenant
        task.add_done_callback(self._left_place)
        self._keep(task)
        done, _ = await asyncio.wait({task}, timeout=wait_s)
        if not done or task.cancelled() or task.exception() is not None:
            return execution_id, None  # (a failure is logged by _keep's callback)
        return execution_id, task.result()

    def _left_place(self, _task: asyncio.Task[Any]) -> None:
        self._in_place -= 1

    async def drive_child(self, **start: Any) -> tuple[str, ExecutionStatus | None]:
        """Start a child execution (arguments of :meth:`start_execution`) and run its
        first steps here and now, in the caller's task, instead of through the queue.

        For a loop driving its iterations (see :mod:`flowmill.nodes.loop`): the child
        is as durable as any (its rows are committed before its steps run, owned by
        this worker, so the sweeper takes them over if the worker dies), and its first
        step and those that follow run inline up to ``inline_limit``, as after any
        checkpoint; steps it dispatches (a second branch, a retry, a park) take the
        queue. Its parent is not woken when it ends: the caller learns it from the
        returned status.

        Returns:
            The child's id and, if it ended during the drive, its final status
            (``None``: still running or parked, or it existed already).
        """
        tenant_id = start["tenant_id"]
        with tenant_scope(tenant_id):
            execution_id, held = await self._start(**_start_args(start), hold=True)
            if held is None:
                return execution_id, None
            wf, ex, run = held
            return execution_id, await self.runner.drive(wf, ex, run)

    async def drive_children(
        self, starts: Sequence[dict[str, Any]], successor: Successor | None = None
    ) -> list[tuple[str, ChildDrive | None]]:
        """:meth:`drive_child` for a window of children of one parent: their rows are
        written together (one transaction where the store can), then each child's
        first steps are handed back to run in the caller's tasks.

        With ``successor`` (a loop over items), the checkpoint that ends an iteration
        as ``successor.then.on`` says also starts another (the index the loop sets aside
        for it), in its transaction: one commit per iteration instead of two. Its
        drive comes back in the :class:`~flowmill.engine.control.Driven` of the one
        that started it.

        Returns:
            Per start, in order: the child's id and a coroutine that runs its first steps
            and returns what came of them (see :meth:`drive_child`); no coroutine for a
            child that existed already. The caller must await or close each coroutine.
        """
        if not starts:
            return []
        with tenant_scope(starts[0]["tenant_id"]):
            prepared = [await self._prepare(**_start_args(s), hold=True) for s in starts]
            if any(p.limited for p in prepared):
                # Counted under the workflow's lock one at a time, as single starts are.
                held = [await self._commit_start(p) for p in prepared]
            else:
                results = await self.store.start_many(
                    [NewExecution(p.ex, p.build, p.dedupe_key) for p in prepared]
                )
                held = []
                jobs: list[Job] = []
                for p, fx in zip(prepared, results, strict=True):
                    if isinstance(fx, DuplicateExecutionError):
                        held.append((fx.execution_id, None))
                        continue
                    child_id, run, ready = self._after_start(p, fx)
                    jobs.extend(ready)
                    held.append((child_id, run))
                await self.dispatch(jobs)
        out: list[tuple[str, ChildDrive | None]] = []
        for p, (child_id, run) in zip(prepared, held, strict=True):
            drive = None if run is None else self._drive_iteration(p, run, successor)
            out.append((child_id, drive))
        return out

    async def _drive_iteration(
        self, p: _PreparedStart, run: NodeRun, successor: Successor | None
    ) -> Driven:
        """Run a child's first steps; with ``successor``, their checkpoints are offered
        the start of another iteration, handed back to be driven in turn if one
        carried it."""
        carry = None
        if successor is not None and not p.limited:  # (limited starts are counted, locked)
            carry = _NextIteration(self, successor, p.wf)
        status = await self.runner.drive(p.wf, p.ex, run, carry)
        if carry is None or carry.carried is None:
            return Driven(status)
        index, following, nxt = carry.carried
        if following.taken_by is not None:
            return Driven(status, (index, following.taken_by, None))
        child_id, held, jobs = self._after_start(nxt, following.effects)
        await self.dispatch(jobs)
        drive = None if held is None else self._drive_iteration(nxt, held, successor)
        return Driven(status, (index, child_id, drive))

    async def _start(
        self, *, hold: bool = False, **start: Any
    ) -> tuple[str, tuple[CompiledWorkflow, ExecutionRecord, NodeRun] | None]:
        """Prepare and commit a start (arguments of :meth:`_prepare_compiled`)."""
        p = await self._prepare(**start, hold=hold)
        execution_id, run = await self._commit_start(p)
        return execution_id, ((p.wf, p.ex, run) if run is not None else None)

    async def _prepare(self, *, hold: bool = False, **start: Any) -> _PreparedStart:
        """Everything of a start but its transaction: the record and its effects' builder
        (arguments of :meth:`_prepare_compiled`)."""
        body = (start.get("metadata") or {}).get("body")
        wf = await self.compiled_body(start["workflow_id"], start["version"], body or None)
        cap = 0
        if self._execution_cap is not None and start.get("parent_execution_id") is None:
            cap = await self._execution_cap(start["tenant_id"])
        return self._prepare_compiled(wf, cap, **start, hold=hold)

    def _prepare_compiled(
        self,
        wf: CompiledWorkflow,
        cap: int,
        tenant_id: str,
        workflow_id: str,
        version: int,
        data: Any,
        trigger_type: str,
        node_id: str | None,
        dedupe_key: str | None,
        metadata: dict[str, Any] | None,
        parent_execution_id: str | None,
        retry_of: str | None,
        execution_metadata: dict[str, Any] | None,
        parent_node_id: str | None = None,
        iteration: int | None = None,
        priority: int | None = None,
        *,
        hold: bool = False,
    ) -> _PreparedStart:
        """:meth:`_prepare` once the workflow is compiled and the tenant's cap known:
        no awaits, so a checkpoint can prepare the start it carries in its transaction,
        stamped with the time of that transaction."""
        if priority is None:
            priority = wf.workflow.settings.priority
        if priority:
            metadata = {**(metadata or {}), "priority": priority}
        now = self.clock.now()
        trigger_node = node_id or wf.default_trigger(trigger_type)
        trigger_type_impl = wf.node(trigger_node).type if trigger_node in wf.nodes else None
        if not isinstance(trigger_type_impl, TriggerNodeType):
            raise NotATrigger(f"node {trigger_node!r} is not a trigger of this workflow")
        extra = dict(metadata or {})
        if execution_metadata is not None:
            extra["metadata"] = execution_metadata
        trigger_output = trigger_type_impl.build_output(
            wf.node(trigger_node).config,
            trigger_type=trigger_type,
            data=data,
            metadata=extra,
            received_at=now,
        )
        trigger_output["node_id"] = trigger_node
        settings = wf.workflow.settings
        ex = ExecutionRecord(
            id=uuid7(),
            tenant_id=tenant_id,
            workflow_id=workflow_id,
            version=version,
            status=ExecutionStatus.PENDING,
            trigger=trigger_output,
            trigger_type=trigger_type,
            created_at=now,
            deadline_at=now + timedelta(seconds=settings.timeout_s) if settings.timeout_s else None,
            parent_execution_id=parent_execution_id,
            retry_of=retry_of,
            metadata=execution_metadata,
            parent_node_id=parent_node_id,
            iteration=iteration,
        )
        limited = bool(settings.max_concurrent or settings.per_minute or cap)
        p = _PreparedStart(wf, ex, dedupe_key, limited, hold)

        def _build(counts: LimitCounts) -> Effects:
            if limited and not may_start(wf, counts, fifo=True, tenant_cap=cap):
                ex.status = ExecutionStatus.QUEUED
                # queued although the tenant is below its cap
                p.room = bool(cap) and counts.tenant_running < cap
            return starts.start_execution(
                wf,
                ex,
                trigger_node,
                data,
                now,
                owner=self._queue_owner,
                inline_owner=self.worker_id if hold else None,
            )

        p.build = _build
        return p

    async def _commit_start(self, p: _PreparedStart) -> tuple[str, NodeRun | None]:
        """Write a prepared start alone; its id and the first step it holds, if any."""
        try:
            fx = await self.store.start(p.ex, p.build, dedupe_key=p.dedupe_key, limited=p.limited)
        except DuplicateExecutionError as dup:
            return dup.execution_id, None
        execution_id, held, jobs = self._after_start(p, fx)
        await self.dispatch(jobs)
        return execution_id, held

    def _after_start(self, p: _PreparedStart, fx: Effects) -> tuple[str, NodeRun | None, list[Job]]:
        """What follows a start's commit: its news, the step held to run here (with
        ``hold``), and the jobs of the others."""
        self._committed(fx)
        tenant_id = p.ex.tenant_id
        if p.room:
            # Behind the tenant's older queued ones (first in, first out) with a place
            # free: no end may come to start them, so look now.
            self._spawn(self._promote_tenant(tenant_id))
        held = None
        if p.hold:
            held = next(
                (r for r in fx.ready if r.owner == self.worker_id and r.not_before is None), None
            )
        jobs: list[Job] = [
            job_for(r, tenant_id, priority_of(p.ex)) for r in fx.ready if r is not held
        ]
        return p.ex.id, held, jobs

    async def retry(
        self,
        execution_id: str,
        *,
        from_start: bool = False,
        from_node: str | None = None,
        version: int | None = None,
        pinned: dict[str, Any] | None = None,
    ) -> str:
        """Run a finished execution again as a new one (``retry_of`` points back).

        Args:
            execution_id: The execution to retry (failed or cancelled, usually).
            from_start: Run every node again; otherwise keep the outputs of nodes that
                succeeded and resume from the failed ones.
            from_node: Run this node and every node after it again, the nodes before it
                keeping their outputs (a test run from one node onward).
            version: With ``from_node``: run this version of the workflow (a draft
                saved since); default the execution's.
            pinned: With ``from_node``: outputs to use instead of the old ones, by node
                id (test data). A pinned trigger's output is also the new trigger.

        Returns:
            The new execution's id.

        Raises:
            ExecutionNotFound: No such execution.
        """
        old = await self.store.get_execution(execution_id)
        if old is None:
            raise ExecutionNotFound(execution_id)
        if from_node is not None:
            return await self._rerun_from(old, from_node, version or old.version, pinned or {})
        if from_start:
            return await self.start_execution(
                tenant_id=old.tenant_id,
                workflow_id=old.workflow_id,
                version=old.version,
                data=old.trigger.get("data"),
                trigger_type=old.trigger_type,
                node_id=old.trigger.get("node_id"),
                retry_of=old.id,
                metadata={
                    k: v
                    for k, v in old.trigger.items()
                    if k not in ("type", "data", "node_id", "received_at", "source", "metadata")
                },
                execution_metadata=old.metadata,
            )
        wf = await self.compiled(old.workflow_id, old.version)
        runs = await self.store.node_runs(execution_id)
        now = self.clock.now()
        ex = _retry_record(old, wf, old.version, old.trigger, now)
        fx = await self.store.start(
            ex, lambda _c: starts.retry_from_failure(wf, runs, ex, now, owner=self._queue_owner)
        )
        self._committed(fx)
        await self.dispatch([job_for(r, ex.tenant_id, priority_of(ex)) for r in fx.ready])
        return ex.id

    async def _rerun_from(
        self, old: ExecutionRecord, node_id: str, version: int, pinned: dict[str, Any]
    ) -> str:
        wf = await self.compiled(old.workflow_id, version)
        runs = await self.store.node_runs(old.id)
        now = self.clock.now()
        trigger = dict(old.trigger)
        for trigger_node in wf.graph.triggers:
            if isinstance(pinned.get(trigger_node), dict):
                trigger.update(pinned[trigger_node])
        ex = _retry_record(old, wf, version, trigger, now)
        fx = await self.store.start(
            ex,
            lambda _c: starts.rerun_from_node(
                wf, runs, ex, now, node_id, pinned, owner=self._queue_owner
            ),
        )
        self._committed(fx)
        await self.dispatch([job_for(r, ex.tenant_id) for r in fx.ready])
        return ex.id

    async def cancel(self, execution_id: str, reason: str = "cancelled by request") -> bool:
        """Cancel an execution. Returns whether it was live (and is now cancelled)."""
        fx = await self.store.checkpoint(
            execution_id, lambda ex, _r: tx.cancel_execution(ex, self.clock.now(), reason)
        )
        self._committed(fx)
        self.runner.cancel_local(execution_id)
        return fx.execution_update is not None

    async def wait(self, execution_id: str, timeout: float | None = None) -> ExecutionRecord:  # noqa: ASYNC109 - returns the record on timeout, unlike asyncio.timeout
        """Wait until the execution ends (or ``timeout``); return it as it is then.

        Raises:
            ExecutionNotFound: No such execution.
        """
        poll_s = self.wait_poll_s
        with self.news.watch(execution_id) as done:
            deadline = None if timeout is None else self.clock.monotonic() + timeout
            while True:
                ex = await self.store.get_execution(execution_id)
                if ex is None:
                    raise ExecutionNotFound(execution_id)
                if ex.status.terminal:
                    return ex
                left = poll_s
                if deadline is not None:
                    left = min(poll_s, deadline - self.clock.monotonic())
                if left <= 0:
                    return ex
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), timeout=left)
                done.clear()

    @property
    def wait_poll_s(self) -> float:
        """Pause between database reads of a waiter for news (an execution's end, a
        webhook event's dispatch): the slow fallback when news can reach this process
        (it runs the work itself, or a channel brings other processes' word), the
        blind poll when nothing can."""
        if self.news.crosses_processes or self._ready.is_set():
            return self.options.wait_fallback_s
        return BLIND_POLL_S

    def announce(self, done_id: str) -> None:
        """Tell waiters, here and in other processes, that ``done_id`` is done (an
        execution ended, a webhook event dispatched). Call after the commit."""
        self.news.ended(done_id)
        if self.news.channel is not None:
            self._spawn(self.news.channel.publish_ended(done_id))

    # --- jobs ------------------------------------------------------------------------

    async def dispatch(self, jobs: Sequence[Job]) -> None:
        """Put jobs on the queue (after their rows are committed).

        A queue that cannot take them (Redis down) is logged, not raised: the rows are
        committed, so the work exists, and the sweeper puts back live steps that are
        missing from the queue. Raising would tell an API caller its execution failed
        to start when it will run (and a retrying caller would start it twice).
        """
        if not jobs:
            return
        # Each job's priority: its class, then its tenant's fair share within the class
        # (a tenant's recent demand pushes its own jobs back, nobody else's).
        share = self.fair_share
        jobs = [replace(j, priority=share.priority(j.tenant_id, j.priority)) for j in jobs]
        try:
            await self.queue.put(jobs)
        except Exception as e:
            log.warning(
                "queue unavailable; the sweeper will dispatch these steps",
                jobs=len(jobs),
                error=str(e) or type(e).__name__,
            )

    async def handle(self, job: Job) -> dict[str, Any] | None:
        """Process one job from the queue (its identity bound in every log line).

        Returns:
            For a trigger job, the executions it started: ``{"executionId",
            "executionIds"}`` (the seed's trigger worker answers ``{executionId}``);
            BullMQ keeps it as the job's ``returnvalue``.
        """
        with bound(**job_context(job)):
            if isinstance(job, StepJob):
                await self.runner.run_job(job)
                return None
            ids = await self._handle_trigger(job)
            return {"executionId": ids[0] if ids else None, "executionIds": ids}

    async def _handle_trigger(self, job: TriggerJob) -> list[str]:
        if job.webhook_event_id is not None or job.route is not None:
            handler = self.trigger_handlers.webhook
            if handler is None:
                # A webhook event stays "received"; a trigger service recovers it.
                # not ``event=``: structlog's message is its ``event`` argument
                log.warning(
                    "webhook job without a handler",
                    webhook_event_id=job.webhook_event_id,
                    route=job.route,
                )
                return []
            return await handler(job)
        version = job.version
        if version is None:
            version = await self.definitions.active_version(job.tenant_id, job.workflow_id)
            if version is None:
                log.warning(
                    "trigger for a workflow with no active version; dropped",
                    workflow_id=job.workflow_id,
                    tenant_id=job.tenant_id,
                )
                return []
        execution_id = await self.start_execution(
            tenant_id=job.tenant_id,
            workflow_id=job.workflow_id,
            version=version,
            data=job.data,
            trigger_type=job.trigger_type,
            node_id=job.node_id,
            dedupe_key=job.dedupe_key,
            metadata=job.metadata,
        )
        return [execution_id]

    def _committed(self, fx: Effects) -> None:
        self.hub.publish(fx)
        update = fx.execution_update
        if update is not None and update.status.terminal:
            self.announce(fx.execution_id)
            if self._limited_seen:
                self._spawn(self._promote_all())
            if self._execution_cap is not None and fx.parent_execution_id is None:
                self._spawn(self._promote_tenant(fx.tenant_id))
            if self.control is not None:
                parent = fx.parent_execution_id
                if parent is not None and self.control.is_driving(parent):
                    # (a parent driving its children here learns their ends directly)
                    self.control.child_ended(parent)
                elif parent is not None:
                    self._spawn(self.wake(parent, WAKE_CHILDREN))
                if update.status is not ExecutionStatus.SUCCEEDED:
                    self._spawn(self._end_children(fx.execution_id))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        # Named after the work (Engine._promote_all...); a failure is logged when the
        # task ends, and run() waits for what is left on the way out.
        name = getattr(coro, "__qualname__", "task")
        spawn(coro, name=f"engine:{name}", keep=self._background)

    def _keep(self, task: asyncio.Task[Any]) -> None:
        # A task started elsewhere (a loop's child still being driven) that the engine
        # now holds and waits for on the way out; its failure is logged like ours.
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(log_failure)

    # --- worker lifecycle -----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Engine]:
        """Run this engine's worker (consumer, sweeper, heartbeat) inside the block."""
        task = asyncio.create_task(self.run(), name=f"engine-worker:{self.worker_id}")
        try:
            ready = asyncio.create_task(self._ready.wait(), name="engine-ready")
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if task.done():
                task.result()
            yield self
        finally:
            await self.stop()
            await task

    async def run(self) -> None:
        """Work until :meth:`stop`: recover, consume jobs, sweep, heartbeat.

        Stopping is final: a stopped engine does not run again (make a new one).
        """
        await self.workers.register(self.worker_id, self.kind, socket.gethostname(), os.getpid())
        self._ready.set()
        try:
            try:
                await self.sweep()
            except Exception:
                # A database outage as the worker starts (a slow first sweep on a busy
                # machine, PostgreSQL restarting meanwhile) must not end the worker: the
                # periodic sweep below does the same work once the database is back.
                log.exception("first sweep failed; the periodic sweep will retry")
            if self._stop.is_set():
                return
            periodic: list[tuple[str, Callable[[], Awaitable[None]], float]] = [
                ("sweep", self.sweep, self.options.sweep_interval_s),
                ("heartbeat", self._heartbeat, self.options.heartbeat_interval_s),
            ]
            loops = [
                asyncio.create_task(
                    run_every(name, fn, interval_s=seconds, stop=self._stop, wait_first=True),
                    name=f"engine-{name}",
                )
                for name, fn, seconds in periodic
            ]
            try:
                await self.queue.consume(self.handle, concurrency=self.options.concurrency)
            finally:
                for t in loops:
                    t.cancel()
                await asyncio.gather(*loops, return_exceptions=True)
        finally:
            if self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
            # Unregistering lets any survivor take over what this worker leaves at once.
            with contextlib.suppress(Exception):
                await self.workers.unregister(self.worker_id)
            self._ready.clear()

    async def stop(self) -> None:
        """Stop taking jobs; let running steps finish within the grace period."""
        self._stop.set()
        await self.queue.stop(self.options.shutdown_grace_s)

    async def _heartbeat(self) -> None:
        if not await self.workers.heartbeat(self.worker_id):
            # Others took this worker for dead (a long database outage) and removed it;
            # without its row every step it runs would look orphaned to them.
            log.warning("worker was taken for dead; registering again", worker=self.worker_id)
            await self.workers.register(
                self.worker_id, self.kind, socket.gethostname(), os.getpid()
            )

    # --- sweeping ------------------------------------------------------------------------

    async def sweep(self) -> None:
        """One pass of the sweeper (see :class:`~flowmill.engine.sweeper.Sweeper`)."""
        await self._sweeper.sweep()

    async def _promote_all(self) -> None:
        await self._sweeper.promote_queued()

    async def _promote_tenant(self, tenant_id: str) -> None:
        """An execution of a tenant with a cap ended: start its next queued ones."""
        assert self._execution_cap is not None
        if await self._execution_cap(tenant_id):
            await self._sweeper.promote_queued(tenant_id, limit=20)


class _NextIteration:
    """The :class:`~flowmill.engine.runner.Carry` of a driven loop iteration: an index
    claimed from the loop before each checkpoint, its start prepared (in the
    checkpoint's transaction, stamped with its time) only if that checkpoint ends the
    iteration as the loop wants, and the index given back if it did not."""

    def __init__(self, engine: Engine, successor: Successor, wf: CompiledWorkflow) -> None:
        self._engine = engine
        self._successor = successor
        self._wf = wf  # every iteration of an inline body runs the same compiled body
        self._index: int | None = None
        self._following: tuple[FollowingStart, _PreparedStart] | None = None
        self.carried: tuple[int, FollowingStart, _PreparedStart] | None = None

    def claim(self) -> bool:
        self._index = self._successor.then.claim()
        self._following = None
        return self._index is not None

    def attach(self, fx: Effects) -> Effects:
        x = fx.execution_update
        if x is None or x.status not in self._successor.then.on or self._index is None:
            return fx
        if self._following is None:
            args = _start_args(self._successor.args(self._index))
            p = self._engine._prepare_compiled(self._wf, 0, **args, hold=True)
            self._following = (FollowingStart(p.build(LimitCounts()), p.dedupe_key), p)
        fx.follow = self._following[0]
        return fx

    def settle(self, fx: Effects | None) -> None:
        index, self._index = self._index, None
        if index is None:
            return
        if fx is not None and fx.follow is not None and self._following is not None:
            self.carried = (index, *self._following)
        else:
            self._successor.then.back(index)


def _start_args(start: dict[str, Any]) -> dict[str, Any]:
    """The arguments of :meth:`Engine._prepare` among a start's."""
    args = {k: start.get(k) for k in _START_ARGS}
    args["trigger_type"] = args["trigger_type"] or "manual"
    return args


@dataclass
class _PreparedStart:
    """A start made ready to commit (:meth:`Engine._prepare`)."""

    wf: CompiledWorkflow
    ex: ExecutionRecord
    dedupe_key: str | None
    limited: bool
    hold: bool
    build: Callable[[LimitCounts], Effects] = _no_build
    room: bool = False  # queued although the tenant is below its cap


def _retry_record(
    old: ExecutionRecord,
    wf: CompiledWorkflow,
    version: int,
    trigger: dict[str, Any],
    now: datetime,
) -> ExecutionRecord:
    """The new execution of a retry of ``old``: same tenant, workflow and metadata,
    ``retry_of`` pointing back, a fresh deadline from the version's settings."""
    timeout_s = wf.workflow.settings.timeout_s
    return ExecutionRecord(
        id=uuid7(),
        tenant_id=old.tenant_id,
        workflow_id=old.workflow_id,
        version=version,
        status=ExecutionStatus.PENDING,
        trigger=trigger,
        trigger_type=old.trigger_type,
        created_at=now,
        retry_of=old.id,
        metadata=old.metadata,
        deadline_at=now + timedelta(seconds=timeout_s) if timeout_s else None,
    )
