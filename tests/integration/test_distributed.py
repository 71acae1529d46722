"""Distributed mode end to end: ``flowmill worker`` processes over PostgreSQL and Redis.

Every test runs real worker processes (the CLI) on its own database and Redis key
prefix, does something unkind to them, and then checks the records in PostgreSQL: every
execution finished, and no node was recorded (or announced) as succeeded twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from flowmill.config import Settings
from flowmill.engine.ports import StepJob
from flowmill.runs import register
from flowmill.runtime import open_runtime
from flowmill.testing import Seen, StubHandler, StubServer, eventually
from tests.api_support import open_api
from tests.engine_support import BRANCHY, spy_on_puts
from tests.integration.distributed_support import Deployment, read_records, wait_all_done
from tests.integration.private_servers import PrivatePostgres, PrivateRedis
from tests.node_support import BULLMQ_PACKAGES, run_node_script
from tests.webhook_support import last_node, unverified_webhook

# Real worker processes started, killed and waited for: minutes on a loaded machine.
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(900)]

# t, a, wait1, b1, b2, b3, j, c, out and one of hi/lo succeed in each execution.
BRANCHY_SUCCESSES = 10


@pytest.fixture
def deployment(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> Iterator[Deployment]:
    d = Deployment(postgres_url, redis_url, redis_prefix, tmp_path)
    yield d
    d.stop_all()


def _assert_clean(records: Any, executions: int, per_execution: int) -> None:
    assert records.statuses == {"succeeded": executions}, records.statuses
    assert records.succeeded_twice == []
    assert records.completed_twice == []
    assert records.succeeded_rows == executions * per_execution


# --- crashes -------------------------------------------------------------------------------


async def test_distributed_sigkill_of_workers_loses_nothing_runs_nothing_twice(
    deployment: Deployment,
) -> None:
    batches, per_batch = 8, 40
    total = batches * per_batch
    for _ in range(2):
        await deployment.start_worker()
    rng = random.Random(int(os.environ.get("FLOWMILL_CRASH_SEED", "4321")))
    killed_mid_work = 0
    for batch in range(batches):
        # New work before each kill keeps executions in flight whatever the speed.
        await deployment.start_executions(
            BRANCHY, ({"n": n} for n in range(batch * per_batch, (batch + 1) * per_batch))
        )
        await asyncio.sleep(rng.uniform(0.05, 0.6))  # not a wait: the moment of the crash
        victim = rng.choice(deployment.alive())
        deployment.kill(victim)
        # Mid-work: steps were taken while the victim was up, and work was left.
        records = await read_records(deployment.database_url)
        if (
            records.succeeded_rows > deployment.started_at_rows[victim.pid]
            and records.count("succeeded") < total
        ):
            killed_mid_work += 1
        await deployment.start_worker()  # two workers again
    # Killed mid-flight several times, or the test proves nothing.
    assert killed_mid_work >= 5, f"the run finished before most kills ({killed_mid_work})"
    records = await wait_all_done(deployment, total, timeout=120)
    _assert_clean(records, total, BRANCHY_SUCCESSES)


async def test_distributed_redis_restart_mid_run(
    postgres_url: str, tmp_path: Path, redis_prefix: str
) -> None:
    redis = PrivateRedis(tmp_path)
    redis.start()
    deployment = Deployment(postgres_url, redis.url, redis_prefix, tmp_path)
    try:
        workers = [await deployment.start_worker() for _ in range(2)]
        total = 200
        await deployment.start_executions(BRANCHY, ({"n": n} for n in range(total)))
        before = await _some_done(postgres_url)
        redis.kill()  # and with it every job: it keeps nothing on disk
        await asyncio.sleep(2)  # not a wait: the outage lasts this long
        redis.start()
        assert before < total, "the run finished before Redis went away"
        await _all_done_by_survivors(deployment, workers, total)
    finally:
        deployment.stop_all()
        redis.kill()


async def _all_done_by_survivors(
    deployment: Deployment, workers: list[subprocess.Popen[bytes]], total: int
) -> None:
    """Every execution finished cleanly, by the same workers, which still stop cleanly."""
    records = await wait_all_done(deployment, total, timeout=90)
    _assert_clean(records, total, BRANCHY_SUCCESSES)
    assert all(w.poll() is None for w in workers), deployment.log_text()
    for w in workers:
        assert await deployment.terminate(w) == 0, deployment.log_text()


async def _some_done(database_url: str, at_least: int = 5) -> int:
    """Wait until the workers are under way: a few executions succeeded."""

    async def done() -> int:
        n = (await read_records(database_url)).count("succeeded")
        return n if n >= at_least else 0

    return await eventually(done, 30, f"the workers finishing {at_least} executions")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.init()
    server.start()
    yield server
    server.destroy()


async def test_distributed_postgres_restart_mid_run(
    private_postgres: PrivatePostgres, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    deployment = Deployment(private_postgres.url, redis_url, redis_prefix, tmp_path)
    try:
        total = 200
        # Migrates the new database before the workers start.
        ids = await deployment.start_executions(BRANCHY, ({"n": n} for n in range(total)))
        assert len(ids) == total
        workers = [await deployment.start_worker() for _ in range(2)]
        before = await _some_done(private_postgres.url)
        private_postgres.crash()
        await asyncio.sleep(2)  # not a wait: the outage lasts this long
        private_postgres.start()
        assert before < total, "the run finished before PostgreSQL went away"
        await _all_done_by_survivors(deployment, workers, total)
    finally:
        deployment.stop_all()


# --- limits --------------------------------------------------------------------------------


def _limited(settings: dict[str, int]) -> dict[str, Any]:
    return {
        "name": f"limited {settings}",
        "settings": settings,
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "d", "type": "delay", "config": {"ms": 150}},
            {"id": "out", "type": "transform", "config": {"mapping": {"n": "{{trigger.data}}"}}},
        ],
        "edges": [{"source": "t", "target": "d"}, {"source": "d", "target": "out"}],
    }


async def _spans(database_url: str) -> list[tuple[datetime, datetime]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT started_at, completed_at FROM workflow_executions")
    finally:
        await conn.close()
    return sorted((r[0], r[1]) for r in rows)


async def test_distributed_high_priority_execution_overtakes_a_backlog_in_bullmq(
    deployment: Deployment,
) -> None:
    """Queued in Redis before any worker runs: a backlog of one-step executions, then
    one of a fan-out workflow with ``settings.priority``; a worker taking one job at a
    time finishes that one before the backlog. (That its later steps inherit the
    priority is shown by tests/unit/test_priorities.py: here the worker's own fair share,
    fresh, would put its branches ahead of the backlog's penalised jobs anyway.)"""
    # One branch may run inline after the trigger; the others are queued jobs.
    fan_out = {
        "name": "fan-out",
        "nodes": [
            {"id": "t", "type": "trigger"},
            *({"id": f"b{i}", "type": "transform", "config": {"mapping": {"i": i}}}
              for i in range(3)),
            {"id": "j", "type": "merge"},
        ],
        "edges": [
            *({"source": "t", "target": f"b{i}"} for i in range(3)),
            *({"source": f"b{i}", "target": "j"} for i in range(3)),
        ],
    }  # fmt: skip
    single = {
        "name": "single",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "a", "type": "transform", "config": {"mapping": {"n": 1}}},
        ],
        "edges": [{"source": "t", "target": "a"}],
    }
    # One process starts them all: its fair share has seen the whole backlog.
    async with open_runtime(deployment.settings(), kind="api") as rt:
        normal_wf, version, tenant = await register(rt, single, None)
        urgent_wf, _, _ = await register(
            rt, {**fan_out, "name": "urgent", "settings": {"priority": 10}}, None
        )
        backlog = [
            await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=normal_wf, version=version, data=n
            )
            for n in range(30)
        ]
        urgent = await rt.engine.start_execution(
            tenant_id=tenant, workflow_id=urgent_wf, version=1, data="urgent"
        )
    await deployment.start_worker(FLOWMILL_CONCURRENCY="1")
    await wait_all_done(deployment, 31, timeout=120)
    conn = await asyncpg.connect(deployment.database_url)
    try:
        rows = await conn.fetch("SELECT id, completed_at FROM workflow_executions")
    finally:
        await conn.close()
    finished = {str(r["id"]): r["completed_at"] for r in rows}
    before = [e for e in backlog if finished[e] < finished[urgent]]
    # A worker may hold the first backlog job it fetched when the urgent one comes up.
    assert len(before) <= 2, f"{len(before)} of 30 normal executions finished first"


