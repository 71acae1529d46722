"""The step checkpoint on PostgreSQL through the raw asyncpg connection.

Per statement, SQLAlchemy's execution machinery and its greenlet bridge cost more than
the round trip itself, so the checkpoint's reads are written out for asyncpg here and
its writes go through :mod:`flowmill.store.writer` with an :class:`AsyncpgDriver`. The
transition code is synchronous (it asks the reader for states as it plans), so it runs
in a greenlet as SQLAlchemy's own ``run_sync`` does, each query awaited through it.
Values are written as SQLAlchemy's types write them (JSON text into JSONB, UUID text),
so either path reads the other's.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_, greenlet_spawn

from flowmill.domain.errors import ExecutionNotFound
from flowmill.domain.execution import Effects, ExecutionRecord, NodeState
from flowmill.domain.states import ExecutionStatus, NodeRunStatus
from flowmill.engine.effects import StateReader
from flowmill.store.tables import LIVE_SQL
from flowmill.store.writer import apply_effects

_LOCK = (
    "SELECT id, tenant_id, workflow_id, version, status, trigger_type, created_at, "
    "started_at, completed_at, deadline_at, parent_execution_id, retry_of "
    "FROM workflow_executions WHERE id = $1 FOR UPDATE"
)
_LATEST = (
    "SELECT node_id, attempt, status, {column} FROM node_executions "
    "WHERE execution_id = $1 AND node_id = ANY($2::varchar[])"
)
_STATES = _LATEST.format(column="handles")
_OUTPUTS = _LATEST.format(column="output")
_LIVE_RUNS = (
    "SELECT id::text FROM node_executions WHERE execution_id = $1 "  # noqa: S608 - constants
    f"AND status IN {LIVE_SQL} LIMIT $2"
)

Build = Callable[[ExecutionRecord, StateReader], Effects]


async def checkpoint(
    engine: AsyncEngine,
    execution_id: str,
    build: Build,
    now: Callable[[], datetime],
) -> Effects:
    """Lock the execution, let ``build`` decide, write its effects: one transaction.

    The common step does not come here: its effects need no reads and go in a batch
    (:mod:`flowmill.store.postgres_batch`); this is for the steps that ask the planner
    about other runs (joins, the end of a branching workflow) and whatever a batch
    could not write.

    Raises:
        StaleStepError: A run update lost the race with a duplicate; rolled back.
        ExecutionNotFound: No such execution.
    """
    async with raw_connection(engine) as pg, pg.transaction():
        fx: Effects = await greenlet_spawn(_checkpoint, pg, execution_id, build, now)
        return fx


CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    ConnectionError,
    OSError,
)


@contextlib.asynccontextmanager
async def raw_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection's asyncpg connection, for statements written out by hand.

    Raw asyncpg errors bypass SQLAlchemy's disconnect handling: a connection lost
    under one is invalidated here, so that it does not go back to the pool. So is one
    left inside a transaction (its rollback cut short by a cancellation): SQLAlchemy's
    reset on return knows only the transactions it began, and the next user's
    ``BEGIN`` would fail with "cannot use Connection.transaction() in a manually
    started transaction".
    """
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        pg = raw.driver_connection
        assert isinstance(pg, asyncpg.Connection)
        try:
            yield pg
        except CONNECTION_LOST:
            await conn.invalidate()
            raise
        finally:
            if not pg.is_closed() and pg.is_in_transaction():
                await conn.invalidate()


def _checkpoint(
    pg: asyncpg.Connection, execution_id: str, build: Build, now: Callable[[], datetime]
) -> Effects:
    row = await_(pg.fetchrow(_LOCK, execution_id))
    if row is None:
        raise ExecutionNotFound(f"execution {execution_id} not found")
    ex = ExecutionRecord(
        id=str(row[0]),
        tenant_id=row[1],
        workflow_id=str(row[2]),
        version=row[3],
        status=ExecutionStatus(row[4]),
        trigger={},
        trigger_type=row[5],
        created_at=row[6],
        started_at=row[7],
        completed_at=row[8],
        deadline_at=row[9],
        parent_execution_id=str(row[10]) if row[10] is not None else None,
        retry_of=str(row[11]) if row[11] is not None else None,
    )
    fx = build(ex, PgStateReader(pg, execution_id))
    apply_effects(AsyncpgDriver(pg), fx, now())
    return fx


