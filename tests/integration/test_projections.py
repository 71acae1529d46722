"""The read models against the raw tables, on SQLite and PostgreSQL.

A random workload (seeded; ``FLOWMILL_TEST_SEED`` picks another) runs while the
projector service follows it in small batches. Then: the read models equal the same
figures computed from scratch over workflow_executions, node_executions and
webhook_events; a rebuild gives identical tables; a projector that dies half-way
(an error inside a batch, a SIGKILLed ``flowmill projections rebuild``) and is started
again changes nothing.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flowmill.projections.base import Key, Projection, Row
from flowmill.projections.node_performance import NodePerformance
from flowmill.projections.projector import Projector, all_projections
from flowmill.projections.service import ProjectorOptions, ProjectorService
from flowmill.projections.workflow_summary import WorkflowSummary
from flowmill.store.event_feed import FeedEvent
from flowmill.store.leases import LeaseStore
from flowmill.store.tables import event_consumers, tenants
from tests.api_support import open_api
from tests.integration.http_servers import LoopbackServer, Servers
from tests.readside_support import (
    compare,
    oracle,
    prepare_no_match,
    run_workload,
    settle,
    snapshot,
    workflow_names,
)
from tests.webhook_support import KEYS

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("FLOWMILL_TEST_SEED", "20261206"))


@pytest.fixture
def flaky() -> Iterator[LoopbackServer]:
    servers = Servers()
    yield servers.start("flaky")
    servers.stop()


class Boom(Exception):
    pass


class ExplodingProjection(Projection):
    """Folds like node_performance, then fails on its ``after``-th event: the projector
    dying in the middle of a batch, after other read models were written in it."""

    name = "node_performance"  # its cursor and table: it stands in for it
    table = NodePerformance.table
    key = NodePerformance.key

    def __init__(self, after: int) -> None:
        self.inner = NodePerformance()
        self.left = after

    def keys(self, event: FeedEvent) -> Iterable[Key]:
        return self.inner.keys(event)

    def empty(self, key: Key) -> Row:
        return self.inner.empty(key)

    def apply(self, row: Row, event: FeedEvent) -> None:
        self.left -= 1
        if self.left == 0:
            raise Boom
        self.inner.apply(row, event)


async def _cursors(db: Any) -> dict[tuple[str, str], int]:
    rows = await db.read(lambda c: c.execute(sa.select(event_consumers)).all())
    return {(r.consumer, r.tenant_id): int(r.last_sequence) for r in rows}


async def test_projections_equal_raw_tables_rebuild_and_crash(
    database_url: str, flaky: LoopbackServer
) -> None:
    rng = random.Random(SEED)
    settings = {
        "secret_keys": KEYS,
        "sandbox_enabled": False,
        "http_allow_cidrs": ["127.0.0.1/32"],
        "webhook_cache_s": 0,
    }
    async with open_api(database_url, worker=False, **settings) as api:
        db = api.runtime.db
        await prepare_no_match(api)
        # The projector follows the workload as it happens, in batches of 7 events.
        service = ProjectorService(
            Projector(db, batch_size=7),
            LeaseStore(db),
            ProjectorOptions(interval_s=0.05, min_interval_s=0.01),
        )
        unsubscribe = api.runtime.engine.hub.subscribe(service.wake)
        async with service.running(), api.runtime.engine.running():
            workload = await run_workload(api, rng, flaky.url("").rstrip("/"), steps=40)
            await settle(api, workload)
        unsubscribe()
        await Projector(db, batch_size=7).catch_up()  # what came after its last round
        incremental = await snapshot(db)

        expected = await oracle(db, "tenant-a")
        outcomes = {
            k: sum(f.counters[k] for f in expected["webhook_analytics"].values())
            for k in ("succeeded", "rejected", "duplicates", "no_match")
        }
        assert all(outcomes.values()), f"the workload missed an outcome: {outcomes}"
        retried = sum(f.counters["retries"] for f in expected["node_performance"].values())
        assert retried > 0
        compare(incremental, expected, "tenant-a")
        names = await workflow_names(db, "tenant-a")
        for row in incremental["workflow_summary"]:
            assert row["name"] == names[row["workflow_id"]]
            assert row["created_by"].startswith("api_key:")

        # Rebuilt from sequence 0 in other batch sizes: the very same rows.
        assert await Projector(db, batch_size=1000).rebuild() > 0
        assert await snapshot(db) == incremental
        assert await Projector(db, batch_size=1).rebuild() > 0
        assert await snapshot(db) == incremental

        # Dying inside a batch (other read models written in the same transaction)
        # leaves rows and cursors as they were; starting again finishes the job.
        before = await _cursors(db)
        dying = Projector(db, [WorkflowSummary(), ExplodingProjection(after=5)], batch_size=50)
        consumers = [p.consumer for p in dying.projections]

        def _rewind(conn: sa.Connection) -> None:
            conn.execute(
                event_consumers.update()
                .where(event_consumers.c.consumer.in_(consumers))
                .values(last_sequence=0)
            )
            for p in dying.projections:
                conn.execute(p.table.delete())

        await db.write(_rewind)
        rewound = await snapshot(db)
        with pytest.raises(Boom):
            await dying.catch_up()
        assert await snapshot(db) == rewound
        assert {k: v for k, v in (await _cursors(db)).items() if k[0] in consumers} == {
            k: 0 for k in before if k[0] in consumers
        }
        await Projector(db, batch_size=50).catch_up()
        assert await snapshot(db) == incremental

        # Applying events a second time changes nothing: they are behind the cursors.
        assert await Projector(db).catch_up() == 0
        assert await snapshot(db) == incremental


def _sigkill_rebuild_midway(database_url: str, env: dict[str, str]) -> None:
    """Start ``flowmill projections rebuild --batch 2`` and SIGKILL it once some but not
    all of the feed is applied."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowmill", "projections", "rebuild", "--batch", "2"],
        env={**os.environ, **env, "FLOWMILL_DATABASE_URL": database_url},
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    engine = sa.create_engine(database_url)  # SQLite: the standard library's driver
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the rebuild ended before it was killed"
            with engine.connect() as conn:
                head = conn.execute(sa.select(sa.func.sum(tenants.c.event_seq))).scalar_one()
                done = conn.execute(
                    sa.select(sa.func.sum(event_consumers.c.last_sequence)).where(
                        event_consumers.c.consumer == "projection:node_performance"
                    )
                ).scalar()
            if done and 0 < int(done) < int(head) // 2:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return
            time.sleep(0.005)  # not a wait: a poll that fails when the rebuild ends
        raise AssertionError("the rebuild never got half-way")
    finally:
        engine.dispose()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_projections_rebuild_killed_midway_then_restarted_changes_nothing(
    sqlite_url: str, flaky: LoopbackServer
) -> None:
    rng = random.Random(SEED + 1)
    settings = {"secret_keys": KEYS, "sandbox_enabled": False, "webhook_cache_s": 0}
    settings["http_allow_cidrs"] = ["127.0.0.1/32"]
    async with open_api(sqlite_url, **settings) as api:
        workload = await run_workload(api, rng, flaky.url("").rstrip("/"), steps=30)
        await settle(api, workload)
        db = api.runtime.db
        await Projector(db).catch_up()
        complete = await snapshot(db)
        env = {"FLOWMILL_SECRET_KEYS": KEYS, "FLOWMILL_SANDBOX_ENABLED": "false"}
        await asyncio.to_thread(_sigkill_rebuild_midway, sqlite_url, env)
        assert await snapshot(db) != complete  # killed half-way: partial tables
        assert await Projector(db).catch_up() > 0  # any projector goes on from the cursors
        assert await snapshot(db) == complete


