"""Retention on SQLite and PostgreSQL: the pruner deletes exactly the finished records
older than their tenant's policy (with their node runs and logs), never a live
execution or an undispatched webhook event, never another tenant's rows, nothing in a
dry run, and only store events every feed consumer has read; SQLite gives the pages
back."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from flowmill.config import Settings
from flowmill.domain.states import ExecutionStatus
from flowmill.ids import uuid7
from flowmill.retention.policy import RetentionPolicies, RetentionPolicy
from flowmill.retention.pruner import Pruner
from flowmill.retention.service import RetentionService
from flowmill.runs import register
from flowmill.runtime import Runtime, open_runtime
from flowmill.store.leases import LeaseStore
from flowmill.store.tables import (
    event_consumers,
    event_store,
    execution_logs,
    node_executions,
    webhook_events,
    workflow_executions,
)
from flowmill.store.webhook_events import WebhookEventRow, WebhookEventStatus
from flowmill.testing import FakeClock, eventually
from tests.api_support import FAILING, WAITING
from tests.serve_support import cli

TWO_NODES: dict[str, Any] = {
    "name": "two",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "a", "type": "transform", "config": {"mapping": {"x": "{{x}}"}}},
    ],
    "edges": [{"source": "t", "target": "a"}],
}
POLICY = RetentionPolicy(
    executions_days=1,
    failed_executions_days=5,
    webhook_events_days=3,
    webhook_bodies_days=1,
    store_events_days=1,
)


async def _run(rt: Runtime, doc: dict[str, Any], tenant: str, n: int = 1) -> list[str]:
    wf, version, _ = await register(rt, {**doc, "status": "active"}, tenant)
    ids = []
    for i in range(n):
        ids.append(
            await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=wf, version=version, data={"x": i}
            )
        )
    for execution_id in ids:

        async def parked_or_ended(eid: str = execution_id) -> bool:
            ex = await rt.engine.wait(eid, timeout=0.1)
            assert ex.status.terminal or ex.status is ExecutionStatus.WAITING, ex.status
            return True

        await eventually(parked_or_ended, 30, f"execution {execution_id} ended or waiting")
    return ids


def _event(tenant: str, body: bytes) -> WebhookEventRow:
    return WebhookEventRow(
        id=uuid7(),
        tenant_id=tenant,
        trigger_id=None,
        provider="none",
        route="/webhooks/x/none",
        method="POST",
        headers=[["content-type", "application/json"]],
        body=body,
        verified=True,
        status=WebhookEventStatus.RECEIVED,
        received_at=datetime.now(UTC),
    )


async def _count(rt: Runtime, table: sa.Table, tenant: str, *where: Any) -> int:
    q = sa.select(sa.func.count()).select_from(table).where(table.c.tenant_id == tenant, *where)
    return int(await rt.db.read(lambda c: c.execute(q).scalar_one()))


async def _snapshot(rt: Runtime, tenant: str) -> dict[str, int]:
    return {
        "executions": await _count(rt, workflow_executions, tenant),
        "node_runs": await _count(rt, node_executions, tenant),
        "logs": await _count(rt, execution_logs, tenant),
        "webhook_events": await _count(rt, webhook_events, tenant),
        "store_events": await _count(rt, event_store, tenant),
    }


def _pruner(rt: Runtime, days_later: float, **kw: Any) -> Pruner:
    clock = FakeClock(datetime.now(UTC) + timedelta(days=days_later))
    policies = RetentionPolicies(POLICY, kw.pop("tenants", {}))
    return Pruner(rt.db, policies, batch=kw.pop("batch", 2), pause_s=0, clock=clock)


async def test_retention_prunes_exactly_the_old_finished_records(database_url: str) -> None:
    settings = Settings(database_url=database_url, sandbox_enabled=False)
    async with open_runtime(settings) as rt, rt.engine.running():
        done = await _run(rt, TWO_NODES, "tenant-a", 5)
        [failed] = await _run(rt, FAILING, "tenant-a")
        [waiting] = await _run(rt, WAITING, "tenant-a")
        [other] = await _run(rt, TWO_NODES, "tenant-b")
        events = rt.triggers.events
        dispatched, pending = _event("tenant-a", b'{"big": 1}'), _event("tenant-a", b"{}")
        await events.insert([dispatched, pending])
        assert await events.finish(dispatched, WebhookEventStatus.PROCESSED, done[:1])
        # An ended child of a live parent (a loop iteration the parent has yet to read).
        we = workflow_executions
        child = done.pop()
        await rt.db.write(
            lambda c: c.execute(
                we.update().where(we.c.id == child).values(parent_execution_id=waiting)
            )
        )
        before = await _snapshot(rt, "tenant-a")
        before_b = await _snapshot(rt, "tenant-b")

        # Two days on: a dry run counts what the run then deletes, and deletes nothing.
        dry = await _pruner(rt, 2).prune(tenant_id="tenant-a", dry_run=True)
        assert await _snapshot(rt, "tenant-a") == before
        seen: list[tuple[str, str]] = []
        report = await _pruner(rt, 2).prune(
            tenant_id="tenant-a", progress=lambda t, kind, _c: seen.append((t, kind))
        )
        counts = report.tenants["tenant-a"]
        assert counts == dry.tenants["tenant-a"]
        # The 4 other succeeded runs go (failed ones are kept 5 days), with every node
        # run and log; the waiting execution and its runs stay, and so does its child.
        assert counts.executions == 4
        assert {t for t, _ in seen} == {"tenant-a"} and ("tenant-a", "executions") in seen
        after = await _snapshot(rt, "tenant-a")
        assert after["executions"] == 3
        kept = await rt.db.read(
            lambda c: set(c.execute(sa.select(workflow_executions.c.id)).scalars().all())
        )
        assert {str(i) for i in kept} >= {failed, waiting, other, child}
        assert not {str(i) for i in kept} & set(done)
        assert before["node_runs"] - after["node_runs"] == counts.node_runs > 0
        assert before["logs"] - after["logs"] == counts.logs
        assert await rt.executions.node_runs(waiting)
        # The dispatched event's body is emptied (bodies: 1 day), the row kept (3 days).
        assert counts.webhook_bodies == 1 and after["webhook_events"] == 2
        row = await events.get(dispatched.id)
        assert row is not None and row.body == b"" and row.status.value == "processed"
        assert counts.store_events == before["store_events"] - after["store_events"] > 0
        # Another tenant's rows are untouched.
        assert await _snapshot(rt, "tenant-b") == before_b

        # Six days on: the failed execution and the dispatched event go; the waiting
        # execution and the event still waiting for dispatch never do.
        counts = (await _pruner(rt, 6).prune(tenant_id="tenant-a")).tenants["tenant-a"]
        assert (counts.executions, counts.webhook_events) == (1, 1)
        assert await rt.executions.get_execution(failed) is None
        assert await rt.executions.get_execution(waiting) is not None
        assert await rt.executions.get_execution(child) is not None
        assert await events.get(pending.id) is not None
        # Every tenant without a tenant filter; tenant-b keeps its executions longer.
        report = await _pruner(rt, 6, tenants={"tenant-b": {"executions_days": 30}}).prune()
        assert report.tenants["tenant-b"].executions == 0
        assert await rt.executions.get_execution(other) is not None


async def test_retention_keeps_store_events_a_consumer_has_not_read(database_url: str) -> None:
    settings = Settings(database_url=database_url, sandbox_enabled=False)
    async with open_runtime(settings) as rt, rt.engine.running():
        await _run(rt, TWO_NODES, "tenant-a", 3)
        await _run(rt, TWO_NODES, "tenant-b", 1)
        seqs = await rt.db.read(
            lambda c: (
                c.execute(
                    sa.select(event_store.c.sequence_number)
                    .where(event_store.c.tenant_id == "tenant-a")
                    .order_by(event_store.c.sequence_number)
                )
                .scalars()
                .all()
            )
        )
        read_upto = seqs[len(seqs) // 2]
        now = datetime.now(UTC)
        await rt.db.write(
            lambda c: c.execute(
                event_consumers.insert(),
                [{"consumer": "c1", "tenant_id": "tenant-a", "last_sequence": read_upto,
                  "updated_at": now}],
            )
        )  # fmt: skip
        report = await _pruner(rt, 2).prune()
        left = await rt.db.read(
            lambda c: (
                c.execute(
                    sa.select(event_store.c.sequence_number).where(
                        event_store.c.tenant_id == "tenant-a"
                    )
                )
                .scalars()
                .all()
            )
        )
        assert sorted(left) == [s for s in seqs if s > read_upto]
        assert report.tenants["tenant-a"].store_events == len(seqs) - len(left)
        # c1 has no cursor for tenant-b: it would read tenant-b from the start.
        assert report.tenants["tenant-b"].store_events == 0
        assert await _count(rt, event_store, "tenant-b") > 0


async def test_retention_sqlite_gives_pages_back(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, sandbox_enabled=False)
    path = sqlite_url.removeprefix("sqlite:///")
    async with open_runtime(settings) as rt:
        await rt.workflows.ensure_tenant("tenant-a")
        events = [_event("tenant-a", os.urandom(64 * 1024)) for _ in range(40)]
        await rt.triggers.events.insert(events)
        for e in events:
            await rt.triggers.events.finish(e, WebhookEventStatus.NO_MATCH, [])
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
        report = await _pruner(rt, 4, batch=7).prune()
        assert report.total.webhook_events == 40
        assert report.free_pages_left == 0
        with sqlite3.connect(path) as conn:
            shrunk = conn.execute("PRAGMA page_count").fetchone()[0]
        assert shrunk < pages - 500, (pages, shrunk)  # 2.5 MB of bodies given back


async def test_retention_service_prunes_on_one_replica(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, sandbox_enabled=False)
    async with open_runtime(settings) as rt, rt.engine.running():
        await _run(rt, TWO_NODES, "tenant-a", 2)
        clock = FakeClock(datetime.now(UTC) + timedelta(days=2))
        one, two = (
            RetentionService(_pruner(rt, 2), LeaseStore(rt.db), interval_s=60, clock=clock)
            for _ in range(2)
        )
        report = await one.round()
        assert report is not None and report.total.executions == 2
        assert await two.round() is None  # the lease is the first replica's


async def test_retention_cli_dry_run_counts_and_deletes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"FLOWMILL_RETENTION_EXECUTIONS_DAYS": "0.000001"}  # 86 ms
    settings = Settings(home=home, sandbox_enabled=False)
    async with open_runtime(settings) as rt, rt.engine.running():
        await _run(rt, TWO_NODES, "tenant-a", 2)
    out = await cli(home, "prune", "--dry-run", "--json", env=env)
    assert '"executions": 2' in out and '"dry_run": true' in out
    out = await cli(home, "prune", "--json", env=env)
    assert '"executions": 2' in out
    out = await cli(home, "prune", "--json", env=env)
    assert '"executions": 0' in out
