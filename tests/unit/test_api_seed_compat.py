"""The seeds' API shapes on the real app (SQLite, in-process): versions by id, start
nodes, aliases, jobs by id, seed 003's paths and seed 002's trigger routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api_support import THREE_NODES, Api, open_api

TWO_TRIGGERS: dict[str, Any] = {
    "name": "Two doors",
    "nodes": [
        {"id": "manual", "type": "trigger"},
        {"id": "hook", "type": "trigger", "config": {"triggerType": "webhook", "actionType": "x"}},
        {"id": "say", "type": "transform", "config": {"mapping": {"via": "{{trigger.node_id}}",
                                                               "got": "{{trigger.data}}"}}},
    ],
    "edges": [{"source": "manual", "target": "say"}, {"source": "hook", "target": "say"}],
}  # fmt: skip
STEPS = {"steps": [{"type": "transform", "config": {"mapping": {"v": "{{data.v}}"}}}]}


@pytest.fixture
async def api(sqlite_url: str) -> AsyncIterator[Api]:
    async with open_api(sqlite_url) as api:
        yield api


async def test_seed_compat_version_without_a_name_keeps_the_workflows(api: Api) -> None:
    wf = (await api.a.post("/api/workflows", json={"name": "Test Workflow"})).json()
    r = await api.a.post(f"/api/workflows/{wf['id']}/versions", json={"definition": STEPS})
    assert r.status_code == 201, r.text
    version = r.json()
    assert (version["version"], version["definition"]["name"]) == (2, "Test Workflow")
    assert [n["id"] for n in version["definition"]["nodes"]] == ["trigger", "step-0"]
    # The id addresses the version wherever its number does.
    by_id = await api.a.get(f"/api/workflows/{wf['id']}/versions/{version['id']}")
    assert by_id.json() == (await api.a.get(f"/api/workflows/{wf['id']}/versions/2")).json()
    diff = await api.a.get(f"/api/workflows/{wf['id']}/versions/1/diff/{version['id']}")
    assert (diff.json()["from_version"], diff.json()["to_version"]) == (1, 2)
    listed = (await api.a.get(f"/api/workflows/{wf['id']}/versions")).json()["items"]
    assert [v["id"] for v in listed] == [version["id"], listed[1]["id"]]
    published = await api.a.post(f"/api/workflows/{wf['id']}/versions/{version['id']}/publish")
    assert (published.json()["status"], published.json()["active_version"]) == ("active", 2)
    run = await api.a.post(
        f"/api/workflows/{wf['id']}/execute", params={"wait": 10}, json={"input": {"v": 7}}
    )
    assert run.json()["output"] == {"v": 7}


async def test_seed_compat_version_ids_of_other_workflows_are_404(api: Api) -> None:
    one = (await api.a.post("/api/workflows", json={"name": "One"})).json()
    two = (await api.a.post("/api/workflows", json={"name": "Two"})).json()
    v1 = (await api.a.get(f"/api/workflows/{one['id']}/versions/1")).json()["id"]
    for path in (
        f"/api/workflows/{two['id']}/versions/{v1}",
        f"/api/workflows/{one['id']}/versions/{v1[:-1]}2",  # version 2 with 1's digest
    ):
        r = await api.a.get(path)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), path
    r = await api.a.post(f"/api/workflows/{two['id']}/versions/{v1}/publish")
    assert r.status_code == 404
    assert (await api.a.get(f"/api/workflows/{two['id']}")).json()["active_version"] is None
    assert (await api.a.get(f"/api/workflows/{one['id']}/versions/x1")).status_code == 422


async def test_seed_compat_execute_at_a_chosen_trigger_node(api: Api) -> None:
    wf = await api.workflow(TWO_TRIGGERS)
    url = f"/api/workflows/{wf}/execute"
    default = (await api.a.post(url, params={"wait": 10}, json={"input": 1})).json()
    assert default["output"] == {"via": "manual", "got": 1}
    chosen = await api.a.post(
        url,
        params={"wait": 10},
        json={"trigger_node_id": "hook", "input": {"m": 2}, "metadata": {"customerId": "c-9"}},
    )
    assert chosen.json()["output"] == {"via": "hook", "got": {"m": 2}}
    run = chosen.json()["nodes"][0]
    assert (run["node_id"], run["output"]["customerId"]) == ("hook", "c-9")
    seed = await api.a.post(
        url, params={"wait": 10}, json={"nodeId": "hook", "triggerData": {"m": 3}}
    )
    assert seed.json()["output"] == {"via": "hook", "got": {"m": 3}}
    for body, field in [
        ({"trigger_node_id": "say"}, "body.trigger_node_id"),
        ({"trigger_node_id": "ghost"}, "body.trigger_node_id"),
        ({"input": 1, "data": 2}, "body"),
        ({"nodeId": "hook", "trigger_node_id": "manual"}, "body"),
    ]:
        r = await api.a.post(url, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["details"][0]["field"] == field, body
    bad = await api.a.post(url, json={"trigger_node_id": "say"})
    assert "its triggers: manual, hook" in bad.json()["error"]["details"][0]["message"]


async def test_seed_compat_completed_and_date_aliases_filter(api: Api) -> None:
    wf = await api.workflow(THREE_NODES)
    done = (await api.run(wf, {"message": "x"}))["id"]
    for path in ("/api/executions", f"/api/workflows/{wf}/executions"):
        listed = await api.a.get(path, params={"status": "completed"})
        assert [e["id"] for e in listed.json()["items"]] == [done], path
        assert listed.json()["items"][0]["status"] == "succeeded"
        early = await api.a.get(path, params={"dateTo": "2001-01-01T00:00:00Z"})
        assert early.json()["items"] == []
        late = await api.a.get(path, params={"dateFrom": "2001-01-01T00:00:00Z"})
        assert [e["id"] for e in late.json()["items"]] == [done]
        both = await api.a.get(
            path, params={"dateFrom": "2001-01-01T00:00:00Z", "started_from": "2002-01-01T00:00Z"}
        )
        assert both.status_code == 422
        assert both.json()["error"]["details"][0]["field"] == "query.dateFrom"


async def test_seed_compat_jobs_of_an_execution_by_id(api: Api) -> None:
    wf = await api.workflow(THREE_NODES)
    done = await api.run(wf, {"message": "x"})
    jobs = (await api.a.get(f"/api/executions/{done['id']}/jobs")).json()["items"]
    assert [(j["node_id"], j["state"], j["kind"]) for j in jobs] == [
        ("process-1", "completed", "step"),
        ("response-1", "completed", "step"),
    ]
    job = await api.a.get(f"/api/jobs/{jobs[1]['id']}")
    assert job.status_code == 200
    assert job.json() == jobs[1]
    assert job.json()["execution_id"] == done["id"]
    assert job.json()["node_status"] == "succeeded"
    assert job.json()["queue_state"] is None  # the embedded queue forgets finished jobs
    # Another tenant, an unknown step, an id that is no job: 404.
    assert (await api.b.get(f"/api/jobs/{jobs[1]['id']}")).status_code == 404
    assert (await api.b.get(f"/api/executions/{done['id']}/jobs")).status_code == 404
    unknown = jobs[1]["id"][:-1] + "9"
    assert (await api.a.get(f"/api/jobs/{unknown}")).status_code == 404
    assert (await api.a.get("/api/jobs/12")).status_code == 404


async def test_seed_compat_failed_and_delayed_jobs(api: Api) -> None:
    slow = {
        "name": "slow",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "wait", "type": "delay", "config": {"ms": 3_600_000}},
        ],
        "edges": [{"source": "t", "target": "wait"}],
    }
    wf = await api.workflow(slow)
    started = await api.a.post(f"/api/workflows/{wf}/execute", json={})
    eid = started.json()["execution_id"]
    for _ in range(200):
        jobs = (await api.a.get(f"/api/executions/{eid}/jobs")).json()["items"]
        if jobs and jobs[0]["state"] == "delayed":
            break
    assert [(j["node_id"], j["state"], j["node_status"]) for j in jobs] == [
        ("wait", "delayed", "waiting")
    ]
    await api.a.post(f"/api/executions/{eid}/cancel")
    job = (await api.a.get(f"/api/jobs/{jobs[0]['id']}")).json()
    assert (job["state"], job["failed_reason"]) == ("failed", "cancelled")


async def test_seed_compat_seed_003_paths_answer_as_the_api(api: Api) -> None:
    made = await api.a.post(
        "/workflows",
        json={
            "name": "Seed 003",
            "description": "actions with retry",
            "enabled": True,
            "trigger": {"type": "manual", "config": {}},
            "actions": [
                {"id": "a", "type": "transform", "config": {"mapping": {"v": "{{data.v}}"}},
                 "retry": {"attempts": 3, "backoff": {"type": "exponential", "delay": 2000}}},
            ],
        },
    )  # fmt: skip
    assert made.status_code == 201, made.text
    wf = made.json()
    assert wf["status"] == "active"
    retry = wf["definition"]["nodes"][1]["retry"]
    assert (retry["max_attempts"], retry["backoff_ms"], retry["strategy"]) == (
        3,
        2000,
        "exponential",
    )
    same = [
        ("/workflows", "/api/workflows"),
        (f"/workflows/{wf['id']}", f"/api/workflows/{wf['id']}"),
    ]
    for seed, ours in same:
        assert (await api.a.get(seed)).json() == (await api.a.get(ours)).json()
    ran = await api.a.post(f"/workflows/{wf['id']}/trigger?wait=10", json={"input": {"v": 1}})
    assert ran.status_code == 200 and ran.json()["output"] == {"v": 1}
    history = (await api.a.get("/workflows/executions/history")).json()
    assert [e["id"] for e in history["items"]] == [ran.json()["id"]]
    assert (await api.a.get(f"/workflows/{wf['id']}/executions")).json() == history
    detail = await api.a.get(f"/workflows/executions/{ran.json()['id']}")
    assert detail.json() == (await api.a.get(f"/api/executions/{ran.json()['id']}")).json()
    # PUT is a partial update: the actions stay; enabled false deactivates.
    put = await api.a.put(f"/workflows/{wf['id']}", json={"description": "new", "enabled": False})
    assert put.status_code == 200, put.text
    assert (put.json()["description"], put.json()["status"]) == ("new", "inactive")
    assert [n["id"] for n in put.json()["definition"]["nodes"]] == ["trigger", "a"]
    # Same errors: another tenant's id, a bad id, a bad body.
    assert (await api.b.get(f"/workflows/{wf['id']}")).status_code == 404
    bad = await api.a.get("/workflows/not-a-uuid")
    assert bad.json() == (await api.a.get("/api/workflows/not-a-uuid")).json()
    assert bad.status_code == 422
    assert (await api.anon.get("/workflows")).status_code == 401
    assert (await api.a.delete(f"/workflows/{wf['id']}")).status_code == 204
    assert (await api.a.get(f"/api/workflows/{wf['id']}")).status_code == 404


async def test_seed_compat_patch_takes_seed_settings(api: Api) -> None:
    doc = {**THREE_NODES, "settings": {"max_concurrent": 3, "retry": {"max_attempts": 2}}}
    wf = await api.workflow(doc)
    r = await api.a.patch(
        f"/api/workflows/{wf}", json={"rateLimitMaxConcurrent": 5, "retryBackoffMs": 100}
    )
    assert r.status_code == 200, r.text
    settings = r.json()["definition"]["settings"]
    assert settings["max_concurrent"] == 5
    assert (settings["retry"]["max_attempts"], settings["retry"]["backoff_ms"]) == (2, 100)


async def test_seed_compat_seed_002_trigger_routes(api: Api) -> None:
    wf = await api.workflow(THREE_NODES)
    url = f"/api/workflows/{wf}/triggers"
    before = (await api.a.get(url)).json()["items"]
    assert [(t["kind"], t["node_id"], t["origin"]) for t in before] == [
        ("webhook", "trigger-1", "definition")
    ]
    made = await api.a.post(
        url, json={"type": "webhook", "config": {"allow_unverified": True}, "enabled": False}
    )
    assert made.status_code == 201, made.text
    assert (made.json()["node_id"], made.json()["status"]) == ("trigger-1", "inactive")
    assert made.json()["urls"][1].endswith(f"/api/webhooks/{made.json()['id']}")
    after = (await api.a.get(url)).json()["items"]
    assert {t["id"] for t in after} == {before[0]["id"], made.json()["id"]}
    assert (await api.a.get(f"/api/webhooks/{made.json()['id']}")).json() == made.json()
    refused = await api.a.post(url, json={"type": "schedule", "config": {"cron": "* * * * *"}})
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "body.type"
    unverified = await api.a.post(url, json={"type": "webhook"})
    assert unverified.json()["error"]["details"][0]["field"] == "body.config.allow_unverified"
    assert (await api.b.get(url)).status_code == 404
    assert (await api.b.post(url, json={"type": "webhook"})).status_code == 404
