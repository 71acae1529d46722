"""The editor's API: node catalogue, validation without saving, saves that refuse to
overwrite a version saved since (``base_version``)."""

from __future__ import annotations

import copy
from typing import Any, get_args

import pytest

from flowmill.credentials.kinds import KINDS, CredentialKind
from flowmill.nodes.fields import credential_field
from tests.api_support import THREE_NODES, Api
from tests.editor_support import GreetingNode

pytestmark = pytest.mark.api_settings(worker=False)


def _doc(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(THREE_NODES), **changes}


async def test_api_editor_node_types_list_every_type_with_its_config_schema(api: Api) -> None:
    r = await api.a.get("/api/node-types")
    assert r.status_code == 200
    items = {i["type"]: i for i in r.json()["items"]}
    assert set(items) == set(api.runtime.engine.registry)
    function = items["function"]
    assert function["label"] == "Function"
    assert function["category"] == "code"
    assert function["config_schema"]["required"] == ["code"]
    assert function["config_schema"]["properties"]["code"]["type"] == "string"
    assert function["handles"] == {
        "input": True,
        "outputs": [],
        "outputs_from": None,
        "error": True,
    }
    assert items["trigger"]["handles"]["input"] is False
    assert items["trigger"]["config_schema"]["properties"]["triggerType"]["type"] == "string"
    assert items["conditional"]["handles"]["outputs"] == ["true", "false"]
    assert items["switch"]["handles"]["outputs_from"] == "cases[].handle"
    assert not any(i["plugin"] for i in items.values())


async def test_api_editor_node_types_include_a_plugin_with_its_schema(api: Api) -> None:
    api.runtime.engine.registry.register(GreetingNode)
    r = await api.a.get("/api/node-types")
    greeting = next(i for i in r.json()["items"] if i["type"] == "greeting")
    assert greeting["plugin"] is True
    assert (greeting["label"], greeting["category"], greeting["icon"]) == (
        "Greeting",
        "demo plugins",
        "smile",
    )
    assert greeting["description"] == "Greet someone (a plugin)."
    props = greeting["config_schema"]["properties"]
    assert props["style"]["enum"] == ["plain", "shout"]
    assert (props["repeat"]["minimum"], props["repeat"]["maximum"]) == (1, 5)
    assert greeting["config_schema"]["required"] == ["name"]


async def test_api_editor_node_types_say_which_credential_types_a_field_takes(api: Api) -> None:
    r = await api.a.get("/api/node-types")
    props = {i["type"]: i["config_schema"].get("properties", {}) for i in r.json()["items"]}
    taken = {
        t: p["credential"].get("x-credential-types") for t, p in props.items() if "credential" in p
    }
    assert taken == {
        "http_request": ["header", "bearer", "basic", "query", "oauth2"],
        "slack_message": ["bearer", "oauth2"],
        "instagram_send": ["bearer", "oauth2"],
        "gmail_send": ["oauth2"],
        "email_send": ["smtp"],
        "database_query": ["database"],
        "sms_send": ["basic"],
    }
    # beside the anyOf of an optional field, where an editor finds it
    assert "anyOf" in props["http_request"]["credential"]


def test_api_editor_credential_kinds_name_every_credential_type() -> None:
    assert set(get_args(CredentialKind)) == set(KINDS)
    with pytest.raises(TypeError):
        credential_field()


async def test_api_editor_node_types_need_a_key(api: Api) -> None:
    assert (await api.anon.get("/api/node-types")).status_code == 401


async def test_api_editor_validate_a_valid_definition(api: Api) -> None:
    r = await api.a.post("/api/workflows/validate", json=THREE_NODES)
    assert r.status_code == 200
    assert r.json() == {"valid": True, "problems": []}


async def test_api_editor_validate_lists_every_problem_naming_node_or_edge(api: Api) -> None:
    doc = _doc()
    doc["nodes"].append({"id": "lonely", "type": "noop"})
    doc["nodes"][1]["config"] = {}  # the function's code is required
    doc["edges"].append({"source": "response-1", "target": "ghost"})
    r = await api.a.post("/api/workflows/validate", json=doc)
    assert r.status_code == 200
    body = r.json()
    assert body["valid"] is False
    by_code = {p["code"]: p for p in body["problems"]}
    assert by_code["unreachable"]["node_id"] == "lonely"
    assert by_code["dangling_edge"]["edge_index"] == 2
    assert "ghost" in by_code["dangling_edge"]["message"]
    config = [p for p in body["problems"] if p["node_id"] == "process-1"]
    assert config, body
    assert config[0]["path"].startswith("nodes[process-1].config")


async def test_api_editor_validate_reports_shape_errors_as_problems(api: Api) -> None:
    doc = _doc()
    doc["nodes"][2]["colour"] = "red"
    r = await api.a.post("/api/workflows/validate", json=doc)
    assert r.status_code == 200
    (problem,) = r.json()["problems"]
    assert problem["path"] == "nodes[2].colour"
    assert problem["node_id"] == "response-1"


async def test_api_editor_validate_saves_nothing(api: Api) -> None:
    await api.a.post("/api/workflows/validate", json=THREE_NODES)
    listed = await api.a.get("/api/workflows")
    assert listed.json()["items"] == []


async def test_api_editor_save_from_the_latest_version_is_accepted(api: Api) -> None:
    wf = await api.workflow(publish=False)
    r = await api.a.post(
        f"/api/workflows/{wf}/versions",
        json={"definition": _doc(description="two"), "base_version": 1},
    )
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2


async def test_api_editor_save_from_a_stale_version_is_refused(api: Api) -> None:
    wf = await api.workflow(publish=False)
    first = await api.a.post(
        f"/api/workflows/{wf}/versions",
        json={"definition": _doc(description="mine"), "base_version": 1},
    )
    assert first.status_code == 201
    second = await api.a.post(
        f"/api/workflows/{wf}/versions",
        json={"definition": _doc(description="theirs"), "base_version": 1},
    )
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "version_conflict"
    assert "version 1 is no longer the latest: version 2 was saved" in error["message"]
    assert error["details"][0]["field"] == "body.base_version"
    latest = await api.a.get(f"/api/workflows/{wf}")
    assert (latest.json()["latest_version"], latest.json()["description"]) == (2, "mine")
