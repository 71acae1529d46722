"""Malformed input gets a 4xx in the one error shape, naming the field; never a 500."""

from __future__ import annotations

import json

import pytest

from tests.api_support import THREE_NODES, Api

pytestmark = pytest.mark.api_settings(worker=False, max_request_bytes=4096)


def error_of(r: object) -> dict[str, object]:
    body = r.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]  # type: ignore[no-any-return]


async def test_errors_invalid_json_is_400(api: Api) -> None:
    r = await api.a.post(
        "/api/workflows", content=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert error_of(r)["code"] == "invalid_json"


async def test_errors_body_over_the_limit_is_413(api: Api) -> None:
    big = {"name": "x", "description": "d" * 5000}
    r = await api.a.post("/api/workflows", json=big)
    assert r.status_code == 413
    assert error_of(r)["code"] == "payload_too_large"

    async def chunks():  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b" " * 1000

    r = await api.a.post(
        "/api/workflows", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a\u0000b"}, "body.name"),
        ({"name": "x", "tags": ["\ud800"]}, "body.tags[0]"),
        ({"input": {"n": 2**70}}, "body.input"),
        (
            {
                "input": [
                    [
                        [
                            [
                                [
                                    [
                                        [
                                            [
                                                [
                                                    [
                                                        [
                                                            [
                                                                [
                                                                    [
                                                                        [
                                                                            [
                                                                                [
                                                                                    [
                                                                                        [
                                                                                            [
                                                                                                [
                                                                                                    [
                                                                                                        [
                                                                                                            [
                                                                                                                [
                                                                                                                    [
                                                                                                                        [
                                                                                                                            [
                                                                                                                                [
                                                                                                                                    [
                                                                                                                                        [
                                                                                                                                            [
                                                                                                                                                [
                                                                                                                                                    [
                                                                                                                                                        [
                                                                                                                                                            [
                                                                                                                                                                [
                                                                                                                                                                    [
                                                                                                                                                                        [
                                                                                                                                                                            [
                                                                                                                                                                                [
                                                                                                                                                                                    [
                                                                                                                                                                                        [
                                                                                                                                                                                            [
                                                                                                                                                                                                [
                                                                                                                                                                                                    [
                                                                                                                                                                                                        [
                                                                                                                                                                                                            [
                                                                                                                                                                                                                [
                                                                                                                                                                                                                    [
                                                                                                                                                                                                                        [
                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                                                        1
                                                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                ]
                                                                                                                                                                                                            ]
                                                                                                                                                                                                        ]
                                                                                                                                                                                                    ]
                                                                                                                                                                                                ]
                                                                                                                                                                                            ]
                                                                                                                                                                                        ]
                                                                                                                                                                                    ]
                                                                                                                                                                                ]
                                                                                                                                                                            ]
                                                                                                                                                                        ]
                                                                                                                                                                    ]
                                                                                                                                                                ]
                                                                                                                                                            ]
                                                                                                                                                        ]
                                                                                                                                                    ]
                                                                                                                                                ]
                                                                                                                                            ]
                                                                                                                                        ]
                                                                                                                                    ]
                                                                                                                                ]
                                                                                                                            ]
                                                                                                                        ]
                                                                                                                    ]
                                                                                                                ]
                                                                                                            ]
                                                                                                        ]
                                                                                                    ]
                                                                                                ]
                                                                                            ]
                                                                                        ]
                                                                                    ]
                                                                                ]
                                                                            ]
                                                                        ]
                                                                    ]
                                                                ]
                                                            ]
                                                        ]
                                                    ]
                                                ]
                                            ]
                                        ]
                                    ]
                                ]
                            ]
                        ]
                    ]
                ]
            },
            "body.input",
        ),
    ],
)
async def test_errors_unstorable_json_is_422_naming_the_field(
    api: Api, body: dict[str, object], field: str
) -> None:
    wf = await api.workflow()
    path = f"/api/workflows/{wf}/execute" if "input" in body else "/api/workflows"
    # json.dumps escapes what the client would refuse to encode (a lone surrogate).
    raw = json.dumps(body).encode()
    r = await api.a.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in error_of(r)["details"]]  # type: ignore[union-attr]


async def test_errors_nan_is_refused(api: Api) -> None:
    wf = await api.workflow()
    r = await api.a.post(
        f"/api/workflows/{wf}/execute",
        content=b'{"input": {"x": NaN}}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422


async def test_errors_bad_ids_cursors_and_params(api: Api) -> None:
    checks = [
        ("GET", "/api/workflows/not-a-uuid", 422, "path.workflow_id"),
        ("GET", "/api/executions/123", 422, "path.execution_id"),
        ("GET", "/api/executions?cursor=garbage", 422, "query.cursor"),
        ("GET", "/api/executions?limit=0", 422, "query.limit"),
        ("GET", "/api/executions?limit=100000", 422, "query.limit"),
        ("GET", "/api/executions?status=nope", 422, "query.status[0]"),
        ("GET", "/api/executions?workflow_id=zzz", 422, "query.workflow_id"),
        ("GET", "/api/executions?started_from=yesterday", 422, "query.started_from"),
        ("GET", "/api/workflows?status=deleted", 422, "query.status"),
        (
            "GET",
            "/api/workflows/01900000-0000-7000-8000-000000000000/versions/0",
            422,
            "path.version",
        ),
        (
            "GET",
            "/api/workflows/01900000-0000-7000-8000-000000000000/versions/99999999999",
            422,
            "path.version",
        ),
    ]
    for method, path, status, field in checks:
        r = await api.a.request(method, path)
        assert r.status_code == status, (path, r.text)
        assert field in [d["field"] for d in error_of(r)["details"]], (path, r.text)  # type: ignore[union-attr]


async def test_errors_cursor_of_another_list_is_refused(api: Api) -> None:
    for i in range(3):
        await api.a.post("/api/workflows", json={**THREE_NODES, "name": f"w{i}"})
    cursor = (await api.a.get("/api/workflows", params={"limit": 1})).json()["next_cursor"]
    r = await api.a.get("/api/executions", params={"cursor": cursor})
    assert r.status_code == 422


async def test_errors_unknown_route_and_method_use_the_shape(api: Api) -> None:
    r = await api.a.get("/api/nothing")
    assert (r.status_code, error_of(r)["code"]) == (404, "not_found")
    r = await api.a.delete("/api/executions")
    assert (r.status_code, error_of(r)["code"]) == (405, "method_not_allowed")


async def test_errors_openapi_documents_every_body_and_response(api: Api) -> None:
    doc = (await api.anon.get("/openapi.json")).json()
    assert (await api.anon.get("/docs")).status_code == 200
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                if status in ("204",):
                    continue
                media = None
                if status == "200" and (
                    (path.startswith("/api/executions/") and path.endswith("/events"))
                    or path == "/api/events/stream"
                ):
                    media = "text/event-stream"
                elif status == "200" and path == "/metrics":
                    media = "text/plain"
                elif status == "200" and (method, path) == ("get", "/api/resume/{token}"):
                    media = "text/html"  # the confirmation page of a resume link
                elif status == "200" and (method, path) == ("get", "/api/blobs/{blob_id}"):
                    media = "application/octet-stream"  # a stored value's bytes
                content = response.get("content", {}).get(media or "application/json")
                assert content and content.get("schema"), (method, path, status)
            if method in ("post", "put", "patch") and "requestBody" in op:
                assert op["requestBody"]["content"]["application/json"]["schema"]
    assert "HTTPBearer" in doc["components"]["securitySchemes"]


async def test_errors_body_without_json_content_type_says_what_to_send(api: Api) -> None:
    r = await api.a.post(
        "/api/workflows", content=json.dumps(THREE_NODES), headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 415
    error = error_of(r)
    assert error["code"] == "unsupported_media_type"
    assert error["message"] == (
        "send the body as JSON with the header Content-Type: application/json "
        "(this request has text/plain)"
    )
    bare = await api.a.post("/api/workflows", content=json.dumps(THREE_NODES))
    assert bare.status_code == 415
    assert "(this request has no Content-Type)" in error_of(bare)["message"]  # type: ignore[operator]
