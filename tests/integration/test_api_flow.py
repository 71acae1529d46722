"""The acceptance flow against the app on PostgreSQL (and SQLite): create → publish →
execute with wait → detail with per-node timings → list with filters and cursor. And
the list query's plan on PostgreSQL: an index walk, never a sort of the tenant's rows."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from flowmill.store.queries import ExecutionFilter, explain, list_executions_query
from tests.api_support import FAILING, THREE_NODES, open_api


async def test_api_flow_create_publish_execute_detail_list(database_url: str) -> None:
    async with open_api(database_url) as api:
        created = await api.a.post("/api/workflows", json=THREE_NODES)
        assert created.status_code == 201
        wf = created.json()["id"]
        published = await api.a.post(f"/api/workflows/{wf}/publish")
        assert published.json()["active_version"] == 1

        ids = []
        for i in range(4):
            r = await api.a.post(
                f"/api/workflows/{wf}/execute",
                params={"wait": 10},
                json={"input": {"message": f"m{i}"}},
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == "succeeded"
            assert body["output"] == f"The processed result is: m{i} processed"
            ids.append(body["id"])
        bad = await api.workflow(FAILING)
        failed = (await api.run(bad, {"x": 1}))["id"]

        detail = (await api.a.get(f"/api/executions/{ids[0]}")).json()
        assert [n["node_id"] for n in detail["nodes"]] == ["trigger-1", "process-1", "response-1"]
        for n in detail["nodes"]:
            assert n["duration_ms"] is not None and n["started_at"] and n["completed_at"]
        assert detail["duration_ms"] >= max(n["duration_ms"] for n in detail["nodes"])

        page1 = (await api.a.get("/api/executions", params={"limit": 3})).json()
        assert [e["id"] for e in page1["items"]] == [failed, ids[3], ids[2]]
        page2 = (
            await api.a.get("/api/executions", params={"limit": 3, "cursor": page1["next_cursor"]})
        ).json()
        assert [e["id"] for e in page2["items"]] == [ids[1], ids[0]]
        assert page2["next_cursor"] is None

        only_ok: dict[str, Any] = {"status": "succeeded", "workflow_id": wf, "limit": 2}
        ok1 = (await api.a.get("/api/executions", params=only_ok)).json()
        ok2 = (
            await api.a.get("/api/executions", params={**only_ok, "cursor": ok1["next_cursor"]})
        ).json()
        assert [e["id"] for e in ok1["items"] + ok2["items"]] == list(reversed(ids))
        failed_only = (await api.a.get("/api/executions", params={"status": "failed"})).json()
        assert [e["id"] for e in failed_only["items"]] == [failed]


async def test_api_list_query_walks_the_status_index(postgres_url: str) -> None:
    async with open_api(postgres_url, worker=False) as api:

        def _seed(conn: sa.Connection) -> None:
            conn.exec_driver_sql(
                """
                INSERT INTO workflow_executions
                    (id, tenant_id, workflow_id, version, status, trigger_type, trigger,
                     created_at)
                SELECT (lpad(to_hex(1700000000000 + g), 12, '0') || '7' ||
                        lpad(to_hex(g % 4096), 3, '0') || '8' ||
                        substr(md5(g::text), 1, 15))::uuid,
                       CASE WHEN g % 10 = 5 THEN 'tenant-b' ELSE 'tenant-a' END,
                       '01900000-0000-7000-8000-000000000000', 1,
                       CASE g % 100 WHEN 0 THEN 'failed' WHEN 1 THEN 'running'
                                    ELSE 'succeeded' END,
                       'manual', '{}'::jsonb, now()
                FROM generate_series(1, 30000) AS g
                """
            )
            conn.exec_driver_sql("ANALYZE workflow_executions")

        await api.runtime.db.write(_seed)
        cases = [
            # Without a filter the primary key walked backwards serves as well.
            (ExecutionFilter(), "Index Scan Backward"),
            (ExecutionFilter(statuses=("failed",)), "ix_executions_tenant_status"),
            (ExecutionFilter(statuses=("failed", "running")), "ix_executions_tenant_status"),
            (
                ExecutionFilter(
                    statuses=("failed",), before_id="018bcfe5-6f00-7000-8000-000000000000"
                ),
                "ix_executions_tenant_status",
            ),
        ]
        for f, index in cases:
            q = list_executions_query("tenant-a", f, 51)
            plan = await api.runtime.db.read(lambda c, q=q: explain(c, q))
            text = "\n".join(plan)
            assert index in text, text
            assert "Index" in text and "Seq Scan" not in text, text
            assert not re.search(r"(^|->  )(Incremental )?Sort  \(", text, re.M), text
        page = await api.a.get("/api/executions", params={"status": "failed", "limit": 50})
        assert page.status_code == 200 and len(page.json()["items"]) == 50
        deep = await api.a.get(
            "/api/executions", params={"status": "failed", "cursor": page.json()["next_cursor"]}
        )
        assert deep.json()["items"][0]["id"] < page.json()["items"][-1]["id"]


async def test_api_workflow_filters_on_both_databases(database_url: str) -> None:
    async with open_api(database_url, worker=False) as api:
        for i, (tags, desc) in enumerate([(["crm"], ""), (["crm", "eu"], "100% sure"), ([], "")]):
            doc = {**THREE_NODES, "name": f"Flow_{i}", "tags": tags, "description": desc}
            assert (await api.a.post("/api/workflows", json=doc)).status_code == 201

        async def names(**params: Any) -> list[str]:
            r = await api.a.get("/api/workflows", params=params)
            assert r.status_code == 200, r.text
            return [w["name"] for w in r.json()["items"]]

        assert await names(tag="crm") == ["Flow_1", "Flow_0"]
        assert await names(tag="eu") == ["Flow_1"]
        assert await names(tag="none") == []
        assert await names(search="FLOW_2") == ["Flow_2"]
        assert await names(search="100%") == ["Flow_1"]
        assert await names(search="w_") == ["Flow_2", "Flow_1", "Flow_0"]
        assert await names(status="active") == []
        assert (await api.b.get("/api/workflows", params={"tag": "crm"})).json()["items"] == []


async def test_api_execute_beyond_a_limit_answers_queued(database_url: str) -> None:
    limited = {
        "name": "one at a time",
        "settings": {"max_concurrent": 1},
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "d", "type": "delay", "config": {"ms": 300}},
        ],
        "edges": [{"source": "t", "target": "d"}],
    }
    async with open_api(database_url) as api:
        wf = (await api.a.post("/api/workflows", json=limited)).json()["id"]
        await api.a.post(f"/api/workflows/{wf}/publish")
        first = await api.a.post(f"/api/workflows/{wf}/execute", json={"input": {}})
        second = await api.a.post(f"/api/workflows/{wf}/execute", json={"input": {}})
        assert (first.status_code, second.status_code) == (202, 202)
        assert first.json()["status"] in ("pending", "running")
        assert second.json()["status"] == "queued"  # waits for the first to end
        waited = await api.a.post(
            f"/api/workflows/{wf}/execute", params={"wait": 10}, json={"input": {}}
        )
        assert waited.json()["status"] == "succeeded"
