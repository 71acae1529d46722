"""The SQL adapter of the engine's :class:`~flowmill.engine.ports.ExecutionStore`."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowmill.clock import Clock, SystemClock
from flowmill.coalesce import Coalescer
from flowmill.domain.execution import Effects, ExecutionRecord, NodeRun, StepKey
from flowmill.domain.states import ExecutionStatus
from flowmill.engine.effects import StateReader
from flowmill.engine.ports import (
    DuplicateExecutionError,
    LimitCounts,
    LoadedStep,
    NewExecution,
    WorkerInfo,
)
from flowmill.fairness import current_tenant, tenant_scope
from flowmill.store import executions as repo
from flowmill.store import sqlite_fast as fast
from flowmill.store import writer
from flowmill.store.database import Database
from flowmill.store.tables import (
    LIVE_STATUSES,
    inline,
    node_executions,
    workers,
    workflow_executions,
    workflows,
)

_SqliteCheckpoint = tuple[str | None, str, Callable[[ExecutionRecord, StateReader], Effects]]
"""(tenant, execution id, build) of a checkpoint waiting for the SQLite writer."""
_SqliteLoad = tuple[str, StepKey, Collection[str]]
"""(tenant, step, the nodes whose outputs it reads) of a load waiting for a reader."""
ne = node_executions
we = workflow_executions
_LIVE_EXECUTION = ("pending", "running", "waiting")
# Prefix of the advisory lock key that serialises a tenant's limited starts (PostgreSQL).
_TENANT_LOCK = "flowmill:tenant-executions:"


class SqlExecutionStore(ABC):
    """Executions and node runs in SQL: what both databases do alike.

    The runtime picks the database's subclass once
    (:func:`flowmill.runtime.execution_store_for`): :class:`SqliteExecutionStore` or
    :class:`~flowmill.store.postgres_execution_store.PostgresExecutionStore`. They
    differ in how writes are gathered (SQLite's one writer takes checkpoints in one
    transaction; PostgreSQL batches steps and starts into one statement); every write
    goes through :mod:`flowmill.store.writer` or PostgreSQL's batch.
    """

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or SystemClock()

    @abstractmethod
    def _driver(self, conn: Connection) -> writer.Driver:
        """The writer's driver on ``conn``, inside its transaction."""

    def _holder_in(self, conn: Connection, tenant_id: str, dedupe_key: str) -> str | None:
        """The id of the tenant's execution holding ``dedupe_key``, or ``None``."""
        found = conn.execute(
            sa.select(we.c.id).where(we.c.tenant_id == tenant_id, we.c.dedupe_key == dedupe_key)
        ).scalar()
        return None if found is None else str(found)

    async def start(
        self,
        execution: ExecutionRecord,
        build: Callable[[LimitCounts], Effects],
        *,
        dedupe_key: str | None = None,
        limited: bool = False,
    ) -> Effects:
        now = self.clock.now()
        postgres = self.db.is_postgres
        writer_on, holder_in = self._driver, self._holder_in

        def _tx(conn: Connection) -> Effects:
            if dedupe_key is not None:
                existing = holder_in(conn, execution.tenant_id, dedupe_key)
                if existing is not None:
                    raise DuplicateExecutionError(existing)
            counts = (
                _counts(conn, execution.workflow_id, execution.tenant_id, now, postgres)
                if limited
                else LimitCounts()
            )
            fx = build(counts)
            writer.apply_effects(writer_on(conn), fx, now, dedupe_key=dedupe_key)
            return fx

        try:
            return await self.db.write(_tx)
        except writer.DedupeKeyTaken as e:
            # Lost a race with a concurrent start of the same event.
            existing = await self._holder_of(execution.tenant_id, dedupe_key)
            if existing is None:
                raise
            raise DuplicateExecutionError(str(existing)) from e

    @abstractmethod
    async def start_many(
        self, starts: Sequence[NewExecution]
    ) -> list[Effects | DuplicateExecutionError]:
        """Start several executions (the engine's port)."""

    @abstractmethod
    async def checkpoint(
        self,
        execution_id: str,
        build: Callable[[ExecutionRecord, StateReader], Effects],
        *,
        assumed: ExecutionRecord | None = None,
    ) -> Effects:
        """Decide and write one step under the execution's guard (the engine's port)."""

    async def _holder_of(self, tenant_id: str, dedupe_key: str | None) -> str | None:
        """The id of the tenant's execution holding ``dedupe_key``, or ``None``."""
        if dedupe_key is None:
            return None
        key = dedupe_key
        return await self.db.read(lambda c: self._holder_in(c, tenant_id, key))

    async def load_step(self, key: StepKey, references: Collection[str]) -> LoadedStep | None:
        def _tx(conn: Connection) -> LoadedStep | None:
            run = repo.get_run(conn, key.execution_id, key.node_id, key.attempt)
            if run is None:
                return None
            ex = repo.get_execution(conn, key.execution_id)
            if ex is None:
                return None
            outs = repo.outputs(conn, key.execution_id, references) if references else {}
            return LoadedStep(ex, run, outs)

        # Not one snapshot: the checkpoint re-checks the run and the execution under
        # their guards, and two round trips of a transaction are a tenth of a step.
        return await self.db.read_statements(_tx)

    async def load_outputs(self, execution_id: str, node_ids: Collection[str]) -> dict[str, Any]:
        if not node_ids:
            return {}
        return await self.db.read(lambda c: repo.outputs(c, execution_id, node_ids))

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        return await self.db.read(lambda c: repo.get_execution(c, execution_id))

    async def node_runs(self, execution_id: str) -> list[NodeRun]:
        stmt = sa.select(ne).where(ne.c.execution_id == execution_id).order_by(ne.c.id)
        return await self.db.read(lambda c: [repo.run_from_row(r) for r in c.execute(stmt)])

    async def live_runs(
        self,
        *,
        alive_owners: Collection[str],
        unowned_older_than: datetime | None = None,
        owner: str | None = None,
        created_before: datetime | None = None,
        limit: int = 1000,
    ) -> list[NodeRun]:
        stmt = live_runs_query(
            alive_owners=alive_owners,
            unowned_older_than=unowned_older_than,
            owner=owner,
            created_before=created_before,
            limit=limit,
        )
        return await self.db.read(lambda c: [repo.run_from_row(r) for r in c.execute(stmt)])

    async def set_owner(self, run_ids: Collection[str], owner: str | None) -> None:
        if not run_ids:
            return
        stmt = (
            ne.update()
            .where(ne.c.id.in_(list(run_ids)), ne.c.status.in_(LIVE_STATUSES))
            .values(owner=owner)
        )
        await self.db.write(lambda c: c.execute(stmt))

    async def overdue_executions(self, now: datetime, limit: int = 100) -> list[str]:
        stmt = overdue_query(now, limit)
        return await self.db.read(lambda c: [str(x) for x in c.execute(stmt).scalars()])

    async def queued_executions(
        self, workflow_id: str | None = None, limit: int = 100, *, tenant_id: str | None = None
    ) -> list[ExecutionRecord]:
        stmt = queued_query(workflow_id, tenant_id, limit)
        return await self.db.read(lambda c: [repo.execution_from_row(r) for r in c.execute(stmt)])

    async def promote(
        self,
        execution_id: str,
        build: Callable[[ExecutionRecord, LimitCounts], Effects | None],
    ) -> Effects | None:
        postgres = self.db.is_postgres
        clock = self.clock
        writer_on = self._driver

        def _tx(conn: Connection) -> Effects | None:
            ex = repo.lock_execution(conn, execution_id, postgres=postgres)
            if ex.status is not ExecutionStatus.QUEUED:
                return None
            now = clock.now()
            fx = build(ex, _counts(conn, ex.workflow_id, ex.tenant_id, now, postgres))
            if fx is not None:
                writer.apply_effects(writer_on(conn), fx, now)
            return fx

        return await self.db.write(_tx)


