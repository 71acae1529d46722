"""Each seed document's procedures and endpoint lists, run literally over HTTP against a
real ``flowmill serve`` (SQLite, in a temporary home), checking the answers.

The seeds' curl lines send no credentials; every request here carries the tenant's API
key (or, for seed 003, a real JWT), since Flowmill answers 401 without one. Seed 004's
analytics endpoints belong to the read side (not on this branch); its queue producers
are run against Redis in ``tests/integration/test_seed_queues.py``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from flowmill.testing import eventually
from tests.serve_support import cli, last_line, serve

pytestmark = pytest.mark.slow

# Seed 000, section 7.1, as written (the TypeScript object as JSON).
SEED_000_WORKFLOW: dict[str, Any] = {
    "name": "Test Workflow",
    "description": "A simple test workflow",
    "tenant_id": "test-client",
    "status": "active",
    "nodes": [
        {"id": "trigger-1", "name": "Webhook Trigger", "type": "trigger",
         "config": {"triggerType": "webhook", "actionType": "test"}},
        {"id": "process-1", "name": "Process Data", "type": "function",
         "config": {"code": 'return { result: input.data.message + " processed" };'}},
        {"id": "response-1", "name": "Send Response", "type": "response",
         "config": {"template": "The processed result is: {{result}}"}},
    ],
    "edges": [
        {"source": "trigger-1", "target": "process-1"},
        {"source": "process-1", "target": "response-1"},
    ],
    "tags": ["test"],
}  # fmt: skip


async def _tenant_key(home: Path, tenant: str) -> str:
    await cli(home, "tenants", "create", tenant, "--id", tenant)
    return last_line(await cli(home, "keys", "create", "--tenant", tenant))


def _rows(home: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "flowmill.db") as db:
        return db.execute(sql, args).fetchall()


async def _ended(c: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = (await c.get(f"/api/executions/{execution_id}")).json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None

    return await eventually(probe, 30, f"execution {execution_id} ends")


async def test_seed_000_integration_plan_test_procedure(tmp_path: Path) -> None:
    """Seed 000 section 7.2: create the workflow, send a test webhook, see it complete,
    check the workflow_executions and node_executions tables."""
    key = await _tenant_key(tmp_path, "test-client")
    async with (
        serve(tmp_path) as s,
        httpx.AsyncClient(
            base_url=s.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as c,
    ):
        # 1. Create the workflow (status active: published at once).
        made = await c.post("/api/workflows", json=SEED_000_WORKFLOW)
        assert made.status_code == 201, made.text
        wf = made.json()
        assert (wf["status"], wf["active_version"], wf["tags"]) == ("active", 1, ["test"])
        # 2. Send a test webhook to the seed's route (no key: the route is the webhook's).
        async with httpx.AsyncClient(base_url=s.url, timeout=30) as anyone:
            ack = await anyone.post("/webhooks/test-client/webhook/test", json={"message": "hello"})
        assert ack.status_code == 200, ack.text
        assert ack.json()["status"] == "received"

        # 3-4. The execution completes.
        async def started() -> str | None:
            items = (await c.get("/api/executions", params={"workflow_id": wf["id"]})).json()
            return items["items"][0]["id"] if items["items"] else None

        execution_id = await eventually(started, 30, "the webhook starts an execution")
        ex = await _ended(c, execution_id)
        assert ex["status"] == "succeeded", ex
        assert ex["output"] == "The processed result is: hello processed"
        assert ex["input"] == {"message": "hello"}
        assert [(n["node_id"], n["status"]) for n in ex["nodes"]] == [
            ("trigger-1", "succeeded"),
            ("process-1", "succeeded"),
            ("response-1", "succeeded"),
        ]
        assert ex["nodes"][1]["output"] == {"result": "hello processed"}
        assert ex["nodes"][0]["output"]["type"] == "webhook.test"  # the seed's triggerType

    # 5. The tables, as the seed names them (status where the seed says state).
    (row,) = _rows(tmp_path, "SELECT status, output FROM workflow_executions WHERE id = ?",
                   execution_id)  # fmt: skip
    assert (row[0], json.loads(row[1])) == ("succeeded", "The processed result is: hello processed")
    nodes = _rows(
        tmp_path,
        "SELECT node_id, status FROM node_executions WHERE execution_id = ? ORDER BY id",
        execution_id,
    )
    assert nodes == [
        ("trigger-1", "succeeded"),
        ("process-1", "succeeded"),
        ("response-1", "succeeded"),
    ]
    tables = {r[0] for r in _rows(tmp_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"agent_configs", "conversation_history", "workflow_executions", "node_executions",
            "event_store", "workflows", "webhook_events", "triggers"} <= tables  # fmt: skip
    events = [r[0] for r in _rows(
        tmp_path, "SELECT event_type FROM event_store WHERE stream_id = ? ORDER BY sequence_number",
        execution_id)]  # fmt: skip
    assert events[0] == "execution.started" and events[-1] == "execution.completed"
    received = _rows(tmp_path, "SELECT event_type FROM event_store WHERE event_type = ?",
                     "webhook.received")  # fmt: skip
    assert received == [("webhook.received",)]


async def test_seed_001_readme_api_endpoints(tmp_path: Path) -> None:
    """Seed 001's README: every endpoint of its list, with its table's fields."""
    async with (
        serve(tmp_path) as s,
        httpx.AsyncClient(
            base_url=s.url, headers={"Authorization": f"Bearer {s.key}"}, timeout=30
        ) as c,
    ):
        assert (await c.get("/health")).json() == {"status": "ok"}
        body = {k: SEED_000_WORKFLOW[k] for k in ("name", "description", "nodes", "edges", "tags")}
        body["status"] = "draft"
        made = await c.post("/api/workflows", json=body)
        assert made.status_code == 201, made.text
        wf = made.json()
        assert (wf["name"], wf["description"], wf["status"]) == (
            "Test Workflow", "A simple test workflow", "draft",
        )  # fmt: skip
        assert [w["id"] for w in (await c.get("/api/workflows")).json()["items"]] == [wf["id"]]
        assert (await c.get(f"/api/workflows/{wf['id']}")).json() == wf
        updated = await c.put(f"/api/workflows/{wf['id']}", json={**body, "tags": ["v2"]})
        assert (updated.json()["latest_version"], updated.json()["tags"]) == (2, ["v2"])
        published = await c.post(f"/api/workflows/{wf['id']}/publish")
        assert (published.json()["status"], published.json()["active_version"]) == ("active", 2)
        # POST /webhooks/:webhookId/:provider: a registered webhook's URL.
        hook = await c.post(
            "/api/webhooks",
            json={"name": "test", "workflow_id": wf["id"], "node_id": "trigger-1",
                  "provider": "none", "config": {"allow_unverified": True}},
        )  # fmt: skip
        assert hook.status_code == 201, hook.text
        webhook = hook.json()
        assert webhook["urls"][0] == f"{s.url}/webhooks/{webhook['id']}/none"
        assert (webhook["status"], webhook["workflow_id"]) == ("active", wf["id"])
        async with httpx.AsyncClient(timeout=30) as sender:
            ack = await sender.post(webhook["urls"][0], json={"message": "via 001"})
        assert ack.json()["status"] == "received"

        async def done() -> dict[str, Any] | None:
            events = (await c.get(f"/api/webhooks/{webhook['id']}/events")).json()["items"]
            return events[0] if events and events[0]["execution_ids"] else None

        event = await eventually(done, 30, "the webhook event is processed")
        ex = await _ended(c, event["execution_ids"][0])
        assert ex["output"] == "The processed result is: via 001 processed"
    # The event_store table of seed 001: workflow events with a per-tenant sequence.
    events = _rows(
        tmp_path,
        "SELECT event_type, sequence_number FROM event_store WHERE stream_id = ? "
        "ORDER BY sequence_number",
        wf["id"],
    )
    assert [e[0] for e in events][:2] == ["workflow.created", "workflow.version_created"]
    assert "workflow.published" in [e[0] for e in events]
    assert [e[1] for e in events] == sorted({e[1] for e in events})


async def test_seed_002_testing_the_implementation(tmp_path: Path) -> None:
    """Seed 002's "Testing the Implementation", step by step, then its endpoint list."""
    async with (
        serve(tmp_path) as s,
        httpx.AsyncClient(
            base_url=s.url, headers={"Authorization": f"Bearer {s.key}"}, timeout=30
        ) as c,
    ):
        # 1. Create a Workflow
        r = await c.post("/api/workflows", json={"name": "Test Workflow"})
        assert r.status_code == 201, r.text
        wf_id = r.json()["id"]
        # 2. Create a Version: {"definition": {"steps": [...]}}, seed 002's shapes.
        steps = [
            {"type": "transform", "config": {"mapping": {"key": "{{data.key}}"}}},
            {"type": "conditional",
             "config": {"condition": {"left": "{{key}}", "op": "==", "right": "value"}},
             "trueSteps": [{"id": "matched", "type": "transform",
                            "config": {"mapping": {"matched": True, "key": "{{key}}"}}}],
             "falseSteps": [{"id": "other", "type": "transform",
                             "config": {"mapping": {"matched": False}}}]},
            {"id": "pause", "type": "delay", "config": {"ms": 10}},
            {"id": "result", "type": "transform",
             "config": {"mapping": {"summary": "{{nodes.matched.output.key}} matched"}}},
        ]  # fmt: skip
        r = await c.post(
            f"/api/workflows/{wf_id}/versions",
            json={"definition": {"steps": steps, "rateLimitMaxConcurrent": 5,
                                 "retryMaxAttempts": 3, "retryBackoffMs": 100}},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        version = r.json()
        version_id = version["id"]
        assert (version["version"], version["definition"]["name"]) == (2, "Test Workflow")
        assert version["definition"]["settings"]["max_concurrent"] == 5
        # 3. Publish Version (by the id the answer gave)
        r = await c.post(f"/api/workflows/{wf_id}/versions/{version_id}/publish")
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["active_version"]) == ("active", 2)
        # 4. Execute Workflow
        r = await c.post(f"/api/workflows/{wf_id}/execute", json={"input": {"key": "value"}})
        assert r.status_code == 202, r.text
        execution_id = r.json()["execution_id"]
        assert r.headers["location"] == f"/api/executions/{execution_id}"
        # 5. Check Execution Status
        ex = await _ended(c, execution_id)
        assert ex["status"] == "succeeded", ex
        assert ex["input"] == {"key": "value"}
        assert ex["output"] == {"summary": "value matched"}
        status = {n["node_id"]: n["status"] for n in ex["nodes"]}
        assert (status["matched"], status["other"], status["pause"]) == (
            "succeeded", "skipped", "succeeded",
        )  # fmt: skip

        # The endpoint list of section 2.
        listed = (await c.get("/api/workflows")).json()["items"]
        assert [w["id"] for w in listed] == [wf_id]
        got = (await c.get(f"/api/workflows/{wf_id}")).json()
        assert got["definition"]["nodes"][1]["id"] == "step-0"
        put = await c.put(f"/api/workflows/{wf_id}", json={"name": "Renamed"})
        assert (put.json()["name"], put.json()["latest_version"]) == ("Renamed", 3)
        assert put.json()["definition"]["nodes"] == got["definition"]["nodes"]
        triggers = (await c.get(f"/api/workflows/{wf_id}/triggers")).json()["items"]
        assert triggers == []  # a manual trigger has no row
        made = await c.post(
            f"/api/workflows/{wf_id}/triggers",
            json={"type": "webhook", "config": {"allow_unverified": True}},
        )
        assert made.status_code == 201, made.text
        trigger_id = made.json()["id"]
        assert [t["id"] for t in (await c.get(f"/api/workflows/{wf_id}/triggers")).json()[
            "items"]] == [trigger_id]  # fmt: skip
        info = await c.get(f"/api/webhooks/{trigger_id}")
        assert info.json()["workflow_id"] == wf_id
        async with httpx.AsyncClient(base_url=s.url, timeout=30) as sender:
            hit = await sender.post(f"/api/webhooks/{trigger_id}", json={"key": "value"})
        assert hit.json()["status"] == "received"

        async def webhook_run() -> str | None:
            events = (await c.get(f"/api/webhooks/{trigger_id}/events")).json()["items"]
            return events[0]["execution_ids"][0] if events and events[0]["execution_ids"] else None

        hooked = await _ended(c, await eventually(webhook_run, 30, "the webhook starts a run"))
        assert hooked["output"] == {"summary": "value matched"}
        completed = await c.get("/api/executions", params={"status": "completed"})
        assert {e["id"] for e in completed.json()["items"]} == {execution_id, hooked["id"]}
        assert (await c.delete(f"/api/workflows/{wf_id}")).status_code == 204
        assert (await c.get(f"/api/workflows/{wf_id}")).status_code == 404
        assert (await c.get(f"/api/executions/{execution_id}")).json()["status"] == "succeeded"


