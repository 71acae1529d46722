"""A distributed deployment for tests: ``flowmill worker`` processes over PostgreSQL
and Redis, and the records they leave, read straight from PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from flowmill.config import Settings
from flowmill.runs import register
from flowmill.runtime import open_runtime
from flowmill.testing import NeverHappened, eventually

ROOT = Path(__file__).resolve().parents[2]

# Test-sized timings: a dead worker's job is back in wait within ~4 s, a step the queue
# lost is put back after 3 s.
FAST_ENV = {
    "FLOWMILL_SWEEP_INTERVAL_S": "0.3",
    "FLOWMILL_QUEUE_LOCK_S": "2",
    "FLOWMILL_QUEUE_STALLED_CHECK_S": "1",
    "FLOWMILL_ORPHAN_GRACE_S": "3",
    "FLOWMILL_DEAD_WORKER_AFTER_S": "5",
    "FLOWMILL_CONCURRENCY": "8",
    "FLOWMILL_SHUTDOWN_GRACE_S": "5",
    "FLOWMILL_SANDBOX_ENABLED": "false",
    "FLOWMILL_LOG_LEVEL": "warning",
}


@dataclass
class Deployment:
    """Worker processes on one database and one Redis key prefix."""

    database_url: str
    redis_url: str
    prefix: str
    logs: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # Node runs succeeded when each worker (by pid) was up: did work happen in its life?
    started_at_rows: dict[int, int] = field(default_factory=dict)

    def settings(self) -> Settings:
        """Settings of a process of this deployment (the test's own, API-like)."""
        return Settings(
            database_url=self.database_url,
            redis_url=self.redis_url,
            queue_prefix=self.prefix,
            sandbox_enabled=False,
        )

    async def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        """Start ``flowmill worker`` and wait until it takes jobs."""
        log = self.logs / f"worker-{len(self.workers)}.log"
        full_env = {
            **os.environ,
            **FAST_ENV,
            "FLOWMILL_DATABASE_URL": self.database_url,
            "FLOWMILL_REDIS_URL": self.redis_url,
            "FLOWMILL_QUEUE_PREFIX": self.prefix,
            **self.env,
            **env,
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "flowmill", "worker"],
                env=full_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.workers.append(proc)

        def running() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{log.read_text()}")
            return b"running (BullMQ" in log.read_bytes()

        await eventually(running, 30, f"worker {log.name} taking jobs")
        self.started_at_rows[proc.pid] = (await read_records(self.database_url)).succeeded_rows
        return proc

    def alive(self) -> list[subprocess.Popen[bytes]]:
        """Workers still running."""
        return [p for p in self.workers if p.poll() is None]

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no clean-up, locks and half-done steps left behind."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()

    async def terminate(self, proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
        """SIGTERM and wait for the exit code (killed after ``timeout``)."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(proc.wait, timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"worker ignored SIGTERM for {timeout} s") from None

    def stop_all(self) -> None:
        """Kill what is left (fixture tear-down)."""
        for proc in self.workers:
            self.kill(proc)

    def log_text(self) -> str:
        """Every worker's output, for failure messages."""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.logs.glob("worker-*.log"))
        )

    async def start_executions(self, document: dict[str, Any], inputs: Iterable[Any]) -> list[str]:
        """Register ``document`` and start one execution per input (jobs go to Redis)."""
        async with open_runtime(self.settings(), kind="api") as rt:
            wf_id, version, tenant = await register(rt, document, None)
            return [
                await rt.engine.start_execution(
                    tenant_id=tenant, workflow_id=wf_id, version=version, data=data
                )
                for data in inputs
            ]


@dataclass(frozen=True)
class Records:
    """What PostgreSQL holds about the executions."""

    statuses: dict[str, int]
    succeeded_twice: list[tuple[str, str]]
    completed_twice: list[tuple[str, str]]
    succeeded_rows: int

    def count(self, status: str) -> int:
        """Executions in ``status``."""
        return self.statuses.get(status, 0)

    @property
    def live(self) -> int:
        """Executions that hold a concurrency slot: started and not ended (a delay
        parks its execution as ``waiting``, and it still counts against the limit)."""
        return sum(self.count(s) for s in ("pending", "running", "waiting"))


async def read_records(database_url: str) -> Records:
    """Execution statuses and any node recorded (or announced) as succeeded twice."""
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        statuses = {
            r[0]: r[1]
            for r in await conn.fetch(
                "SELECT status, count(*) FROM workflow_executions GROUP BY status"
            )
        }
        twice = await conn.fetch(
            "SELECT execution_id, node_id FROM node_executions WHERE status = 'succeeded' "
            "GROUP BY execution_id, node_id HAVING count(*) > 1"
        )
        announced = await conn.fetch(
            "SELECT stream_id, payload->>'node_id' FROM event_store "
            "WHERE event_type = 'node.completed' "
            "GROUP BY stream_id, payload->>'node_id' HAVING count(*) > 1"
        )
        rows = await conn.fetchval("SELECT count(*) FROM node_executions WHERE status='succeeded'")
    finally:
        await conn.close()
    return Records(
        statuses=statuses,
        succeeded_twice=[(str(r[0]), r[1]) for r in twice],
        completed_twice=[(str(r[0]), r[1]) for r in announced],
        succeeded_rows=int(rows),
    )


async def wait_all_done(
    deployment: Deployment,
    total: int,
    *,
    timeout: float = 90,
    status: str = "succeeded",
) -> Records:
    """Wait until ``total`` executions are in ``status`` (or fail with the logs)."""
    seen: list[Records] = []

    async def done() -> Records | None:
        with contextlib.suppress(OSError, asyncpg.PostgresError):  # a server restarting
            seen.append(await read_records(deployment.database_url))
            if seen[-1].count(status) >= total:
                return seen[-1]
        return None

    try:
        return await eventually(done, timeout, f"{total} executions {status}")
    except NeverHappened as e:
        last = seen[-1] if seen else None
        raise NeverHappened(f"{e}; last read {last}\n{deployment.log_text()}") from None
