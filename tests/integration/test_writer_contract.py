"""Every writer of the engine's ``Effects`` writes the same rows and events.

The same effects are written three ways: the one statement writer
(``store/writer.py``) on both databases (on the raw connection, inside PostgreSQL's
locked checkpoint of ``postgres_fast``, and through SQLAlchemy's connection as limited
starts and promotions on PostgreSQL use it), the batch statements (``postgres_batch``, set-based
and the one written for a single step) and the fake of ``flowmill.testing``. This
suite builds one scenario with the pure transitions (every transition the planner makes: starts, a
queued start and its promotion, a slow step announced, a retry scheduled, a suspension
and its wake, a branch skipped, a failure that goes on, the end of an execution, a
failure that cancels live runs, a cancellation, a timeout, a stale duplicate, a step
carrying another execution's start, and one whose carried start's key is taken), replays
it through each writer and compares, after every step, the rows and events it left
with those the fake holds. The fake is the yardstick because it is the one every unit
test trusts; a writer that cannot take a kind of effects (a batch takes one run
update and no cancellation) hands it to the path the store uses for it in
production, so every step is still compared.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from flowmill.config import Settings
from flowmill.domain.errors import NodeError
from flowmill.domain.execution import (
    ConversationTurn,
    Effects,
    ExecutionRecord,
    FollowingStart,
    LogLine,
    NodeRun,
    StaleStepError,
)
from flowmill.domain.states import ExecutionStatus, NodeRunStatus
from flowmill.engine import starts
from flowmill.engine import transitions as tx
from flowmill.engine.compiled import CompiledWorkflow
from flowmill.engine.effects import StateReader
from flowmill.ids import uuid7
from flowmill.runtime import Runtime, open_runtime
from flowmill.store import sqlite_fast
from flowmill.store import writer as statements
from flowmill.store.database import PostgresDatabase
from flowmill.store.tables import (
    conversation_history,
    event_store,
    execution_logs,
    node_executions,
    workflow_executions,
)
from flowmill.testing import FakeClock, InMemoryExecutionStore

TENANT = "writers"
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
WORKFLOW: dict[str, Any] = {
    "name": "writer contract",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "a", "type": "noop", "retry": {"max_attempts": 3, "backoff_ms": 1000}},
        {
            "id": "c",
            "type": "conditional",
            "config": {"condition": {"left": 1, "op": ">", "right": 0}},
        },
        {"id": "d", "type": "noop", "on_error": "continue"},
        {"id": "e", "type": "noop"},
        {"id": "z", "type": "noop"},
    ],
    "edges": [
        {"source": "t", "target": "a"},
        {"source": "a", "target": "c"},
        {"source": "c", "target": "d", "sourceHandle": "true"},
        {"source": "c", "target": "e", "sourceHandle": "false"},
        {"source": "d", "target": "z"},
        {"source": "e", "target": "z"},
    ],
}


@dataclass
class Step:
    """One transaction of the scenario: what to write, and what the store knew."""

    name: str
    fx: Effects
    now: datetime
    assumed: ExecutionStatus | None  # the execution's status the step was built from
    dedupe_key: str | None = None
    stale: bool = False  # a duplicate: every writer must refuse it and write nothing
    taken_by: str | None = None  # a carried start's key was held by this execution


Snapshot = dict[str, Any]


class Scenario:
    """Builds the steps on the fake store, keeping its snapshot after each."""

    def __init__(self, wf_id: str, compiled: CompiledWorkflow) -> None:
        self.wf_id = wf_id
        self.compiled = compiled
        self.clock = FakeClock(T0)
        self.store = InMemoryExecutionStore(self.clock)
        self.steps: list[tuple[Step, Snapshot]] = []

    async def start(self, name: str, *, queued: bool = False, dedupe_key: str | None = None) -> str:
        now = self._tick()
        status = ExecutionStatus.QUEUED if queued else ExecutionStatus.PENDING
        trigger = {"type": "manual", "data": {"n": 1}, "node_id": "t"}
        ex = ExecutionRecord(uuid7(), TENANT, self.wf_id, 1, status, trigger, "manual", now)
        ex.deadline_at = now + timedelta(hours=1)
        ex.metadata = {"customerId": "c-1"}
        fx = starts.start_execution(self.compiled, ex, "t", {"n": 1}, now, owner="w-1")
        await self.store.start(ex, lambda _counts: fx, dedupe_key=dedupe_key)
        self._record(Step(name, fx, now, None, dedupe_key))
        return ex.id

    async def step(
        self,
        name: str,
        execution_id: str,
        build: Callable[[ExecutionRecord, StateReader, datetime], Effects],
    ) -> None:
        now = self._tick()
        seen: list[ExecutionStatus] = []

        def _build(ex: ExecutionRecord, reader: StateReader) -> Effects:
            seen.append(ex.status)
            return build(ex, reader, now)

        fx = await self.store.checkpoint(execution_id, _build)
        taken_by = fx.follow.taken_by if fx.follow is not None else None
        self._record(Step(name, fx, now, seen[0], taken_by=taken_by))

    async def duplicate_carrying(self, name: str, key: str) -> None:
        """Replay the step called ``name`` carrying a start with a fresh key: the step is
        stale, so the start must not be written either."""
        [original] = [step for step, _ in self.steps if step.name == name]
        assert original.fx.follow is not None and original.fx.follow.effects.new_execution
        nxt = dataclasses.replace(original.fx.follow.effects.new_execution, id=uuid7())
        nxt.status = ExecutionStatus.PENDING
        start = starts.start_execution(
            self.compiled, nxt, "t", {"index": 1}, original.now, owner=None, inline_owner="w-1"
        )
        fx = dataclasses.replace(original.fx, follow=FollowingStart(start, key))
        unchanged = self.steps[-1][1]
        again = dataclasses.replace(original, fx=fx, stale=True, name=f"{name} again")
        self.steps.append((again, unchanged))

    async def carrying(self, name: str, execution_id: str, node_id: str, key: str) -> None:
        """A step whose checkpoint carries the start of another execution (a sequential
        loop's next iteration, started by the commit that ends the one before)."""
        run = self.latest(execution_id, node_id)

        def build(ex: ExecutionRecord, reader: StateReader, now: datetime) -> Effects:
            fx = tx.after_step(
                self.compiled, ex, run, tx.Succeeded({"n": 3}), reader, now, owner="w-1"
            )
            trigger = {"type": "loop", "data": {"index": 1}, "node_id": "t"}
            nxt = ExecutionRecord(
                uuid7(), TENANT, self.wf_id, 1, ExecutionStatus.PENDING, trigger, "loop", now
            )
            nxt.parent_execution_id, nxt.parent_node_id, nxt.iteration = ex.id, node_id, 1
            start = starts.start_execution(
                self.compiled, nxt, "t", {"index": 1}, now, owner=None, inline_owner="w-1"
            )
            fx.follow = FollowingStart(start, key)
            return fx

        await self.step(name, execution_id, build)

    async def run(self, execution_id: str, node_id: str, outcome: tx.Outcome, name: str) -> None:
        """A step ending the latest attempt of ``node_id`` with ``outcome``."""
        run = self.latest(execution_id, node_id)
        await self.step(
            name,
            execution_id,
            lambda ex, reader, now: tx.after_step(
                self.compiled, ex, run, outcome, reader, now, owner="w-1"
            ),
        )

    async def duplicate(self, name: str) -> None:
        """Replay the step called ``name`` (a duplicate job): it must change nothing."""
        [original] = [step for step, _ in self.steps if step.name == name]
        unchanged = self.steps[-1][1]
        self.steps.append(
            (dataclasses.replace(original, stale=True, name=f"{name} again"), unchanged)
        )

    async def start_filled(self, name: str, parent_id: str) -> None:
        """A start whose execution and run carry a value in every column.

        No transition fills every column of a new row at once (a run's ``state`` is only
        ever updated), so a writer skipping one of those columns would leave the rows of
        the real scenario unchanged; this step leaves no column empty.
        """
        now = self._tick()
        ex = ExecutionRecord(
            uuid7(), TENANT, self.wf_id, 1, ExecutionStatus.RUNNING, {"x": 1}, "loop", now
        )
        ex.started_at, ex.completed_at, ex.deadline_at = now, now, now + timedelta(hours=1)
        ex.output, ex.error, ex.metadata = {"o": 1}, {"message": "e"}, {"clientId": "k"}
        ex.parent_execution_id, ex.parent_node_id, ex.iteration = parent_id, "a", 2
        ex.retry_of = parent_id
        run = NodeRun(
            uuid7(),
            ex.id,
            TENANT,
            "a",
            1,
            NodeRunStatus.WAITING,
            {"in": 1},
            {"out": 1},
            {"message": "x"},
            ["true"],
            now + timedelta(minutes=5),
            now,
            now,
            now,
            "w-2",
            {"cursor": 7},
        )
        fx = Effects(ex.id, TENANT, new_execution=ex, new_runs=[run])
        await self.store.start(ex, lambda _counts: fx, dedupe_key="evt-filled")
        self._record(Step(name, fx, now, None, "evt-filled"))

    def latest(self, execution_id: str, node_id: str) -> NodeRun:
        runs = [r for r in self.store.runs[execution_id] if r.node_id == node_id]
        return max(runs, key=lambda r: r.attempt)

    def _tick(self) -> datetime:
        self.clock.advance(1.5)
        return self.clock.now()

    def _record(self, step: Step) -> None:
        self.steps.append((step, fake_snapshot(self.store)))


async def build_scenario(wf_id: str, compiled: CompiledWorkflow) -> Scenario:
    s = Scenario(wf_id, compiled)
    later = T0 + timedelta(hours=2)

    # 1: to the end, through every kind of step
    one = await s.start("start", dedupe_key="evt-1")
    await s.step(
        "slow step announced",
        one,
        lambda ex, r, now: tx.mark_running(ex, s.latest(one, "a"), now),
    )
    fail = NodeError("boom", type="Flaky", details={"status": 503})
    logs = [LogLine("info", "calling", "a", 1, {"k": 1}), LogLine("warn", "dated", "a", 1, {}, T0)]
    await s.run(one, "a", tx.Failed(fail, started_at=T0, logs=logs), "failure, retry scheduled")
    await s.run(one, "a", tx.Suspended(later, {"cursor": 3}, started_at=T0), "suspended")
    turns = [
        ConversationTurn("conv", "shop", "user", "hi", T0, 0),
        ConversationTurn("conv", "shop", "assistant", "hello", T0, 1, {"model": "m"}),
    ]
    await s.run(one, "a", tx.Succeeded({"n": 2}, turns=turns), "woken, succeeded with turns")
    await s.run(one, "c", tx.Succeeded({"ok": True}, handles=["true"]), "branch, e skipped")
    broke = NodeError("no", type="Broken", retriable=False)
    await s.run(one, "d", tx.Failed(broke), "failure goes on")
    await s.run(one, "z", tx.Succeeded([1.5, None, "x"]), "end of execution")
    await s.duplicate("branch, e skipped")

    # 2: a failure that ends the execution and cancels what is live
    two = await s.start("second start", dedupe_key="evt-2")
    await s.run(two, "a", tx.Failed(broke, logs=[LogLine("error", "last")]), "failure ends it")

    # 3: cancelled while waiting
    three = await s.start("third start")
    await s.run(three, "a", tx.Suspended(later, {"w": 1}), "waiting")
    await s.step("cancel", three, lambda ex, r, now: tx.cancel_execution(ex, now, "by test"))

    # 4: held by a limit, promoted, timed out
    four = await s.start("queued start", queued=True)
    await s.step(
        "promote", four, lambda ex, r, now: starts.promote_execution(compiled, ex, now, owner=None)
    )
    await s.step("timeout", four, lambda ex, r, now: tx.time_out_execution(ex, now))

    # 5: a row with every column filled, so that no skipped column goes unseen
    await s.start_filled("every column filled", one)

    # 6: a step carrying the start of another execution, written after it; then one
    # whose carried start's key is held (by the first execution): only the step is
    six = await s.start("sixth start")
    await s.carrying("step carries a start", six, "a", "child:six:a:1")
    await s.carrying("carried start's key taken", six, "c", "evt-1")
    assert s.steps[-1][0].taken_by == one and s.steps[-2][0].taken_by is None
    await s.duplicate_carrying("step carries a start", "child:six:a:again")
    return s


# --- snapshots: the same shape from the fake and from the database ------------------


def _utc(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _row(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _utc(v.value if hasattr(v, "value") else v) for k, v in values.items()}


def fake_snapshot(store: InMemoryExecutionStore) -> Snapshot:
    dedupe = {ex_id: key for (_, key), ex_id in store.dedupe.items()}
    executions = {
        ex.id: _row({**dataclasses.asdict(ex), "dedupe_key": dedupe.get(ex.id)})
        for ex in store.executions.values()
    }
    runs = sorted(
        (_row(dataclasses.asdict(r)) for rs in store.runs.values() for r in rs),
        key=lambda r: (r["execution_id"], r["node_id"], r["attempt"]),
    )
    events = [
        {
            "id": e.id,
            "tenant_id": e.tenant_id,
            "stream_id": e.stream_id,
            "event_type": e.type,
            "payload": e.payload,
            "timestamp": _utc(e.timestamp),
        }
        for e in store.events
    ]
    logs = [_row(dataclasses.asdict(line)) for line in store.logs]
    turns = [
        {
            "tenant_id": tenant,
            "execution_id": key.execution_id,
            "node_id": key.node_id,
            "attempt": key.attempt,
            **_row(dataclasses.asdict(turn)),
        }
        for tenant, key, turn in store.turns
    ]
    return {"executions": executions, "runs": runs, "events": events, "logs": logs, "turns": turns}


def sql_snapshot(conn: sa.Connection) -> Snapshot:
    we, ne = workflow_executions, node_executions
    executions = {
        str(r.id): _row(dict(r._mapping))
        for r in conn.execute(sa.select(we).where(we.c.tenant_id == TENANT))
    }
    runs = [
        _row(dict(r._mapping))
        for r in conn.execute(
            sa.select(ne)
            .where(ne.c.tenant_id == TENANT)
            .order_by(ne.c.execution_id, ne.c.node_id, ne.c.attempt)
        )
    ]
    rows = conn.execute(
        sa.select(event_store)
        .where(event_store.c.tenant_id == TENANT, event_store.c.stream_id.in_(executions))
        .order_by(event_store.c.sequence_number)
    ).all()
    numbers = [r.sequence_number for r in rows]
    # The tenant's sequence has no gap: a reader by sequence never skips an event.
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) if numbers else True
    events = [{k: _utc(v) for k, v in r._mapping.items() if k != "sequence_number"} for r in rows]
    logs = [
        {k: _utc(v) for k, v in r._mapping.items() if k not in ("id", "tenant_id", "execution_id")}
        for r in conn.execute(
            sa.select(execution_logs)
            .where(execution_logs.c.tenant_id == TENANT)
            .order_by(execution_logs.c.id)
        )
    ]
    ch = conversation_history
    turns = [
        {k: _utc(v) for k, v in r._mapping.items() if k != "id"}
        for r in conn.execute(
            sa.select(ch).where(ch.c.tenant_id == TENANT).order_by(ch.c.node_id, ch.c.seq)
        )
    ]
    for e in executions.values():
        e["id"], e["workflow_id"] = str(e["id"]), str(e["workflow_id"])
    for r in runs:
        r["id"], r["execution_id"] = str(r["id"]), str(r["execution_id"])
    for e in events:
        e["id"] = str(e["id"])
    for t in turns:
        t["execution_id"] = str(t["execution_id"])
    return {"executions": executions, "runs": runs, "events": events, "logs": logs, "turns": turns}


# --- the writers ---------------------------------------------------------------------

Write = Callable[[Step], Awaitable[None]]


def _writer_sqlite(rt: Runtime) -> Write:
    async def write(step: Step) -> None:
        await rt.db.write(
            lambda c: statements.apply_effects(
                sqlite_fast.driver(c), step.fx, step.now, dedupe_key=step.dedupe_key
            )
        )

    return write


def _writer_postgres(rt: Runtime) -> Write:
    from sqlalchemy.util import greenlet_spawn

    from flowmill.store import postgres_fast

    assert isinstance(rt.db, PostgresDatabase)
    engine = rt.db.engine

    async def write(step: Step) -> None:
        async with postgres_fast.raw_connection(engine) as pg, pg.transaction():
            await greenlet_spawn(
                statements.apply_effects,
                postgres_fast.AsyncpgDriver(pg),
                step.fx,
                step.now,
                dedupe_key=step.dedupe_key,
            )

    return write


def _writer_postgres_sqlalchemy(rt: Runtime) -> Write:
    """The writer as a limited start and a promotion use it: inside SQLAlchemy's
    transaction, through its connection."""
    from flowmill.store import postgres_fast

    async def write(step: Step) -> None:
        await rt.db.write(
            lambda c: statements.apply_effects(
                postgres_fast.driver(c), step.fx, step.now, dedupe_key=step.dedupe_key
            )
        )

    return write


def _postgres_fast(rt: Runtime) -> Write:
    from flowmill.store import postgres_fast

    fallback = _writer_postgres(rt)
    assert isinstance(rt.db, PostgresDatabase)
    engine = rt.db.engine

    async def write(step: Step) -> None:
        if step.fx.new_execution is not None:
            return await fallback(step)
        await postgres_fast.checkpoint(
            engine, step.fx.execution_id, lambda ex, reader: step.fx, lambda: step.now
        )
        return None

    return write


def _postgres_batch(rt: Runtime, *, set_based: bool) -> Write:
    from flowmill.store import postgres_batch

    locked = _postgres_fast(rt)
    fallback = _writer_postgres(rt)
    assert isinstance(rt.db, PostgresDatabase)
    engine = rt.db.engine
    plans = postgres_batch.Plans()

    async def write(step: Step) -> None:
        fx = step.fx
        if fx.new_execution is not None:
            if not set_based:  # the single-step statement takes no start
                return await fallback(step)
            item = postgres_batch.WriteItem(fx, dedupe_key=step.dedupe_key)
        elif postgres_batch.fits(fx):
            item = postgres_batch.WriteItem(fx, assumed=step.assumed)
        else:  # what a batch cannot write goes through the locked transaction
            return await locked(step)
        [result] = await postgres_batch.write(
            engine, [item], step.now, plans, one_step_statement=not set_based
        )
        if not result.done:
            raise StaleStepError(fx.run_updates[0].run_id if fx.run_updates else fx.execution_id)
        if fx.follow is not None:  # (the store asks who holds a key the batch found taken)
            assert result.follow_done == (step.taken_by is None)
            fx.follow.taken_by = step.taken_by
        return None

    return write


WRITERS: dict[str, tuple[str, Callable[[Runtime], Write]]] = {
    "writer-sqlite": ("sqlite", _writer_sqlite),
    "writer-postgres": ("postgres", _writer_postgres),
    "writer-postgres-sqlalchemy": ("postgres", _writer_postgres_sqlalchemy),
    "postgres_fast": ("postgres", _postgres_fast),
    "postgres_batch-set": ("postgres", lambda rt: _postgres_batch(rt, set_based=True)),
    "postgres_batch-one": ("postgres", lambda rt: _postgres_batch(rt, set_based=False)),
}


@contextlib.asynccontextmanager
async def _runtime(url: str) -> AsyncIterator[Runtime]:
    async with open_runtime(Settings(database_url=url, sandbox_enabled=False)) as rt:
        await rt.workflows.ensure_tenant(TENANT)
        yield rt


def _differences(expected: Snapshot, got: Snapshot) -> list[str]:
    out = []
    for table in expected:
        want, have = expected[table], got[table]
        if table == "executions":
            want, have = [want[k] for k in sorted(want)], [have.get(k) for k in sorted(want)]
            if set(got[table]) != set(expected[table]):
                out.append(f"executions: ids {sorted(got[table])} != {sorted(expected[table])}")
        if len(want) != len(have):
            out.append(f"{table}: {len(have)} rows, expected {len(want)}")
            continue
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            if h is None:
                out.append(f"{table}[{i}] missing")
                continue
            for column in sorted(set(w) | set(h)):
                if column not in h or column not in w:
                    out.append(f"{table}[{i}].{column}: only on one side")
                elif w[column] != h[column]:
                    out.append(f"{table}[{i}].{column}: {h[column]!r}, expected {w[column]!r}")
    return out


@pytest.fixture(params=list(WRITERS))
def writer(request: pytest.FixtureRequest) -> tuple[str, str]:
    """A writer's name and a migrated database of the test's own for it."""
    database, _ = WRITERS[request.param]
    return request.param, str(request.getfixturevalue(f"{database}_url"))


def _empty_columns(snapshot: Snapshot) -> list[str]:
    """Columns no row of ``snapshot`` has a value in: a writer could skip them unseen."""
    out = []
    for table, rows in snapshot.items():
        listed = list(rows.values()) if isinstance(rows, dict) else rows
        for column in sorted({c for row in listed for c in row}):
            if all(row.get(column) is None for row in listed):
                out.append(f"{table}.{column}")
    return out


async def test_writer_contract_every_writer_leaves_the_rows_of_the_fake(
    writer: tuple[str, str],
) -> None:
    name, url = writer
    make = WRITERS[name][1]
    async with _runtime(url) as rt:
        wf_id = (await rt.workflows.create(TENANT, WORKFLOW, publish=True)).id
        scenario = await build_scenario(wf_id, await rt.engine.compiled(wf_id, 1))
        write = make(rt)
        for step, expected in scenario.steps:
            if step.stale:
                with pytest.raises(StaleStepError):
                    await write(step)
            else:
                if step.fx.follow is not None:
                    step.fx.follow.taken_by = None  # each writer says it again
                await write(step)
                if step.fx.follow is not None:
                    assert step.fx.follow.taken_by == step.taken_by, step.name
            got = await rt.db.read(sql_snapshot)
            problems = _differences(expected, got)
            assert not problems, f"{name} after {step.name!r}:\n  " + "\n  ".join(problems)
        # The yardstick itself: a column no row has a value in (one added to a table and
        # never given one by the scenario) is one a writer could skip unseen.
        assert not _empty_columns(got), "the scenario never fills these columns"
