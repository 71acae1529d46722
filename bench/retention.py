"""Retention under load: webhook acknowledgements while ``flowmill prune`` deletes.

For each database (embedded SQLite, PostgreSQL) a ``flowmill serve`` (background
retention off) takes signed-less webhook deliveries at a fixed rate (open loop, latency
from each request's scheduled send time); the database also holds ``--executions`` old
finished executions, each with two node runs and a log line (4 rows each). The
acknowledgement p50/p99 is measured quiet, then while ``flowmill prune`` (another
process, default batches) deletes all those rows. Printed beside: rows deleted, prune
time, and for SQLite the file size before and after (incremental vacuum).

Needs PostgreSQL (FLOWMILL_BENCH_POSTGRES_URL, default the local server; a database
``flowmill_bench_retention`` is created).
Usage: ``python bench/retention.py [--executions 250000] [--rate 50] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table
from flowmill.config import Settings
from flowmill.ids import uuid7_floor
from flowmill.runtime import open_store
from flowmill.store.tables import execution_logs, node_executions, workflow_executions
from flowmill.testing import free_port, unverified_webhook
from webhooks import PG, process, read_response, wait_up, with_db

DB_NAME = "flowmill_bench_retention"
OLD_TENANT = "bench-old"
WORKFLOW = {
    "name": "bench retention",
    "status": "active",
    "nodes": [
        {"id": "in", "type": "trigger", "config": {"triggerType": "webhook"}},
        {"id": "map", "type": "transform", "config": {"mapping": {"m": "{{data.m}}"}}},
    ],
    "edges": [{"source": "in", "target": "map"}],
}
BODY = b'{"m": "hello"}'


def _old_id(ms: int, n: int) -> str:
    """A UUIDv7-shaped id of millisecond ``ms`` (unique by ``n``)."""
    floor = int(uuid7_floor(ms).replace("-", ""), 16)
    value = f"{floor | (n & 0x3FFF_FFFF_FFFF_FFFF):032x}"
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


async def fill(settings: Settings, executions: int) -> int:
    """Old finished executions of tenant ``bench-old`` (60 days ago); rows written."""
    at = datetime.now(UTC) - timedelta(days=60)
    ms = int(at.timestamp() * 1000)
    wf = _old_id(ms, 1)
    async with open_store(settings) as stores:
        await stores.workflows.ensure_tenant(OLD_TENANT)
        chunk = 2000
        for start in range(0, executions, chunk):
            ex_rows, run_rows, log_rows = [], [], []
            for i in range(start, min(executions, start + chunk)):
                eid = _old_id(ms + i // 1000, 4 * i)
                ex_rows.append({
                    "id": eid, "tenant_id": OLD_TENANT, "workflow_id": wf, "version": 1,
                    "status": "succeeded", "trigger_type": "webhook", "trigger": {"i": i},
                    "output": {"m": "x" * 200}, "created_at": at, "completed_at": at,
                })  # fmt: skip
                for k, node in ((1, "in"), (2, "map")):
                    run_rows.append({
                        "id": _old_id(ms + i // 1000, 4 * i + k), "tenant_id": OLD_TENANT,
                        "execution_id": eid, "node_id": node, "attempt": 1,
                        "status": "succeeded", "output": {"m": "x" * 200}, "created_at": at,
                    })  # fmt: skip
                log_rows.append({
                    "id": _old_id(ms + i // 1000, 4 * i + 3), "tenant_id": OLD_TENANT,
                    "execution_id": eid, "level": "info", "message": "node done",
                    "metadata": {}, "timestamp": at,
                })  # fmt: skip

            def _tx(c: Any, e: Any = ex_rows, r: Any = run_rows, lg: Any = log_rows) -> None:
                c.execute(workflow_executions.insert(), e)
                c.execute(node_executions.insert(), r)
                c.execute(execution_logs.insert(), lg)

            await stores.db.write(_tx)
    return executions * 4


async def open_loop(port: int, raw: bytes, rate: int, until: Any) -> list[float]:
    """One request every 1/rate s until ``until()`` is true; latencies (s)."""
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    loop = asyncio.get_running_loop()

    async def one(due: float) -> None:
        conn = await pool.get()
        try:
            conn[1].write(raw)
            status = await read_response(conn[0])
        finally:
            pool.put_nowait(conn)
        if status == 200:
            latencies.append(loop.time() - due)

    tasks = []
    start = loop.time() + 0.05
    i = 0
    while not until():
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
        i += 1
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()
    return latencies


def p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000


async def measure(name: str, url: str, args: argparse.Namespace, tmp: Path) -> list[Any]:
    home = tmp / name
    home.mkdir()
    env = {
        **os.environ,
        "FLOWMILL_HOME": str(home),
        "FLOWMILL_DATABASE_URL": url,
        "FLOWMILL_SECRET_KEYS": "bench:" + "B" * 43 + "=",
        "FLOWMILL_LOG_LEVEL": "warning",
        "FLOWMILL_SANDBOX_ENABLED": "false",
        "FLOWMILL_RETENTION_ENABLED": "false",
        "FLOWMILL_RETENTION_WEBHOOK_BODIES_DAYS": "0",
    }
    settings = Settings(database_url=url, home=home, secret_keys=env["FLOWMILL_SECRET_KEYS"])
    rows = await fill(settings, args.executions)
    db_file = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite") else None
    size_before = db_file.stat().st_size if db_file else None
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = home / "serve.log"
    async with process(["serve", "--port", str(port), "--no-scheduler"], env, log):
        key = await wait_up(base, log)
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}
        ) as c:
            wf = (await c.post("/api/workflows", json=WORKFLOW)).json()["id"]
            hook = await unverified_webhook(c, wf, "in")
        path = f"/webhooks/{hook}/none"
        raw = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
        ).encode() + BODY
        stop_at = time.monotonic() + 2
        await open_loop(port, raw, args.rate, lambda: time.monotonic() > stop_at)  # warm up
        stop_at = time.monotonic() + args.seconds
        quiet = await open_loop(port, raw, args.rate, lambda: time.monotonic() > stop_at)
        t0 = time.monotonic()
        with open(home / "prune.log", "wb") as out:
            prune = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "flowmill", "prune", "--quiet", "--json",
                env=env, stdout=out, stderr=out,
            )  # fmt: skip
            during = await open_loop(port, raw, args.rate, lambda: prune.returncode is not None)
            await prune.wait()
        took = time.monotonic() - t0
    size_after = db_file.stat().st_size if db_file else None
    q50, q99 = p50_p99(quiet)
    d50, d99 = p50_p99(during)
    sizes = (
        f"{size_before / 2**20:,.0f} → {size_after / 2**20:,.0f} MB"
        if size_before and size_after
        else "(autovacuum)"
    )
    return [name, f"{rows:,}", f"{took:.1f}", f"{rows / took:,.0f}", q50, q99, d50, d99,
            f"{d99 / q99:.1f}x", sizes]  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--executions", type=int, default=250_000)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--layouts", default="sqlite,postgres")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fm-bench-retention-"))
    rows = []
    for name in args.layouts.split(","):
        if name == "sqlite":
            url = f"sqlite:///{tmp}/flowmill.db"
        else:
            conn = await asyncpg.connect(PG)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{DB_NAME}"')
            finally:
                await conn.close()
            url = with_db(PG, DB_NAME)
        rows.append(await measure(name, url, args, tmp))
    print_table(
        f"Webhook acks at {args.rate} req/s while `flowmill prune` deletes old executions "
        f"({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})",
        ["database", "rows deleted", "prune (s)", "rows/s", "ack p50 quiet (ms)",
         "ack p99 quiet (ms)", "ack p50 pruning (ms)", "ack p99 pruning (ms)",
         "p99 ratio (target ≤ 2x)", "SQLite file"],
        rows,
    )  # fmt: skip
    print(f"logs in {tmp}")


if __name__ == "__main__":
    asyncio.run(main())
