"""/api/workflows and versions: the app on a real SQLite file, called in-process."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api_support import THREE_NODES, Api

pytestmark = pytest.mark.api_settings(worker=False)


def changed(doc: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {**doc, **top}


async def test_workflows_create_stores_a_draft_owned_by_the_caller(api: Api) -> None:
    r = await api.a.post("/api/workflows", json=THREE_NODES)
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "draft"
    assert (body["latest_version"], body["active_version"]) == (1, None)
    assert body["tags"] == ["test"]
    # The body's tenant_id is ignored: the tenant is always the caller's.
    assert body["definition"]["tenant_id"] == "tenant-a"
    assert [n["id"] for n in body["definition"]["nodes"]] == [
        "trigger-1",
        "process-1",
        "response-1",
    ]
    got = await api.a.get(f"/api/workflows/{body['id']}")
    assert got.json() == body


async def test_workflows_create_active_publishes_version_one(api: Api) -> None:
    r = await api.a.post("/api/workflows", json=changed(THREE_NODES, status="active"))
    assert (r.json()["status"], r.json()["active_version"]) == ("active", 1)


async def test_workflows_create_with_name_only_starts_with_a_manual_trigger(api: Api) -> None:
    r = await api.a.post("/api/workflows", json={"name": "Empty"})
    assert r.status_code == 201
    assert r.json()["definition"]["nodes"] == [
        {"id": "trigger", "type": "trigger", "config": {"triggerType": "manual"}}
    ]


async def test_workflows_create_steps_are_stored_as_a_graph(api: Api) -> None:
    doc = {
        "name": "Steps",
        "steps": [
            {"id": "a", "type": "transform", "config": {"mapping": {"x": 1}}},
            {"id": "b", "type": "response", "config": {"template": "{{x}}"}},
        ],
    }
    r = await api.a.post("/api/workflows", json=doc)
    definition = r.json()["definition"]
    assert [e["target"] for e in definition["edges"]] == ["a", "b"]
    assert "steps" not in definition


async def test_workflows_invalid_definition_names_the_node(api: Api) -> None:
    bad = changed(
        THREE_NODES,
        nodes=[*THREE_NODES["nodes"], {"id": "x", "type": "no_such_type"}],
    )
    r = await api.a.post("/api/workflows", json=bad)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_definition"
    assert any("x" in (d["field"] or "") for d in err["details"])
    dangling = changed(THREE_NODES, edges=[{"source": "trigger-1", "target": "ghost"}])
    r = await api.a.post("/api/workflows", json=dangling)
    assert r.status_code == 422
    assert "ghost" in r.json()["error"]["message"]


async def test_workflows_schema_errors_name_the_field(api: Api) -> None:
    r = await api.a.post("/api/workflows", json={"name": "x", "nodes": [{"id": "t"}]})
    assert r.status_code == 422
    fields = [d["field"] for d in r.json()["error"]["details"]]
    # checked as `flowmill validate` checks a file: by node id, and the graph too
    assert fields == ["body.nodes[t].type", "body.nodes"]
    r = await api.a.post("/api/workflows", json={"name": "x", "colour": "red"})
    assert [d["field"] for d in r.json()["error"]["details"]] == ["body.colour"]


async def test_workflows_update_creates_a_draft_version_and_keeps_the_active_one(
    api: Api,
) -> None:
    wf = await api.workflow()
    v2 = changed(THREE_NODES, description="second")
    r = await api.a.put(f"/api/workflows/{wf}", json=v2)
    assert r.status_code == 200
    assert (r.json()["latest_version"], r.json()["active_version"]) == (2, 1)
    assert r.json()["status"] == "active"
    # The same body again adds nothing.
    again = await api.a.put(f"/api/workflows/{wf}", json=v2)
    assert again.json()["latest_version"] == 2


async def test_workflows_patch_replaces_only_given_fields(api: Api) -> None:
    wf = await api.workflow(publish=False)
    r = await api.a.patch(f"/api/workflows/{wf}", json={"tags": ["x", "y"], "name": "Renamed"})
    assert r.status_code == 200
    body = r.json()
    assert (body["name"], body["tags"], body["latest_version"]) == ("Renamed", ["x", "y"], 2)
    assert len(body["definition"]["nodes"]) == 3


async def test_workflows_list_filters_and_pages(api: Api) -> None:
    ids = []
    for i in range(5):
        doc = changed(
            THREE_NODES,
            name=f"Flow {i}",
            tags=["even"] if i % 2 == 0 else ["odd"],
            description="Sends 100% of invoices" if i == 3 else "",
        )
        ids.append((await api.a.post("/api/workflows", json=doc)).json()["id"])
    await api.a.post(f"/api/workflows/{ids[0]}/publish")

    page1 = (await api.a.get("/api/workflows", params={"limit": 2})).json()
    assert [w["id"] for w in page1["items"]] == [ids[4], ids[3]]
    page2 = (
        await api.a.get("/api/workflows", params={"limit": 2, "cursor": page1["next_cursor"]})
    ).json()
    page3 = (
        await api.a.get("/api/workflows", params={"limit": 2, "cursor": page2["next_cursor"]})
    ).json()
    assert [w["id"] for w in page2["items"] + page3["items"]] == [ids[2], ids[1], ids[0]]
    assert page3["next_cursor"] is None

    async def names(**params: Any) -> list[str]:
        r = await api.a.get("/api/workflows", params=params)
        assert r.status_code == 200, r.text
        return [w["name"] for w in r.json()["items"]]

    assert await names(status="active") == ["Flow 0"]
    assert await names(tag="odd") == ["Flow 3", "Flow 1"]
    assert await names(search="flow 2") == ["Flow 2"]
    assert await names(search="100%") == ["Flow 3"]  # % is literal, not a wildcard
    assert await names(search="_") == []


async def test_workflows_delete_hides_it_but_keeps_its_executions(api: Api) -> None:
    wf = await api.workflow()
    started = await api.a.post(f"/api/workflows/{wf}/execute", json={"input": {}})
    execution_id = started.json()["execution_id"]
    assert (await api.a.delete(f"/api/workflows/{wf}")).status_code == 204
    assert (await api.a.get(f"/api/workflows/{wf}")).status_code == 404
    assert (await api.a.delete(f"/api/workflows/{wf}")).status_code == 404
    assert (await api.a.get("/api/workflows")).json()["items"] == []
    assert (await api.a.get(f"/api/executions/{execution_id}")).status_code == 200
    r = await api.a.post(f"/api/workflows/{wf}/execute", json={})
    assert r.status_code == 404


async def test_api_workflows_versions_list_get_publish_and_roll_back(api: Api) -> None:
    wf = await api.workflow()
    r = await api.a.post(
        f"/api/workflows/{wf}/versions",
        json={"definition": changed(THREE_NODES, description="v2"), "note": "second"},
    )
    assert r.status_code == 201
    assert (r.json()["version"], r.json()["created"], r.json()["note"]) == (2, True, "second")
    same = await api.a.post(
        f"/api/workflows/{wf}/versions", json={"definition": changed(THREE_NODES, description="v2")}
    )
    assert (same.status_code, same.json()["created"], same.json()["version"]) == (200, False, 2)

    listed = (await api.a.get(f"/api/workflows/{wf}/versions")).json()["items"]
    assert [(v["version"], v["active"], v["latest"]) for v in listed] == [
        (2, False, True),
        (1, True, False),
    ]
    v1 = (await api.a.get(f"/api/workflows/{wf}/versions/1")).json()
    assert v1["definition"]["description"] == "A simple test workflow"

    published = await api.a.post(f"/api/workflows/{wf}/versions/2/publish")
    assert published.json()["active_version"] == 2
    back = await api.a.post(f"/api/workflows/{wf}/versions/1/publish")
    assert back.json()["active_version"] == 1
    assert (await api.a.post(f"/api/workflows/{wf}/versions/9/publish")).status_code == 404
    assert (await api.a.get(f"/api/workflows/{wf}/versions/9")).status_code == 404


async def test_api_workflows_versions_create_with_publish_activates_it(api: Api) -> None:
    wf = await api.workflow(publish=False)
    r = await api.a.post(
        f"/api/workflows/{wf}/versions",
        json={"definition": changed(THREE_NODES, name="B"), "publish": True},
    )
    assert r.json()["active"] is True
    assert (await api.a.get(f"/api/workflows/{wf}")).json()["active_version"] == 2


async def test_api_workflows_versions_diff_names_changed_nodes_and_edges(api: Api) -> None:
    wf = await api.workflow()
    nodes = [dict(n) for n in THREE_NODES["nodes"]]
    nodes[2] = {**nodes[2], "config": {"template": "Result: {{result}}"}}
    nodes.append({"id": "extra", "type": "noop"})
    doc = changed(
        THREE_NODES,
        name="Renamed",
        nodes=nodes,
        edges=[*THREE_NODES["edges"], {"source": "response-1", "target": "extra"}],
    )
    await api.a.put(f"/api/workflows/{wf}", json=doc)
    d = (await api.a.get(f"/api/workflows/{wf}/versions/1/diff/2")).json()
    assert d["identical"] is False
    assert d["fields"] == [{"path": "name", "before": "Test Workflow", "after": "Renamed"}]
    assert d["nodes_added"] == ["extra"]
    assert d["nodes_removed"] == []
    assert d["nodes_changed"] == [
        {
            "id": "response-1",
            "changes": [
                {
                    "path": "config.template",
                    "before": "The processed result is: {{result}}",
                    "after": "Result: {{result}}",
                }
            ],
        }
    ]
    assert d["edges_added"] == [{"source": "response-1", "target": "extra", "sourceHandle": None}]
    same = (await api.a.get(f"/api/workflows/{wf}/versions/2/diff/2")).json()
    assert same["identical"] is True
    assert (await api.a.get(f"/api/workflows/{wf}/versions/1/diff/7")).status_code == 404


async def test_workflows_export_then_import_round_trips(api: Api) -> None:
    wf = await api.workflow()
    r = await api.a.get(f"/api/workflows/{wf}/export")
    assert r.status_code == 200
    assert "attachment" in r.headers["content-disposition"]
    exported = r.json()
    assert exported["status"] == "active"
    assert "tenant_id" not in exported
    imported = await api.b.post("/api/workflows/import", json=exported)
    assert imported.status_code == 201
    assert imported.json()["status"] == "active"
    assert imported.json()["definition"]["tenant_id"] == "tenant-b"
    again = (await api.b.get(f"/api/workflows/{imported.json()['id']}/export")).json()
    assert again == exported


async def test_workflows_api_reports_what_flowmill_validate_reports(api: Api) -> None:
    from flowmill.validation import check_document
    from tests.validation_support import EXPECTED, MANY_PROBLEMS

    r = await api.a.post("/api/workflows", json=MANY_PROBLEMS)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_definition"
    got = {d["field"]: d["message"] for d in error["details"]}
    # the same function as the CLI: the same issues, under body.
    expected = {f"body.{i.path}": i.message for i in check_document(MANY_PROBLEMS).issues}
    assert got == expected
    for path, message in EXPECTED.items():
        assert got[f"body.{path}"] == message
