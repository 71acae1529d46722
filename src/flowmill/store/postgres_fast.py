"""The step checkpoint on PostgreSQL through the raw asyncpg connection.

The same statements as ``store.executions`` (SQLAlchemy Core), written out for
asyncpg: per statement, SQLAlchemy's execution machinery and its greenlet bridge cost
more than the round trip itself. The transition code is synchronous (it asks the
reader for states as it plans), so it runs in a greenlet as SQLAlchemy's own
``run_sync`` does, each query awaited through it. Values are written as SQLAlchemy's
types write them (JSON text into JSONB, UUID text), so either path reads the other's.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_, greenlet_spawn

from flowmill import jsonutil
from flowmill.domain.errors import ExecutionNotFound
from flowmill.domain.execution import (
    Effects,
    ExecutionRecord,
    LogLine,
    NodeState,
    StaleStepError,
)
from flowmill.domain.states import ExecutionStatus, NodeRunStatus
from flowmill.engine.effects import StateReader
from flowmill.ids import uuid7
from flowmill.store.executions import TURN_COLUMNS, turn_rows
from flowmill.store.tables import LIVE_SQL

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
_UPDATE_RUN = (
    "UPDATE node_executions SET status = $1, output = $2, error = $3, handles = $4, "
    "state = $5, completed_at = $6, not_before = coalesce($7, not_before), "
    "started_at = coalesce($8, started_at), owner = coalesce($9, owner) "
    "WHERE id = $10 AND status = ANY($11::varchar[])"
)
_CANCEL_LIVE = (
    "UPDATE node_executions SET status = 'cancelled', completed_at = $1 "  # noqa: S608
    f"WHERE execution_id = $2 AND status IN {LIVE_SQL}"
)
_INSERT_RUN = (
    "INSERT INTO node_executions (id, tenant_id, execution_id, node_id, attempt, status, "
    "input, output, error, handles, state, not_before, created_at, started_at, "
    "completed_at, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
    "$14, $15, $16)"
)
_UPDATE_EXECUTION = (
    "UPDATE workflow_executions SET status = $1, output = $2, error = $3, "
    "started_at = coalesce($4, started_at), completed_at = $5 WHERE id = $6"
)
_BUMP_SEQUENCE = "UPDATE tenants SET event_seq = event_seq + $1 WHERE id = $2 RETURNING event_seq"
_INSERT_EVENT = (
    "INSERT INTO event_store (id, tenant_id, stream_id, event_type, payload, timestamp, "
    "sequence_number) VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
_INSERT_LOG = (
    "INSERT INTO execution_logs (id, tenant_id, execution_id, node_id, attempt, level, "
    "message, metadata, timestamp) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)

_INSERT_TURN = (
    f"INSERT INTO conversation_history ({', '.join(TURN_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(f'${i + 1}' for i in range(len(TURN_COLUMNS)))})"
)

Build = Callable[[ExecutionRecord, StateReader], Effects]


_json = jsonutil.dumps


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
    under one is invalidated here, so that it does not go back to the pool.
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
    _apply(pg, fx, now())
    return fx


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


def _apply(pg: asyncpg.Connection, fx: Effects, now: datetime) -> None:
    assert fx.new_execution is None
    for u in fx.run_updates:
        status = await_(
            pg.execute(
                _UPDATE_RUN,
                u.status.value,
                _json(u.output),
                _json(u.error),
                _json(u.handles),
                _json(u.state),
                u.completed_at,
                u.not_before,
                u.started_at,
                u.owner,
                u.run_id,
                [s.value for s in u.expect],
            )
        )
        if status != "UPDATE 1":
            raise StaleStepError(u.run_id)
    if fx.cancel_live_runs:
        await_(pg.execute(_CANCEL_LIVE, now, fx.execution_id))
    if fx.new_runs:
        await_(
            pg.executemany(
                _INSERT_RUN,
                [
                    (
                        r.id,
                        r.tenant_id,
                        r.execution_id,
                        r.node_id,
                        r.attempt,
                        r.status.value,
                        _json(r.input),
                        _json(r.output),
                        _json(r.error),
                        _json(r.handles),
                        _json(r.state),
                        r.not_before,
                        r.created_at,
                        r.started_at,
                        r.completed_at,
                        r.owner,
                    )
                    for r in fx.new_runs
                ],
            )
        )
    x = fx.execution_update
    if x is not None:
        await_(
            pg.execute(
                _UPDATE_EXECUTION,
                x.status.value,
                _json(x.output),
                _json(x.error),
                x.started_at,
                x.completed_at,
                fx.execution_id,
            )
        )
    if fx.logs:
        _insert_logs(pg, fx.tenant_id, fx.execution_id, fx.logs, now)
    if fx.turns:
        rows = turn_rows(fx)
        await_(
            pg.executemany(
                _INSERT_TURN,
                [
                    tuple(_json(r[c]) if c == "metadata" else r[c] for c in TURN_COLUMNS)
                    for r in rows
                ],
            )
        )
    if fx.events:
        # Last, so the tenant's sequence row is locked only for the commit itself.
        last = await_(pg.fetchval(_BUMP_SEQUENCE, len(fx.events), fx.tenant_id))
        first = last - len(fx.events) + 1
        await_(
            pg.executemany(
                _INSERT_EVENT,
                [
                    (
                        e.id,
                        fx.tenant_id,
                        e.stream_id,
                        e.type,
                        _json(e.payload),
                        e.timestamp,
                        first + i,
                    )
                    for i, e in enumerate(fx.events)
                ],
            )
        )


def _insert_logs(
    pg: asyncpg.Connection, tenant_id: str, execution_id: str, logs: list[LogLine], now: datetime
) -> None:
    await_(
        pg.executemany(
            _INSERT_LOG,
            [
                (
                    uuid7(),
                    tenant_id,
                    execution_id,
                    line.node_id,
                    line.attempt,
                    line.level,
                    line.message,
                    _json(line.metadata),
                    line.timestamp or now,
                )
                for line in logs
            ],
        )
    )


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
