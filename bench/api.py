"""HTTP API benchmark: execution lists on 1,000,000 executions (PostgreSQL), and
execute-and-wait latency, over real HTTP to `flowmill serve` processes.

For each list query it prints p50/p95 through the API beside the floor measured in the
same run: the same SQL sent straight to PostgreSQL with asyncpg (no HTTP, no app).
The seed (1M rows for the measured tenant, 100k for another) is kept between runs in
database ``flowmill_bench`` (or ``$FLOWMILL_BENCH_DB``); ``--reseed`` rebuilds it.

    ./dev bench api     or    .venv/bin/python bench/api.py [--samples N] [--reseed]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from sqlalchemy.dialects import postgresql

from _util import median_ms, p95_ms, print_table
from flowmill.api.deps import encode_cursor
from flowmill.store.queries import ExecutionFilter, list_executions_query
from flowmill.testing import free_port

ADMIN_URL = os.environ.get(
    "FLOWMILL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# Several people (or helpers) benching on one server each keep their own seeded copy:
# FLOWMILL_BENCH_DB names it; a reseed drops only that one.
DB_NAME = os.environ.get("FLOWMILL_BENCH_DB", "flowmill_bench")
TENANT = "bench"
ROWS = 1_000_000
OTHER_ROWS = 100_000
ROOT = Path(__file__).resolve().parents[1]
console = Console(width=150)

# The seed's 3-node workflow. Its `function` node runs JavaScript in the sandbox, which
# is built on another branch; until it is merged the middle node is an equivalent
# mapping `transform` (same input, same output).
THREE_NODES = {
    "name": "Test Workflow",
    "status": "active",
    "nodes": [
        {"id": "trigger-1", "type": "trigger",
         "config": {"triggerType": "webhook", "actionType": "test"}},
        {"id": "process-1", "type": "transform",
         "config": {"mapping": {"result": "{{data.message}} processed"}}},
        {"id": "response-1", "type": "response",
         "config": {"template": "The processed result is: {{result}}"}},
    ],
    "edges": [{"source": "trigger-1", "target": "process-1"},
              {"source": "process-1", "target": "response-1"}],
}  # fmt: skip


def db_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


# uuid7-shaped ids in SQL: 48-bit millisecond time, version 7, a counter, variant 10xx.
# Rows are spread over 30 days, oldest first, so id order is creation order.
SEED_SQL = """
INSERT INTO workflow_executions
    (id, tenant_id, workflow_id, version, status, trigger_type, trigger, output, error,
     created_at, started_at, completed_at)
SELECT
    (lpad(to_hex(ms), 12, '0') || '7' || lpad(to_hex(g % 4096), 3, '0') ||
     substr('89ab', (g % 4) + 1, 1) || substr(md5(g::text || $3), 1, 15))::uuid,
    $3,
    ('01900000-0000-7000-8000-' || lpad(to_hex(g % 20), 12, '0'))::uuid,
    1,
    CASE WHEN r < 0.90 THEN 'succeeded' WHEN r < 0.97 THEN 'failed'
         WHEN r < 0.98 THEN 'cancelled' WHEN r < 0.99 THEN 'running' ELSE 'waiting' END,
    CASE WHEN g % 10 < 7 THEN 'webhook' WHEN g % 10 < 9 THEN 'schedule' ELSE 'manual' END,
    jsonb_build_object('type', 'webhook.order', 'data', jsonb_build_object('order', g)),
    CASE WHEN r < 0.90 THEN jsonb_build_object('ok', true, 'n', g) END,
    CASE WHEN r >= 0.90 AND r < 0.97
         THEN jsonb_build_object('type', 'HttpError', 'message', 'upstream 502') END,
    to_timestamp(ms / 1000.0), to_timestamp(ms / 1000.0),
    CASE WHEN r < 0.98 THEN to_timestamp((ms + 40 + (g % 900)) / 1000.0) END
