"""The synchronous path: answers someone is waiting on, one client at a time.

Two requests a chat reply or a form post makes, each sent by one client over one
keep-alive connection, one after the other (so the latency is the server's, not a queue):

- a webhook in ``last_node`` respond mode: webhook → one transform whose value is a
  JavaScript expression → the transform's output as the HTTP answer;
- ``POST /api/workflows/{id}/execute?wait=10`` on a two-node workflow (trigger → transform).

Each is also sent by ten clients at once, each on its own connection, for
``--seconds``: answers per second (the ``last_node`` webhook's target is ≥ 250/s).

Each runs against ``flowmill serve`` in three layouts: embedded (SQLite, in-process
queue), PostgreSQL in one process (no Redis), and PostgreSQL + Redis with an API process
(``--no-worker``) and one ``flowmill worker``. Reference row, same server, same run:
``GET /health`` (no database), the floor of the HTTP stack.

Needs PostgreSQL (FLOWMILL_BENCH_POSTGRES_URL, default the local server; a database
``flowmill_bench_sync`` is created) and Redis for the last layout
(FLOWMILL_BENCH_REDIS_URL, default DB 5, flushed).

Usage: ``python bench/sync_path.py [--requests 300] [--layouts sqlite,postgres,distributed]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table
from flowmill.testing import free_port, unverified_webhook
from webhooks import REDIS, closed_loop_python, fresh_database, process, read_response, wait_up

DB_NAME = "flowmill_bench_sync"
HOOK_WORKFLOW = {
    "name": "bench sync webhook",
    "status": "active",
    "nodes": [
        {"id": "in", "type": "trigger", "config": {"triggerType": "webhook"}},
        {
            "id": "reply",
            "type": "transform",
            "config": {"mapping": {"reply": "{{ data.message.toUpperCase() + '!' }}"}},
        },
    ],
    "edges": [{"source": "in", "target": "reply"}],
}
EXEC_WORKFLOW = {
    "name": "bench sync execute",
    "status": "active",
    "nodes": [
        {"id": "in", "type": "trigger"},
        {"id": "map", "type": "transform", "config": {"mapping": {"m": "{{message}}"}}},
    ],
    "edges": [{"source": "in", "target": "map"}],
}
HOOK_BODY = json.dumps({"message": "hello"}).encode()
EXEC_BODY = json.dumps({"input": {"message": "hello"}}).encode()


def raw_request(method: str, path: str, port: int, body: bytes | None, key: str | None) -> bytes:
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if key is not None:
        head.append(f"Authorization: Bearer {key}")
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


async def one_client(port: int, raw: bytes, n: int, expect: int) -> list[float]:
    """``n`` requests in sequence on one connection; their latencies (s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    samples = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            writer.write(raw)
            status = await read_response(reader)
            samples.append(time.perf_counter() - t0)
            if status != expect:
                raise SystemExit(f"answer {status}, expected {expect}")
    finally:
        writer.close()
    return samples


def p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000


@contextlib.asynccontextmanager
async def layout(name: str, tmp: Path, port: int) -> AsyncIterator[Path]:
    """Run the processes of one layout; yields the API's log."""
    env = {
        **os.environ,
        "FLOWMILL_HOME": str(tmp / name),
        "FLOWMILL_SECRET_KEYS": "bench:" + "B" * 43 + "=",
        "FLOWMILL_LOG_LEVEL": "warning",
    }
    (tmp / name).mkdir()
    serve = ["serve", "--port", str(port), "--no-scheduler"]
    if name == "sqlite":
        env["FLOWMILL_DATABASE_URL"] = f"sqlite:///{tmp / name}/flowmill.db"
    else:
        env["FLOWMILL_DATABASE_URL"] = await fresh_database(DB_NAME)
    if name == "distributed":
        redis.Redis.from_url(REDIS).flushdb()
        env["FLOWMILL_REDIS_URL"] = REDIS
        serve.append("--no-worker")
    log = tmp / name / "serve.log"
    async with process(serve, env, log):
        if name != "distributed":
            yield log
            return
        async with process(["worker"], env, tmp / name / "worker.log"):
            yield log


async def measure(
    name: str, n: int, seconds: float, tmp: Path
) -> dict[str, tuple[float, float, float]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with layout(name, tmp, port) as log:
        key = await wait_up(base, log)
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}
        ) as api:
            hook_wf = (await api.post("/api/workflows", json=HOOK_WORKFLOW)).json()["id"]
            respond = {"mode": "last_node", "timeout_s": 10}
            hook = await unverified_webhook(api, hook_wf, "in", respond=respond)
            exec_wf = (await api.post("/api/workflows", json=EXEC_WORKFLOW)).json()["id"]
        hook_raw = raw_request("POST", f"/webhooks/{hook}/none", port, HOOK_BODY, None)
        exec_path = f"/api/workflows/{exec_wf}/execute?wait=10"
        exec_raw = raw_request("POST", exec_path, port, EXEC_BODY, key)
        health_raw = raw_request("GET", "/health", port, None, None)
        for raw, expect in ((hook_raw, 200), (exec_raw, 200), (health_raw, 200)):
            await one_client(port, raw, 20, expect)  # warm up (sandbox, caches, pools)
        out = {}
        for key, raw in (("hook", hook_raw), ("exec", exec_raw), ("health", health_raw)):
            p50, p99 = p50_p99(await one_client(port, raw, n, 200))
            rate = await closed_loop_python(port, raw, seconds, conns=10)
            out[key] = (p50, p99, rate)
        return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--layouts", default="sqlite,postgres,distributed")
    parser.add_argument("--seconds", type=float, default=5.0, help="of the 10-client load")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fm-bench-sync-"))
    names = {
        "sqlite": "embedded SQLite",
        "postgres": "PostgreSQL, one process",
        "distributed": "PG + Redis, API + worker",
    }
    rows: list[list[Any]] = []
    for name in args.layouts.split(","):
        r = await measure(name, args.requests, args.seconds, tmp)
        load = os.getloadavg()[0]
        for key, label, target in (
            (
                "hook",
                "webhook → JS transform → answer (last_node)",
                "p50 ≤ 6 (10 API+worker); ≥ 250/s",
            ),
            ("exec", "execute?wait, 2 nodes", "p50 ≤ 4 SQLite, ≤ 8 PG"),
            ("health", "GET /health (reference)", ""),
        ):
            p50, p99, rate = r[key]
            rows.append([names[name], label, p50, p99, f"{rate:,.0f}", target, f"{load:.2f}"])
    print_table(
        f"Synchronous path: one client, {args.requests} requests in sequence; ten clients "
        f"for {args.seconds:g} s "
        f"({os.cpu_count()} CPUs)",
        [
            "layout",
            "request",
            "p50 (ms)",
            "p99 (ms)",
            "answers/s, 10 clients",
            "target",
            "load avg",
        ],
        rows,
    )
    print(f"logs in {tmp}")


if __name__ == "__main__":
    asyncio.run(main())
