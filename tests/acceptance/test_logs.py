"""Correlated logs of ``flowmill serve`` as an operator sees them: JSON lines on stderr
(FLOWMILL_LOG_FORMAT=json) where a request's lines carry its X-Request-ID and tenant,
and a step's lines its tenant, workflow, execution, node and attempt; and the execution
log API filtered by level and node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve_support import serve

pytestmark = pytest.mark.slow

LOGGING: dict[str, Any] = {
    "name": "Logs at three levels, then fails",
    "status": "active",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "w", "type": "error_handler", "config": {"message": "careful", "level": "warn"}},
        {"id": "i", "type": "error_handler", "config": {"message": "fyi", "level": "info"}},
        {"id": "e", "type": "error_handler", "config": {"message": "bad", "level": "error"}},
        {"id": "boom", "type": "fail", "config": {"message": "the end"}},
    ],
    "edges": [
        {"source": "t", "target": "w"},
        {"source": "w", "target": "i"},
        {"source": "i", "target": "e"},
        {"source": "e", "target": "boom"},
    ],
}


def _json_lines(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is JSON, or this raises


async def test_logs_are_json_and_correlated_and_filterable(tmp_path: Path) -> None:
    env = {"FLOWMILL_LOG_FORMAT": "json", "FLOWMILL_LOG_LEVEL": "debug"}
    async with serve(tmp_path, env=env) as s:
        headers = {"Authorization": f"Bearer {s.key}", "X-Request-ID": "trace-77"}
        async with httpx.AsyncClient(base_url=s.url, headers=headers, timeout=30) as c:
            created = await c.post("/api/workflows", json=LOGGING)
            assert created.status_code == 201, created.text
            assert created.headers["x-request-id"] == "trace-77"
            wf = created.json()["id"]
            run = await c.post(f"/api/workflows/{wf}/execute", params={"wait": 20}, json={})
            execution = run.json()["id"]
            assert run.json()["status"] == "failed"

            logs = f"/api/executions/{execution}/logs"
            everything = (await c.get(logs)).json()["items"]
            assert [(x["node_id"], x["level"]) for x in everything] == [
                ("w", "warn"), ("i", "info"), ("e", "error"),
            ]  # fmt: skip
            warned = (await c.get(logs, params={"level": "warn"})).json()["items"]
            assert [x["message"] for x in warned] == ["careful", "bad"]
            only_i = (await c.get(logs, params={"node_id": "i"})).json()["items"]
            assert [x["message"] for x in only_i] == ["fyi"]
            both = (await c.get(logs, params={"node_id": "i", "level": "error"})).json()
            assert both["items"] == []
            bad = await c.get(logs, params={"level": "loud"})
            assert bad.status_code == 422
            assert bad.json()["error"]["details"][0]["field"] == "query.level"
    [log_file] = tmp_path.glob("serve-*.log")
    records = _json_lines(log_file)
    requests = [r for r in records if r.get("event") == "request" and r.get("route")]
    mine = [r for r in requests if r.get("request_id") == "trace-77"]
    assert {r["route"] for r in mine} >= {"/api/workflows", "/api/workflows/{workflow_id}/execute"}
    assert all(r["tenant_id"] == "default" for r in mine)
    others = {r["request_id"] for r in requests if r.get("route") == "/health"}
    assert others and "trace-77" not in others  # no leak between requests
    [failed] = [r for r in records if r.get("event") == "node attempt failed"]
    assert failed["execution_id"] == execution and failed["node_id"] == "boom"
    assert failed["tenant_id"] == "default" and failed["attempt"] == 1
    assert failed["workflow_id"] == wf
