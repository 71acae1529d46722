"""Tenant isolation: tenant B, with its own valid key, tries every route on tenant A's
objects. Each answers 404 and nothing of A's changes. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.api_support import FAILING, THREE_NODES, WAITING, Api, open_api


async def _snapshot(api: Api, wf: str, executions: list[str]) -> dict[str, Any]:
    workflow = (await api.a.get(f"/api/workflows/{wf}")).json()
    versions = (await api.a.get(f"/api/workflows/{wf}/versions")).json()
    runs = [(await api.a.get(f"/api/executions/{e}")).json() for e in executions]
    listed = (await api.a.get("/api/executions")).json()
    keys = (await api.a.get("/api/keys")).json()
    for k in keys["items"]:
        k.pop("last_used_at")
    return {"wf": workflow, "versions": versions, "runs": runs, "list": listed, "keys": keys}


async def test_api_isolation_every_route_across_tenants_is_404(database_url: str) -> None:
    async with open_api(database_url) as api:
        wf = await api.workflow(THREE_NODES)
        bad = await api.workflow(FAILING)
        slow = await api.workflow(WAITING)
        done = (await api.run(wf, {"message": "a"}))["id"]
        failed = (await api.run(bad, {"x": 1}))["id"]
        live = (await api.a.post(f"/api/workflows/{slow}/execute", json={})).json()["execution_id"]
        for _ in range(200):
            if (await api.a.get(f"/api/executions/{live}")).json()["status"] == "waiting":
                break
            await asyncio.sleep(0.02)
        key_id = (await api.a.get("/api/keys")).json()["items"][0]["id"]
        hook_body = {
            "workflow_id": wf,
            "node_id": "trigger-1",
            "provider": "none",
            "config": {"allow_unverified": True},
        }
        hook = (await api.a.post("/api/webhooks", json=hook_body)).json()["id"]
        route = (await api.a.get("/api/triggers", params={"workflow_id": wf})).json()["items"]
        hook_before = (await api.a.get(f"/api/webhooks/{hook}")).json()
        v1 = (await api.a.get(f"/api/workflows/{wf}/versions/1")).json()["id"]
        job = (await api.a.get(f"/api/executions/{done}/jobs")).json()["items"][0]["id"]
        before = await _snapshot(api, wf, [done, failed, live])

        definition = {**THREE_NODES, "name": "hijacked"}
        attempts: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", f"/api/workflows/{wf}", None),
            ("PUT", f"/api/workflows/{wf}", definition),
            ("PATCH", f"/api/workflows/{wf}", {"name": "hijacked"}),
            ("DELETE", f"/api/workflows/{wf}", None),
            ("POST", f"/api/workflows/{wf}/publish", None),
            ("GET", f"/api/workflows/{wf}/export", None),
            ("GET", f"/api/workflows/{wf}/versions", None),
            ("POST", f"/api/workflows/{wf}/versions", {"definition": definition}),
            ("GET", f"/api/workflows/{wf}/versions/1", None),
            ("POST", f"/api/workflows/{wf}/versions/1/publish", None),
            ("GET", f"/api/workflows/{wf}/versions/1/diff/1", None),
            ("POST", f"/api/workflows/{wf}/execute", {"input": {"message": "b"}}),
            ("POST", f"/api/workflows/{wf}/execute?wait=1", {"input": {}, "version": 1}),
            ("GET", f"/api/workflows/{wf}/executions", None),
            ("GET", f"/api/executions/{done}", None),
            ("GET", f"/api/executions/{done}/logs", None),
            ("GET", f"/api/executions/{done}/events", None),
            ("POST", f"/api/executions/{live}/cancel", None),
            ("POST", f"/api/executions/{failed}/retry", {}),
            ("POST", f"/api/executions/{done}/retry", {"from_start": True}),
            ("DELETE", f"/api/keys/{key_id}", None),
            ("POST", f"/api/workflows/{wf}/unpublish", None),
            ("POST", "/api/webhooks", hook_body),
            ("GET", f"/api/webhooks/{hook}", None),
            ("DELETE", f"/api/webhooks/{hook}", None),
            ("GET", f"/api/webhooks/{hook}/events", None),
            ("GET", f"/api/triggers/{hook}", None),
            ("PATCH", f"/api/triggers/{hook}", {"enabled": False}),
            ("GET", f"/api/triggers/{hook}/next_runs", None),
            *[("PATCH", f"/api/triggers/{t['id']}", {"enabled": False}) for t in route],
            # versions by id, start nodes, jobs (seed 002 and 004)
            ("GET", f"/api/workflows/{wf}/versions/{v1}", None),
            ("POST", f"/api/workflows/{wf}/versions/{v1}/publish", None),
            ("GET", f"/api/workflows/{wf}/versions/{v1}/diff/1", None),
            ("POST", f"/api/workflows/{wf}/execute", {"trigger_node_id": "trigger-1"}),
            ("GET", f"/api/executions/{done}/jobs", None),
            ("GET", f"/api/jobs/{job}", None),
            # seed 002's trigger routes
            ("GET", f"/api/workflows/{wf}/triggers", None),
            ("POST", f"/api/workflows/{wf}/triggers", {"type": "webhook"}),
            # seed 003's paths
            ("GET", f"/workflows/{wf}", None),
            ("PUT", f"/workflows/{wf}", {"name": "hijacked"}),
            ("DELETE", f"/workflows/{wf}", None),
            ("POST", f"/workflows/{wf}/trigger", {"input": {"message": "b"}}),
            ("GET", f"/workflows/{wf}/executions", None),
            ("GET", f"/workflows/executions/{done}", None),
        ]
        for method, path, body in attempts:
            r = await api.b.request(method, path, json=body)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "not_found"

        # Lists are scoped too: B sees none of A's objects.
        assert (await api.b.get("/api/workflows")).json()["items"] == []
        assert (await api.b.get("/api/executions")).json()["items"] == []
        filtered = await api.b.get("/api/executions", params={"workflow_id": wf})
        assert filtered.json()["items"] == []
        assert key_id not in [k["id"] for k in (await api.b.get("/api/keys")).json()["items"]]
        assert (await api.b.get("/api/webhooks")).json()["items"] == []
        assert (await api.b.get("/api/triggers")).json()["items"] == []
        assert (await api.b.get("/workflows")).json()["items"] == []
        assert (await api.b.get("/workflows/executions/history")).json()["items"] == []

        await asyncio.sleep(0.2)  # anything wrongly started would have shown by now
        after = await _snapshot(api, wf, [done, failed, live])
        assert after == before
        assert (await api.a.get(f"/api/webhooks/{hook}")).json() == hook_before
        assert (await api.a.get("/api/tenant")).status_code == 200  # A's key still works