def _counts(
    conn: Connection, workflow_id: str, tenant_id: str, now: datetime, postgres: bool
) -> LimitCounts:
    """Count a workflow's and its tenant's executions under locks, so limits hold across
    workers: the workflow's row, then a transaction-scoped advisory lock on the tenant
    (always in this order; SQLite's single writer needs neither)."""
    if postgres:
        conn.execute(
            sa.select(workflows.c.id).where(workflows.c.id == workflow_id).with_for_update()
        )
        key = sa.func.hashtextextended(_TENANT_LOCK + tenant_id, 0)
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
    running = conn.execute(live_count_query(workflow_id)).scalar_one()
    queued = conn.execute(
        sa.select(sa.func.count()).where(
            we.c.workflow_id == workflow_id, we.c.status == ExecutionStatus.QUEUED.value
        )
    ).scalar_one()
    recent = conn.execute(
        sa.select(sa.func.count()).where(
            we.c.workflow_id == workflow_id, we.c.started_at >= now - timedelta(minutes=1)
        )
    ).scalar_one()
    top = (we.c.tenant_id == tenant_id, we.c.parent_execution_id.is_(None))
    tenant_running = conn.execute(
        sa.select(sa.func.count()).where(*top, we.c.status.in_(_LIVE_EXECUTION))
    ).scalar_one()
    # Whether any waits is all a start needs; counting a flood's backlog would cost
    # every start of that tenant a scan of it.
    tenant_queued = int(
        conn.execute(
            sa.select(sa.exists().where(*top, we.c.status == ExecutionStatus.QUEUED.value))
        ).scalar_one()
    )
    return LimitCounts(
        running=running,
        queued=queued,
        started_last_minute=recent,
        tenant_running=tenant_running,
        tenant_queued=tenant_queued,
    )


