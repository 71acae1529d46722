"""The ports the engine needs; adapters live in ``store`` and ``queue``, fakes in
``flowmill.testing``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from flowmill.constants import step_job_id
from flowmill.domain.errors import FlowmillError
from flowmill.domain.execution import Effects, ExecutionRecord, NodeRun, StepKey
from flowmill.engine.effects import StateReader


@dataclass(frozen=True)
class LimitCounts:
    """How busy a workflow and its tenant are, read under their locks when limited.

    The tenant's counts are of its top-level executions (children belong to a parent
    that holds a place already); ``tenant_queued`` may stop counting at 1 (a start only
    needs to know whether any wait).
    """

    running: int = 0
    queued: int = 0
    started_last_minute: int = 0
    tenant_running: int = 0
    tenant_queued: int = 0


@dataclass
class LoadedStep:
    """A step as read before running it."""

    execution: ExecutionRecord
    run: NodeRun
    outputs: dict[str, Any] = field(default_factory=dict)


class DuplicateExecutionError(FlowmillError):
    """An execution with the same dedupe key exists; ``execution_id`` names it."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(execution_id)
        self.execution_id = execution_id


@dataclass(frozen=True)
class NewExecution:
    """One start of :meth:`ExecutionStore.start_many`: the execution, the builder of its
    effects (given no counts: a batch takes no limited start) and its dedupe key."""

    execution: ExecutionRecord
    build: Callable[[LimitCounts], Effects]
    dedupe_key: str | None = None


class ExecutionStore(Protocol):
    """Durable state of executions and node runs (command side)."""

    async def start(
        self,
        execution: ExecutionRecord,
        build: Callable[[LimitCounts], Effects],
        *,
        dedupe_key: str | None = None,
        limited: bool = False,
    ) -> Effects:
        """Create an execution with the effects ``build`` returns, atomically.

        Args:
            execution: The new execution (its status may change in ``build``).
            build: Called in the transaction with the workflow's counts.
            dedupe_key: Unique per tenant; a second start with it is refused.
            limited: Lock the workflow and the tenant and count their executions for
                ``build``.

        Raises:
            DuplicateExecutionError: ``dedupe_key`` was used before.
        """
        ...

    async def start_many(
        self, starts: Sequence[NewExecution]
    ) -> list[Effects | DuplicateExecutionError]:
        """Create several unlimited executions together (a loop's window of children):
        one transaction where the store can, each start all or nothing in any case.

        Returns:
            Per start, in order, its effects or the :class:`DuplicateExecutionError`
            naming the execution that holds its dedupe key (nothing written for it).
        """
        ...

    async def checkpoint(
        self,
        execution_id: str,
        build: Callable[[ExecutionRecord, StateReader], Effects],
        *,
        assumed: ExecutionRecord | None = None,
    ) -> Effects:
        """Lock the execution, let ``build`` decide, write its effects, commit.

        ``assumed`` is the execution as the caller last saw it; a store may use it to
        write a simple step without a separate lock round trip, provided it checks,
        atomically with the write, that the status is still the same.

        Raises:
            StaleStepError: A run update lost the race with a duplicate; nothing written.
            ExecutionNotFound: No such execution.
        """
        ...

    async def load_step(self, key: StepKey, references: Collection[str]) -> LoadedStep | None:
        """The execution, the run and the outputs of ``references``; ``None`` if no run."""
        ...

    async def load_outputs(self, execution_id: str, node_ids: Collection[str]) -> dict[str, Any]:
        """Outputs of the latest successful (or continued) attempts of ``node_ids``."""
        ...

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        """One execution (not tenant-scoped: engine-internal)."""
        ...

    async def node_runs(self, execution_id: str) -> list[NodeRun]:
        """Every attempt of every node of an execution, oldest first."""
        ...

    async def live_runs(
        self,
        *,
        alive_owners: Collection[str],
        unowned_older_than: datetime | None = None,
        owner: str | None = None,
        created_before: datetime | None = None,
        limit: int = 1000,
    ) -> list[NodeRun]:
        """Unfinished runs needing a new home.

        Without ``owner``: runs owned by a worker not in ``alive_owners``, and, when
        ``unowned_older_than`` is given, runs owned by no one (held by a shared queue)
        created before it. With ``owner``: that worker's runs created before
        ``created_before``.
        """
        ...

    async def set_owner(self, run_ids: Collection[str], owner: str | None) -> None:
        """Hand live runs to ``owner`` (``None``: to the queue)."""
        ...

    async def overdue_executions(self, now: datetime, limit: int = 100) -> list[str]:
        """Live executions whose deadline has passed."""
        ...

    async def queued_executions(
        self, workflow_id: str | None = None, limit: int = 100, *, tenant_id: str | None = None
    ) -> list[ExecutionRecord]:
        """Executions held by limits, oldest first (of one workflow or tenant if given)."""
        ...

    async def promote(
        self, execution_id: str, build: Callable[[ExecutionRecord, LimitCounts], Effects | None]
    ) -> Effects | None:
        """Start a queued execution if ``build`` (given fresh counts) says so."""
        ...


class WorkerRegistry(Protocol):
    """Liveness of worker processes, so work owned by a dead one is recovered."""

    async def register(self, worker_id: str, kind: str, hostname: str, pid: int) -> None:
        """Announce a worker."""
        ...

    async def heartbeat(self, worker_id: str) -> bool:
        """Say the worker is alive. Returns False when it is not registered (any more:
        others took it for dead during an outage)."""
        ...

    async def unregister(self, worker_id: str) -> None:
        """Remove a worker that stopped cleanly."""
        ...

    async def list_workers(self) -> list[WorkerInfo]:
        """Every registered worker."""
        ...


