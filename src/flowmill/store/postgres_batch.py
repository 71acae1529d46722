# ruff: noqa: S608 - the statements are constants; values travel as parameters.
"""Many steps' checkpoints, and many starts, in one PostgreSQL statement.

What one statement per step cost was not the statement: it was the round trip (a
socket write each way, a third of a worker's CPU here) and the commit, which holds the
tenant's sequence row until its WAL flush, so that a tenant's commits run one at a
time. A worker with many steps finishing together now writes them all in one
statement: one round trip, one commit, one sequence bump per tenant
(:class:`~flowmill.coalesce.Coalescer` gathers them).

The statement is set-based: its rows travel as JSON arrays, one per kind (runs, events,
logs...), and its text depends only on which kinds a batch has, so each connection
prepares a handful of texts (:class:`Plans`). A batch of one step uses the statement
written for one step instead (cheaper on the server). Each item keeps its guards:

Everything an item adds (runs, logs, events, the execution's update) is written only
for items that passed their guard, so an item that did not pass leaves no trace.
Events get the tenant's next sequence numbers in item order.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from flowmill import jsonutil
from flowmill.domain.execution import Effects, StepKey
from flowmill.domain.states import ExecutionStatus
from flowmill.engine.ports import LoadedStep
from flowmill.store.executions import (
    event_values,
    execution_from_row,
    execution_values,
    log_values,
    run_from_row,
    run_values,
)
from flowmill.store.postgres_fast import raw_connection

# The statement is put together from the parts a batch needs (a batch of one step
# runs no start, log or update part): each part costs executor time even with nothing
# to do, a fifth of a millisecond for all of them, per step of a lone chain.
_STEPS = """
steps AS (
  SELECT * FROM jsonb_to_recordset({steps}::jsonb) AS s(
    i int, execution_id uuid, expect_status varchar, run_id uuid, run_expect varchar[],
    status varchar, output jsonb, error jsonb, handles jsonb, state jsonb,
    completed_at timestamptz, not_before timestamptz, started_at timestamptz,
    owner varchar)),
lock AS (
  SELECT id, status FROM workflow_executions
  WHERE id IN (SELECT execution_id FROM steps) ORDER BY id FOR UPDATE),
ok AS (
  SELECT steps.* FROM steps JOIN lock
    ON lock.id = steps.execution_id AND lock.status = steps.expect_status),
u AS (
  UPDATE node_executions n SET status = ok.status, output = ok.output, error = ok.error,
    handles = ok.handles, state = ok.state, completed_at = ok.completed_at,
    not_before = coalesce(ok.not_before, n.not_before),
    started_at = coalesce(ok.started_at, n.started_at), owner = coalesce(ok.owner, n.owner)
  FROM ok WHERE n.id = ok.run_id AND n.status = ANY(ok.run_expect)
  RETURNING ok.i)"""
_STARTS = """
nx AS (
  INSERT INTO workflow_executions
  SELECT (jsonb_populate_record(NULL::workflow_executions, x->'row')).*
  FROM jsonb_array_elements({starts}::jsonb) x{after}
  ON CONFLICT (tenant_id, dedupe_key) DO NOTHING
  RETURNING id)"""
# A start carried by a step (``after``: the step's index) is written only if the step is.
_AFTER = "\n  WHERE x->>'after' IS NULL OR (x->>'after')::int IN (SELECT i FROM u)"
_DONE_STEPS = "SELECT i FROM u"
_DONE_STARTS = """SELECT (x->>'i')::int AS i FROM jsonb_array_elements({starts}::jsonb) x
  WHERE (x->'row'->>'id')::uuid IN (SELECT id FROM nx)"""


def _insert(cte: str, table: str, kind: str) -> str:
    """A part inserting the rows of ``kind`` (whole rows, as JSON) of the items done."""
    return f"""
{cte} AS (
  INSERT INTO {table}
  SELECT (jsonb_populate_record(NULL::{table}, x->'row')).*
  FROM jsonb_array_elements({{{kind}}}::jsonb) x WHERE (x->>'i')::int IN (SELECT i FROM done)
  RETURNING 1)"""


_RUNS = _insert("r", "node_executions", "runs")
_UPDATES = """
xu AS (
  UPDATE workflow_executions e SET status = v.status, output = v.output, error = v.error,
    started_at = coalesce(v.started_at, e.started_at), completed_at = v.completed_at
  FROM jsonb_to_recordset({updates}::jsonb) AS v(
    i int, id uuid, status varchar, output jsonb, error jsonb, started_at timestamptz,
    completed_at timestamptz)
  WHERE e.id = v.id AND v.i IN (SELECT i FROM done)
  RETURNING 1)"""
_LOGS = _insert("l", "execution_logs", "logs")
_EVENTS = """
ev AS (
  SELECT v.*, row_number() OVER (PARTITION BY v.tenant_id ORDER BY v.i, v.ord) AS rn,
    count(*) OVER (PARTITION BY v.tenant_id) AS cnt
  FROM jsonb_to_recordset({events}::jsonb) AS v(
    i int, ord int, id uuid, tenant_id varchar, stream_id varchar, event_type varchar,
    payload jsonb, "timestamp" timestamptz)
  WHERE v.i IN (SELECT i FROM done)),
