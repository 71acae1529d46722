# ruff: noqa: S608 - the statements are built from constants and column names.
"""The one writer of the engine's effects, on SQLite and on PostgreSQL alike.

A transition's :class:`~flowmill.domain.execution.Effects` become the same statements
on both databases, run on the raw driver connection inside the transaction the store
opened: SQLAlchemy's statement machinery cost more than the statements themselves on
the step hot path (~100 µs a statement against ~10 µs on SQLite). The two databases
differ only in a :class:`Driver`: how a parameter is marked, how a time is written,
how a status set is matched, and which driver error means "that dedupe key is taken".

Every insert's column list is the table's own (``tables.py``) and every row comes from
one shaper per table (``execution_values``, ``run_values``, ``log_values``,
``event_values``, ``turn_rows`` in :mod:`flowmill.store.executions`, which PostgreSQL's
set-based batch uses too): a column added to a table is written by every path, or the first write
fails with the column's name. ``tests/integration/test_writer_contract.py`` replays
every transition the planner makes through this writer on both databases, and through
the batch, and compares the rows and events with the in-memory fake's.
"""

from __future__ import annotations

import functools
import operator
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from flowmill import jsonutil
from flowmill.domain.errors import FlowmillError
from flowmill.domain.execution import Effects, StaleStepError
from flowmill.store.executions import (
    event_values,
    execution_values,
    log_values,
    run_values,
    turn_rows,
)
from flowmill.store.tables import (
    LIVE_SQL,
    conversation_history,
    event_store,
    execution_logs,
    node_executions,
    workflow_executions,
)
from flowmill.store.types import JsonText, UTCDateTime


class DedupeKeyTaken(FlowmillError):
    """Another execution of the tenant holds the new execution's dedupe key.

    The writer's translation of the driver's unique violation (``sqlite3`` and asyncpg
    each have their own); the transaction must be rolled back.
    """


class Driver(Protocol):
    """A raw connection in the current transaction, as the writer needs it."""

    @staticmethod
    def mark(i: int) -> str:
        """The placeholder of the ``i``-th parameter (from 1)."""

    @staticmethod
    def in_set(i: int, values: list[str]) -> tuple[str, list[Any]]:
        """The test that a status is one of ``values`` (``IN (?, ?)`` on SQLite,
        ``= ANY($11::varchar[])`` on PostgreSQL), from the ``i``-th parameter: the SQL
        that follows the column, and the parameters."""

    @staticmethod
    def time(value: datetime | None) -> Any:
        """A time as the column type stores it on this database."""

    def execute(self, sql: str, params: Iterable[Any]) -> int:
        """Run one statement; the number of rows it changed."""

    def executemany(self, sql: str, rows: list[list[Any]]) -> None:
        """Run one statement for each row."""

    def value(self, sql: str, params: Iterable[Any]) -> Any:
        """Run one statement; the first column of its first row."""

    def is_unique_violation(self, error: BaseException) -> bool:
        """Whether ``error`` is this driver's unique-constraint violation."""


def sqlite_time(value: datetime | None) -> str | None:
    """A time as ``UTCDateTime`` stores it on SQLite (UTC text, microseconds)."""
    if value is None:
        return None
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:"
        f"{v.second:02d}.{v.microsecond:06d}"
    )


class SqliteDriver:
    """The ``sqlite3`` connection under the store's SQLAlchemy connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    @staticmethod
    def mark(i: int) -> str:
        return "?"

    @staticmethod
    def in_set(i: int, values: list[str]) -> tuple[str, list[Any]]:
        return f"IN ({','.join('?' * len(values))})", values

    @staticmethod
    def time(value: datetime | None) -> str | None:
        return sqlite_time(value)

    def execute(self, sql: str, params: Iterable[Any]) -> int:
        return self._db.execute(sql, tuple(params)).rowcount

    def executemany(self, sql: str, rows: list[list[Any]]) -> None:
        self._db.executemany(sql, rows)

    def value(self, sql: str, params: Iterable[Any]) -> Any:
        return self._db.execute(sql, tuple(params)).fetchone()[0]

    def is_unique_violation(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.IntegrityError) and "UNIQUE" in str(error)


class _Insert:
    """``INSERT`` of every column of ``table``, its values shaped for a driver."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table.name
        self.columns = tuple(c.name for c in table.columns)
        self._values = operator.itemgetter(*self.columns)
        self._json = [i for i, c in enumerate(table.columns) if isinstance(c.type, JsonText)]
        self._times = [i for i, c in enumerate(table.columns) if isinstance(c.type, UTCDateTime)]

    def sql(self, driver: type[Driver]) -> str:
        marks = ", ".join(driver.mark(i + 1) for i in range(len(self.columns)))
        names = ", ".join(f'"{c}"' for c in self.columns)
        return f"INSERT INTO {self.table} ({names}) VALUES ({marks})"

    def row(self, driver: Driver, values: Mapping[str, Any]) -> list[Any]:
        """``values`` in column order; a column the shaper left out is a ``KeyError``
        naming it (a column added to ``tables.py`` and not to its shaper)."""
        row = list(self._values(values))
        dumps, time = jsonutil.dumps, driver.time
        for i in self._json:
            row[i] = dumps(row[i])
        for i in self._times:
            row[i] = time(row[i])
        return row


_EXECUTIONS = _Insert(workflow_executions)
_RUNS = _Insert(node_executions)
_LOGS = _Insert(execution_logs)
_EVENTS = _Insert(event_store)
_TURNS = _Insert(conversation_history)