class SqliteExecutionStore(SqlExecutionStore):
    """Executions and node runs in SQLite, through its one writer thread."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        super().__init__(db, clock)
        # SQLite has one writer: checkpoints that arrive together (the branches of a
        # fan-out, steps of concurrent executions) share one transaction, each in a
        # savepoint of its own, so they pay one BEGIN and one COMMIT. The commit and
        # the begin were 40 % of the writer thread's time in a 200-way fan-out.
        # A tenant with no checkpoint under way writes its own at once rather than
        # after another tenant's batch: behind a flood's it waited 20-50 ms.
        self._checkpoints = Coalescer(
            self._checkpoint_batch, share=lambda item: item[0], max_batch=32, lone_parties=8
        )
        # Steps taken from the queue together (a fan-out's branches) are read together:
        # one hand-over to a reader thread and two statements for the lot (and one per
        # step that needs outputs), instead of all of them per step.
        self._loads: Coalescer[_SqliteLoad, LoadedStep | None] = Coalescer(
            self._load_batch, max_batch=64, share=lambda item: item[0], lone_parties=8
        )

    def _driver(self, conn: Connection) -> writer.Driver:
        return fast.driver(conn)

    async def load_step(self, key: StepKey, references: Collection[str]) -> LoadedStep | None:
        # Alone (a chain's step): its own statements, as any SQL store's.
        one = super().load_step
        return await self._loads.submit_or_alone(
            (current_tenant.get(), key, references), lambda: one(key, references)
        )

    async def _load_batch(self, loads: list[_SqliteLoad]) -> list[LoadedStep | None]:
        def _read(conn: Connection) -> list[LoadedStep | None]:
            wanted = [(k.execution_id, k.node_id, k.attempt) for _, k, _ in loads]
            out: list[LoadedStep | None] = []
            steps = repo.get_steps(conn, wanted)
            for (_, key, references), pair in zip(loads, steps, strict=True):
                if pair is None:
                    out.append(None)
                    continue
                outs = repo.outputs(conn, key.execution_id, references) if references else {}
                out.append(LoadedStep(*pair, outs))
            return out

        with self._quietest_turn({tenant for tenant, _, _ in loads}, reading=True):
            return await self.db.read(_read)

    def _quietest_turn(
        self, tenants: Collection[str], *, reading: bool = False
    ) -> contextlib.AbstractContextManager[None]:
        """Run a batch shared by ``tenants`` in the turn of the quietest of them. It
        would inherit the context of whoever started the flush: in a flood's turn, a
        quiet tenant's step waited behind the flood's queued commits (bench/fairness.py).
        """
        return tenant_scope(self.db.turn_of(tenants, reading=reading))

    def _holder_in(self, conn: Connection, tenant_id: str, dedupe_key: str) -> str | None:
        # The raw connection: SQLAlchemy's statement machinery was two thirds of a
        # start's time on the writer thread, which holds the GIL the event loop needs
        # (bench/loops.py).
        return fast.dedupe_holder(fast.raw(conn), tenant_id, dedupe_key)

    async def start_many(
        self, starts: Sequence[NewExecution]
    ) -> list[Effects | DuplicateExecutionError]:
        now = self.clock.now()

        def _tx(conn: Connection) -> list[Effects | DuplicateExecutionError]:
            # One commit for the window on SQLite's one writer: each start there was a
            # hand-over to the writer thread and a commit of its own.
            db = fast.raw(conn)
            driver = writer.SqliteDriver(db)
            done: list[Effects | DuplicateExecutionError] = []
            for s in starts:
                ex, key = s.execution, s.dedupe_key
                existing = None if key is None else fast.dedupe_holder(db, ex.tenant_id, key)
                if existing is not None:
                    done.append(DuplicateExecutionError(existing))
                    continue
                fx = s.build(LimitCounts())
                writer.apply_effects(driver, fx, now, dedupe_key=key)
                done.append(fx)
            return done

        return await self.db.write(_tx)

    async def checkpoint(
        self,
        execution_id: str,
        build: Callable[[ExecutionRecord, StateReader], Effects],
        *,
        assumed: ExecutionRecord | None = None,
    ) -> Effects:
        clock = self.clock
        # Alone (a chain's steps come one at a time): its own transaction, without the
        # batch's extra turns of the event loop and its savepoint, which cost a 40-step
        # chain 7 % (bench/engine.py).
        return await self._checkpoints.submit_or_alone(
            (current_tenant.get(), execution_id, build),
            lambda: self.db.write(
                lambda conn: _checkpoint_one(conn, execution_id, build, clock.now)
            ),
        )

    async def _checkpoint_batch(
        self, items: list[_SqliteCheckpoint]
    ) -> list[Effects | BaseException]:
        """SQLite checkpoints in one transaction, in order, each in a savepoint: one
        that raises (a stale step, an execution gone) is undone alone and gets its
        error; the others commit together, and none is reported before the commit."""
        clock = self.clock

        def _tx(conn: Connection) -> list[Effects | BaseException]:
            db = fast.raw(conn)
            out: list[Effects | BaseException] = []
            for _tenant, execution_id, build in items:
                db.execute("SAVEPOINT checkpoint")
                try:
                    fx = _checkpoint_one(conn, execution_id, build, clock.now)
                except Exception as e:
                    db.execute("ROLLBACK TO checkpoint")
                    out.append(e)
                else:
                    out.append(fx)
                db.execute("RELEASE checkpoint")
            return out

        with self._quietest_turn({tenant or "" for tenant, _, _ in items}):
            return await self.db.write(_tx)


class SqlWorkerRegistry:
    """Worker liveness in the ``workers`` table."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or SystemClock()

    async def register(self, worker_id: str, kind: str, hostname: str, pid: int) -> None:
        now = self.clock.now()
        await self.db.write(
            lambda c: c.execute(
                workers.insert().values(
                    id=worker_id,
                    kind=kind,
                    hostname=hostname,
                    pid=pid,
                    started_at=now,
                    heartbeat_at=now,
                )
            )
        )

    async def heartbeat(self, worker_id: str) -> bool:
        now = self.clock.now()
        updated: int = await self.db.write(
            lambda c: (
                c.execute(
                    workers.update().where(workers.c.id == worker_id).values(heartbeat_at=now)
                ).rowcount
            )
        )
        return updated > 0

    async def unregister(self, worker_id: str) -> None:
        await self.db.write(lambda c: c.execute(workers.delete().where(workers.c.id == worker_id)))

    async def list_workers(self) -> list[WorkerInfo]:
        rows = await self.db.read(lambda c: c.execute(sa.select(workers)).all())
        return [
            WorkerInfo(r.id, r.kind, r.hostname, r.pid, r.started_at, r.heartbeat_at) for r in rows
        ]