tl AS (
  SELECT id FROM tenants WHERE id IN (SELECT tenant_id FROM ev) ORDER BY id FOR UPDATE),
s AS (
  UPDATE tenants t SET event_seq = t.event_seq + c.n
  FROM (SELECT tenant_id, count(*) AS n FROM ev GROUP BY tenant_id) c
  WHERE t.id = c.tenant_id
  RETURNING t.id, t.event_seq),
e AS (
  INSERT INTO event_store (id, tenant_id, stream_id, event_type, payload, "timestamp",
    sequence_number)
  SELECT ev.id, ev.tenant_id, ev.stream_id, ev.event_type, ev.payload, ev."timestamp",
    s.event_seq - ev.cnt + ev.rn
  FROM ev JOIN s ON s.id = ev.tenant_id
  RETURNING 1)"""
# The columns of the final SELECT are computed left to right, and each part runs when
# first read: the tenants' sequence rows are locked last, so that other writers of a
# tenant wait for this statement's commit only, not for its inserts; and all at once,
# in the order of their ids (``tl``), so that two batches of several tenants each
# cannot deadlock (PostgreSQL would break it only after deadlock_timeout, a second).
_COUNTS = (("runs", "r"), ("updates", "xu"), ("logs", "l"), ("events", "tl"), ("events", "e"))
KINDS = ("steps", "starts", "runs", "updates", "logs", "events")


@functools.lru_cache(maxsize=64)
def statement(present: frozenset[str]) -> str:
    """The batch statement for the kinds of rows present (see :data:`KINDS`); its
    parameters are their JSON arrays, in the order of :data:`KINDS`."""
    number = {kind: f"${k}" for k, kind in enumerate((x for x in KINDS if x in present), 1)}
    parts: list[str] = []
    done: list[str] = []
    if "steps" in present:
        parts.append(_STEPS)
        done.append(_DONE_STEPS)
    if "starts" in present:
        parts.append(_STARTS.replace("{after}", _AFTER if "steps" in present else ""))
        done.append(_DONE_STARTS)
    parts.append(
        f"\ndone AS (\n  {' UNION ALL '.join(done) or 'SELECT NULL::int AS i WHERE false'})"
    )
    for kind, part in (("runs", _RUNS), ("updates", _UPDATES), ("logs", _LOGS)):
        if kind in present:
            parts.append(part)
    if "events" in present:
        parts.append(_EVENTS)
    columns = [
        "(SELECT coalesce(array_agg(i), '{}') FROM ok) AS ok"
        if "steps" in present
        else "'{}'::int[] AS ok",
        "(SELECT coalesce(array_agg(i), '{}') FROM done) AS done",
    ]
    columns += [
        f"(SELECT count(*) FROM {cte}) AS {cte}_n" for kind, cte in _COUNTS if kind in present
    ]
    sql = "WITH" + ",".join(parts) + "\nSELECT " + ",\n  ".join(columns)
    for kind, placeholder in number.items():
        sql = sql.replace("{" + kind + "}", placeholder)
    return sql


@dataclass(frozen=True)
class WriteItem:
    """The effects of one step or one start, for a batch.

    Attributes:
        fx: What to write. A step: exactly one run update, no new execution, no
            cancellation, and maybe a start it carries (``fx.follow``: written only if
            the step is). A start: a new execution and no run update.
        assumed: For a step, the execution status the effects were built from.
        dedupe_key: For a start, its key (unique per tenant), if any.
    """

    fx: Effects
    assumed: ExecutionStatus | None = None
    dedupe_key: str | None = None

    @property
    def is_start(self) -> bool:
        """Whether this item creates an execution."""
        return self.fx.new_execution is not None


@dataclass(frozen=True)
class WriteResult:
    """What became of one item.

    Attributes:
        ok: A step: its execution's status was as assumed. A start: always true.
        done: Everything was written (a step whose status was as assumed but whose
            run had moved on, or a start whose dedupe key was taken, is not done).
        follow_done: The start the step carried was written (not: its key was taken,
            or the step was not done).
    """

    ok: bool
    done: bool
    follow_done: bool = False


def fits(fx: Effects) -> bool:
    """Whether a step's effects can go in a batch (else: the locked transaction)."""
    return (
        fx.new_execution is None
        and len(fx.run_updates) == 1
        and not fx.cancel_live_runs
        and not fx.turns  # rare and slow steps (an LLM call): the locked path writes them
    )


