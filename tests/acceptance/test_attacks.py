"""Attacks from outside against a real `flowmill serve`: each was a hole once.

1. A template of ``"{{" * 16000`` (32 KB) took seconds to refuse, on the event loop, so
   every request of every tenant waited (``/health`` included).
2. A trigger node with no provider but a registered (signed) webhook could be started
   unsigned through the seed route ``/webhooks/{tenant}/{triggerType}/{actionType}``.
3. A plain ``GET`` on an unverified seed route started the workflow (a link preview or
   a crawler could).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowmill.testing import eventually
from tests.serve_support import serve

pytestmark = pytest.mark.slow

TENANT = "default"


def _seed_route_workflow(action: str) -> dict[str, Any]:
    return {
        "name": f"seed route {action}",
        "status": "active",
        "nodes": [
            {
                "id": "hook",
                "type": "trigger",
                "config": {"triggerType": "webhook", "actionType": action},
            },
            {"id": "out", "type": "transform", "config": {"mapping": {"got": "{{data}}"}}},
        ],
        "edges": [{"source": "hook", "target": "out"}],
    }


def _with_template(template: str) -> dict[str, Any]:
    doc = _seed_route_workflow("bomb")
    doc["nodes"][1]["config"] = {"mapping": {"x": template}}
    doc.pop("status")  # a draft: the attack is the parse, not the publish
    return doc


def _p99(samples: list[float]) -> float:
    # Inclusive: the exclusive method extrapolates past the largest sample when there
    # are fewer than a hundred, reporting a p99 no request ever took.
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


async def _health_latencies(url: str, stop: asyncio.Event, out: list[float]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        while not stop.is_set():
            t = time.perf_counter()
            r = await c.get("/health")
            out.append(time.perf_counter() - t)
            assert r.status_code == 200


async def _executions(c: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await c.get("/api/executions", params={"limit": 200})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


@pytest.mark.serial  # a latency figure: measured with the machine to itself
async def test_attacks_template_bombs_do_not_stall_other_requests(tmp_path: Path) -> None:
    bombs = ["{{" * 16_000, '{{ nodes["' * 20_000, "{{" * 100_000]
    async with serve(tmp_path) as s:
        headers = {"Authorization": f"Bearer {s.key}"}
        # What /health costs on this machine right now, before any attack.
        idle: list[float] = []
        stop = asyncio.Event()
        prober = asyncio.create_task(_health_latencies(s.url, stop, idle))
        await asyncio.sleep(1.0)  # not a wait: the window idle latency is measured over
        stop.set()
        await prober
        limit = max(0.050, 3 * _p99(idle))

        during: list[float] = []
        stop = asyncio.Event()
        prober = asyncio.create_task(_health_latencies(s.url, stop, during))
        async with httpx.AsyncClient(base_url=s.url, headers=headers, timeout=120) as c:
            # Rounds until /health has been asked often enough for a p99 to mean something
            # (a stalled server answers none of them, and fails below on its maximum).
            round_, started = 0, time.perf_counter()
            while round_ < 3 or (len(during) < 200 and round_ < 30):
                round_ += 1
                # A fresh prefix each round: parses are cached per exact text.
                answers = await asyncio.gather(
                    *(c.post("/api/workflows", json=_with_template(f"{round_}{b}")) for b in bombs)
                )
                for r in answers:
                    assert r.status_code in (201, 422), r.text
                if time.perf_counter() - started > 20:
                    break  # a server this slow has failed; the asserts below say how
        stop.set()
        await prober
        assert len(during) >= 100, "the prober barely ran: the server stalled"
        assert max(during) < 2.0, f"a /health request waited {max(during):.2f} s"
        assert _p99(during) <= limit, (
            f"/health p99 {_p99(during) * 1000:.1f} ms during the attack "
            f"(limit {limit * 1000:.1f} ms, idle p99 {_p99(idle) * 1000:.1f} ms)"
        )


async def test_attacks_unsigned_request_cannot_use_the_seed_route_of_a_signed_webhook(
    tmp_path: Path,
) -> None:
    secret = "It's a Secret to Everybody"
    async with serve(tmp_path) as s:
        headers = {"Authorization": f"Bearer {s.key}"}
        async with httpx.AsyncClient(base_url=s.url, headers=headers, timeout=30) as c:
            published = await c.post("/api/workflows", json=_seed_route_workflow("X"))
            assert published.status_code == 201, published.text
            wf = published.json()
            hook = await c.post(
                "/api/webhooks",
                json={
                    "workflow_id": wf["id"],
                    "node_id": "hook",
                    "provider": "github",
                    "secret": secret,
                },
            )
            assert hook.status_code == 201, hook.text
            signed_url = hook.json()["urls"][0]

            body = b'{"action": "opened"}'
            unsigned = {"Content-Type": "application/json", "X-GitHub-Event": "issues"}
            async with httpx.AsyncClient(base_url=s.url, timeout=30) as anon:
                assert (
                    await anon.post(signed_url, content=body, headers=unsigned)
                ).status_code == 401
                bypass = await anon.post(
                    f"/webhooks/{TENANT}/webhook/X", content=body, headers=unsigned
                )
                assert bypass.status_code == 404, bypass.text
                sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                signed = await anon.post(
                    signed_url,
                    content=body,
                    headers={
                        **unsigned,
                        "X-Hub-Signature-256": sig,
                        "X-GitHub-Delivery": "d-1",
                    },
                )
                assert signed.status_code == 200, signed.text

            async def started_runs() -> list[dict[str, Any]]:
                return [e for e in await _executions(c) if e["workflow_id"] == wf["id"]]

            started = await eventually(started_runs, 30, "the signed delivery starts a run")
            assert len(started) == 1, started
            # The publish said the route was open to anyone (and so did its event, see
            # tests/integration/test_webhook_seed.py).
            assert [w["node_id"] for w in wf.get("warnings", ())] == ["hook"], wf
            assert wf["warnings"][0]["path"] == f"/webhooks/{TENANT}/webhook/X"


async def test_attacks_get_on_a_seed_route_starts_nothing(tmp_path: Path) -> None:
    async with serve(tmp_path) as s:
        headers = {"Authorization": f"Bearer {s.key}"}
        async with httpx.AsyncClient(base_url=s.url, headers=headers, timeout=30) as c:
            r = await c.post("/api/workflows", json=_seed_route_workflow("test"))
            assert r.status_code == 201, r.text
            wf = r.json()["id"]
            async with httpx.AsyncClient(base_url=s.url, timeout=30) as anon:
                for _ in range(5):
                    got = await anon.get(f"/webhooks/{TENANT}/webhook/test?x=1")
                    assert got.status_code == 405, got.text
                    assert got.headers["allow"] == "POST"
                    assert got.json()["error"]["code"] == "method_not_allowed"
                # The documented way still works: the seed's own test workflow route.
                posted = await anon.post(
                    f"/webhooks/{TENANT}/webhook/test", json={"message": "hello"}
                )
                assert posted.status_code == 200, posted.text

            async def finished_runs() -> list[dict[str, Any]]:
                runs = [e for e in await _executions(c) if e["workflow_id"] == wf]
                return runs if runs and all(e["status"] == "succeeded" for e in runs) else []

            runs = await eventually(finished_runs, 30, "the POSTed delivery's run ends")
            assert len(runs) == 1, runs  # the POST, and none of the five GETs
