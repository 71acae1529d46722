"""Crash safety of loops and waits: workers SIGKILLed at random moments while parallel
loops of 200 items and waits for signals run (PostgreSQL + Redis, ``flowmill worker``
processes). Every execution completes; every iteration is one child execution that
succeeded once; no node run is recorded (or announced) as succeeded twice."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from flowmill.config import Settings
from flowmill.runs import register
from flowmill.runtime import open_runtime
from flowmill.store.database import connect
from flowmill.store.tables import node_executions, workflow_executions
from flowmill.testing import eventually
from tests.integration.distributed_support import Deployment, read_records, wait_all_done

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
LOOPS, ITEMS, WAITS = 3, 200, 10

LOOP: dict[str, Any] = {
    "name": "crash loop",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {
            "id": "each",
            "type": "loop",
            "config": {
                "count": ITEMS,
                "mode": "parallel",
                "concurrency": 20,
                "body": {
                    "nodes": [
                        # Long enough that the loops outlast most of the six kills
                        # (10 rounds of 20 at a time: 8 s at least). With 20 ms they
                        # ended before the third kill once loop children started in
                        # batches.
                        {"id": "nap", "type": "delay", "config": {"ms": 800}},
                        {
                            "id": "sq",
                            "type": "transform",
                            "config": {"mapping": {"i": "{{index}}"}},
                        },
                    ],
                    "edges": [{"source": "nap", "target": "sq"}],
                },
            },
        },
        {
            "id": "n",
            "type": "transform",
            "config": {"mapping": {"last": f"{{{{input[{ITEMS - 1}].i}}}}"}},
        },
    ],
    "edges": [{"source": "t", "target": "each"}, {"source": "each", "target": "n"}],
}
WAIT: dict[str, Any] = {
    "name": "crash wait",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "w", "type": "wait", "config": {"signal": "go"}},
    ],
    "edges": [{"source": "t", "target": "w"}],
}


@pytest.fixture
def deployment(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> Iterator[Deployment]:
    d = Deployment(postgres_url, redis_url, redis_prefix, tmp_path)
    d.env["FLOWMILL_CONTROL_POLL_S"] = "2"
    yield d
    d.stop_all()


async def _iterations(url: str) -> list[tuple[str, int, str, int]]:
    """(parent, iteration, status, rows) of every loop child."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT parent_execution_id, iteration, min(status), count(*) "
            "FROM workflow_executions WHERE parent_execution_id IS NOT NULL "
            "GROUP BY parent_execution_id, iteration"
        )
    finally:
        await conn.close()
    return [(str(r[0]), r[1], r[2], r[3]) for r in rows]


async def test_loop_crash_sigkill_mid_parallel_loops_and_waits(deployment: Deployment) -> None:
    rng = random.Random(int(os.environ.get("FLOWMILL_CRASH_SEED", "2468")))
    for _ in range(2):
        await deployment.start_worker()
    async with open_runtime(deployment.settings(), kind="api") as rt:
        loop_id, version, tenant = await register(rt, LOOP, None)
        wait_id, wait_version, _ = await register(rt, WAIT, None)
        loops = [
            await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=loop_id, version=version, data={}
            )
            for _ in range(LOOPS)
        ]
        waits = [
            await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=wait_id, version=wait_version, data={}
            )
            for _ in range(WAITS)
        ]
        killed_mid_work = 0
        for k in range(6):
            await asyncio.sleep(rng.uniform(0.3, 1.2))  # not a wait: the moment of the crash
            victim = rng.choice(deployment.alive())
            deployment.kill(victim)
            records = await read_records(deployment.database_url)
            if records.count("succeeded") < LOOPS * ITEMS:
                killed_mid_work += 1
            # Half the signals go out while a worker is down, half once it is back.
            for execution_id in waits[k * 2 : k * 2 + 1]:
                assert await rt.engine.signals.send(tenant, execution_id, "go", {"k": k})
            await deployment.start_worker()
            for execution_id in waits[k * 2 + 1 : k * 2 + 2]:
                assert await rt.engine.signals.send(tenant, execution_id, "go", {"k": k})
        assert killed_mid_work >= 3, f"the loops finished before most kills ({killed_mid_work})"
        total = LOOPS + WAITS + LOOPS * ITEMS
        records = await wait_all_done(deployment, total, timeout=240)
        for execution_id in loops:
            ex = await rt.engine.wait(execution_id, timeout=5)
            assert ex.output == {"last": ITEMS - 1}
        for execution_id in waits:
            ex = await rt.engine.wait(execution_id, timeout=5)
            assert ex.output is not None and "k" in ex.output
    assert records.statuses == {"succeeded": total}, records.statuses
    assert records.succeeded_twice == []
    assert records.completed_twice == []
    iterations = await _iterations(deployment.database_url)
    assert len(iterations) == LOOPS * ITEMS
    assert {(s, n) for _, _, s, n in iterations} == {("succeeded", 1)}