FROM (
    SELECT g, $1::bigint + g * $2::bigint AS ms, random() AS r
    FROM generate_series(1, $4::int) AS g
) s
"""


async def seed(reseed: bool) -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DB_NAME)
        if exists and reseed:
            await admin.execute(f'DROP DATABASE "{DB_NAME}" WITH (FORCE)')
            exists = None
        if not exists:
            await admin.execute(f'CREATE DATABASE "{DB_NAME}"')
    finally:
        await admin.close()
    subprocess.run(
        [sys.executable, "-m", "flowmill", "db", "upgrade"],
        env={**os.environ, "FLOWMILL_DATABASE_URL": db_url(DB_NAME)},
        check=True,
        capture_output=True,
    )
    conn = await asyncpg.connect(db_url(DB_NAME))
    try:
        have = await conn.fetchval(
            "SELECT count(*) FROM workflow_executions WHERE tenant_id = $1", TENANT
        )
        if have >= ROWS:
            console.print(f"reusing {have:,} executions in {DB_NAME} (--reseed to rebuild)")
            return
        t0 = time.perf_counter()
        for tenant in (TENANT, "other"):
            await conn.execute(
                "INSERT INTO tenants (id, name, created_at, event_seq) "
                "VALUES ($1, $1, now(), 0) ON CONFLICT DO NOTHING",
                tenant,
            )
        start_ms = int(time.time() * 1000) - 30 * 86_400_000
        step = 30 * 86_400_000 // ROWS
        # In chunks, so one statement never holds a million rows of WAL at once.
        chunk = 100_000
        for i in range(0, ROWS, chunk):
            await conn.execute(SEED_SQL, start_ms + i * step, step, TENANT, chunk)
            console.print(f"  seeded {i + chunk:,} / {ROWS:,}", end="\r")
        await conn.execute(SEED_SQL, start_ms + 7, step * 10, "other", OTHER_ROWS)
        await conn.execute("VACUUM ANALYZE workflow_executions")
        console.print(
            f"seeded {ROWS + OTHER_ROWS:,} executions in {time.perf_counter() - t0:.0f} s"
        )
    finally:
        await conn.close()


@contextmanager
def served(env: dict[str, str], cwd: Path, *, expect_key: bool) -> Iterator[tuple[str, str]]:
    """A `flowmill serve` process; yields its URL and the key it printed (if expected)."""
    port = free_port()
    log = open(cwd / f"serve-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowmill", "serve", "--port", str(port)],
        # No pruning: the seed spreads its rows over the last 30 days, the default
        # retention, so a served bench deleted its oldest rows, and the next run's seed
        # check (fewer than ROWS) added a second million on top.
        env={
            **os.environ,
            "FLOWMILL_LOG_LEVEL": "warning",
            "FLOWMILL_RETENTION_ENABLED": "false",
            **env,
        },
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    key = ""
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # the banner
        while expect_key and not key:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("serve exited before printing its first key")
            if line.startswith("API key: "):
                key = line.split()[-1]
        for _ in range(400):
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, key
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()


def new_key(env: dict[str, str], cwd: Path, tenant: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "flowmill", "keys", "create", "--tenant", tenant],
        env={**os.environ, **env},
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def time_get(c: httpx.Client, params: dict[str, Any], samples: int) -> list[float]:
    for _ in range(10):
        c.get("/api/executions", params=params).raise_for_status()
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        r = c.get("/api/executions", params=params)
        out.append(time.perf_counter() - t0)
        r.raise_for_status()
        assert len(r.json()["items"]) == params.get("limit", 50)
    return out


async def sql_floor(f: ExecutionFilter, samples: int) -> tuple[list[float], list[str]]:
    """The page's SQL straight to PostgreSQL: what no API can beat. Also its plan."""
    compiled = list_executions_query(TENANT, f, 51).compile(dialect=postgresql.asyncpg.dialect())
    params = compiled.construct_params()
    args = [params[k] for k in compiled.positiontup or ()]
    sql = str(compiled)
    conn = await asyncpg.connect(db_url(DB_NAME))
    try:
        plan = [r[0] for r in await conn.fetch("EXPLAIN " + sql, *args)]
        stmt = await conn.prepare(sql)
        for _ in range(10):
            await stmt.fetch(*args)
        out = []
        for _ in range(samples):
            t0 = time.perf_counter()
            await stmt.fetch(*args)
            out.append(time.perf_counter() - t0)
        return out, plan
    finally:
        await conn.close()


async def deep_id(status: str | None, offset: int) -> str:
    conn = await asyncpg.connect(db_url(DB_NAME))
    try:
        where = "tenant_id = $1" + (" AND status = $3" if status else "")
        args: list[Any] = [TENANT, offset] + ([status] if status else [])
        value = await conn.fetchval(
            f"SELECT id FROM workflow_executions WHERE {where} ORDER BY id DESC OFFSET $2 LIMIT 1",
            *args,
        )
        return str(value)
    finally:
        await conn.close()