def test_projections_named_rejects_unknown_names() -> None:
    from flowmill.projections.projector import UnknownProjectionError, projections_named

    assert [p.name for p in projections_named(None)] == [p.name for p in all_projections()]
    with pytest.raises(UnknownProjectionError, match="no read model called nope"):
        projections_named(["workflow_summary", "nope"])


async def test_projections_projector_one_leader_at_a_time_and_catch_up_after_downtime(
    database_url: str,
) -> None:
    async with open_api(database_url, sandbox_enabled=False) as api:
        db = api.runtime.db
        wf = await api.workflow()
        for _ in range(3):  # written while no projector runs
            await api.run(wf, {"message": "x"})
        options = ProjectorOptions(interval_s=0.05, min_interval_s=0.01, lease_s=30)
        first = ProjectorService(Projector(db), LeaseStore(db), options)
        second = ProjectorService(Projector(db), LeaseStore(db), options)
        assert await first.round() > 0  # the leader catches up on what it missed
        assert await second.round() == 0
        assert (first.leading, second.leading) == (True, False)
        rows = await snapshot(db)
        [summary] = [r for r in rows["workflow_summary"] if r["workflow_id"] == wf]
        assert summary["executions"] == summary["succeeded"] == 3

        await api.run(wf, {"message": "y"})
        assert await second.round() == 0  # not its turn: the lease is the first one's
        # The leader stops (its lease released): the other takes over at its next round.
        async with first.running():
            pass
        assert await second.round() > 0
        assert second.leading
        [summary] = [r for r in (await snapshot(db))["workflow_summary"] if r["workflow_id"] == wf]
        assert summary["executions"] == 4


async def test_projections_cursors_pass_the_events_no_read_model_folds(database_url: str) -> None:
    """The projector reads only the event types its read models fold, yet every cursor
    reaches the tenant's head: a feed that ends in events nobody folds (custom events
    here) leaves no read model behind, and the ones before are counted once."""
    async with open_api(database_url, sandbox_enabled=False) as api:
        db = api.runtime.db
        wf = await api.workflow()
        await api.run(wf, {"message": "x"})
        for i in range(3):
            r = await api.a.post("/api/events", json={"type": "order.created", "data": {"i": i}})
            assert r.status_code == 201, r.text
        projector = Projector(db, batch_size=4)  # ranges that start and end mid-execution
        assert await projector.catch_up() > 0
        assert await projector.behind() == []
        head = await db.read(
            lambda c: c.execute(
                sa.select(tenants.c.event_seq).where(tenants.c.id == "tenant-a")
            ).scalar_one()
        )
        consumers = {p.consumer for p in projector.projections}
        cursors = {c: n for (c, t), n in (await _cursors(db)).items() if t == "tenant-a"}
        assert {c: cursors.get(c) for c in consumers} == dict.fromkeys(consumers, head)
        assert await projector.catch_up() == 0
        [summary] = [r for r in (await snapshot(db))["workflow_summary"] if r["workflow_id"] == wf]
        assert (summary["executions"], summary["succeeded"]) == (1, 1)