def _embedded_worker(url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FLOWMILL_DATABASE_URL": url,
        "FLOWMILL_SWEEP_INTERVAL_S": "0.1",
        "FLOWMILL_CONCURRENCY": "8",
        "FLOWMILL_LOG_LEVEL": "error",
        "FLOWMILL_DEAD_WORKER_AFTER_S": "4",
        # Signals sent from this test's process cannot wake the worker's in-process
        # queue: the worker finds them by its poll.
        "FLOWMILL_CONTROL_POLL_S": "1",
        "FLOWMILL_SANDBOX_ENABLED": "false",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flowmill", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _started(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stderr is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 60)
    assert b"running" in line, line


def _killed(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


async def _sqlite_state(url: str) -> tuple[dict[str, int], list[Any], list[Any]]:
    db = connect(url)
    we, ne = workflow_executions, node_executions
    try:

        def _read(conn: sa.Connection) -> tuple[dict[str, int], list[Any], list[Any]]:
            statuses = dict(
                conn.execute(sa.select(we.c.status, sa.func.count()).group_by(we.c.status)).all()
            )
            twice = conn.execute(
                sa.select(ne.c.execution_id, ne.c.node_id)
                .where(ne.c.status == "succeeded")
                .group_by(ne.c.execution_id, ne.c.node_id)
                .having(sa.func.count() > 1)
            ).all()
            iterations = conn.execute(
                sa.select(we.c.parent_execution_id, we.c.iteration, sa.func.count())
                .where(we.c.parent_execution_id.is_not(None))
                .group_by(we.c.parent_execution_id, we.c.iteration)
            ).all()
            return statuses, list(twice), list(iterations)

        return await db.read(_read)
    finally:
        await db.close()


async def test_loop_crash_sigkill_of_embedded_workers_on_sqlite(sqlite_url: str) -> None:
    loops, items, waits = 2, 100, 4
    doc = json.loads(json.dumps(LOOP))
    doc["name"] = "embedded crash loop"
    doc["nodes"][1]["config"]["count"] = items
    doc["nodes"][2]["config"]["mapping"]["last"] = f"{{{{input[{items - 1}].i}}}}"
    rng = random.Random(int(os.environ.get("FLOWMILL_CRASH_SEED", "1357")))
    async with open_runtime(Settings(database_url=sqlite_url, sandbox_enabled=False)) as rt:
        loop_id, version, tenant = await register(rt, doc, None)
        wait_id, wait_version, _ = await register(rt, WAIT, None)
        loop_ids = [
            await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=loop_id, version=version, data={}
            )
            for _ in range(loops)
        ]
        wait_ids = [
            await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=wait_id, version=wait_version, data={}
            )
            for _ in range(waits)
        ]
        total = loops + waits + loops * items
        mid_work = 0
        for k in range(4):
            proc = _embedded_worker(sqlite_url)
            try:
                await _started(proc)
                await asyncio.sleep(rng.uniform(0.5, 1.5))  # not a wait: the moment of the crash
            finally:
                _killed(proc)
            statuses, _, _ = await _sqlite_state(sqlite_url)
            mid_work += 0 < statuses.get("succeeded", 0) < total
            assert await rt.engine.signals.send(tenant, wait_ids[k], "go", {"k": k})
        assert mid_work >= 2, f"killed mid-work only {mid_work} times"
        final = _embedded_worker(sqlite_url)
        try:
            await _started(final)

            async def all_done() -> bool:
                statuses, _, _ = await _sqlite_state(sqlite_url)
                return statuses.get("succeeded", 0) == total

            await eventually(all_done, 180, f"all {total} executions succeeded")
        finally:
            _killed(final)
        for execution_id in loop_ids:
            ex = await rt.executions.get_execution(execution_id)
            assert ex is not None and ex.output == {"last": items - 1}
    statuses, twice, iterations = await _sqlite_state(sqlite_url)
    assert statuses == {"succeeded": total}
    assert twice == []
    assert len(iterations) == loops * items
    assert {n for _, _, n in iterations} == {1}