@dataclass(frozen=True)
class _Statements:
    """The texts of one driver's statements, built once per driver class."""

    insert_execution: str
    insert_run: str
    insert_log: str
    insert_event: str
    insert_turn: str
    update_run: Callable[[int], str]
    cancel_live: str
    update_execution: str
    bump_sequence: str
    dedupe_holder: str


def _statements(d: type[Driver]) -> _Statements:
    m = d.mark
    return _Statements(
        insert_execution=_EXECUTIONS.sql(d),
        insert_run=_RUNS.sql(d),
        insert_log=_LOGS.sql(d),
        insert_event=_EVENTS.sql(d),
        insert_turn=_TURNS.sql(d),
        # The status set is the last parameter; its SQL depends on its size on SQLite.
        update_run=functools.cache(
            lambda n: (
                f"UPDATE node_executions SET status = {m(1)}, output = {m(2)}, error = {m(3)}, "
                f"handles = {m(4)}, state = {m(5)}, completed_at = {m(6)}, "
                f"not_before = coalesce({m(7)}, not_before), "
                f"started_at = coalesce({m(8)}, started_at), owner = coalesce({m(9)}, owner) "
                f"WHERE id = {m(10)} AND status " + d.in_set(11, ["x"] * n)[0]
            )
        ),
        cancel_live=(
            f"UPDATE node_executions SET status = 'cancelled', completed_at = {m(1)} "
            f"WHERE execution_id = {m(2)} AND status IN {LIVE_SQL}"
        ),
        update_execution=(
            f"UPDATE workflow_executions SET status = {m(1)}, output = {m(2)}, "
            f"error = {m(3)}, started_at = coalesce({m(4)}, started_at), "
            f"completed_at = {m(5)} WHERE id = {m(6)}"
        ),
        bump_sequence=(
            f"UPDATE tenants SET event_seq = event_seq + {m(1)} WHERE id = {m(2)} "
            "RETURNING event_seq"
        ),
        # (a subquery: one row, NULL when no execution holds the key)
        dedupe_holder=(
            "SELECT (SELECT id FROM workflow_executions "
            f"WHERE tenant_id = {m(1)} AND dedupe_key = {m(2)})"
        ),
    )


_BY_DRIVER: dict[type, _Statements] = {}


def apply_effects(
    driver: Driver, fx: Effects, now: datetime, *, dedupe_key: str | None = None
) -> None:
    """Write ``fx`` inside the caller's transaction.

    Args:
        driver: The raw connection.
        fx: What the transition decided.
        now: The time of lines without one and of runs cancelled.
        dedupe_key: For a new execution, its key (unique per tenant).

    A start that ``fx`` carries (``fx.follow``) is written after it, unless another
    execution holds its dedupe key: then nothing of it is, and ``taken_by`` names it.

    Raises:
        StaleStepError: A run update found its run already moved on (a duplicate job
            finished it first); the caller must roll back.
        DedupeKeyTaken: The new execution's ``dedupe_key`` is held by another.
    """
    s = _BY_DRIVER.get(type(driver))
    if s is None:
        s = _BY_DRIVER[type(driver)] = _statements(type(driver))
    j, t = jsonutil.dumps, driver.time
    if fx.new_execution is not None:
        row = _EXECUTIONS.row(driver, execution_values(fx.new_execution, dedupe_key))
        try:
            driver.execute(s.insert_execution, row)
        except Exception as e:
            if dedupe_key is None or not driver.is_unique_violation(e):
                raise
            raise DedupeKeyTaken(dedupe_key) from e
    for u in fx.run_updates:
        expect = sorted(x.value for x in u.expect)
        status_set = driver.in_set(11, expect)[1]
        changed = driver.execute(
            s.update_run(len(expect)),
            (
                u.status.value,
                j(u.output),
                j(u.error),
                j(u.handles),
                j(u.state),
                t(u.completed_at),
                t(u.not_before),
                t(u.started_at),
                u.owner,
                u.run_id,
                *status_set,
            ),
        )
        if changed != 1:
            raise StaleStepError(u.run_id)
    if fx.cancel_live_runs:
        driver.execute(s.cancel_live, (t(now), fx.execution_id))
    if fx.new_runs:
        driver.executemany(s.insert_run, [_RUNS.row(driver, run_values(r)) for r in fx.new_runs])
    x = fx.execution_update
    if x is not None:
        driver.execute(
            s.update_execution,
            (
                x.status.value,
                j(x.output),
                j(x.error),
                t(x.started_at),
                t(x.completed_at),
                fx.execution_id,
            ),
        )
    if fx.logs:
        rows = [log_values(fx.tenant_id, fx.execution_id, line, now) for line in fx.logs]
        driver.executemany(s.insert_log, [_LOGS.row(driver, r) for r in rows])
    if fx.turns:
        driver.executemany(s.insert_turn, [_TURNS.row(driver, r) for r in turn_rows(fx)])
    if fx.events:
        # Last, so the tenant's sequence row is locked only for the commit itself.
        last = driver.value(s.bump_sequence, (len(fx.events), fx.tenant_id))
        first = last - len(fx.events) + 1
        driver.executemany(
            s.insert_event,
            [
                _EVENTS.row(driver, {**event_values(fx.tenant_id, e), "sequence_number": first + i})
                for i, e in enumerate(fx.events)
            ],
        )
    follow = fx.follow
    if follow is not None:
        start, key = follow.effects, follow.dedupe_key
        # Checked before the insert: on PostgreSQL a unique violation would abort the
        # whole transaction, the checkpoint with it.
        holder = None if key is None else driver.value(s.dedupe_holder, (start.tenant_id, key))
        if holder is not None:
            follow.taken_by = str(holder)
        else:
            apply_effects(driver, start, now, dedupe_key=key)