class AsyncpgDriver:
    """The writer's :class:`~flowmill.store.writer.Driver` on an asyncpg connection,
    called from inside a greenlet (``greenlet_spawn`` or SQLAlchemy's ``run_sync``)."""

    def __init__(self, pg: asyncpg.Connection) -> None:
        self._pg = pg

    @staticmethod
    def mark(i: int) -> str:
        return f"${i}"

    @staticmethod
    def in_set(i: int, values: list[str]) -> tuple[str, list[Any]]:
        return f"= ANY(${i}::varchar[])", [values]

    @staticmethod
    def time(value: datetime | None) -> datetime | None:
        return value

    def execute(self, sql: str, params: Iterable[Any]) -> int:
        status: str = await_(self._pg.execute(sql, *params))
        return int(status.rpartition(" ")[2])

    def executemany(self, sql: str, rows: list[list[Any]]) -> None:
        await_(self._pg.executemany(sql, rows))

    def value(self, sql: str, params: Iterable[Any]) -> Any:
        return await_(self._pg.fetchval(sql, *params))

    def is_unique_violation(self, error: BaseException) -> bool:
        return isinstance(error, asyncpg.UniqueViolationError)


class SqlAlchemyPgDriver(AsyncpgDriver):
    """The writer's driver through a SQLAlchemy connection on PostgreSQL: the same
    ``$n`` statements, run by SQLAlchemy's asyncpg adapter (``exec_driver_sql``).

    For the writes that share a transaction with SQLAlchemy's own statements (a limited
    start counts under locks first, a promotion reads the execution): raw asyncpg calls
    there bypassed SQLAlchemy's handling of a lost connection and of its transaction,
    so a connection could go back to its pool closed or inside a transaction (the
    loaded CI run on 33dd844). Neither is on the step hot path.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Iterable[Any]) -> int:
        return self._conn.exec_driver_sql(sql, tuple(params)).rowcount

    def executemany(self, sql: str, rows: list[list[Any]]) -> None:
        self._conn.exec_driver_sql(sql, [tuple(r) for r in rows])

    def value(self, sql: str, params: Iterable[Any]) -> Any:
        return self._conn.exec_driver_sql(sql, tuple(params)).scalar()

    def is_unique_violation(self, error: BaseException) -> bool:
        return isinstance(error, sa.exc.IntegrityError)


def driver(conn: Connection) -> SqlAlchemyPgDriver:
    """The writer's driver on ``conn``, inside SQLAlchemy's transaction."""
    return SqlAlchemyPgDriver(conn)


class PgStateReader:
    """:class:`~flowmill.engine.transitions.StateReader` on the raw connection."""

    def __init__(self, pg: asyncpg.Connection, execution_id: str) -> None:
        self._pg = pg
        self._id = execution_id

    def _latest(self, sql: str, node_ids: Collection[str]) -> dict[str, Any]:
        if not node_ids:
            return {}
        latest: dict[str, Any] = {}
        for row in await_(self._pg.fetch(sql, self._id, list(node_ids))):
            if row[0] not in latest or row[1] > latest[row[0]][1]:
                latest[row[0]] = row
        return latest

    def states(self, node_ids: Collection[str]) -> Mapping[str, NodeState]:
        return {
            node_id: NodeState(NodeRunStatus(row[2]), tuple(row[3]) if row[3] is not None else None)
            for node_id, row in self._latest(_STATES, node_ids).items()
        }

    def outputs(self, node_ids: Collection[str]) -> Mapping[str, Any]:
        return {
            node_id: row[3]
            for node_id, row in self._latest(_OUTPUTS, node_ids).items()
            if row[2] in ("succeeded", "failed")
        }

    def has_live_runs(self, exclude: Collection[str]) -> bool:
        rows = await_(self._pg.fetch(_LIVE_RUNS, self._id, len(exclude) + 1))
        return any(r[0] not in exclude for r in rows)


class _NeedsLock(Exception):
    """The planner asked about other runs: only the locked path may answer."""


class _NoReads:
    """A reader for the single-statement path: any question means "take the lock"."""

    def states(self, node_ids: Collection[str]) -> Mapping[str, NodeState]:
        if node_ids:
            raise _NeedsLock
        return {}

    def outputs(self, node_ids: Collection[str]) -> Mapping[str, Any]:
        if node_ids:
            raise _NeedsLock
        return {}

    def has_live_runs(self, exclude: Collection[str]) -> bool:
        raise _NeedsLock


def quick_effects(assumed: ExecutionRecord, build: Build) -> Effects | None:
    """The effects of the common step (a chain link), built without reading anything,
    or ``None`` when the planner needs other runs' states (then only the locked
    transaction may decide). ``assumed`` is not changed."""
    try:
        return build(copy.copy(assumed), _NoReads())
    except _NeedsLock:
        return None