@dataclass(frozen=True)
class WorkerInfo:
    """A row of the workers table."""

    id: str
    kind: str
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime


class DefinitionSource(Protocol):
    """Reads stored workflow versions (immutable, so callers may cache them)."""

    async def get_definition(self, workflow_id: str, version: int) -> dict[str, Any]:
        """The definition document of one version.

        Raises:
            WorkflowNotFound: No such version.
        """
        ...

    async def resolve_version(
        self, tenant_id: str, workflow_id: str, version: int | None
    ) -> int | None:
        """``version`` if the tenant's workflow has it, else (``None`` given) its active
        version; ``None`` when the workflow is not the tenant's or has no such version."""
        ...

    async def active_version(self, tenant_id: str, workflow_id: str) -> int | None:
        """The version triggers start: ``None`` when the tenant's workflow is not active
        (paused, deleted, never published, or not the tenant's)."""
        ...


# --- queue ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepJob:
    """Run one attempt of one node. The job id derives from the key, so enqueueing the
    same step twice is harmless."""

    execution_id: str
    node_id: str
    attempt: int
    tenant_id: str = ""
    not_before: datetime | None = None
    priority: int = 0
    wake: int = 0  # non-zero for the resumption of a suspended step (its own job id)

    @property
    def key(self) -> StepKey:
        """The step this job runs."""
        return StepKey(self.execution_id, self.node_id, self.attempt)

    @property
    def job_id(self) -> str:
        """Deterministic queue id: enqueueing the same step twice adds one job."""
        return step_job_id(self.execution_id, self.node_id, self.attempt, self.wake)


@dataclass(frozen=True)
class TriggerJob:
    """Start an execution of a workflow (the ``flowmill-trigger`` queue).

    Attributes:
        dedupe_key: At most one execution is created per key (webhook event id...).
        webhook_event_id: Dispatch this recorded webhook event instead (its targets are
            on the row; ``workflow_id`` is then empty). The event row is the truth: a
            lost job is found again by the trigger service.
    """

    tenant_id: str
    workflow_id: str
    trigger_type: str
    data: Any
    version: int | None = None
    node_id: str | None = None
    dedupe_key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    webhook_event_id: str | None = None
    route: str | None = None  # a seed route "{triggerType}/{actionType}": its targets start


Job = StepJob | TriggerJob
JobHandler = Callable[[Job], Awaitable[Any]]
"""Runs one job. What it returns is kept as the job's result where the queue keeps
results (BullMQ's ``returnvalue``): the engine returns the execution ids a trigger job
started."""


TriggerHandler = Callable[[TriggerJob], Awaitable[list[str]]]
"""Handles one trigger job the engine does not start itself; returns the ids of the
executions it started."""


class TriggerHandlers:
    """Where the engine sends the trigger jobs that carry a webhook event or a seed route.

    Handed to :class:`~flowmill.engine.engine.Engine` when it is built, and filled once by
    whoever assembles the trigger side (``triggers.parts``): that side needs the engine to
    start executions, so it is built after it, and registers here instead of setting an
    attribute on the engine. Empty, such jobs are left for a trigger service to recover.
    """

    def __init__(self) -> None:
        self._webhook: TriggerHandler | None = None

    @property
    def webhook(self) -> TriggerHandler | None:
        """The handler of webhook-event and seed-route jobs, once registered."""
        return self._webhook

    def register_webhook(self, handler: TriggerHandler) -> None:
        """Register the one handler of webhook-event and seed-route jobs.

        Raises:
            RuntimeError: One is registered already (two dispatchers over one engine
                would each think it owns the events).
        """
        if self._webhook is not None:
            raise RuntimeError("a webhook handler is registered already")
        self._webhook = handler


@dataclass(frozen=True)
class JobInfo:
    """What a queue knows of one job (the database knows the rest).

    Attributes:
        queue: The queue's name (``local`` for the in-process queue).
        id: The job id.
        state: In BullMQ's words: ``waiting``, ``prioritized``, ``delayed``, ``active``,
            ``completed``, ``failed``, ``paused``, ``waiting-children``.
        data: The job's data as stored (BullMQ only).
        result: What the job's handler returned (BullMQ keeps it with the job).
        failed_reason: Why it failed, when it did.
        attempts_made: Times a worker ran it.
        created_ms: When it was added (epoch ms), if known.
        processed_ms: When a worker last took it, if known.
        finished_ms: When it completed or failed, if it did.
    """

    queue: str
    id: str
    state: str
    data: Any = None
    result: Any = None
    failed_reason: str | None = None
    attempts_made: int = 0
    created_ms: int | None = None
    processed_ms: int | None = None
    finished_ms: int | None = None


class JobQueue(Protocol):
    """Transport of jobs to workers. The database stays the source of truth."""

    @property
    def in_process(self) -> bool:
        """Whether jobs live only in this process (embedded mode)."""
        ...

    async def put(self, jobs: Sequence[Job]) -> None:
        """Enqueue jobs; a step job whose id is already queued is not added twice."""
        ...

    async def present(self, jobs: Collection[StepJob]) -> set[StepKey]:
        """Which of these steps have a job waiting, delayed or active."""
        ...

    async def inspect(self, job_id: str) -> list[JobInfo]:
        """The jobs with this id in the queue's queues (none when unknown or removed)."""
        ...

    async def consume(self, handler: JobHandler, *, concurrency: int) -> None:
        """Run ``handler`` on jobs until :meth:`stop`; returns when drained."""
        ...

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop taking jobs; give running ones ``grace_s`` to finish."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
