"""The step checkpoint on SQLite through the raw ``sqlite3`` connection.

SQLAlchemy's execution machinery cost ~100 µs per statement on the step hot path,
against ~10 µs for the statement itself; a checkpoint runs six of them. Inside the
transaction SQLAlchemy opened, these functions run the same statements on the same
connection directly, writing values exactly as SQLAlchemy's types would (ISO text
for times, JSON text, UUIDs as text), so either side reads what the other wrote.
The PostgreSQL path keeps SQLAlchemy (``store.executions``); integration tests run
every behaviour on both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

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
from flowmill.ids import uuid7
from flowmill.store.executions import TURN_COLUMNS, turn_rows
from flowmill.store.tables import LIVE_SQL as _LIVE

_RUN_COLUMNS = (
    "id, tenant_id, execution_id, node_id, attempt, status, input, output, error, handles, "
    "state, not_before, created_at, started_at, completed_at, owner"
)


def raw(conn: Connection) -> sqlite3.Connection:
    """The ``sqlite3`` connection under a SQLAlchemy connection (same transaction)."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:"
        f"{v.second:02d}.{v.microsecond:06d}"
    )


def _parse_ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


_json = jsonutil.dumps


def lock_execution(db: sqlite3.Connection, execution_id: str) -> ExecutionRecord:
    """The execution's state (no payload); the write transaction already excludes others.

    Raises:
        ExecutionNotFound: No such execution.
    """
    row = db.execute(
        "SELECT id, tenant_id, workflow_id, version, status, trigger_type, created_at, "
        "started_at, completed_at, deadline_at, parent_execution_id, retry_of "
        "FROM workflow_executions WHERE id = ?",
        (execution_id,),
    ).fetchone()
    if row is None:
        raise ExecutionNotFound(f"execution {execution_id} not found")
    return ExecutionRecord(
        id=row[0],
        tenant_id=row[1],
        workflow_id=row[2],
        version=row[3],
        status=ExecutionStatus(row[4]),
        trigger={},
        trigger_type=row[5],
        created_at=_parse_ts(row[6]),  # type: ignore[arg-type]
        started_at=_parse_ts(row[7]),
        completed_at=_parse_ts(row[8]),
        deadline_at=_parse_ts(row[9]),
        parent_execution_id=row[10],
        retry_of=row[11],
    )