def _checkpoint_one(
    conn: Connection,
    execution_id: str,
    build: Callable[[ExecutionRecord, StateReader], Effects],
    now: Callable[[], datetime],
) -> Effects:
    """One SQLite checkpoint in a transaction of its own (the writer thread's)."""
    db = fast.raw(conn)
    ex = fast.lock_execution(db, execution_id)
    fx = build(ex, fast.FastStateReader(db, execution_id))
    writer.apply_effects(writer.SqliteDriver(db), fx, now())
    return fx


#: The live statuses written into statements, so that PostgreSQL can use the partial
#: indexes of live rows (see :func:`~flowmill.store.tables.inline`).
_LIVE_EXECUTION_INLINE = [inline(s) for s in _LIVE_EXECUTION]
_LIVE_RUN_INLINE = [inline(s) for s in LIVE_STATUSES]


def overdue_query(now: datetime, limit: int) -> sa.Select[Any]:
    """Live executions past their deadline: the sweeper's, every few seconds on every
    worker, so it walks the index of live executions, never the table."""
    live = _LIVE_EXECUTION_INLINE
    return sa.select(we.c.id).where(we.c.status.in_(live), we.c.deadline_at < now).limit(limit)


def live_count_query(workflow_id: str) -> sa.Select[Any]:
    """How many executions of the workflow are live: every start of a workflow with
    ``max_concurrent`` counts, so it reads the partial index of live executions."""
    return sa.select(sa.func.count()).where(
        we.c.workflow_id == workflow_id, we.c.status.in_(_LIVE_EXECUTION_INLINE)
    )


