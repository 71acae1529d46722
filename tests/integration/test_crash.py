"""Crash safety: a worker process SIGKILLed at random moments while many executions run.

On restart every execution completes, and no node run is recorded as succeeded twice
(nor announced as completed twice in the event store). A kill counts as "mid-work" only
when the killed worker had taken steps and work was left, so the test cannot pass on
kills that all land while workers start up.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from typing import Any

import pytest
import sqlalchemy as sa

from flowmill.config import Settings
from flowmill.runs import register
from flowmill.runtime import open_runtime
from flowmill.store.database import Database, connect
from flowmill.store.tables import event_store, node_executions, workflow_executions
from flowmill.testing import eventually
from tests.engine_support import BRANCHY

# Worker processes started and killed one after the other take minutes on a loaded
# machine (each waits for the last one to be found dead): a deadline, not a sleep.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
EXECUTIONS = 400  # enough work for several lives: a worker runs ~100 a second
KILLS = 8


def _worker(url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FLOWMILL_DATABASE_URL": url,
        "FLOWMILL_SWEEP_INTERVAL_S": "0.1",
        "FLOWMILL_CONCURRENCY": "8",
        "FLOWMILL_LOG_LEVEL": "error",
        # Heartbeats come every 2 s: a worker silent for 4 s is dead and its steps go to
        # the next one (the default 15 s would only make each life longer).
        "FLOWMILL_DEAD_WORKER_AFTER_S": "4",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flowmill", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _ready(proc: subprocess.Popen[bytes]) -> None:
    """Wait for the worker's "running" line (it is up and taking jobs)."""
    assert proc.stderr is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 60)
    assert b"running" in line, line


async def _progress(db: Database) -> tuple[int, int]:
    """(node runs succeeded, executions succeeded) so far."""
    ne, we = node_executions, workflow_executions

    def _read(conn: sa.Connection) -> tuple[int, int]:
        runs = conn.execute(sa.select(sa.func.count()).where(ne.c.status == "succeeded"))
        done = conn.execute(sa.select(sa.func.count()).where(we.c.status == "succeeded"))
        return runs.scalar_one(), done.scalar_one()

    return await db.read(_read)


async def _state(db: Database) -> dict[str, Any]:
    def _read(conn: sa.Connection) -> dict[str, Any]:
        we, ne, ev = workflow_executions, node_executions, event_store
        statuses = dict(
            conn.execute(sa.select(we.c.status, sa.func.count()).group_by(we.c.status)).all()
        )
        double = conn.execute(
            sa.select(ne.c.execution_id, ne.c.node_id, sa.func.count())
            .where(ne.c.status == "succeeded")
            .group_by(ne.c.execution_id, ne.c.node_id)
            .having(sa.func.count() > 1)
        ).all()
        completed = conn.execute(
            sa.select(ev.c.stream_id, ev.c.payload).where(ev.c.event_type == "node.completed")
        ).all()
        per_node: dict[tuple[str, str], int] = {}
        for stream, payload in completed:
            key = (stream, payload["node_id"])
            per_node[key] = per_node.get(key, 0) + 1
        succeeded_rows = conn.execute(
            sa.select(sa.func.count()).where(ne.c.status == "succeeded")
        ).scalar_one()
        return {
            "statuses": statuses,
            "double": double,
            "succeeded_rows": succeeded_rows,
            "double_events": [k for k, v in per_node.items() if v > 1],
        }

    return await db.read(_read)


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _run_crash_test(url: str) -> None:
    async with open_runtime(Settings(database_url=url)) as rt:
        wf_id, version, tenant = await register(rt, BRANCHY, None)
        for n in range(EXECUTIONS):
            await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=wf_id, version=version, data={"n": n}
            )
    rng = random.Random(int(os.environ.get("FLOWMILL_CRASH_SEED", "1234")))
    db = connect(url)
    try:
        kills_mid_work = 0
        for _ in range(KILLS):
            runs_before, _ = await _progress(db)
            proc = _worker(url)
            try:
                await _ready(proc)
                # A kill counts only once this worker has done some of the work (not
                # while it was still starting), and while some work was left.
                # Generous: the suite runs in two processes, and the other may be
                # killing workers of its own. A worker may also finish what was left
                # before it is killed: nothing more to take is progress too.
                await eventually(
                    lambda before=runs_before: _has_advanced(db, before),
                    120,
                    "the new worker taking steps (or nothing left to take)",
                )
                await asyncio.sleep(rng.uniform(0.0, 0.4))  # not a wait: the moment of the crash
            finally:
                _stop(proc, signal.SIGKILL)
                assert proc.stderr is not None
                proc.stderr.close()
            _, executions_done = await _progress(db)
            if executions_done == EXECUTIONS:
                break  # every later worker would find nothing to do
            kills_mid_work += 1
        # Killed mid-work at least a few times, or the test proves nothing.
        assert kills_mid_work >= 3, f"every execution finished before most kills ({kills_mid_work})"

        final = _worker(url)
        assert final.stderr is not None
        try:
            await _ready(final)

            async def all_done() -> bool:
                return (await _progress(db))[1] == EXECUTIONS

            await eventually(all_done, 90, f"all {EXECUTIONS} executions succeeded")
        finally:
            _stop(final, signal.SIGTERM)
        rest = final.stderr.read().decode()
        final.stderr.close()
        assert final.returncode == 0, rest
        state = await _state(db)
    finally:
        await db.close()
    assert state["statuses"] == {"succeeded": EXECUTIONS}, state["statuses"]
    assert state["double"] == []
    assert state["double_events"] == []
    # t, a, wait1, b1, b2, b3, j, c, out and one of hi/lo: 10 successes each.
    assert state["succeeded_rows"] == EXECUTIONS * 10


async def _has_advanced(db: Database, runs_before: int) -> bool:
    runs, done = await _progress(db)
    return runs > runs_before or done == EXECUTIONS


async def test_crash_sigkill_loses_nothing_and_runs_nothing_twice_sqlite(sqlite_url: str) -> None:
    await _run_crash_test(sqlite_url)


async def test_crash_sigkill_loses_nothing_and_runs_nothing_twice_postgres(
    postgres_url: str,
) -> None:
    await _run_crash_test(postgres_url)