async def test_distributed_max_concurrent_holds_across_workers(deployment: Deployment) -> None:
    for _ in range(2):
        await deployment.start_worker()
    total = 30
    await deployment.start_executions(_limited({"max_concurrent": 3}), range(total))
    live: list[int] = []

    async def sampled_until_done() -> bool:
        records = await read_records(deployment.database_url)
        live.append(records.live)  # checked below: an assert here would only mean "not yet"
        return records.count("succeeded") == total

    await eventually(sampled_until_done, 90, f"{total} limited executions succeeded")
    assert max(live) <= 3, live
    peak = max(live)
    records = await wait_all_done(deployment, total, timeout=5)
    assert records.statuses == {"succeeded": total}
    spans = await _spans(deployment.database_url)
    overlaps = [sum(1 for s, e in spans if s <= start < e) for start, _ in spans]
    assert max(overlaps) <= 3, spans
    assert max(overlaps) == 3 and peak >= 2, "the limit was never reached: proves nothing"


async def test_distributed_per_minute_holds_across_workers(deployment: Deployment) -> None:
    for _ in range(2):
        await deployment.start_worker()
    await deployment.start_executions(_limited({"per_minute": 5}), range(8))
    await wait_all_done(deployment, 5, timeout=30)
    await asyncio.sleep(2)  # not a wait: several sweeps of both workers start nothing more
    records = await read_records(deployment.database_url)
    assert records.statuses == {"succeeded": 5, "queued": 3}