def execute_latency(url: str, key: str, samples: int) -> tuple[list[float], str]:
    """Median material for the 3-node seed workflow: the seed file itself when this
    build runs its `function` node, else the equivalent with a mapping transform."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        seed_doc = json.loads((ROOT / "examples" / "seed-webhook-test.json").read_text())
        wf = c.post("/api/workflows", json=seed_doc)
        label = "examples/seed-webhook-test.json as is"
        if wf.status_code == 422:
            wf = c.post("/api/workflows", json=THREE_NODES)
            label = "seed workflow, function node as a mapping transform (no sandbox yet)"
        wf.raise_for_status()
        path = f"/api/workflows/{wf.json()['id']}/execute"
        out = []
        for i in range(samples + 10):
            t0 = time.perf_counter()
            r = c.post(path, params={"wait": 10}, json={"input": {"message": f"m{i}"}})
            elapsed = time.perf_counter() - t0
            if r.status_code != 200 or r.json()["status"] != "succeeded":
                raise RuntimeError(f"execute failed: {r.status_code} {r.text[:300]}")
            if i >= 10:
                out.append(elapsed)
        return out, label


def index_of(plan: list[str]) -> str:
    used = sorted({m.group(1) for line in plan for m in [re.search(r"using (\w+)", line)] if m})
    return ", ".join(used) or "?"


async def main(samples: int, reseed: bool) -> None:
    os.environ.setdefault("COLUMNS", "150")  # the tables are wide; rich reads this
    await seed(reseed)
    pg_env = {"FLOWMILL_DATABASE_URL": db_url(DB_NAME)}
    rows: list[list[object]] = []
    plans: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        key = new_key(pg_env, Path(tmp), TENANT)
        deep_all = await deep_id(None, 900_000)
        deep_failed = await deep_id("failed", 60_000)
        cases = [
            ("first page", {}, ExecutionFilter()),
            ("first page, status=failed", {"status": "failed"},
             ExecutionFilter(statuses=("failed",))),
            ("deep page (row 900,000)", {"cursor": encode_cursor("execution", deep_all)},
             ExecutionFilter(before_id=deep_all)),
            ("deep page (failed row 60,000), status=failed",
             {"status": "failed", "cursor": encode_cursor("execution", deep_failed)},
             ExecutionFilter(statuses=("failed",), before_id=deep_failed)),
            ("first page, status=failed+cancelled", {"status": ["failed", "cancelled"]},
             ExecutionFilter(statuses=("failed", "cancelled"))),
        ]  # fmt: skip
        with served(pg_env, Path(tmp), expect_key=False) as (url, _):
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
                for label, params, f in cases:
                    api = time_get(c, {**params, "limit": 50}, samples)
                    floor, plan = await sql_floor(f, samples)
                    plans[label] = plan
                    rows.append(
                        [
                            label,
                            median_ms(api),
                            p95_ms(api),
                            p95_ms(floor),
                            index_of(plan),
                            "p95 <= 50 ms",
                        ]
                    )
            pg_exec, workflow_label = execute_latency(url, key, samples)
        sqlite_home = Path(tmp) / "embedded"
        sqlite_home.mkdir()
        lite_env = {"FLOWMILL_HOME": str(sqlite_home)}
        with served(lite_env, sqlite_home, expect_key=True) as (url, first_key):
            assert first_key, "the embedded server printed no key"
            lite_exec, _ = execute_latency(url, first_key, samples)
    print_table(
        f"GET /api/executions?limit=50 over HTTP, PostgreSQL holding {ROWS:,} executions of "
        f"the tenant (+{OTHER_ROWS:,} of another); {samples} requests each, keep-alive client",
        ["page", "p50 (ms)", "p95 (ms)", "floor: same SQL, p95 (ms)", "index", "target"],
        rows,
    )
    print_table(
        f"POST /api/workflows/{{id}}/execute?wait=10, end to end over HTTP, {samples} runs; "
        f"workflow: {workflow_label}",
        ["deployment", "median (ms)", "p95 (ms)"],
        [
            ["flowmill serve, SQLite (embedded default)", median_ms(lite_exec), p95_ms(lite_exec)],
            ["flowmill serve, PostgreSQL", median_ms(pg_exec), p95_ms(pg_exec)],
        ],
    )
    console.print("[dim]plan of 'deep page, status=failed':[/dim]")
    for line in plans["deep page (failed row 60,000), status=failed"]:
        console.print(f"[dim]  {line}[/dim]")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="requests per scenario")
    parser.add_argument("--reseed", action="store_true", help="rebuild the 1M-row database")
    args = parser.parse_args()
    asyncio.run(main(args.samples, args.reseed))
