"""Prometheus metrics scraped and parsed with prometheus-client's own parser: the API's
``/metrics`` after a random workload agrees with the database; ``flowmill worker`` and
``flowmill scheduler`` serve ``/health``, ``/ready`` and ``/metrics`` on their port."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from flowmill.projections.projector import Projector
from flowmill.projections.service import ProjectorOptions, ProjectorService
from flowmill.store.leases import LeaseStore
from flowmill.store.tables import node_executions, webhook_events, workflow_executions
from tests.api_support import THREE_NODES, open_api
from tests.integration.distributed_support import FAST_ENV, Deployment, wait_all_done
from tests.integration.http_servers import LoopbackServer, Servers, free_port
from tests.readside_support import prepare_no_match, run_workload, settle
from tests.webhook_support import KEYS

ROOT = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
# node ids of the workload's workflows, by node type
NODE_TYPES = {
    "process-1": "transform", "response-1": "response", "a": "transform", "boom": "fail",
    "call": "http_request", "left": "transform", "bad": "fail", "join": "transform",
}  # fmt: skip


@pytest.fixture
def flaky() -> Iterator[LoopbackServer]:
    servers = Servers()
    yield servers.start("flaky")
    servers.stop()


def parse(text: str) -> Samples:
    """Every sample: (name, sorted labels) -> value, through prometheus-client's parser."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


async def _db_figures(db: Any) -> dict[str, Any]:
    we, ne, wh = workflow_executions, node_executions, webhook_events

    def _read(conn: sa.Connection) -> dict[str, Any]:
        started = conn.execute(sa.select(sa.func.count(we.c.started_at))).scalar_one()
        ended = dict(
            conn.execute(sa.select(we.c.status, sa.func.count()).group_by(we.c.status)).all()
        )
        calls = dict(
            conn.execute(sa.select(wh.c.status, sa.func.count()).group_by(wh.c.status)).all()
        )
        runs = conn.execute(
            sa.select(ne.c.node_id, ne.c.status, ne.c.state).where(
                ne.c.status.in_(("succeeded", "failed"))
            )
        ).all()
        return {"started": started, "ended": ended, "calls": calls, "runs": runs}

    return await db.read(_read)


async def test_metrics_api_counters_agree_with_the_database(
    database_url: str, flaky: LoopbackServer
) -> None:
    settings = {
        "secret_keys": KEYS,
        "sandbox_enabled": False,
        "http_allow_cidrs": ["127.0.0.1/32"],
        "webhook_cache_s": 0,
    }
    async with open_api(database_url, worker=False, **settings) as api:
        metrics = api.runtime.metrics
        assert metrics is not None
        await prepare_no_match(api)
        service = ProjectorService(
            Projector(api.runtime.db),
            LeaseStore(api.runtime.db),
            ProjectorOptions(interval_s=0.05, lag_every_s=0),
            on_lag=metrics.projection_lag,
        )
        async with service.running(), api.runtime.engine.running():
            workload = await run_workload(api, random.Random(7), flaky.url("").rstrip("/"), 20)
            await settle(api, workload)
            await Projector(api.runtime.db).catch_up()
            await service.round()  # measures the lag once more: nothing left
        r = await api.anon.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        samples = parse(r.text)
        db = await _db_figures(api.runtime.db)

        assert total(samples, "flowmill_executions_started_total") == db["started"] > 0
        for status in ("succeeded", "failed", "cancelled"):
            assert total(samples, "flowmill_executions_ended_total", status=status) == db[
                "ended"
            ].get(status, 0), status
        calls = db["calls"]
        for status in ("processed", "rejected", "duplicate", "no_match"):
            assert (
                total(samples, "flowmill_webhook_events_total", status=status) == calls[status] > 0
            ), status
        recorded = sum(n for s, n in calls.items() if s not in ("rejected", "duplicate"))
        assert total(samples, "flowmill_webhook_events_total", status="received") == recorded
        assert total(samples, "flowmill_webhook_events_total", provider="stripe") == (
            2 * recorded + calls["rejected"] + calls["duplicate"]
        )

        # Attempts timed by the node middleware, by node type and outcome.
        expected: dict[tuple[str, str], int] = {}
        for node_id, status, state in db["runs"]:
            if node_id in NODE_TYPES and not (state or {}).get("copied_from"):
                key = (NODE_TYPES[node_id], status)
                expected[key] = expected.get(key, 0) + 1
        for (node_type, status), n in expected.items():
            timed = total(
                samples, "flowmill_step_duration_seconds_count", node_type=node_type, outcome=status
            )
            assert timed == n, (node_type, status, timed, n)

        assert total(samples, "flowmill_store_commit_seconds_count", operation="checkpoint") > 0
        assert total(samples, "flowmill_store_commit_seconds_count", operation="start") > 0
        assert total(samples, "flowmill_queue_wait_seconds_count", queue="flowmill-node") > 0
        assert total(samples, "flowmill_projection_lag_events") == 0
        assert ("flowmill_projection_lag_events", (("projection", "node_performance"),)) in samples
        executes = total(
            samples,
            "flowmill_http_request_duration_seconds_count",
            route="/api/workflows/{workflow_id}/execute",
        )
        assert executes > 0  # route templates, not raw paths