# --- graceful shutdown ---------------------------------------------------------------------


class SlowServer(StubServer):
    """Answers each GET after ``delay_s`` (changeable mid-test); ``paths`` it was asked."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        super().__init__({"/": self._slow}, name="slow")

    def _slow(self, h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
        self.stopping.wait(self.delay_s)  # not a wait: the outside service is slow
        h.json({"path": seen.path})

    def route_for(self, method: str, path: str) -> Any:
        return self._slow

    @property
    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


@pytest.fixture
def slow_server() -> Iterator[SlowServer]:
    with SlowServer(1.5) as server:
        yield server


def _calls(url: str) -> dict[str, Any]:
    return {
        "name": "slow call",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {
                "id": "call",
                "type": "http_request",
                "config": {"url": f"{url}/{{{{trigger.data.n}}}}", "timeout_s": 30},
            },
            {"id": "after", "type": "transform", "config": {"mapping": {"got": "{{input.data}}"}}},
        ],
        "edges": [{"source": "t", "target": "call"}, {"source": "call", "target": "after"}],
    }


async def test_distributed_sigterm_lets_running_steps_finish(
    deployment: Deployment, slow_server: SlowServer
) -> None:
    deployment.env["FLOWMILL_HTTP_ALLOW_CIDRS"] = "127.0.0.1/32"
    first = await deployment.start_worker(FLOWMILL_SHUTDOWN_GRACE_S="10")
    total = 4
    await deployment.start_executions(_calls(slow_server.url("")), ({"n": n} for n in range(total)))
    await eventually(lambda: len(slow_server.paths) == total, 15, "all calls in flight")
    t0 = time.monotonic()
    assert await deployment.terminate(first) == 0, deployment.log_text()
    took = time.monotonic() - t0
    # It waited for the calls (1.5 s each, in flight) rather than dropping them.
    assert 0.5 < took < 10, took
    conn = await asyncpg.connect(deployment.database_url)
    try:
        calls = await conn.fetch(
            "SELECT status FROM node_executions WHERE node_id = 'call' ORDER BY id"
        )
    finally:
        await conn.close()
    assert [r[0] for r in calls] == ["succeeded"] * total
    # What the stopped worker did not take is left for the next one.
    await deployment.start_worker()
    records = await wait_all_done(deployment, total, timeout=30)
    _assert_clean(records, total, 3)
    assert sorted(slow_server.paths) == [f"/{n}" for n in range(total)]  # each called once


async def test_distributed_sigterm_hands_back_steps_past_the_grace_period(
    deployment: Deployment, slow_server: SlowServer
) -> None:
    slow_server.delay_s = 30.0
    deployment.env["FLOWMILL_HTTP_ALLOW_CIDRS"] = "127.0.0.1/32"
    first = await deployment.start_worker(FLOWMILL_SHUTDOWN_GRACE_S="0.5")
    await deployment.start_executions(_calls(slow_server.url("")), [{"n": 1}])
    await eventually(lambda: len(slow_server.paths) == 1, 15, "the call in flight")
    t0 = time.monotonic()
    assert await deployment.terminate(first) == 0, deployment.log_text()
    assert time.monotonic() - t0 < 15  # did not wait for the 30 s call
    slow_server.delay_s = 0.1
    await deployment.start_worker()
    records = await wait_all_done(deployment, 1, timeout=30)
    # The interrupted call ran again (at least once, as DESIGN §4 says), then all of it.
    assert records.statuses == {"succeeded": 1}
    assert records.succeeded_twice == []
    assert slow_server.paths == ["/1", "/1"]


# --- a Node.js producer --------------------------------------------------------------------

NODE_PRODUCER = """
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

