"""Faults injected on purpose (``FLOWMILL_FAULTS``): workers keep their promises.

Two ``flowmill worker`` processes on PostgreSQL and Redis, each with 2 % of its store
calls and 2 % of its queue calls failing before they run, failing after they ran (the
answer lost), or stalling. A thousand executions with a durable delay, a fan-out and
join, and a step that fails once and is retried: every execution succeeds, and no
node is recorded (or announced) as succeeded twice.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from flowmill.faults import FaultPlan, Faulty, InjectedFault
from tests.integration.distributed_support import Deployment, read_records, wait_all_done

# 1,000 executions through two worker processes: ~40 s alone, past 120 s when CI ran
# beside bench/distributed.py (the same PostgreSQL and Redis), so its own limit.
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(600)]

EXECUTIONS = 1000
SUCCEEDED_PER_EXECUTION = 8  # t, wait, a, b, c, flaky (its 2nd attempt), join, out


def _workflow(port: int) -> dict[str, Any]:
    return {
        "name": "faulty",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "wait", "type": "delay", "config": {"ms": 100}},
            {"id": "a", "type": "transform", "config": {"mapping": {"a": "{{data.n}}"}}},
            {"id": "b", "type": "transform", "config": {"mapping": {"b": "{{data.n}}"}}},
            {"id": "c", "type": "transform", "config": {"mapping": {"c": "{{data.n}}"}}},
            {
                "id": "flaky",
                "type": "http_request",
                "config": {"url": f"http://127.0.0.1:{port}/once?e={{{{execution.id}}}}"},
                "retry": {"max_attempts": 4, "backoff_ms": 50},
            },
            {"id": "join", "type": "merge"},
            {"id": "out", "type": "transform", "config": {"mapping": {"done": True}}},
        ],
        "edges": [
            {"source": "t", "target": "wait"},
            {"source": "wait", "target": "a"},
            {"source": "wait", "target": "b"},
            {"source": "wait", "target": "c"},
            {"source": "c", "target": "flaky"},
            {"source": "a", "target": "join"},
            {"source": "b", "target": "join"},
            {"source": "flaky", "target": "join"},
            {"source": "join", "target": "out"},
        ],
    }


class _FailsOnce(BaseHTTPRequestHandler):
    """503 the first time an execution asks, 200 after: every execution retries once."""

    seen: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def do_GET(self) -> None:
        key = parse_qs(urlsplit(self.path).query).get("e", [""])[0]
        with self.lock:
            self.seen[key] += 1
            first = self.seen[key] == 1
        self.send_response(503 if first else 200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": false}' if first else b'{"ok": true}')

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def fails_once() -> Iterator[int]:
    _FailsOnce.seen.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FailsOnce)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


async def test_faults_injected_into_store_and_queue_lose_nothing_and_double_nothing(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path, fails_once: int
) -> None:
    faults = "store=0.02,queue=0.02,stall_s=0.5,seed={seed}"
    deployment = Deployment(postgres_url, redis_url, redis_prefix, tmp_path)
    try:
        for seed in (11, 12):
            await deployment.start_worker(
                FLOWMILL_FAULTS=faults.format(seed=seed), FLOWMILL_HTTP_ALLOW_HOSTS="127.0.0.1"
            )
        await deployment.start_executions(
            _workflow(fails_once), ({"n": n} for n in range(EXECUTIONS))
        )
        records = await wait_all_done(deployment, EXECUTIONS, timeout=600)
        assert records.statuses == {"succeeded": EXECUTIONS}, records.statuses
        assert records.succeeded_twice == []
        assert records.completed_twice == []
        assert records.succeeded_rows == EXECUTIONS * SUCCEEDED_PER_EXECUTION
        # The faults happened: the workers say so in their logs.
        logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log"))
        assert logs.count("FAULTS ARE INJECTED ON PURPOSE") == 2
        assert logs.count("injected fault") >= 20, logs[-3000:]
        # And every execution took its retry, so retries ran through the faults too.
        assert len(_FailsOnce.seen) == EXECUTIONS
    finally:
        deployment.stop_all()
    final = await read_records(postgres_url)
    assert final.count("succeeded") == EXECUTIONS


async def test_faults_wrapper_fails_loses_and_stalls_in_the_planned_shares() -> None:
    calls = 0

    class Target:
        async def put(self, x: int) -> int:
            nonlocal calls
            calls += 1
            return x

        other = "passes through"

    import random

    plan = FaultPlan(queue=0.3, stall_s=0)
    faulty = Faulty(Target(), frozenset({"put"}), 0.3, plan, random.Random(5))
    outcomes = collections.Counter[str]()
    for i in range(3000):
        try:
            assert await faulty.put(i) == i
            outcomes["ok"] += 1
        except InjectedFault as e:
            outcomes["lost" if "lost" in str(e) else "fail"] += 1
    assert faulty.other == "passes through"
    assert 0.08 < outcomes["fail"] / 3000 < 0.12
    assert 0.08 < outcomes["lost"] / 3000 < 0.12
    assert faulty.injected["stall"] > 200
    assert calls == 3000 - outcomes["fail"]  # a lost answer still ran the call
    assert FaultPlan.parse("store=0.02,queue=0.01,stall_s=2,seed=3") == FaultPlan(
        0.02, 0.01, 2.0, 3
    )
    with pytest.raises(ValueError, match="keys"):
        FaultPlan.parse("db=0.1")