async def test_metrics_token_and_request_ids(sqlite_url: str) -> None:
    async with open_api(sqlite_url, metrics_token="s3cret-token") as api:
        assert (await api.anon.get("/metrics")).status_code == 401
        ok = await api.anon.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200 and "flowmill_executions_started_total" in ok.text

        mine = await api.a.get("/api/workflows", headers={"X-Request-ID": "req-42.a:b"})
        assert mine.headers["x-request-id"] == "req-42.a:b"
        made = await api.a.get("/api/workflows", headers={"X-Request-ID": "no spaces <>"})
        assert made.headers["x-request-id"] not in ("", "no spaces <>")
        assert len(made.headers["x-request-id"]) == 36
        assert (await api.anon.get("/health")).headers["x-request-id"]
    async with open_api(sqlite_url, metrics_enabled=False) as api:
        assert (await api.anon.get("/metrics")).status_code == 404


async def _get_until_up(url: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            try:
                return await client.get(url)
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"{url} never answered"
                await asyncio.sleep(0.1)  # not a wait: a poll that fails at its deadline


@pytest.mark.redis
async def test_metrics_port_of_worker_and_scheduler(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    deployment = Deployment(postgres_url, redis_url, redis_prefix, tmp_path)
    worker_port, scheduler_port = free_port(), free_port()
    env = {
        **os.environ, **FAST_ENV,
        "FLOWMILL_DATABASE_URL": postgres_url, "FLOWMILL_REDIS_URL": redis_url,
        "FLOWMILL_QUEUE_PREFIX": redis_prefix, "FLOWMILL_PROJECTOR_INTERVAL_S": "0.2",
    }  # fmt: skip
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "flowmill", "scheduler", "--metrics-port", str(scheduler_port)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await deployment.start_worker(FLOWMILL_METRICS_PORT=str(worker_port))
        n = 6
        await deployment.start_executions(THREE_NODES, [{"message": str(i)} for i in range(n)])
        await wait_all_done(deployment, n)

        base = f"http://127.0.0.1:{worker_port}"
        health = await _get_until_up(f"{base}/health")
        assert health.json() == {"status": "ok", "kind": "worker"}
        ready = await _get_until_up(f"{base}/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": {"ok": True}, "redis": {"ok": True}}
        worker = parse((await _get_until_up(f"{base}/metrics")).text)
        # The test process started the executions; the worker ran every other step.
        assert total(worker, "flowmill_executions_ended_total", status="succeeded") == n
        assert total(worker, "flowmill_queue_wait_seconds_count", queue="flowmill-node") >= n
        assert total(worker, "flowmill_step_duration_seconds_count", node_type="transform") == n
        assert total(worker, "flowmill_store_commit_seconds_count", operation="checkpoint") >= n
        assert ("flowmill_queue_depth", (("queue", "flowmill-node"), ("state", "wait"))) in worker
        assert total(worker, "flowmill_event_loop_lag_seconds_count") > 0

        sbase = f"http://127.0.0.1:{scheduler_port}"
        assert (await _get_until_up(f"{sbase}/health")).json()["kind"] == "scheduler"
        deadline = time.monotonic() + 30
        while True:  # the scheduler's projector replica catches up and reports it
            sched = parse((await _get_until_up(f"{sbase}/metrics")).text)
            key = ("flowmill_projection_lag_events", (("projection", "workflow_summary"),))
            if sched.get(key) == 0:
                break
            assert time.monotonic() < deadline, sched.get(key)
            await asyncio.sleep(0.2)  # not a wait: a poll that fails at its deadline
    finally:
        scheduler.kill()
        scheduler.wait()
        deployment.stop_all()