const [url, prefix, workflowId, tenantId] = process.argv.slice(2);
const connection = new Redis(url, { maxRetriesPerRequest: null });
const queue = new Queue('flowmill-trigger', { connection, prefix });
for (let i = 0; i < 5; i++) {
  await queue.add('trigger', {
    tenant_id: tenantId, workflow_id: workflowId, trigger_type: 'node.service',
    data: { message: `hello ${i}` }, dedupe_key: `node-${i}`,
  });
}
await queue.close();
await connection.quit();
"""

GREETER = {
    "name": "greeter",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "shape", "type": "transform", "config": {"mapping": {"text": "{{data.message}}"}}},
        {"id": "out", "type": "response", "config": {"body": {"said": "{{input.text}}"}}},
    ],
    "edges": [{"source": "t", "target": "shape"}, {"source": "shape", "target": "out"}],
}


@pytest.fixture
async def greeter(deployment: Deployment) -> tuple[str, str]:
    async with open_runtime(deployment.settings(), kind="api") as rt:
        wf_id, _version, tenant = await register(rt, {**GREETER, "status": "active"}, None)
    return wf_id, tenant


async def test_distributed_node_bullmq_job_runs_a_workflow_on_the_workers(
    deployment: Deployment, greeter: tuple[str, str]
) -> None:
    for _ in range(2):
        await deployment.start_worker()
    prefix = deployment.prefix
    await run_node_script(
        NODE_PRODUCER, prefix, BULLMQ_PACKAGES, deployment.redis_url, prefix, *greeter
    )
    records = await wait_all_done(deployment, 5, timeout=30)
    _assert_clean(records, 5, 3)
    conn = await asyncpg.connect(deployment.database_url)
    try:
        rows = await conn.fetch("SELECT trigger_type, output FROM workflow_executions")
    finally:
        await conn.close()
    outputs = sorted(json.loads(r[1])["said"] for r in rows)
    assert outputs == [f"hello {i}" for i in range(5)]
    assert {r[0] for r in rows} == {"node.service"}


async def test_distributed_settings_reach_the_queue() -> None:
    """The FLOWMILL_QUEUE_* settings are what the BullMQ adapter is built with."""
    from flowmill.queue.bullmq import BullMQQueue
    from flowmill.queue.bullmq_options import Retention
    from flowmill.runtime import build_queue

    queue = build_queue(
        Settings(
            redis_url="redis://127.0.0.1:6379/0",
            queue_prefix="elsewhere",
            queue_keep_completed=0,
            queue_keep_failed=5,
            queue_keep_failed_s=60,
            queue_lock_s=7,
            queue_trigger="workflow-trigger",
            queue_node="workflow-node-execution",
        )
    )
    try:
        assert isinstance(queue, BullMQQueue)
        assert queue.options.prefix == "elsewhere"
        assert queue.options.remove_on_complete == Retention(0, 24 * 3600)
        assert queue.options.remove_on_fail.to_bullmq() == {"count": 5, "age": 60}
        assert queue.options.lock_duration_ms == 7000
        names = (queue.options.trigger_queue, queue.options.node_queue)
        assert names == ("workflow-trigger", "workflow-node-execution")
    finally:
        await queue.close()
    with pytest.raises(ValueError, match="queues must differ"):
        build_queue(
            Settings(redis_url="redis://127.0.0.1:6379/0", queue_trigger="q", queue_node="q")
        )
    with pytest.raises(ValueError, match="queue_node"):
        Settings(queue_node="has:colon")


def _cli(deployment: Deployment, *args: str, redis_url: str | None = None) -> Any:
    env = {
        **os.environ,
        "FLOWMILL_DATABASE_URL": deployment.database_url,
        "FLOWMILL_REDIS_URL": redis_url or deployment.redis_url,
        "FLOWMILL_QUEUE_PREFIX": deployment.prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "flowmill", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_distributed_queues_command_counts_jobs_per_state(deployment: Deployment) -> None:
    # No worker: the start steps of two executions wait in the node queue.
    await deployment.start_executions(GREETER, [{"message": "a"}, {"message": "b"}])
    shown = await asyncio.to_thread(_cli, deployment, "queues", "--json")
    assert shown.returncode == 0, shown.stderr
    counts = json.loads(shown.stdout)
    assert counts["flowmill-node"]["wait"] + counts["flowmill-node"]["prioritized"] == 2
    assert counts["flowmill-node"]["active"] == 0
    assert sum(counts["flowmill-trigger"].values()) == 0
    table = await asyncio.to_thread(_cli, deployment, "queues")
    assert "flowmill-node" in table.stdout and "delayed" in table.stdout

    gone = await asyncio.to_thread(
        _cli, deployment, "queues", redis_url="redis://:secret@127.0.0.1:1/0"
    )
    assert gone.returncode == 2
    assert "cannot reach Redis" in gone.stderr and "FLOWMILL_REDIS_URL" in gone.stderr
    assert "secret" not in gone.stderr  # the password is not printed


async def test_distributed_wait_in_an_api_process_hears_the_worker_at_once(
    deployment: Deployment, greeter: tuple[str, str]
) -> None:
    """``?wait=`` in a process without a worker is woken by the worker's news over
    Redis, not by reading the database (every 2 s with news, 50 ms without)."""
    await deployment.start_worker()
    wf_id, tenant = greeter
    async with open_runtime(deployment.settings(), kind="api") as rt:
        version = await rt.workflows.active_version(tenant, wf_id)
        assert version is not None
        took: list[float] = []
        for n in range(7):
            t0 = time.monotonic()
            execution_id = await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=wf_id, version=version, data={"message": n}
            )
            ex = await rt.engine.wait(execution_id, timeout=10)
            took.append(time.monotonic() - t0)
            assert ex.status.value == "succeeded"
            assert ex.output == {"said": n}
    # A 3-node run takes milliseconds; a waiter left to its poll (every 2 s while news
    # are on) takes about 2 s. The bound leaves room for a loaded machine.
    assert statistics.median(took) < 1.0, f"woken by a poll, not the news: {took}"


async def test_distributed_late_webhook_answer_in_an_api_process_hears_the_worker_at_once(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``last_node`` webhook received by an API process without a worker is
    dispatched by the request itself (its execution's step is the only job queued: no
    trigger job, no hop through a worker to start it) and woken by the worker's news
    when the execution ends, with the database fallback read set to 5 s."""
    await deployment.start_worker()
    settings = deployment.settings()
    async with open_api(
        deployment.database_url,
        worker=False,
        redis_url=settings.redis_url,
        queue_prefix=settings.queue_prefix,
        sandbox_enabled=False,
        wait_fallback_s=5.0,
    ) as api:
        assert api.runtime.engine.wait_poll_s == 5.0
        queued = spy_on_puts(api.runtime.engine.queue, monkeypatch)
        wf = await api.workflow({**GREETER, "status": "active"}, publish=False)
        hook = await unverified_webhook(api.a, wf, "t", respond=last_node(30))
        took: list[float] = []
        for n in range(5):
            t0 = time.monotonic()
            r = await api.anon.post(f"/webhooks/{hook}/none", json={"message": n})
            took.append(time.monotonic() - t0)
            assert (r.status_code, r.json()) == (200, {"said": n})
    assert queued and all(isinstance(job, StepJob) for job in queued), queued
    # Left to the fallback read, each answer would take 5 s or more.
    assert statistics.median(took) < 1.0, f"woken by a poll, not the news: {took}"
    assert max(took) < 4.0, f"woken by a poll, not the news: {took}"


async def test_distributed_start_while_redis_is_down_runs_once_it_is_back(
    postgres_url: str, tmp_path: Path, redis_prefix: str
) -> None:
    """The execution is committed before its jobs are sent: with Redis down the start
    still answers with the id (no error that would make a caller start it again), and
    the sweeper sends the jobs once Redis is back."""
    redis = PrivateRedis(tmp_path)
    deployment = Deployment(postgres_url, redis.url, redis_prefix, tmp_path)
    try:
        ids = await deployment.start_executions(GREETER, [{"message": "while down"}])
        assert len(ids) == 1
        assert (await read_records(postgres_url)).statuses == {"running": 1}
        redis.start()
        await deployment.start_worker()
        records = await wait_all_done(deployment, 1, timeout=30)
        _assert_clean(records, 1, 3)
    finally:
        deployment.stop_all()
        redis.kill()