SECRET = "a-test-signing-secret-of-32-characters!"
FLAKY = (
    "if (execution.attempt < 2) throw new Error('busy');"
    " return { to: input.data.email, attempt: execution.attempt };"
)
JWT_ENV = {
    "FLOWMILL_JWT_ALGORITHM": "HS256",
    "FLOWMILL_JWT_SECRET": SECRET,
    "FLOWMILL_JWT_ISSUER": "https://auth.example.test/",
    "FLOWMILL_JWT_AUDIENCE": "workflow-api",
}


def token(tenant: str, *, expires_in: float = 600, secret: str = SECRET) -> str:
    now = int(time.time())
    claims = {
        "sub": f"user-of-{tenant}",
        "tenant_id": tenant,
        "iss": JWT_ENV["FLOWMILL_JWT_ISSUER"],
        "aud": JWT_ENV["FLOWMILL_JWT_AUDIENCE"],
        "iat": now,
        "exp": now + int(expires_in),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


async def test_seed_003_nestjs_endpoints_with_jwt(tmp_path: Path) -> None:
    """Seed 003's endpoints under /workflows, each with a real JWT."""
    async with (
        serve(tmp_path, env=JWT_ENV) as s,
        httpx.AsyncClient(
            base_url=s.url, headers={"Authorization": f"Bearer {token('acme')}"}, timeout=30
        ) as c,
    ):
        # POST /workflows: ordered actions, with the seed's retry configuration.
        created = await c.post(
            "/workflows",
            json={
                "name": "Welcome mail",
                "description": "send a welcome",
                "enabled": True,
                "trigger": {"type": "manual", "config": {}},
                "actions": [
                    {"id": "flaky", "type": "transform",
                     "retry": {"attempts": 3, "backoff": {"type": "exponential", "delay": 100}},
                     "config": {"code": FLAKY}},
                    {"id": "send", "type": "response", "config": {"template": "mailed {{to}}"}},
                ],
            },
        )  # fmt: skip
        assert created.status_code == 201, created.text
        wf = created.json()
        assert wf["status"] == "active"
        retry = wf["definition"]["nodes"][1]["retry"]
        assert (retry["max_attempts"], retry["backoff_ms"], retry["strategy"]) == (
            3, 100, "exponential",
        )  # fmt: skip
        # GET /workflows, GET /workflows/:id
        assert [w["id"] for w in (await c.get("/workflows")).json()["items"]] == [wf["id"]]
        assert (await c.get(f"/workflows/{wf['id']}")).json() == wf
        # PUT /workflows/:id (a partial update: the actions stay)
        put = await c.put(f"/workflows/{wf['id']}", json={"description": "send a warm welcome"})
        assert put.status_code == 200, put.text
        assert put.json()["description"] == "send a warm welcome"
        assert [n["id"] for n in put.json()["definition"]["nodes"]] == ["trigger", "flaky", "send"]
        assert (
            await c.post(f"/workflows/{wf['id']}/publish")
        ).status_code == 404  # not a seed path
        assert (await c.post(f"/api/workflows/{wf['id']}/publish")).status_code == 200
        # POST /workflows/:id/trigger
        fired = await c.post(f"/workflows/{wf['id']}/trigger", json={"data": {"email": "a@b.c"}})
        assert fired.status_code == 202, fired.text
        execution_id = fired.json()["execution_id"]
        # GET /workflows/executions/:executionId
        detail = await eventually(
            lambda: _done_seed_003(c, execution_id), 30, "the triggered execution ends"
        )
        assert detail["status"] == "succeeded"
        assert detail["output"] == "mailed a@b.c"
        flaky = [(n["attempt"], n["status"]) for n in detail["nodes"] if n["node_id"] == "flaky"]
        assert flaky == [(1, "failed"), (2, "succeeded")]
        # GET /workflows/:id/executions and GET /workflows/executions/history
        mine = (await c.get(f"/workflows/{wf['id']}/executions")).json()["items"]
        history = (await c.get("/workflows/executions/history")).json()["items"]
        assert [e["id"] for e in mine] == [e["id"] for e in history] == [execution_id]
        done = await c.get("/workflows/executions/history", params={"status": "completed"})
        assert [e["id"] for e in done.json()["items"]] == [execution_id]

        # The same scoping and errors as /api: no token, an expired or forged one,
        # another tenant's token.
        async with httpx.AsyncClient(base_url=s.url, timeout=30) as anon:
            assert (await anon.get("/workflows")).status_code == 401
            for bad in (token("acme", expires_in=-120), token("acme", secret="x" * 40)):
                r = await anon.get("/workflows", headers={"Authorization": f"Bearer {bad}"})
                assert r.status_code == 401, r.text
                assert r.json()["error"]["code"] == "unauthorized"
            other = {"Authorization": f"Bearer {token('globex')}"}
            for path in (
                f"/workflows/{wf['id']}",
                f"/workflows/executions/{execution_id}",
                f"/workflows/{wf['id']}/executions",
            ):
                r = await anon.get(path, headers=other)
                assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), path
            assert (await anon.get("/workflows", headers=other)).json()["items"] == []
        # DELETE /workflows/:id
        assert (await c.delete(f"/workflows/{wf['id']}")).status_code == 204
        assert (await c.get(f"/workflows/{wf['id']}")).status_code == 404


