"""Webhook ingress: durable acknowledgements per second, and latency at 500 req/s.

Runs the distributed layout on this machine: ``flowmill serve --no-worker`` (the API
process: verify, record in PostgreSQL, enqueue on Redis, acknowledge) and one
``flowmill worker`` dispatching the events to executions meanwhile. Each request is a
signed (``hmac`` provider, HMAC-SHA256 of the body) POST to a registered webhook; an
acknowledgement (200 ``received``) is sent only after the event's row is committed
and its job is on the queue.

Reference column, same run, same server: ``GET /health`` (no database, no queue), the
floor of what the HTTP stack itself costs here.

Load: ``wrk`` (closed loop, 2 threads, 64 connections) for throughput when it is
installed (``apt-get install wrk``), else a Python client; a Python open-loop client
for the fixed 500 req/s (latency counted from each request's scheduled send time, so
queueing is not hidden).

Needs PostgreSQL (FLOWMILL_BENCH_POSTGRES_URL, default the local server; a database
``flowmill_bench_webhooks`` is created) and Redis (FLOWMILL_BENCH_REDIS_URL, default
DB 5 of the local server, flushed). Usage: ``python bench/webhooks.py [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table
from flowmill.testing import free_port

PG = os.environ.get("FLOWMILL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("FLOWMILL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
DB_NAME = "flowmill_bench_webhooks"
SECRET = "bench-webhook-secret-0123456789"
BODY = json.dumps({"object": "page", "entry": [{"id": "1", "message": "hello"}]}).encode()
SIGNATURE = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
WORKFLOW = {
    "name": "bench webhook",
    "status": "active",
    "nodes": [
        {"id": "in", "type": "trigger", "config": {"triggerType": "webhook"}},
        {"id": "map", "type": "transform", "config": {"mapping": {"m": "{{data.object}}"}}},
    ],
    "edges": [{"source": "in", "target": "map"}],
}


def with_db(url: str, name: str) -> str:
    return urlparse(url)._replace(path=f"/{name}").geturl()


async def fresh_database(name: str = DB_NAME) -> str:
    """Drop and create database ``name`` on the bench server; its URL."""
    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_db(PG, name)


@contextlib.asynccontextmanager
async def process(args: list[str], env: dict[str, str], log: Path) -> AsyncIterator[Any]:
    with open(log, "wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flowmill", *args, env=env, stdout=out, stderr=out
        )
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def wait_up(url: str, log: Path) -> str:
    async with httpx.AsyncClient() as c:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if (await c.get(f"{url}/health")).status_code == 200:
                    break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit(f"serve did not come up; see {log}")
    await asyncio.sleep(0.3)
    match = re.search(r"API key: (\S+)", log.read_text())
    if match is None:
        raise SystemExit(f"no API key printed; see {log}")
    return match.group(1)


# --- load generators ----------------------------------------------------------------


def request_bytes(method: str, path: str, port: int, body: bytes | None) -> bytes:
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if body is not None:
        head += [
            "Content-Type: application/json",
            f"X-Signature: {SIGNATURE}",
            f"Content-Length: {len(body)}",
        ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def fixed_rate(port: int, raw: bytes, rate: int, seconds: float) -> dict[str, Any]:
    """Open loop: one request every 1/rate s, on a pool of keep-alive connections;
    latency from the scheduled send time."""
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    loop = asyncio.get_running_loop()

    async def one(due: float) -> None:
        conn = await pool.get()
        try:
            conn[1].write(raw)
            status = await read_response(conn[0])
        finally:
            pool.put_nowait(conn)
        latencies.append(loop.time() - due)
        statuses[status] = statuses.get(status, 0) + 1

    tasks = []
    start = loop.time() + 0.05
    n = int(rate * seconds)
    for i in range(n):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        _, w = pool.get_nowait()
        w.close()
    latencies.sort()
    return {
        "sent": n,
        "ok": statuses.get(200, 0),
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "statuses": statuses,
    }


async def closed_loop_python(port: int, raw: bytes, seconds: float, conns: int = 64) -> float:
    done = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < stop:
            writer.write(raw)
            if await read_response(reader) == 200:
                done += 1
        writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return done / seconds


def wrk(url: str, seconds: int, lua: Path | None) -> tuple[float, int, int]:
    """(requests/s of 2xx, total requests, non-2xx) from wrk."""
    cmd = ["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency"]
    if lua is not None:
        cmd += ["-s", str(lua)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx = int(bad.group(1)) if bad else 0
    duration = float(re.search(r"requests in ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    return (total - non2xx) / duration, total, non2xx


async def throughput(port: int, path: str, raw: bytes, post: bool, seconds: int,
                     tmp: Path) -> tuple[float, int]:  # fmt: skip
    """2xx answers per second, and how many."""
    if shutil.which("wrk"):
        lua = None
        if post:
            lua = tmp / "post.lua"
            lua.write_text(
                'wrk.method = "POST"\n'
                f"wrk.body = {json.dumps(BODY.decode())}\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["X-Signature"] = "{SIGNATURE}"\n'
            )
        rate, total, bad = await asyncio.to_thread(
            wrk, f"http://127.0.0.1:{port}{path}", seconds, lua
        )
        return rate, total - bad
    rate = await closed_loop_python(port, raw, seconds)
    return rate, int(rate * seconds)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument(
        "--no-worker", action="store_true", help="Ingress alone: no worker dispatching meanwhile."
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    url = await fresh_database()
    redis.Redis.from_url(REDIS).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="fm-bench-webhooks-"))
    env = {
        **os.environ,
        "FLOWMILL_HOME": str(tmp),
        "FLOWMILL_DATABASE_URL": url,
        "FLOWMILL_REDIS_URL": REDIS,
        "FLOWMILL_SECRET_KEYS": "bench:" + "B" * 43 + "=",
        "FLOWMILL_LOG_LEVEL": "warning",
        "FLOWMILL_SANDBOX_ENABLED": "false",
        "FLOWMILL_DB_POOL_SIZE": "10",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve_log, worker_log = tmp / "serve.log", tmp / "worker.log"
    serve_args = ["serve", "--no-worker", "--no-scheduler", "--port", str(port)]
    async with process(serve_args, env, serve_log):
        key = await wait_up(base, serve_log)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, headers=headers) as api:
            wf = (await api.post("/api/workflows", json=WORKFLOW)).json()["id"]
            hook = await api.post(
                "/api/webhooks",
                json={"workflow_id": wf, "node_id": "in", "provider": "hmac", "secret": SECRET},
            )
            hook_id = hook.json()["id"]
        path = f"/webhooks/{hook_id}/hmac"
        post_raw = request_bytes("POST", path, port, BODY)
        health_raw = request_bytes("GET", "/health", port, None)
        worker_args = ["--help"] if args.no_worker else ["worker"]
        async with process(worker_args, env, worker_log):
            await throughput(port, path, post_raw, True, 2, tmp)  # warm up
            acks_s, acks = await throughput(port, path, post_raw, True, args.seconds, tmp)
            health_s, _ = await throughput(port, "/health", health_raw, False, args.seconds, tmp)
            await asyncio.sleep(1)
            fixed = await fixed_rate(port, post_raw, args.rate, args.seconds)
            fixed_health = await fixed_rate(port, health_raw, args.rate, args.seconds)
            load_after = os.getloadavg()
            conn = await asyncpg.connect(url)
            try:
                rows = await conn.fetchval("SELECT count(*) FROM webhook_events")
                started = await conn.fetchval("SELECT count(*) FROM workflow_executions")
            finally:
                await conn.close()
    tool = "wrk -t2 -c64" if shutil.which("wrk") else "python, 64 connections"
    print_table(
        f"Webhook ingress, PostgreSQL + Redis, 1 API process"
        f"{'' if args.no_worker else ' + 1 worker dispatching'} ({os.cpu_count()} CPUs)",
        ["measure", "webhook POST (durable ack)", "GET /health (reference)", "target"],
        [
            [f"acks/s, closed loop ({tool}, {args.seconds} s)", f"{acks_s:,.0f}",
             f"{health_s:,.0f}", "≥ 2,000"],
            [f"p50 at {args.rate} req/s (ms)", f"{fixed['p50_ms']:.2f}",
             f"{fixed_health['p50_ms']:.2f}", ""],
            [f"p99 at {args.rate} req/s (ms)", f"{fixed['p99_ms']:.2f}",
             f"{fixed_health['p99_ms']:.2f}", "≤ 25"],
            [f"answers at {args.rate} req/s", str(fixed["statuses"]),
             str(fixed_health["statuses"]), ""],
        ],
    )  # fmt: skip
    print(
        f"webhook_events rows: {rows} (acknowledged in the closed loop alone: {acks}); "
        f"executions started by the worker meanwhile: {started}"
    )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; logs in {tmp}")


if __name__ == "__main__":
    asyncio.run(main())