def parameters(items: Sequence[WriteItem], now: datetime) -> tuple[dict[str, str], list[int]]:
    """The batch's rows as JSON arrays, by kind (only the kinds it has), and each item's
    index in them (a start an item carries has the index after the item's)."""
    rows = _Rows(now)
    positions: list[int] = []
    for item in items:
        i = rows.add(item.fx)
        positions.append(i)
        if item.fx.new_execution is not None:
            rows.starts.append(
                {"i": i, "row": execution_values(item.fx.new_execution, item.dedupe_key)}
            )
        else:
            assert item.assumed is not None
            u = item.fx.run_updates[0]
            rows.steps.append(
                {
                    "i": i,
                    "execution_id": item.fx.execution_id,
                    "expect_status": item.assumed.value,
                    "run_id": u.run_id,
                    "run_expect": [s.value for s in u.expect],
                    "status": u.status.value,
                    "output": u.output,
                    "error": u.error,
                    "handles": u.handles,
                    "state": u.state,
                    "completed_at": u.completed_at,
                    "not_before": u.not_before,
                    "started_at": u.started_at,
                    "owner": u.owner,
                }
            )
        follow = item.fx.follow
        if follow is not None:
            start = follow.effects
            assert start.new_execution is not None
            row = execution_values(start.new_execution, follow.dedupe_key)
            rows.starts.append({"i": rows.add(start), "after": i, "row": row})
    arrays = dict(
        zip(
            KINDS,
            (rows.steps, rows.starts, rows.runs, rows.updates, rows.logs, rows.events),
            strict=True,
        )
    )
    return {kind: jsonutil.dumps(r) for kind, r in arrays.items() if r}, positions


