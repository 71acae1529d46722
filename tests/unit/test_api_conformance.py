"""Answers that must agree with the OpenAPI document and the documented error shape
(found by schemathesis in an attack pass): 405s and their ``Allow``, strict booleans,
UTF-8 only bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.api_support import Api, open_api

METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture
async def api(sqlite_url: str) -> AsyncIterator[Api]:
    async with open_api(sqlite_url, worker=False) as api:
        yield api


def _concrete(path: str) -> str:
    # Any id: the router answers 405 before it looks at path parameters.
    return path.replace("{", "").replace("}", "")


async def test_api_conformance_405_allow_lists_every_method_of_the_spec(api: Api) -> None:
    spec = (await api.anon.get("/openapi.json")).json()
    checked = 0
    for path, item in spec["paths"].items():
        if not path.startswith("/api/") or "{" in path.rsplit("/", 1)[-1]:
            continue  # a literal last segment: no sibling route can take the request
        documented = sorted(m.upper() for m in item if m in METHODS)
        missing = [m for m in METHODS if m not in item]
        if not missing:
            continue
        r = await api.a.request(missing[0].upper(), _concrete(path))
        assert r.status_code == 405, (path, missing[0], r.text)
        assert r.headers["allow"].split(", ") == documented, path
        assert r.json()["error"]["code"] == "method_not_allowed"
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_api_conformance_import_is_not_a_workflow_id(api: Api, method: str) -> None:
    r = await api.a.request(method, "/api/workflows/import", json={"name": "x"})
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/workflows/{wf}/versions", {"definition": {"name": "v"}, "publish": 0}, "publish"),
        ("/api/workflows/{wf}/versions", {"definition": {"name": "v"}, "publish": "yes"}, None),
        ("/api/workflows", {"name": "w", "active": 1}, "active"),
    ],
)
async def test_api_conformance_booleans_are_strict(
    api: Api, path: str, body: dict[str, object], field: str | None
) -> None:
    wf = await api.workflow(publish=False)
    r = await api.a.post(path.format(wf=wf), json=body)
    assert r.status_code == 422, r.text
    fields = [d["field"] for d in r.json()["error"]["details"]]
    assert any(f.endswith(field or "publish") for f in fields), fields


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
async def test_api_conformance_json_must_be_utf8(api: Api, encoding: str) -> None:
    body = '{"name": "w"}'.encode(encoding)
    r = await api.a.post(
        "/api/workflows", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_json"
    ok = await api.a.post(
        "/api/workflows",
        content=b'{"name": "w"}',
        headers={"content-type": "application/json"},
    )
    assert ok.status_code == 201, ok.text