def queued_query(
    workflow_id: str | None = None, tenant_id: str | None = None, limit: int = 100
) -> sa.Select[Any]:
    """The oldest queued executions (of a workflow, of a tenant): every sweep and every
    end of a limited execution asks, so it walks the partial index of queued ones."""
    stmt = sa.select(we).where(we.c.status == inline(ExecutionStatus.QUEUED.value))
    if workflow_id is not None:
        stmt = stmt.where(we.c.workflow_id == workflow_id)
    if tenant_id is not None:
        stmt = stmt.where(we.c.tenant_id == tenant_id)
    return stmt.order_by(we.c.id).limit(limit)


def live_runs_query(
    *,
    alive_owners: Collection[str],
    unowned_older_than: datetime | None = None,
    owner: str | None = None,
    created_before: datetime | None = None,
    limit: int = 1000,
) -> sa.Select[Any]:
    """Live runs of dead (or one) owners, or long unowned (see ``live_runs``): the
    sweeper's, every few seconds on every worker, so it walks the index of live runs."""
    if owner is not None:
        who = [ne.c.owner == owner]
        if created_before is not None:
            who = [sa.and_(ne.c.owner == owner, ne.c.created_at < created_before)]
    else:
        orphaned = sa.and_(ne.c.owner.is_not(None), ne.c.owner.not_in(list(alive_owners)))
        who = [orphaned]
        if unowned_older_than is not None:
            who.append(sa.and_(ne.c.owner.is_(None), ne.c.created_at < unowned_older_than))
    # Oldest first by creation time, not id: ordered by id, PostgreSQL walked the
    # primary key from the oldest run of the table past every ended one (100-250 ms in
    # a soak); an index of live runs by id would serve it, but cost a chain of steps
    # 17 % more per step. The live runs are few: found by their index, then sorted.
    return (
        sa.select(ne)
        .where(ne.c.status.in_(_LIVE_RUN_INLINE), sa.or_(*who))
        .order_by(ne.c.created_at, ne.c.id)
        .limit(limit)
    )
