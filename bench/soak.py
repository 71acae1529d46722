"""Soak: a steady mixed load on the distributed layout for a long time.

``flowmill serve --no-worker`` (the API), two ``flowmill worker`` processes and
``flowmill scheduler`` on PostgreSQL and Redis. For ``--minutes`` minutes a load
generator sends, at fixed rates:

- webhooks to the seed route of a workflow with a JavaScript code node;
- executions of a workflow with a durable delay, a fan-out and join, and an HTTP step
  that fails one call in three (so retries happen all the time);
- executions of a workflow that fails on purpose (a failure path kept busy too);
- one execution a second with ``?wait=30``: the end-to-end latency.

Every minute it prints throughput, latency percentiles (acknowledgement and end to end)
and the resident memory (RSS) of every process, its sandbox children included. At the
end it checks that every execution started ended, none twice, nothing recorded as
succeeded twice, and prints whether RSS stayed flat (within 10 % after warm-up) and the
p99 did not drift.

    .venv/bin/python bench/soak.py [--minutes 30] [--warmup 3] [--webhooks 20] [--executes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from _util import print_table

PG = os.environ.get("FLOWMILL_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("FLOWMILL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BIN = Path(sys.executable).with_name("flowmill")
TENANT = "soak"


# --- the workflows -------------------------------------------------------------------


def webhook_workflow() -> dict[str, Any]:
    code = "return { seen: input.data.n, doubled: input.data.n * 2 };"
    return {
        "name": "soak-webhook",
        "status": "active",
        "nodes": [
            {"id": "hook", "type": "trigger",
             "config": {"triggerType": "webhook", "actionType": "soak"}},
            {"id": "code", "type": "function", "config": {"code": code}},
        ],
        "edges": [{"source": "hook", "target": "code"}],
    }  # fmt: skip


def busy_workflow(port: int) -> dict[str, Any]:
    return {
        "name": "soak-busy",
        "status": "active",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "wait", "type": "delay", "config": {"ms": 200}},
            {"id": "a", "type": "transform", "config": {"mapping": {"a": "{{data.n}}"}}},
            {"id": "b", "type": "function", "config": {"code": "return {b: input.data.n};"}},
            {"id": "flaky", "type": "http_request",
             "config": {"url": f"http://127.0.0.1:{port}/flaky?n={{{{trigger.data.n}}}}"},
             "retry": {"max_attempts": 5, "backoff_ms": 100}},
            {"id": "join", "type": "merge"},
        ],
        "edges": [
            {"source": "t", "target": "wait"}, {"source": "wait", "target": "a"},
            {"source": "wait", "target": "b"}, {"source": "wait", "target": "flaky"},
            {"source": "a", "target": "join"}, {"source": "b", "target": "join"},
            {"source": "flaky", "target": "join"},
        ],
    }  # fmt: skip


FAILING = {
    "name": "soak-failing",
    "status": "active",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "boom", "type": "fail", "config": {"message": "failing on purpose"}},
    ],
    "edges": [{"source": "t", "target": "boom"}],
}


class _Flaky(BaseHTTPRequestHandler):
    """Fails one call in three with a 503 (a retriable error)."""

    calls = itertools.count()

    def do_GET(self) -> None:
        fail = next(self.calls) % 3 == 0
        self.send_response(503 if fail else 200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        return


# --- processes -----------------------------------------------------------------------


@dataclass
class Deployment:
    env: dict[str, str]
    home: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    url: str = ""

    def start(self, name: str, *args: str) -> None:
        log = (self.home / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [str(BIN), *args], env=self.env, cwd=self.home, stdout=log, stderr=log
        )

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of each process and its descendants (sandbox workers)."""
        return {name: _tree_rss(p.pid) / 1024 for name, p in self.procs.items()}

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def _tree_rss(pid: int) -> int:
    """RSS in KiB of ``pid`` and every process below it."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except (OSError, StopIteration, ValueError):
            continue
    return total


@contextlib.asynccontextmanager
async def database() -> AsyncIterator[str]:
    name = f"flowmill_soak_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- load ----------------------------------------------------------------------------


@dataclass
class Minute:
    acks: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    errors: int = 0
    started: int = 0


async def _at_rate(rate: float, until: float, fn: Any) -> None:
    """Call ``fn`` ``rate`` times a second until ``until`` (without waiting for it)."""
    tasks: set[asyncio.Task[None]] = set()
    interval, nxt = 1.0 / rate, time.monotonic()
    while nxt < until:
        task = asyncio.create_task(fn())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        nxt += interval
        await asyncio.sleep(max(0.0, nxt - time.monotonic()))
    await asyncio.gather(*tasks, return_exceptions=True)


def _p(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0] * 1000 if samples else float("nan")
    return statistics.quantiles(samples, n=100)[q - 1] * 1000


async def main(args: argparse.Namespace) -> None:
    flaky = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=flaky.serve_forever, daemon=True).start()
    port = _free_port()
    async with database() as db_url:
        home = Path(tempfile.mkdtemp(prefix="flowmill-soak-"))
        env = {
            **os.environ,
            "FLOWMILL_DATABASE_URL": db_url,
            "FLOWMILL_REDIS_URL": REDIS,
            "FLOWMILL_QUEUE_PREFIX": f"soak-{uuid.uuid4().hex[:8]}",
            "FLOWMILL_HOME": str(home),
            "FLOWMILL_SECRET_KEYS": "k1:" + "A" * 43 + "=",
            "FLOWMILL_LOG_LEVEL": "warning",
            "FLOWMILL_HTTP_ALLOW_HOSTS": "127.0.0.1",
        }
        dep = Deployment(env, home)
        key = subprocess.run(
            [str(BIN), "tenants", "create", "Soak", "--id", TENANT],
            env=env, cwd=home, capture_output=True, check=True,
        )  # fmt: skip
        key = subprocess.run(
            [str(BIN), "keys", "create", "--tenant", TENANT],
            env=env, cwd=home, capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        dep.start("api", "serve", "--no-worker", "--port", str(port))
        dep.start("worker-1", "worker")
        dep.start("worker-2", "worker")
        dep.start("scheduler", "scheduler")
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        try:
            await _run(args, dep, base, headers, flaky.server_address[1], db_url)
        finally:
            dep.stop()
            flaky.shutdown()


async def _run(
    args: argparse.Namespace,
    dep: Deployment,
    base: str,
    headers: dict[str, str],
    flaky_port: int,
    db_url: str,
) -> None:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as c:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                if (await c.get("/ready")).status_code == 200:
                    break
            await asyncio.sleep(0.25)
        busy = (await c.post("/api/workflows", json=busy_workflow(flaky_port))).json()["id"]
        failing = (await c.post("/api/workflows", json=FAILING)).json()["id"]
        (await c.post("/api/workflows", json=webhook_workflow())).raise_for_status()
        minutes: list[Minute] = []
        rss: list[dict[str, float]] = []
        counter = itertools.count()
        sent = {"webhooks": 0, "busy": 0, "failing": 0}

        def now_minute() -> Minute:
            return minutes[-1]

        async def webhook() -> None:
            n = next(counter)
            t = time.perf_counter()
            try:
                r = await c.post(f"/webhooks/{TENANT}/webhook/soak", json={"n": n})
                r.raise_for_status()
                now_minute().acks.append(time.perf_counter() - t)
                sent["webhooks"] += 1
            except httpx.HTTPError:
                now_minute().errors += 1

        async def execute() -> None:
            n = next(counter)
            fail = n % 10 == 0
            wf = failing if fail else busy
            t = time.perf_counter()
            try:
                r = await c.post(f"/api/workflows/{wf}/execute", json={"input": {"n": n}})
                r.raise_for_status()
                now_minute().acks.append(time.perf_counter() - t)
                sent["failing" if fail else "busy"] += 1
            except httpx.HTTPError:
                now_minute().errors += 1

        async def waited() -> None:
            n = next(counter)
            t = time.perf_counter()
            try:
                r = await c.post(
                    f"/api/workflows/{busy}/execute", params={"wait": 30}, json={"input": {"n": n}}
                )
                r.raise_for_status()
                if r.status_code == 200:
                    now_minute().e2e.append(time.perf_counter() - t)
                sent["busy"] += 1
            except httpx.HTTPError:
                now_minute().errors += 1

        end = time.monotonic() + args.minutes * 60
        load = [
            asyncio.create_task(_at_rate(args.webhooks, end, webhook)),
            asyncio.create_task(_at_rate(args.executes, end, execute)),
            asyncio.create_task(_at_rate(1, end, waited)),
        ]
        for m in range(args.minutes):
            minutes.append(Minute())
            await asyncio.sleep(max(0.0, end - (args.minutes - m - 1) * 60 - time.monotonic()))
            rss.append(dep.rss_mb())
            x = minutes[-1]
            print(
                f"min {m + 1:>3}: ok {len(x.acks):>5} err {x.errors:>3} "
                f"ack p50 {_p(x.acks, 50):6.1f} p99 {_p(x.acks, 99):7.1f} ms  "
                f"e2e p50 {_p(x.e2e, 50):6.1f} p99 {_p(x.e2e, 99):7.1f} ms  "
                + " ".join(f"{k} {v:6.1f}MB" for k, v in rss[-1].items()),
                flush=True,
            )
        await asyncio.gather(*load)
        await _report(args, minutes, rss, sent, db_url)


async def _report(
    args: argparse.Namespace,
    minutes: list[Minute],
    rss: list[dict[str, float]],
    sent: dict[str, int],
    db_url: str,
) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        for _ in range(120):  # let the last executions end
            live = await conn.fetchval(
                "SELECT count(*) FROM workflow_executions "
                "WHERE status IN ('pending','queued','running','waiting')"
            )
            if live == 0:
                break
            await asyncio.sleep(1)
        by_status = dict(
            await conn.fetch("SELECT status, count(*) FROM workflow_executions GROUP BY 1")
        )
        twice = await conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM node_executions WHERE status='succeeded' "
            "GROUP BY execution_id, node_id HAVING count(*) > 1) x"
        )
        received = await conn.fetchval("SELECT count(*) FROM webhook_events")
        not_dispatched = await conn.fetchval(
            "SELECT count(*) FROM webhook_events WHERE status = 'received'"
        )
    finally:
        await conn.close()
    started = sent["busy"] + sent["failing"] + sent["webhooks"]
    total = sum(by_status.values())
    warm = rss[args.warmup :] or rss
    rows = []
    for name in rss[0]:
        values = [r[name] for r in warm]
        spread = (max(values) - min(values)) / min(values) if min(values) else 0.0
        rows.append([name, f"{values[0]:.1f}", f"{values[-1]:.1f}", f"{spread * 100:.1f} %",
                     "flat" if spread <= 0.10 else "GREW"])  # fmt: skip
    p99s = [_p(m.acks, 99) for m in minutes[args.warmup :]] or [float("nan")]
    e2e99 = [_p(m.e2e, 99) for m in minutes[args.warmup :]] or [float("nan")]
    print_table(
        f"Soak: {args.minutes} min, {args.webhooks} webhooks/s + {args.executes} executions/s "
        "+ 1 waited/s; RSS after warm-up (process and its sandbox children)",
        ["process", "RSS first (MB)", "RSS last (MB)", "spread", "within 10 %"],
        rows,
    )
    print_table(
        "Soak: correctness and drift",
        ["check", "value"],
        [
            ["requests accepted (webhooks + executes)", started],
            ["executions recorded", total],
            ["executions by status", dict(sorted(by_status.items()))],
            ["still live after the load", sum(by_status.get(s, 0) for s in
                                              ("pending", "queued", "running", "waiting"))],
            ["webhook events recorded / left undispatched", f"{received} / {not_dispatched}"],
            ["nodes recorded as succeeded twice", twice],
            ["ack p99 per minute, first .. last (ms)", f"{p99s[0]:.1f} .. {p99s[-1]:.1f}"],
            ["end-to-end p99 per minute, first .. last (ms)", f"{e2e99[0]:.1f} .. {e2e99[-1]:.1f}"],
        ],
    )  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3, help="minutes left out of the checks")
    parser.add_argument("--webhooks", type=float, default=20.0, help="webhooks per second")
    parser.add_argument("--executes", type=float, default=10.0, help="executions per second")
    asyncio.run(main(parser.parse_args()))