async def _done_seed_003(c: httpx.AsyncClient, execution_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = (await c.get(f"/workflows/executions/{execution_id}")).json()
    return body if body["status"] in ("succeeded", "failed") else None


async def test_seed_004_cqrs_api_endpoints(tmp_path: Path) -> None:
    """Seed 004's command and query APIs (section 7), its triggerWorkflowNode and
    getJobStatus, and the Instagram webhook route (section 4.1)."""
    client = "550e8400-e29b-41d4-a716-446655440000"
    key = await _tenant_key(tmp_path, client)
    async with (
        serve(tmp_path) as s,
        httpx.AsyncClient(
            base_url=s.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as c,
    ):
        # POST /api/workflows with a WorkflowDefinitionCommand (camelCase tenantId).
        command = {
            "name": "Instagram replies",
            "description": "answer DMs",
            "tenantId": client,
            "nodes": [
                {"id": "dm", "type": "trigger",
                 "config": {"triggerType": "instagram", "actionType": "message"}},
                {"id": "manual", "type": "trigger"},
                {"id": "reply", "type": "transform",
                 "config": {"mapping": {"to": "{{trigger.data.entry[0].messaging[0].sender.id}}",
                                        "via": "{{trigger.node_id}}"}}},
            ],
            "edges": [{"source": "dm", "target": "reply"}, {"source": "manual", "target": "reply"}],
            "tags": ["instagram"],
        }  # fmt: skip
        made = await c.post("/api/workflows", json=command)
        assert made.status_code == 201, made.text
        wf = made.json()
        # PUT /api/workflows/:id with Partial<WorkflowDefinitionCommand>
        put = await c.put(f"/api/workflows/{wf['id']}", json={"description": "answer every DM"})
        assert put.json()["description"] == "answer every DM"
        assert [n["id"] for n in put.json()["definition"]["nodes"]] == ["dm", "manual", "reply"]
        # POST /api/workflows/:id/publish
        assert (await c.post(f"/api/workflows/{wf['id']}/publish")).json()["status"] == "active"
        # GET /api/workflows (status, tag, limit), GET /api/workflows/:id
        found = await c.get("/api/workflows", params={"status": "active", "tag": "instagram",
                                                      "limit": 10})  # fmt: skip
        assert [w["id"] for w in found.json()["items"]] == [wf["id"]]
        assert (await c.get(f"/api/workflows/{wf['id']}")).json()["name"] == "Instagram replies"

        # POST /webhooks/:clientUuid/:triggerType/:actionType
        payload = {"entry": [{"messaging": [{"sender": {"id": "cust-7"}}]}]}
        async with httpx.AsyncClient(base_url=s.url, timeout=30) as instagram:
            ack = await instagram.post(f"/webhooks/{client}/instagram/message", json=payload)
        assert ack.json()["status"] == "received"

        async def by_webhook() -> dict[str, Any] | None:
            items = (await c.get(f"/api/workflows/{wf['id']}/executions")).json()["items"]
            return items[0] if items else None

        first = await _ended(c, (await eventually(by_webhook, 30, "the DM starts a run"))["id"])
        assert first["output"] == {"to": "cust-7", "via": "dm"}

        # triggerWorkflowNode(nodeId, input, metadata)
        r = await c.post(
            f"/api/workflows/{wf['id']}/execute",
            json={"trigger_node_id": "dm", "input": payload, "metadata": {"source": "api"}},
        )
        assert r.status_code == 202, r.text
        second = await _ended(c, r.json()["execution_id"])
        assert second["output"] == {"to": "cust-7", "via": "dm"}
        assert second["nodes"][0]["node_id"] == "dm"
        # getJobStatus(jobId): the jobs behind the execution, each by its id.
        jobs = (await c.get(f"/api/executions/{second['id']}/jobs")).json()["items"]
        assert [(j["node_id"], j["state"]) for j in jobs] == [("reply", "completed")]
        job = (await c.get(f"/api/jobs/{jobs[0]['id']}")).json()
        assert (job["state"], job["execution_id"], job["kind"]) == (
            "completed", second["id"], "step",
        )  # fmt: skip

        # GET /api/workflows/:id/executions (status, dateFrom, dateTo, limit)
        listed = await c.get(
            f"/api/workflows/{wf['id']}/executions",
            params={"status": "completed", "dateFrom": "2020-01-01T00:00:00Z",
                    "dateTo": "2999-01-01T00:00:00Z", "limit": 10},
        )  # fmt: skip
        assert [e["id"] for e in listed.json()["items"]] == [second["id"], first["id"]]

        # POST /api/webhooks, GET /api/webhooks (workflowId, provider, limit),
        # GET /api/webhooks/:id/events (status, dateFrom, dateTo, limit), DELETE
        hook = await c.post(  # a WebhookRegistrationCommand, in the seed's spelling
            "/api/webhooks",
            json={"name": "ig", "workflowId": wf["id"], "nodeId": "dm", "tenantId": client,
                  "provider": "none", "config": {"allow_unverified": True}},
        )  # fmt: skip
        assert hook.status_code == 201, hook.text
        hook_id = hook.json()["id"]
        assert (hook.json()["workflow_id"], hook.json()["node_id"]) == (wf["id"], "dm")
        listed_hooks = await c.get(
            "/api/webhooks", params={"workflowId": wf["id"], "provider": "none", "limit": 10}
        )
        hooks = {(h["id"], h["origin"]) for h in listed_hooks.json()["items"]}
        route = next(h for h in listed_hooks.json()["items"] if h["origin"] == "definition")
        assert hooks == {(hook_id, "api"), (route["id"], "definition")}
        assert route["urls"] == [f"{s.url}/webhooks/{client}/instagram/message"]
        async with httpx.AsyncClient(base_url=s.url, timeout=30) as sender:
            await sender.post(f"/webhooks/{hook_id}/none", json=payload)

        async def processed() -> list[Any] | None:
            r = await c.get(
                f"/api/webhooks/{hook_id}/events",
                params={"status": "processed", "dateFrom": "2020-01-01T00:00:00Z", "limit": 5},
            )
            items: list[Any] = r.json()["items"]
            return items or None

        (event,) = await eventually(processed, 30, "the webhook event is processed")
        assert len(event["execution_ids"]) == 1
        assert (await c.delete(f"/api/webhooks/{hook_id}")).status_code == 204
        assert (await c.get(f"/api/webhooks/{hook_id}")).json()["status"] == "inactive"
