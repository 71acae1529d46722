"""Executions over the API: execute, wait, detail, lists, logs, cancel, retry (SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flowmill.testing import eventually
from tests.api_support import FAILING, THREE_NODES, WAITING, Api


async def test_api_executions_execute_wait_returns_the_execution_with_node_timings(
    api: Api,
) -> None:
    wf = await api.workflow()
    body = await api.run(wf, {"message": "hello"})
    assert body["status"] == "succeeded"
    assert body["input"] == {"message": "hello"}
    assert body["output"] == "The processed result is: hello processed"
    assert (body["workflow_id"], body["version"]) == (wf, 1)
    assert [n["node_id"] for n in body["nodes"]] == ["trigger-1", "process-1", "response-1"]
    for node in body["nodes"]:
        assert node["status"] == "succeeded"
        assert node["attempt"] == 1
        assert node["duration_ms"] is not None and node["duration_ms"] >= 0
        assert node["started_at"] <= node["completed_at"]
    assert body["nodes"][1]["output"] == {"result": "hello processed"}
    assert body["duration_ms"] >= 0


async def test_api_executions_execute_without_wait_answers_202_with_the_id(api: Api) -> None:
    wf = await api.workflow()
    r = await api.a.post(f"/api/workflows/{wf}/execute", json={"input": {"message": "x"}})
    assert r.status_code == 202
    execution_id = r.json()["execution_id"]
    assert r.headers["location"] == f"/api/executions/{execution_id}"
    ex = await api.runtime.engine.wait(execution_id, timeout=10)
    assert ex.status.value == "succeeded"
    detail = (await api.a.get(f"/api/executions/{execution_id}")).json()
    assert detail["status"] == "succeeded"


async def test_api_executions_execute_wait_that_runs_out_answers_202(api: Api) -> None:
    wf = await api.workflow(WAITING)
    r = await api.a.post(f"/api/workflows/{wf}/execute", params={"wait": 0.2}, json={})
    assert r.status_code == 202
    assert r.json()["status"] in ("running", "waiting")


async def test_api_executions_execute_wait_above_the_cap_is_capped_not_refused(
    api: Api,
) -> None:
    wf = await api.workflow()
    r = await api.a.post(
        f"/api/workflows/{wf}/execute", params={"wait": 1000}, json={"input": {"message": "x"}}
    )
    assert r.status_code == 200  # waited up to FLOWMILL_API_MAX_WAIT_S, as documented
    assert r.json()["status"] == "succeeded"


async def test_api_executions_execute_draft_needs_a_version(api: Api) -> None:
    wf = await api.workflow(publish=False)
    r = await api.a.post(f"/api/workflows/{wf}/execute", json={"input": {"message": "m"}})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "not_published"
    ok = await api.a.post(
        f"/api/workflows/{wf}/execute",
        params={"wait": 10},
        json={"input": {"message": "m"}, "version": 1},
    )
    assert ok.status_code == 200
    missing = await api.a.post(f"/api/workflows/{wf}/execute", json={"version": 5})
    assert missing.status_code == 404


async def test_executions_list_filters_and_keyset_pages(api: Api) -> None:
    ok_wf = await api.workflow()
    bad_wf = await api.workflow(FAILING)
    succeeded = [(await api.run(ok_wf, {"message": str(i)}))["id"] for i in range(5)]
    failed = [(await api.run(bad_wf, {"x": i}))["id"] for i in range(2)]
    everything = list(reversed(succeeded + failed))  # newest first

    async def ids(path: str = "/api/executions", **params: Any) -> list[str]:
        r = await api.a.get(path, params=params)
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()["items"]]

    assert await ids() == everything
    assert await ids(status="failed") == list(reversed(failed))
    assert await ids(status=["failed", "succeeded"]) == everything
    assert await ids(workflow_id=ok_wf) == list(reversed(succeeded))
    assert await ids(f"/api/workflows/{bad_wf}/executions") == list(reversed(failed))
    assert await ids(trigger_type="manual") == everything
    assert await ids(trigger_type="webhook") == []

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, "status": "succeeded"}
        if cursor:
            params["cursor"] = cursor
        page = (await api.a.get("/api/executions", params=params)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(succeeded))

    now = datetime.now(UTC)
    assert await ids(started_from=(now + timedelta(minutes=1)).isoformat()) == []
    assert await ids(started_to=(now - timedelta(minutes=5)).isoformat()) == []
    assert len(await ids(started_from=(now - timedelta(minutes=5)).isoformat())) == 7
    item = (await api.a.get("/api/executions", params={"limit": 1})).json()["items"][0]
    assert set(item) >= {"id", "workflow_id", "version", "status", "trigger_type", "duration_ms"}


async def test_executions_detail_of_a_failure_carries_the_node_error(api: Api) -> None:
    wf = await api.workflow(FAILING)
    body = await api.run(wf, {"x": 1})
    assert body["status"] == "failed"
    boom = next(n for n in body["nodes"] if n["node_id"] == "boom")
    assert boom["status"] == "failed"
    assert boom["error"]["message"] == "no"
    assert body["error"] is not None


LOGGING = {
    "name": "Logs twice",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "one", "type": "error_handler", "config": {"message": "first {{data.x}}"}},
        {"id": "two", "type": "error_handler", "config": {"message": "second", "level": "info"}},
    ],
    "edges": [{"source": "t", "target": "one"}, {"source": "one", "target": "two"}],
}


async def test_executions_logs_are_paged_oldest_first(api: Api) -> None:
    wf = await api.workflow(LOGGING)
    body = await api.run(wf, {"x": 1})
    r = await api.a.get(f"/api/executions/{body['id']}/logs")
    assert r.status_code == 200
    lines = r.json()["items"]
    assert [(x["node_id"], x["level"], x["message"]) for x in lines] == [
        ("one", "warn", "first 1"),
        ("two", "info", "second"),
    ]
    first = (await api.a.get(f"/api/executions/{body['id']}/logs", params={"limit": 1})).json()
    assert [x["message"] for x in first["items"]] == ["first 1"]
    rest = await api.a.get(
        f"/api/executions/{body['id']}/logs", params={"cursor": first["next_cursor"]}
    )
    assert [x["message"] for x in rest.json()["items"]] == ["second"]
    assert rest.json()["next_cursor"] is None


async def test_executions_cancel_a_waiting_execution_then_refuse_again(api: Api) -> None:
    wf = await api.workflow(WAITING)
    started = await api.a.post(f"/api/workflows/{wf}/execute", json={})
    execution_id = started.json()["execution_id"]

    async def waiting() -> bool:
        return (await api.a.get(f"/api/executions/{execution_id}")).json()["status"] == "waiting"

    await eventually(waiting, 10, "the execution parked on its delay")
    r = await api.a.post(f"/api/executions/{execution_id}/cancel")
    assert r.status_code == 200
    assert r.json() == {"execution_id": execution_id, "status": "cancelled"}
    detail = (await api.a.get(f"/api/executions/{execution_id}")).json()
    assert detail["status"] == "cancelled"
    again = await api.a.post(f"/api/executions/{execution_id}/cancel")
    assert again.status_code == 409


async def test_executions_retry_from_failure_reuses_earlier_outputs(api: Api) -> None:
    wf = await api.workflow(FAILING)
    failed = await api.run(wf, {"x": 7})
    r = await api.a.post(f"/api/executions/{failed['id']}/retry", json={})
    assert r.status_code == 202
    new_id = r.json()["execution_id"]
    ex = await api.runtime.engine.wait(new_id, timeout=10)
    assert ex.status.value == "failed"
    detail = (await api.a.get(f"/api/executions/{new_id}")).json()
    assert detail["retry_of"] == failed["id"]
    a = next(n for n in detail["nodes"] if n["node_id"] == "a")
    old_a = next(n for n in failed["nodes"] if n["node_id"] == "a")
    assert a["output"] == old_a["output"] == {"x": 7}
    runs = await api.runtime.executions.node_runs(new_id)
    copied = next(x for x in runs if x.node_id == "a").state
    assert copied is not None and "copied_from" in copied  # reused, not run again


async def test_executions_retry_from_start_and_refusals(api: Api) -> None:
    wf = await api.workflow()
    done = await api.run(wf, {"message": "again"})
    refused = await api.a.post(f"/api/executions/{done['id']}/retry")
    assert refused.status_code == 409
    r = await api.a.post(f"/api/executions/{done['id']}/retry", json={"from_start": True})
    assert r.status_code == 202
    ex = await api.runtime.engine.wait(r.json()["execution_id"], timeout=10)
    assert ex.output == "The processed result is: again processed"

    live_wf = await api.workflow(WAITING)
    live = (await api.a.post(f"/api/workflows/{live_wf}/execute", json={})).json()
    running = await api.a.post(f"/api/executions/{live['execution_id']}/retry")
    assert running.status_code == 409


async def test_executions_unknown_ids_are_404(api: Api) -> None:
    ghost = "01900000-0000-7000-8000-000000000000"
    for method, path in [
        ("GET", f"/api/executions/{ghost}"),
        ("GET", f"/api/executions/{ghost}/logs"),
        ("POST", f"/api/executions/{ghost}/cancel"),
        ("POST", f"/api/executions/{ghost}/retry"),
        ("POST", f"/api/workflows/{ghost}/execute"),
    ]:
        r = await api.a.request(method, path)
        assert r.status_code == 404, (method, path)
        assert r.json()["error"]["code"] == "not_found"


async def test_api_executions_three_node_seed_shape_runs_as_in_the_seed(api: Api) -> None:
    # The seed's expected answer, with its function node as a mapping transform.
    wf = await api.workflow(THREE_NODES)
    body = await api.run(wf, {"message": "Hello"})
    assert body["output"] == "The processed result is: Hello processed"
    assert body["nodes"][0]["output"]["type"] == "webhook.test"


async def test_api_executions_execute_takes_a_priority_and_refuses_one_out_of_range(
    api: Api,
) -> None:
    wf = await api.workflow()
    r = await api.a.post(
        f"/api/workflows/{wf}/execute", params={"wait": 10}, json={"input": {}, "priority": 7}
    )
    assert r.status_code == 200, r.text
    ex = await api.runtime.executions.get_execution(r.json()["id"])
    assert ex is not None and ex.trigger["priority"] == 7
    bad = await api.a.post(f"/api/workflows/{wf}/execute", json={"priority": 1000})
    assert bad.status_code == 422
    assert [d["field"] for d in bad.json()["error"]["details"]] == ["body.priority"]


TEMPLATED: dict[str, Any] = {
    "name": "Two steps",
    "nodes": [
        {"id": "t", "type": "trigger", "config": {"triggerType": "manual"}},
        {"id": "a", "type": "transform", "config": {"mapping": {"m": "{{ input.data.message }}"}}},
        {"id": "b", "type": "response", "config": {"template": "got {{ input.m }}"}},
    ],
    "edges": [{"source": "t", "target": "a"}, {"source": "a", "target": "b"}],
}


async def _rerun(api: Api, execution_id: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.a.post(f"/api/executions/{execution_id}/retry", json=body)
    assert r.status_code == 202, r.text
    new_id = r.json()["execution_id"]
    await api.runtime.engine.wait(new_id, timeout=10)
    detail: dict[str, Any] = (await api.a.get(f"/api/executions/{new_id}")).json()
    return detail


async def test_executions_retry_from_node_keeps_the_outputs_before_it(api: Api) -> None:
    wf = await api.workflow(TEMPLATED)
    done = await api.run(wf, {"message": "one"})
    assert done["output"] == "got one"
    again = await _rerun(api, done["id"], {"from_node": "b"})
    assert (again["status"], again["output"], again["retry_of"]) == (
        "succeeded",
        "got one",
        done["id"],
    )
    runs = {r.node_id: r.state for r in await api.runtime.executions.node_runs(again["id"])}
    assert runs["a"] is not None and "copied_from" in runs["a"]  # kept, not run
    assert not (runs["b"] or {}).get("copied_from")  # ran again


async def test_executions_retry_from_node_with_pinned_data(api: Api) -> None:
    wf = await api.workflow(TEMPLATED)
    done = await api.run(wf, {"message": "one"})
    pinned = {"t": {"type": "manual", "data": {"message": "pinned"}}}
    again = await _rerun(api, done["id"], {"from_node": "a", "pinned": pinned})
    assert again["output"] == "got pinned"
    assert again["input"] == {"message": "pinned"}  # the pinned trigger is the trigger
    by_a = await _rerun(api, done["id"], {"from_node": "b", "pinned": {"a": {"m": "set"}}})
    assert by_a["output"] == "got set"


async def test_executions_retry_from_node_runs_a_newer_version(api: Api) -> None:
    wf = await api.workflow(TEMPLATED)
    done = await api.run(wf, {"message": "one"})
    nodes = [dict(n) for n in TEMPLATED["nodes"]]
    nodes[2] = {**nodes[2], "config": {"template": "v2 got {{ input.m }}"}}
    r = await api.a.post(
        f"/api/workflows/{wf}/versions", json={"definition": {**TEMPLATED, "nodes": nodes}}
    )
    assert r.json()["version"] == 2
    again = await _rerun(api, done["id"], {"from_node": "b", "version": 2})
    assert (again["version"], again["output"]) == (2, "v2 got one")


async def test_executions_retry_from_node_refusals_name_the_field(api: Api) -> None:
    wf = await api.workflow(TEMPLATED)
    done = await api.run(wf, {"message": "one"})
    url = f"/api/executions/{done['id']}/retry"
    cases = [
        ({"from_node": "ghost"}, "body.from_node"),
        ({"from_node": "a", "pinned": {"b": 1}}, "body.pinned.b"),
        ({"from_node": "a", "pinned": {"ghost": 1}}, "body.pinned.ghost"),
        ({"version": 1}, "body.version"),
        ({"from_node": "a", "from_start": True}, "body.from_start"),
    ]
    for body, field in cases:
        r = await api.a.post(url, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["details"][0]["field"] == field
    missing = await api.a.post(url, json={"from_node": "a", "version": 9})
    assert missing.status_code == 404
