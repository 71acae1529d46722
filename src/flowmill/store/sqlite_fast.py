"""A step checkpoint's reads on SQLite, through the raw ``sqlite3`` connection.

SQLAlchemy's execution machinery cost ~100 µs per statement on the step hot path,
against ~10 µs for the statement itself. Inside the transaction SQLAlchemy opened,
these functions read on the same connection directly, decoding values as
SQLAlchemy's types would (ISO text for times, JSON text, UUIDs as text); the writes
go through :mod:`flowmill.store.writer` with a :class:`~flowmill.store.writer.SqliteDriver`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from flowmill import jsonutil
from flowmill.domain.errors import ExecutionNotFound
from flowmill.domain.execution import ExecutionRecord, NodeState
from flowmill.domain.states import ExecutionStatus, NodeRunStatus
from flowmill.store.tables import LIVE_SQL as _LIVE
from flowmill.store.writer import SqliteDriver


def raw(conn: Connection) -> sqlite3.Connection:
    """The ``sqlite3`` connection under a SQLAlchemy connection (same transaction)."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def driver(conn: Connection) -> SqliteDriver:
    """The writer's driver on the connection under ``conn`` (same transaction)."""
    return SqliteDriver(raw(conn))


def _parse_ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


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


def dedupe_holder(db: sqlite3.Connection, tenant_id: str, dedupe_key: str) -> str | None:
    """The id of the tenant's execution holding ``dedupe_key``, or ``None``."""
    row = db.execute(
        "SELECT id FROM workflow_executions WHERE tenant_id = ? AND dedupe_key = ?",
        (tenant_id, dedupe_key),
    ).fetchone()
    return None if row is None else str(row[0])