class FastStateReader:
    """:class:`~flowmill.engine.transitions.StateReader` on the raw connection."""

    def __init__(self, db: sqlite3.Connection, execution_id: str) -> None:
        self._db = db
        self._id = execution_id

    def _latest(self, columns: str, node_ids: Collection[str]) -> dict[str, tuple[Any, ...]]:
        ids = list(node_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        latest: dict[str, tuple[Any, ...]] = {}
        for row in self._db.execute(
            f"SELECT node_id, attempt, {columns} FROM node_executions "  # noqa: S608 - marks only
            f"WHERE execution_id = ? AND node_id IN ({marks})",
            (self._id, *ids),
        ):
            if row[0] not in latest or row[1] > latest[row[0]][1]:
                latest[row[0]] = row
        return latest

    def states(self, node_ids: Collection[str]) -> Mapping[str, NodeState]:
        out = {}
        for node_id, row in self._latest("status, handles", node_ids).items():
            handles = jsonutil.loads(row[3]) if row[3] is not None else None
            out[node_id] = NodeState(
                NodeRunStatus(row[2]), tuple(handles) if handles is not None else None
            )
        return out

    def outputs(self, node_ids: Collection[str]) -> Mapping[str, Any]:
        return {
            node_id: jsonutil.loads(row[3]) if row[3] is not None else None
            for node_id, row in self._latest("status, output", node_ids).items()
            if row[2] in ("succeeded", "failed")
        }

    def has_live_runs(self, exclude: Collection[str]) -> bool:
        rows = self._db.execute(
            f"SELECT id FROM node_executions WHERE execution_id = ? AND status IN {_LIVE} "  # noqa: S608
            "LIMIT ?",
            (self._id, len(exclude) + 1),
        ).fetchall()
        return any(r[0] not in exclude for r in rows)


_EXECUTION_COLUMNS = (
    "id, tenant_id, workflow_id, version, status, trigger_type, trigger, output, error, "
    "created_at, started_at, completed_at, deadline_at, parent_execution_id, "
    "parent_node_id, iteration, retry_of, dedupe_key, metadata"
)


def dedupe_holder(db: sqlite3.Connection, tenant_id: str, dedupe_key: str) -> str | None:
    """The id of the tenant's execution holding ``dedupe_key``, or ``None``."""
    row = db.execute(
        "SELECT id FROM workflow_executions WHERE tenant_id = ? AND dedupe_key = ?",
        (tenant_id, dedupe_key),
    ).fetchone()
    return None if row is None else str(row[0])


def apply_effects(
    db: sqlite3.Connection, fx: Effects, now: datetime, *, dedupe_key: str | None = None
) -> None:
    """:func:`flowmill.store.executions.apply_effects` on the raw connection.

    ``dedupe_key`` goes on a new execution's row (unique per tenant).

    Raises:
        StaleStepError: A run update found its run already moved on.
        sqlite3.IntegrityError: The new execution's ``dedupe_key`` is taken.
    """
    ex = fx.new_execution
    if ex is not None:
        db.execute(
            f"INSERT INTO workflow_executions ({_EXECUTION_COLUMNS}) "  # noqa: S608 - constant
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ex.id,
                ex.tenant_id,
                ex.workflow_id,
                ex.version,
                ex.status.value,
                ex.trigger_type,
                _json(ex.trigger),
                _json(ex.output),
                _json(ex.error),
                _ts(ex.created_at),
                _ts(ex.started_at),
                _ts(ex.completed_at),
                _ts(ex.deadline_at),
                ex.parent_execution_id,
                ex.parent_node_id,
                ex.iteration,
                ex.retry_of,
                dedupe_key,
                _json(ex.metadata),
            ),
        )
    for u in fx.run_updates:
        expect = sorted(s.value for s in u.expect)
        marks = ",".join("?" * len(expect))
        cur = db.execute(
            "UPDATE node_executions SET status = ?, output = ?, error = ?, handles = ?, "  # noqa: S608
            "state = ?, completed_at = ?, not_before = coalesce(?, not_before), "
            "started_at = coalesce(?, started_at), owner = coalesce(?, owner) "
            f"WHERE id = ? AND status IN ({marks})",
            (
                u.status.value,
                _json(u.output),
                _json(u.error),
                _json(u.handles),
                _json(u.state),
                _ts(u.completed_at),
                _ts(u.not_before),
                _ts(u.started_at),
                u.owner,
                u.run_id,
                *expect,
            ),
        )
        if cur.rowcount != 1:
            raise StaleStepError(u.run_id)
    if fx.cancel_live_runs:
        db.execute(
            f"UPDATE node_executions SET status = 'cancelled', completed_at = ? "  # noqa: S608
            f"WHERE execution_id = ? AND status IN {_LIVE}",
            (_ts(now), fx.execution_id),
        )
    if fx.new_runs:
        db.executemany(
            f"INSERT INTO node_executions ({_RUN_COLUMNS}) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    _ts(r.not_before),
                    _ts(r.created_at),
                    _ts(r.started_at),
                    _ts(r.completed_at),
                    r.owner,
                )
                for r in fx.new_runs
            ],
        )
    x = fx.execution_update
    if x is not None:
        db.execute(
            "UPDATE workflow_executions SET status = ?, output = ?, error = ?, "
            "started_at = coalesce(?, started_at), completed_at = ? WHERE id = ?",
            (
                x.status.value,
                _json(x.output),
                _json(x.error),
                _ts(x.started_at),
                _ts(x.completed_at),
                fx.execution_id,
            ),
        )
    if fx.logs:
        _insert_logs(db, fx.tenant_id, fx.execution_id, fx.logs, now)
    if fx.turns:
        _insert_turns(db, fx)
    if fx.events:
        last = db.execute(
            "UPDATE tenants SET event_seq = event_seq + ? WHERE id = ? RETURNING event_seq",
            (len(fx.events), fx.tenant_id),
        ).fetchone()[0]
        first = last - len(fx.events) + 1
        db.executemany(
            "INSERT INTO event_store (id, tenant_id, stream_id, event_type, payload, "
            "timestamp, sequence_number) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    e.id,
                    fx.tenant_id,
                    e.stream_id,
                    e.type,
                    _json(e.payload),
                    _ts(e.timestamp),
                    first + i,
                )
                for i, e in enumerate(fx.events)
            ],
        )


def _insert_turns(db: sqlite3.Connection, fx: Effects) -> None:
    rows = turn_rows(fx)
    marks = ", ".join("?" * len(TURN_COLUMNS))
    db.executemany(
        f"INSERT INTO conversation_history ({', '.join(TURN_COLUMNS)}) "  # noqa: S608
        f"VALUES ({marks})",
        [
            tuple(
                _ts(v) if k == "timestamp" else _json(v) if k == "metadata" else v
                for k, v in ((c, row[c]) for c in TURN_COLUMNS)
            )
            for row in rows
        ],
    )


def _insert_logs(
    db: sqlite3.Connection, tenant_id: str, execution_id: str, logs: list[LogLine], now: datetime
) -> None:
    db.executemany(
        "INSERT INTO execution_logs (id, tenant_id, execution_id, node_id, attempt, level, "
        "message, metadata, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                _ts(line.timestamp or now),
            )
            for line in logs
        ],
    )
