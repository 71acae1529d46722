"""The engine on real databases: SQLite and PostgreSQL, same tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from flowmill.config import Settings
from flowmill.domain.execution import StaleStepError
from flowmill.domain.states import ExecutionStatus as X
from flowmill.domain.states import NodeRunStatus as S
from flowmill.engine.ports import StepJob
from flowmill.nodes.registry import NodeRegistry
from flowmill.runs import register
from flowmill.runtime import Runtime, open_runtime
from flowmill.store.tables import event_store, node_executions
from flowmill.testing import eventually
from tests.engine_support import CALLS, registry

DIAMOND = {
    "name": "diamond",
    "tenant_id": "acme",
    "nodes": [
        {"id": "t", "type": "trigger", "config": {"triggerType": "webhook", "actionType": "order"}},
        {
            "id": "check",
            "type": "conditional",
            "config": {"condition": {"left": "{{data.total}}", "op": ">=", "right": 100}},
        },
        {"id": "vip", "type": "transform", "config": {"mapping": {"tier": "vip"}}},
        {"id": "std", "type": "transform", "config": {"mapping": {"tier": "std"}}},
        {"id": "audit", "type": "transform", "config": {"mapping": {"seen": "{{trigger.type}}"}}},
        {"id": "j", "type": "merge"},
        {
            "id": "out",
            "type": "response",
            "config": {"template": "{{vip.tier}}{{std.tier}} {{nodes.audit.output.seen}}"},
        },
    ],
    "edges": [
        {"source": "t", "target": "check"},
        {"source": "t", "target": "audit"},
        {"source": "check", "target": "vip", "sourceHandle": "true"},
        {"source": "check", "target": "std", "sourceHandle": "false"},
        {"source": "vip", "target": "j"},
        {"source": "std", "target": "j"},
        {"source": "audit", "target": "j"},
        {"source": "j", "target": "out"},
    ],
}


@contextlib.asynccontextmanager
async def runtime(
    url: str, registry: NodeRegistry | None = None, **overrides: Any
) -> AsyncIterator[Runtime]:
    settings = Settings(database_url=url, sweep_interval_s=0.05, **overrides)
    async with open_runtime(settings, registry=registry) as rt:
        yield rt


async def run(rt: Runtime, doc: dict[str, Any], data: Any, timeout: float = 10) -> Any:
    wf_id, version, tenant = await register(rt, doc, None)
    execution_id = await rt.engine.start_execution(
        tenant_id=tenant, workflow_id=wf_id, version=version, data=data
    )
    return await rt.engine.wait(execution_id, timeout=timeout)


async def _status_is(rt: Runtime, execution_id: str, status: X) -> bool:
    ex = await rt.executions.get_execution(execution_id)
    assert ex is not None and ex.status is status, ex
    return True


async def test_runner_sql_branch_join_and_events(database_url: str) -> None:
    async with runtime(database_url) as rt, rt.engine.running():
        ex = await run(rt, DIAMOND, {"total": 150})
        small = await run(rt, DIAMOND, {"total": 5})
        runs = {r.node_id: r for r in await rt.executions.node_runs(ex.id)}
        assert ex.status is X.SUCCEEDED
        assert ex.output == "vip webhook.order"
        assert small.output == "std webhook.order"
        assert runs["std"].status is S.SKIPPED
        assert set(runs["j"].input) == {"vip", "audit"}

        def _events(conn: sa.Connection) -> list[Any]:
            q = (
                sa.select(event_store.c.sequence_number, event_store.c.event_type)
                .where(event_store.c.tenant_id == "acme")
                .order_by(event_store.c.sequence_number)
            )
            return list(conn.execute(q))

        events = await rt.db.read(_events)
        seqs = [e[0] for e in events]
        assert seqs == list(range(1, len(seqs) + 1))  # per tenant, no gaps
        types = [e[1] for e in events]
        assert types.count("execution.completed") == 2
        assert types[0] == "tenant.created"


async def test_runner_sql_retries_then_routes_the_error(database_url: str) -> None:
    doc = {
        "name": "routes",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {
                "id": "boom",
                "type": "fail",
                "config": {"message": "bad {{data.x}}"},
                "on_error": "route",
            },
            {"id": "fix", "type": "error_handler", "config": {"output": "{{error.message}}"}},
        ],
        "edges": [
            {"source": "t", "target": "boom"},
            {"source": "boom", "target": "fix", "sourceHandle": "error"},
        ],
    }
    async with runtime(database_url) as rt, rt.engine.running():
        ex = await run(rt, doc, {"x": 3})
        assert ex.status is X.SUCCEEDED
        assert ex.output == "bad 3"

        def _logs(conn: sa.Connection) -> list[str]:
            from flowmill.store.tables import execution_logs

            q = sa.select(execution_logs.c.message).where(execution_logs.c.execution_id == ex.id)
            return list(conn.execute(q).scalars())

        assert await rt.db.read(_logs) == ["handled error from boom: bad 3"]


async def test_runner_sql_delay_survives_a_restart(database_url: str) -> None:
    doc = {
        "name": "waits",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "d", "type": "delay", "config": {"ms": 1500}},  # parked past the restart
            {"id": "done", "type": "response", "config": {"body": {"v": "{{data.v}}"}}},
        ],
        "edges": [{"source": "t", "target": "d"}, {"source": "d", "target": "done"}],
    }
    async with runtime(database_url) as rt, rt.engine.running():
        wf_id, version, tenant = await register(rt, doc, None)
        execution_id = await rt.engine.start_execution(
            tenant_id=tenant, workflow_id=wf_id, version=version, data={"v": 7}
        )
        await eventually(lambda: _status_is(rt, execution_id, X.WAITING), 10, "the delay parked")
    # The process stopped while the delay was pending; nothing is in any queue now.
    async with runtime(database_url) as rt2, rt2.engine.running():
        ex = await rt2.engine.wait(execution_id, timeout=5)
        assert ex.status is X.SUCCEEDED
        assert ex.output == {"v": 7}


async def test_runner_sql_duplicate_jobs_record_one_success(database_url: str) -> None:
    """A job delivered three times at once may run its node more than once (side effects
    are at-least-once) but completes it once in the records: one succeeded row, one
    ``node.completed`` event. Delivered again after it finished, it does not run."""
    # The join waits for "other", which no worker runs here: the execution stays
    # running, so only the guard on the step's own status stands between a repeated
    # job and a second completion (not the execution's end, not a unique row).
    doc = {
        "name": "dup",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "a", "type": "flaky"},
            {"id": "other", "type": "noop"},
            {"id": "j", "type": "merge"},
        ],
        "edges": [
            {"source": "t", "target": "a"},
            {"source": "t", "target": "other"},
            {"source": "a", "target": "j"},
            {"source": "other", "target": "j"},
        ],
    }
    CALLS.clear()
    async with runtime(database_url, registry=registry()) as rt:
        wf_id, version, tenant = await register(rt, doc, None)
        # Start without a worker, then deliver the same step job three times at once.
        execution_id = await rt.engine.start_execution(
            tenant_id=tenant, workflow_id=wf_id, version=version, data={}
        )
        job = StepJob(execution_id, "a", 1, tenant)
        await asyncio.gather(*(rt.engine.handle(job) for _ in range(3)))
        calls = [c[0] for c in CALLS]
        assert 1 <= calls.count("a") <= 3
        for _ in range(3):
            await rt.engine.handle(job)
        assert [c[0] for c in CALLS] == calls  # finished: never run again

        def _records(conn: sa.Connection) -> tuple[list[Any], list[Any]]:
            ne, ev = node_executions, event_store
            rows = conn.execute(
                sa.select(ne.c.node_id, ne.c.status).where(ne.c.execution_id == execution_id)
            ).all()
            completed = conn.execute(
                sa.select(ev.c.payload).where(
                    ev.c.stream_id == execution_id, ev.c.event_type == "node.completed"
                )
            ).all()
            return rows, [p["node_id"] for (p,) in completed]

        rows, completed = await rt.db.read(_records)
        assert sorted(rows) == [("a", "succeeded"), ("other", "queued"), ("t", "succeeded")]
        assert sorted(completed) == ["a", "t"]
        ex = await rt.executions.get_execution(execution_id)
        assert ex is not None
        assert ex.status is X.RUNNING


async def test_runner_sql_cancel(database_url: str) -> None:
    doc = {
        "name": "cancel",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "d", "type": "delay", "config": {"seconds": 30}},
            {"id": "after", "type": "noop"},
        ],
        "edges": [{"source": "t", "target": "d"}, {"source": "d", "target": "after"}],
    }
    async with runtime(database_url) as rt, rt.engine.running():
        wf_id, version, tenant = await register(rt, doc, None)
        execution_id = await rt.engine.start_execution(
            tenant_id=tenant, workflow_id=wf_id, version=version, data={}
        )
        await eventually(lambda: _status_is(rt, execution_id, X.WAITING), 10, "the delay parked")
        assert await rt.engine.cancel(execution_id)
        ex = await rt.engine.wait(execution_id, timeout=2)
        assert ex.status is X.CANCELLED
        statuses = {r.node_id: r.status for r in await rt.executions.node_runs(execution_id)}
        assert statuses == {"t": S.SUCCEEDED, "d": S.CANCELLED}


async def test_runner_sql_concurrency_limit(database_url: str) -> None:
    doc = {
        "name": "limited",
        "settings": {"max_concurrent": 2},
        "nodes": [
            {"id": "t", "type": "trigger"},
            # Long enough that all six starts are in before the first two end, even on
            # a loaded machine (at 150 ms a slow start saw the queue move already).
            {"id": "d", "type": "delay", "config": {"ms": 1000}},
        ],
        "edges": [{"source": "t", "target": "d"}],
    }
    async with runtime(database_url) as rt, rt.engine.running():
        wf_id, version, tenant = await register(rt, doc, None)
        ids = [
            await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=wf_id, version=version, data={}
            )
            for _ in range(6)
        ]
        queued = [await rt.executions.get_execution(i) for i in ids]
        assert [e.status for e in queued if e is not None].count(X.QUEUED) == 4
        done = [await rt.engine.wait(i, timeout=30) for i in ids]
        assert all(e.status is X.SUCCEEDED for e in done)
        spans = sorted((e.started_at, e.completed_at) for e in done)
        for i, (start, _) in enumerate(spans):
            overlapping = sum(1 for s, end in spans if s <= start < end)  # type: ignore[operator]
            assert overlapping <= 2, (i, spans)


async def test_runner_sql_checkpoint_rechecks_a_status_that_changed(database_url: str) -> None:
    """A cancel that lands between a worker's read and its checkpoint wins: the step's
    result is not recorded as a success and nothing after it is queued."""
    from flowmill.engine import transitions as tx

    doc = {
        "name": "race",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "a", "type": "noop"},
            {"id": "b", "type": "noop"},
        ],
        "edges": [{"source": "t", "target": "a"}, {"source": "a", "target": "b"}],
    }
    async with runtime(database_url) as rt:
        wf_id, version, tenant = await register(rt, doc, None)
        execution_id = await rt.engine.start_execution(
            tenant_id=tenant, workflow_id=wf_id, version=version, data={}
        )
        loaded = await rt.executions.load_step(StepJob(execution_id, "a", 1).key, ())
        assert loaded is not None
        seen = loaded.execution  # what the worker believes: running
        assert await rt.engine.cancel(execution_id)
        compiled = await rt.engine.compiled(wf_id, version)
        with pytest.raises(StaleStepError):
            await rt.executions.checkpoint(
                execution_id,
                lambda e, r: tx.after_step(
                    compiled, e, loaded.run, tx.Succeeded({"x": 1}), r, rt.engine.clock.now()
                ),
                assumed=seen,
            )
        statuses = {r.node_id: r.status for r in await rt.executions.node_runs(execution_id)}
        assert statuses == {"t": S.SUCCEEDED, "a": S.CANCELLED}
