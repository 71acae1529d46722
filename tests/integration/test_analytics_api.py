"""The analytics routes over the read models, the projections' lag, and the tenant feed
(pages and the resumable SSE stream over real HTTP)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from flowmill.projections.projector import Projector
from tests.api_support import FAILING, THREE_NODES, Api, open_api
from tests.webhook_support import live_api


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with open_api(database_url, sandbox_enabled=False) as api:
        yield api


async def test_analytics_report_the_read_models_and_hide_other_tenants(api: Api) -> None:
    ok, bad = await api.workflow(THREE_NODES), await api.workflow(FAILING)
    for _ in range(3):
        assert (await api.run(ok, {"message": "m"}))["status"] == "succeeded"
    assert (await api.run(bad, {"x": 1}))["status"] == "failed"

    behind = (await api.a.get("/api/projections")).json()["items"]
    assert {p["name"] for p in behind} == {
        "workflow_summary", "node_performance", "webhook_analytics", "workflow_activity",
    }  # fmt: skip
    assert all(p["behind"] == p["head"] > 0 and p["lag_seconds"] >= 0 for p in behind)
    await Projector(api.runtime.db).catch_up()
    caught_up = (await api.a.get("/api/projections")).json()["items"]
    assert all(p["behind"] == 0 and p["position"] == p["head"] for p in caught_up)

    page = (await api.a.get("/api/analytics/workflows")).json()
    by_id = {w["workflow_id"]: w for w in page["items"]}
    assert (by_id[ok]["executions"], by_id[ok]["succeeded"], by_id[ok]["failed"]) == (3, 3, 0)
    assert (by_id[bad]["executions"], by_id[bad]["failed"], by_id[bad]["success_rate"]) == (
        1, 1, 0.0,
    )  # fmt: skip
    assert by_id[ok]["name"] == "Test Workflow"
    assert by_id[ok]["durations"]["count"] == 3
    assert by_id[ok]["created_by"].startswith("api_key:")
    first = (await api.a.get("/api/analytics/workflows", params={"limit": 1})).json()
    second = (
        await api.a.get("/api/analytics/workflows", params={"cursor": first["next_cursor"]})
    ).json()
    assert [w["workflow_id"] for w in first["items"] + second["items"]] == sorted(by_id)

    hourly = (await api.a.get(f"/api/analytics/workflows/{ok}")).json()
    assert hourly["bucket"] == "hour" and 24 <= len(hourly["buckets"]) <= 25
    assert sum(b["succeeded"] for b in hourly["buckets"]) == 3
    assert sum(b["started"] for b in hourly["buckets"]) == 3
    [busy] = [b for b in hourly["buckets"] if b["succeeded"]]
    assert busy["durations"]["count"] == 3 and busy["durations"]["p95_ms"] is not None
    daily = (await api.a.get(f"/api/analytics/workflows/{bad}", params={"bucket": "day"})).json()
    assert sum(b["failed"] for b in daily["buckets"]) == 1
    assert daily["workflow"]["failed"] == 1

    nodes = (await api.a.get("/api/analytics/nodes", params={"workflow_id": ok})).json()
    assert {n["node_id"]: n["runs"] for n in nodes["items"]} == {
        "trigger-1": 3, "process-1": 3, "response-1": 3,
    }  # fmt: skip
    all_nodes = (await api.a.get("/api/analytics/nodes")).json()["items"]
    assert {n["workflow_id"] for n in all_nodes} == {ok, bad}
    boom = next(n for n in all_nodes if n["node_id"] == "boom")
    assert (boom["runs"], boom["failures"]) == (1, 1)
    assert (await api.a.get("/api/analytics/webhooks")).json() == {"items": []}

    # Tenant B sees none of it: lists are empty, A's workflow is a 404.
    assert (await api.b.get("/api/analytics/workflows")).json()["items"] == []
    assert (await api.b.get("/api/analytics/nodes")).json()["items"] == []
    for path in (f"/api/analytics/workflows/{ok}", f"/api/analytics/nodes?workflow_id={ok}"):
        r = await api.b.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert (await api.anon.get("/api/analytics/workflows")).status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "query.from"),
        ({"from": "2000-01-01T00:00:00Z", "bucket": "hour"}, "query.from"),
        ({"bucket": "week"}, "query.bucket"),
        ({"from": "yesterday"}, "query.from"),
        ({"from": "0.5"}, "query.from"),  # pydantic would take it as a Unix time
        ({"to": "0001-01-01T00:00:00Z"}, "query.to"),
    ],
)
async def test_analytics_timeline_refuses_bad_ranges(
    api: Api, params: dict[str, str], field: str
) -> None:
    wf = await api.workflow(THREE_NODES)
    r = await api.a.get(f"/api/analytics/workflows/{wf}", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == field


def _sse(lines: list[str]) -> list[dict[str, Any]]:
    events, fields = [], {}
    for line in lines:
        if not line:
            if fields:
                events.append(fields)
            fields = {}
        elif not line.startswith(":"):
            key, value = line.split(": ", 1)
            fields[key] = value
    return events


async def _read_stream(
    client: httpx.AsyncClient, *, until: str, headers: dict[str, str] | None = None, **params: Any
) -> list[dict[str, Any]]:
    """SSE messages of /api/events/stream up to the first of type ``until``."""
    lines: list[str] = []
    async with client.stream(
        "GET", "/api/events/stream", params=params, headers=headers or {}, timeout=30
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            lines.append(line)
            if line == "" and _sse(lines) and _sse(lines)[-1]["event"] == until:
                break
    return _sse(lines)


async def test_api_feed_pages_follow_the_sequence_and_the_stream_resumes(sqlite_url: str) -> None:
    async with live_api(sqlite_url, sandbox_enabled=False) as live:
        a, b = live.as_tenant("tenant-a"), live.as_tenant("tenant-b")
        created = await a.post("/api/workflows", json={**THREE_NODES, "status": "active"})
        wf = created.json()["id"]
        r = await a.post(f"/api/workflows/{wf}/execute", params={"wait": 10}, json={})
        assert r.json()["status"] == "succeeded"

        seen, after = [], 0
        while True:
            page = (await a.get("/api/events", params={"after": after, "limit": 4})).json()
            seen += page["items"]
            after = page["next_after"]
            if not page["items"]:
                break
        assert [e["sequence"] for e in seen] == list(range(1, page["head"] + 1))
        assert {"workflow.created", "execution.started", "execution.completed"} <= {
            e["type"] for e in seen
        }
        assert all(
            e["type"] != "workflow.created" for e in (await b.get("/api/events")).json()["items"]
        )
        bad = await a.get("/api/events", params={"after": -1})
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["field"] == "query.after"

        # Follow from the current end: a new execution's events arrive as they commit.
        head = page["head"]
        streamed_task = _read_stream(a, until="execution.completed", after=head)
        follow = asyncio.create_task(streamed_task)
        await asyncio.sleep(0.2)  # not a wait: lets the stream open before the run
        r = await a.post(f"/api/workflows/{wf}/execute", json={"input": {"message": "again"}})
        assert r.status_code == 202
        streamed = await asyncio.wait_for(follow, 30)
        ids = [int(m["id"]) for m in streamed]
        assert ids == list(range(head + 1, head + 1 + len(ids)))
        assert streamed[0]["event"] == "execution.started"
        data = json.loads(streamed[-1]["data"])
        assert data["payload"]["execution_id"] == r.json()["execution_id"]

        # A client that lost the connection resumes after the last id it saw.
        resumed = await _read_stream(
            a, until="execution.completed", headers={"Last-Event-ID": str(ids[1])}
        )
        assert [int(m["id"]) for m in resumed] == ids[2:]