class _Rows:
    """A batch's rows by kind; each written effects gets the next index (``i``), the
    order its events take in the tenant's sequence. An item's carried start gets the
    index after the item's."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.n = 0
        self.steps: list[dict[str, Any]] = []
        self.starts: list[dict[str, Any]] = []
        self.runs: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def add(self, fx: Effects) -> int:
        """The rows ``fx`` adds (runs, the execution's update, logs, events); its index."""
        i, self.n = self.n, self.n + 1
        self.runs.extend({"i": i, "row": run_values(r)} for r in fx.new_runs)
        x = fx.execution_update
        if x is not None:
            self.updates.append(
                {
                    "i": i,
                    "id": fx.execution_id,
                    "status": x.status.value,
                    "output": x.output,
                    "error": x.error,
                    "started_at": x.started_at,
                    "completed_at": x.completed_at,
                }
            )
        self.logs.extend(
            {"i": i, "row": log_values(fx.tenant_id, fx.execution_id, line, self.now)}
            for line in fx.logs
        )
        self.events.extend(
            {"i": i, "ord": k, **event_values(fx.tenant_id, e)} for k, e in enumerate(fx.events)
        )
        return i


class Plans:
    """The batch statements, prepared per connection, and prepared again as their use
    grows: at 16 uses, 64, 256... then every 65,536.

    PostgreSQL keeps a prepared statement's generic plan for the life of the
    connection (until the tables' statistics change, which autovacuum may take minutes
    to notice). A plan made while the tables were nearly empty scans them whole; as they
    grow, every statement got slower (throughput fell by a third within 6,000
    executions of a new database). The statements are too big to plan afresh each time
    (4 ms of planning against 0.5 ms of execution), so they are planned again, on the
    tables as they are now, each time a connection's use of them has quadrupled.
    """

    first_refresh = 16
    growth = 4
    max_interval = 65_536

    def __init__(self) -> None:
        self._by_connection: weakref.WeakKeyDictionary[asyncpg.Connection, dict[str, _Prepared]] = (
            weakref.WeakKeyDictionary()
        )
        self.prepared = 0  # statements prepared (for tests)

    async def get(self, pg: asyncpg.Connection, sql: str) -> Any:
        """The prepared statement of ``sql`` on ``pg``."""
        mine = self._by_connection.setdefault(pg, {})
        entry = mine.get(sql)
        if entry is None or entry.uses >= entry.refresh_at:
            uses = entry.uses if entry is not None else 0
            step = min(max(uses * (self.growth - 1), self.first_refresh), self.max_interval)
            entry = _Prepared(await pg.prepare(sql), uses, uses + step)
            mine[sql] = entry
            self.prepared += 1
        entry.uses += 1
        return entry.statement


@dataclass
class _Prepared:
    statement: Any  # asyncpg.PreparedStatement
    uses: int
    refresh_at: int


def _one_step_fits(item: WriteItem) -> bool:
    """Whether :func:`_one_step` writes ``item``: a step, and the start it carries, if
    any, is only an execution with its runs and events."""
    if item.is_start:
        return False
    follow = item.fx.follow
    return follow is None or not (follow.effects.logs or follow.effects.execution_update)


def _one_step(item: WriteItem, now: datetime) -> tuple[str, list[Any]]:
    """A batch of one step, as the single statement written for it: half the server
    time of the set-based one (0.28 against 0.57 ms), which a lone chain pays per step.
    Same guards: the execution's status, then the run's; all else only if both held."""
    fx = item.fx
    assert item.assumed is not None
    params: list[Any] = []

    def p(value: Any, cast: str = "") -> str:
        params.append(value)
        return f"${len(params)}{cast}"

    u = fx.run_updates[0]
    ctes = [
        f"lock AS (SELECT status FROM workflow_executions WHERE id = {p(fx.execution_id)} "
        "FOR UPDATE)",
        f"ok AS (SELECT 1 FROM lock WHERE status = {p(item.assumed.value)})",
        f"u AS (UPDATE node_executions SET status = {p(u.status.value)}, "
        f"output = {p(_json(u.output))}, error = {p(_json(u.error))}, "
        f"handles = {p(_json(u.handles))}, state = {p(_json(u.state))}, "
        f"completed_at = {p(u.completed_at)}, "
        f"not_before = coalesce({p(u.not_before)}, not_before), "
        f"started_at = coalesce({p(u.started_at)}, started_at), "
        f"owner = coalesce({p(u.owner)}, owner) "
        f"WHERE id = {p(u.run_id)} AND status = ANY({p([s.value for s in u.expect])}"
        "::varchar[]) AND EXISTS (SELECT 1 FROM ok) RETURNING 1)",
    ]
    done = "EXISTS (SELECT 1 FROM u)"
    if fx.new_runs:
        rows = [run_values(r) for r in fx.new_runs]
        ctes.append(
            "r AS (INSERT INTO node_executions SELECT * FROM jsonb_populate_recordset("
            f"NULL::node_executions, {p(_json(rows), '::jsonb')}) WHERE {done} RETURNING 1)"
        )
    x = fx.execution_update
    if x is not None:
        ctes.append(
            f"x AS (UPDATE workflow_executions SET status = {p(x.status.value)}, "
            f"output = {p(_json(x.output), '::jsonb')}, error = {p(_json(x.error), '::jsonb')}, "
            f"started_at = coalesce({p(x.started_at, '::timestamptz')}, started_at), "
            f"completed_at = {p(x.completed_at, '::timestamptz')} "
            f"WHERE id = $1 AND {done} RETURNING 1)"
        )
    if fx.logs:
        logs = [log_values(fx.tenant_id, fx.execution_id, line, now) for line in fx.logs]
        ctes.append(
            "l AS (INSERT INTO execution_logs SELECT * FROM jsonb_populate_recordset("
            f"NULL::execution_logs, {p(_json(logs), '::jsonb')}) WHERE {done} RETURNING 1)"
        )
    follow = fx.follow
    started = "false"  # whether the carried start was written
    if follow is not None:
        # The start the step carries: its execution only if the step was written (and
        # its key is free), its runs only if its execution was.
        assert follow.effects.new_execution is not None
        row = execution_values(follow.effects.new_execution, follow.dedupe_key)
        ctes.append(
            "nx AS (INSERT INTO workflow_executions SELECT * FROM jsonb_populate_record("
            f"NULL::workflow_executions, {p(_json(row), '::jsonb')}) WHERE {done} "
            "ON CONFLICT (tenant_id, dedupe_key) DO NOTHING RETURNING 1)"
        )
        started = "EXISTS (SELECT 1 FROM nx)"
        runs = [run_values(r) for r in follow.effects.new_runs]
        ctes.append(
            "nr AS (INSERT INTO node_executions SELECT * FROM jsonb_populate_recordset("
            f"NULL::node_executions, {p(_json(runs), '::jsonb')}) WHERE {started} RETURNING 1)"
        )
    follow_events = follow.effects.events if follow is not None else []
    if fx.events or follow_events:
        n = p(len(fx.events), "::bigint")
        # the carried start's events follow the step's, when it was written
        nf = "0"
        if follow is not None:
            nf = f"(CASE WHEN {started} THEN {p(len(follow_events), '::bigint')} ELSE 0 END)"
        ctes.append(
            f"s AS (UPDATE tenants SET event_seq = event_seq + {n} + {nf} "
            f"WHERE id = {p(fx.tenant_id)} AND {done} RETURNING event_seq - {n} - {nf} AS base)"
        )
        for cte, offset, what, where in (
            ("e", "", fx.events, ""),
            ("ef", f" + {n}", follow_events, f" WHERE {started}"),
        ):
            if not what:
                continue
            rows = [event_values(fx.tenant_id, e) for e in what]
            ctes.append(
                f"{cte} AS (INSERT INTO event_store (id, tenant_id, stream_id, event_type, "
                "payload, timestamp, sequence_number) SELECT v.id, v.tenant_id, v.stream_id, "
                f"v.event_type, v.payload, v.timestamp, s.base{offset} + v.ord FROM s, "
                f"jsonb_populate_recordset(NULL::event_store, {p(_json(rows), '::jsonb')}) "
                "WITH ORDINALITY AS v(id, tenant_id, stream_id, event_type, payload, timestamp, "
                f"sequence_number, ord){where} RETURNING 1)"
            )
    sql = (
        "WITH "
        + ",\n".join(ctes)
        + "\nSELECT CASE WHEN EXISTS (SELECT 1 FROM ok) THEN '{0}'::int[] ELSE '{}' END AS ok,"
        " CASE WHEN EXISTS (SELECT 1 FROM u) THEN '{0}'::int[] ELSE '{}' END AS done,"
        f" {started} AS started"
    )
    return sql, params


_json = jsonutil.dumps


async def write(
    engine: AsyncEngine,
    items: Sequence[WriteItem],
    now: datetime,
    plans: Plans,
    *,
    one_step_statement: bool = True,
) -> list[WriteResult]:
    """Write a batch in one statement (autocommit: all of it or nothing).

    A batch of one step takes the statement written for one step, unless
    ``one_step_statement`` is false (the writer contract test runs both).

    Raises:
        asyncpg.PostgresError: The statement failed; nothing of the batch was written.
    """
    async with raw_connection(engine) as pg:
        if one_step_statement and len(items) == 1 and _one_step_fits(items[0]):
            sql, args = _one_step(items[0], now)
            one = await pg.fetchrow(sql, *args)
            assert one is not None
            return [WriteResult(ok=bool(one["ok"]), done=bool(one["done"]),
                                follow_done=one["started"])]  # fmt: skip
        params, positions = parameters(items, now)
        prepared = await plans.get(pg, statement(frozenset(params)))
        row = await prepared.fetchrow(*(params[k] for k in KINDS if k in params))
    assert row is not None
    ok, done = set(row["ok"]), set(row["done"])
    return [
        WriteResult(
            ok=item.is_start or i in ok,
            done=i in done,
            follow_done=item.fx.follow is not None and i + 1 in done,
        )
        for item, i in zip(items, positions, strict=True)
    ]


_EXECUTION_COLUMNS = (
    "id", "tenant_id", "workflow_id", "version", "status", "trigger_type", "trigger",
    "output", "error", "created_at", "started_at", "completed_at", "deadline_at",
    "parent_execution_id", "retry_of",
)  # fmt: skip
_RUN_COLUMNS = (
    "id", "tenant_id", "execution_id", "node_id", "attempt", "status", "input", "output",
    "error", "handles", "state", "not_before", "created_at", "started_at", "completed_at",
    "owner",
)  # fmt: skip
_LOAD = (
    "SELECT k.i, "
    + ", ".join(f"e.{c} AS e_{c}" for c in _EXECUTION_COLUMNS)
    + ", "
    + ", ".join(f"n.{c} AS n_{c}" for c in _RUN_COLUMNS)
    + " FROM unnest($1::uuid[], $2::varchar[], $3::int[]) WITH ORDINALITY"
    " AS k(execution_id, node_id, attempt, i)"
    " JOIN node_executions n ON n.execution_id = k.execution_id"
    " AND n.node_id = k.node_id AND n.attempt = k.attempt"
    " JOIN workflow_executions e ON e.id = k.execution_id"
)


def _uuid_text(value: Any) -> str | None:
    return None if value is None else str(value)


async def load(
    engine: AsyncEngine, keys: Sequence[StepKey], plans: Plans
) -> list[LoadedStep | None]:
    """The execution and run of each step, in one statement; ``None`` where either is
    missing. Not one snapshot with the checkpoint that follows, which re-checks both
    under its guards."""
    async with raw_connection(engine) as pg:
        rows = await (await plans.get(pg, _LOAD)).fetch(
            [k.execution_id for k in keys],
            [k.node_id for k in keys],
            [k.attempt for k in keys],
        )
    out: list[LoadedStep | None] = [None] * len(keys)
    for row in rows:
        e = {c: row[f"e_{c}"] for c in _EXECUTION_COLUMNS}
        e["parent_execution_id"] = _uuid_text(e["parent_execution_id"])
        e["retry_of"] = _uuid_text(e["retry_of"])
        ex = execution_from_row(e)
        run = run_from_row({c: row[f"n_{c}"] for c in _RUN_COLUMNS})
        out[row["i"] - 1] = LoadedStep(ex, run, {})
    return out
