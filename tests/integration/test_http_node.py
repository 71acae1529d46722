"""The ``http_request`` node end to end: templates in, real servers, output or error."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from flowmill.domain.errors import NodeError
from flowmill.domain.workflow import Node
from flowmill.engine.services import NodeServices
from flowmill.net.http import GuardedHttpClient, HttpSettings
from flowmill.nodes.base import NodeContext, NodeLogger
from flowmill.nodes.http_request import HttpRequestNode
from tests.integration.http_servers import LoopbackServer, Servers, free_port, system_tls


@pytest.fixture
def servers() -> Iterator[Servers]:
    started = Servers()
    yield started
    started.stop()


@pytest.fixture
def server(servers: Servers) -> LoopbackServer:
    return servers.start("internal")


@pytest.fixture
async def http() -> AsyncIterator[GuardedHttpClient]:
    client = GuardedHttpClient(
        HttpSettings(allow_cidrs=("127.0.0.1/32",)), ssl_context=system_tls()
    )
    yield client
    await client.aclose()


def context(
    http: Any,
    *,
    node_id: str = "fetch",
    attempt: int = 1,
    input: Any = None,
    trigger: dict[str, Any] | None = None,
    nodes: dict[str, Any] | None = None,
    variables: dict[str, Any] | None = None,
) -> NodeContext:
    now = datetime.now(UTC)
    return NodeContext(
        node=Node(id=node_id, type="http_request"),
        execution_id="ex1",
        workflow_id="wf1",
        tenant_id="t1",
        attempt=attempt,
        input=input,
        trigger=trigger or {},
        nodes=nodes or {},
        variables=variables or {},
        execution={"id": "ex1", "workflow_id": "wf1"},
        idempotency_key=f"ex1:{node_id}:{attempt}",
        now=now,
        services=NodeServices(http=http),
        log=NodeLogger(node_id, attempt, now),
    )


async def run(http: Any, config: dict[str, Any], **ctx: Any) -> Any:
    node = HttpRequestNode()
    return await node.execute(context(http, **ctx), node.parse_config(config))


async def fails(http: Any, config: dict[str, Any], **ctx: Any) -> NodeError:
    with pytest.raises(NodeError) as info:
        await run(http, config, **ctx)
    return info.value


# --- the seed examples, unchanged -----------------------------------------------------


async def test_http_node_the_graph_example_get(
    http: GuardedHttpClient, server: LoopbackServer
) -> None:
    url = server.url("/json")
    out = await run(
        http,
        {"method": "GET", "url": "{{trigger.data.enrich_url}}"},
        trigger={"type": "webhook", "data": {"enrich_url": url, "budget": 20000}},
    )
    assert out["status"] == 200
    assert out["data"] == {"ok": True, "server": "internal"}
    assert out["url"] == url
    assert out["headers"]["content-type"] == "application/json"
    assert out["elapsed_ms"] > 0
    assert set(out) == {"status", "headers", "data", "url", "elapsed_ms"}
    assert "idempotency-key" not in server.seen[0].headers
    json.dumps(out)  # outputs are stored as JSON


async def test_http_node_the_steps_example_post_sends_typed_json_and_an_idempotency_key(
    http: GuardedHttpClient, server: LoopbackServer
) -> None:
    out = await run(
        http,
        {
            "method": "POST",
            "url": "{{trigger.data.notify_url}}",
            "body": {
                "text": "{{nodes.summarise.output.text}}",
                "total": "{{nodes.summarise.output.total}}",
            },
        },
        node_id="notify",
        trigger={"data": {"notify_url": server.url("/echo")}},
        nodes={"summarise": {"output": {"text": "Order 7 totals 42.5", "total": 42.5}}},
    )
    echoed = out["data"]
    assert json.loads(echoed["body"]) == {"text": "Order 7 totals 42.5", "total": 42.5}
    assert echoed["headers"]["content-type"] == "application/json"
    assert echoed["headers"]["idempotency-key"] == "ex1:notify:1"


async def test_http_node_the_steps_example_timeout_is_the_http_timeout(
    http: GuardedHttpClient, server: LoopbackServer
) -> None:
    error = await fails(
        http,
        {"method": "GET", "url": "{{trigger.data.order_url}}", "timeout_s": 0.3},
        trigger={"data": {"order_url": server.url("/slow?s=5")}},
    )
    assert error.type == "HttpTimeout"
    assert error.retriable is True


# --- rendering -----------------------------------------------------------------------


async def test_http_node_headers_and_query_are_rendered(
    http: GuardedHttpClient, server: LoopbackServer
) -> None:
    out = await run(
        http,
        {
            "url": server.url("/echo?fixed=1"),
            "headers": {
                "Authorization": "Bearer {{vars.token}}",
                "X-Count": "{{input.count}}",
                "X-Missing": "{{input.nothing}}",
                "X-Object": "{{input.obj}}",
            },
            "query": {
                "q": "{{input.term}}",
                "tags": ["a", "{{input.tag}}"],
                "skip": None,
                "n": 5,
                "flag": True,
            },
        },
        input={"count": 3, "term": "two words & more", "tag": "b", "obj": {"k": [1]}},
        variables={"token": "t0k"},
    )
    echoed = out["data"]
    assert echoed["path"] == "/echo?fixed=1&q=two+words+%26+more&tags=a&tags=b&n=5&flag=true"
    headers = echoed["headers"]
    assert headers["authorization"] == "Bearer t0k"
    assert headers["x-count"] == "3"
    assert headers["x-object"] == '{"k":[1]}'
    assert "x-missing" not in headers


@pytest.mark.parametrize(
    ("body_config", "sent", "content_type"),
    [
        ({"body": {"a": [1, None]}}, '{"a":[1,null]}', "application/json"),
        ({"body": [1, 2]}, "[1,2]", "application/json"),
        ({"body": "{{input.obj}}"}, '{"k":"v"}', "application/json"),
        ({"body": "plain {{input.word}}"}, "plain hi", "text/plain; charset=utf-8"),
        ({"json": "just a string"}, '"just a string"', "application/json"),
        ({"json": {"w": "{{input.word}}"}}, '{"w":"hi"}', "application/json"),
        ({"text": "{{input.obj}}"}, '{"k":"v"}', "text/plain; charset=utf-8"),
        (
            {"form": {"a": "{{input.word}}", "b": ["1", "2"], "c": None}},
            "a=hi&b=1&b=2",
            "application/x-www-form-urlencoded",
        ),
    ],
)
async def test_http_node_bodies(
    http: GuardedHttpClient,
    server: LoopbackServer,
    body_config: dict[str, Any],
    sent: str,
    content_type: str,
) -> None:
    out = await run(
        http,
        {"method": "PUT", "url": server.url("/echo"), **body_config},
        input={"word": "hi", "obj": {"k": "v"}},
    )
    assert out["data"]["body"] == sent
    assert out["data"]["headers"]["content-type"] == content_type


async def test_http_node_a_given_content_type_is_kept(
    http: GuardedHttpClient, server: LoopbackServer
) -> None:
    out = await run(
        http,
        {
            "method": "POST",
            "url": server.url("/echo"),
            "headers": {"content-type": "application/json"},
            "body": '{"raw": true}',
        },
    )
    assert out["data"]["headers"]["content-type"] == "application/json"
    assert out["data"]["body"] == '{"raw": true}'


async def test_http_node_a_url_that_renders_to_nothing_is_invalid(http: GuardedHttpClient) -> None:
    error = await fails(http, {"url": "{{trigger.data.missing}}"})
    assert error.type == "InvalidUrl"
    assert error.retriable is False


# --- idempotency header --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "sent"),
    [
        ("POST", True),
        ("PUT", True),
        ("PATCH", True),
        ("DELETE", True),
        ("GET", False),
        ("HEAD", False),
        ("OPTIONS", False),
    ],
)
async def test_http_node_the_idempotency_key_goes_with_unsafe_methods(
    http: GuardedHttpClient, server: LoopbackServer, method: str, sent: bool
) -> None:
    await run(http, {"method": method, "url": server.url("/echo")}, attempt=2)
    headers = server.seen[0].headers
    assert (headers.get("idempotency-key") == "ex1:fetch:2") is sent


async def test_http_node_the_idempotency_header_can_be_renamed_disabled_or_given(
    http: GuardedHttpClient, server: LoopbackServer
) -> None:
    url = server.url("/echo")
    await run(http, {"method": "POST", "url": url, "idempotency_header": "X-Request-Id"})
    await run(http, {"method": "POST", "url": url, "idempotency_header": None})
    await run(http, {"method": "POST", "url": url, "headers": {"idempotency-key": "mine"}})
    first, second, third = (s.headers for s in server.seen)
    assert first["x-request-id"] == "ex1:fetch:1"
    assert "idempotency-key" not in first
    assert "idempotency-key" not in second
    assert third["idempotency-key"] == "mine"


# --- status handling -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retriable"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (409, False),
        (422, False),
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
    ],
)
async def test_http_node_error_statuses_fail_with_the_right_retry_class(
    http: GuardedHttpClient, server: LoopbackServer, status: int, retriable: bool
) -> None:
    error = await fails(http, {"url": server.url(f"/status/{status}?detail=why")})
    assert error.type == "HttpError"
    assert error.retriable is retriable
    assert error.details["status"] == status
    assert json.loads(error.details["body"])["detail"] == "why"
    assert f"HTTP {status}" in error.message


async def test_http_node_retry_after_is_reported_and_queries_are_not(
    http: GuardedHttpClient, server: LoopbackServer
) -> None:
    error = await fails(http, {"url": server.url("/status/429?retry_after=7&api_key=SECRET")})
    assert error.details["retry_after"] == "7"
    assert "SECRET" not in error.message
    assert "SECRET" not in json.dumps(error.to_dict())


async def test_http_node_long_error_bodies_are_cut(
    http: GuardedHttpClient, server: LoopbackServer
) -> None:
    error = await fails(http, {"url": server.url("/status/500?detail=" + "x" * 5000)})
    assert len(error.details["body"]) == 1000


async def test_http_node_statuses_can_be_outputs(
    http: GuardedHttpClient, server: LoopbackServer
) -> None:
    out = await run(http, {"url": server.url("/status/404"), "fail_on_status": False})
    assert out["status"] == 404
    assert out["data"]["error"] == "status 404"


async def test_http_node_redirects_can_be_outputs(
    http: GuardedHttpClient, server: LoopbackServer
) -> None:
    out = await run(http, {"url": server.url("/redirect?to=/json"), "follow_redirects": False})
    assert out["status"] == 302
    assert out["headers"]["location"] == "/json"
    assert out["data"] is None


# --- response bodies -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fmt", "expected"),
    [
        ("/json", "auto", {"ok": True, "server": "internal"}),
        ("/gzip-json", "auto", {"compressed": True}),
        ("/text", "auto", "hello from internal"),
        ("/latin1", "auto", "café"),
        ("/html", "auto", "<p>hi</p>"),
        ("/untyped", "auto", "plain words"),
        ("/binary", "auto", base64.b64encode(bytes(range(256))).decode()),
        ("/badjson", "auto", "{not json"),
        ("/status/204", "auto", None),
        ("/json", "text", '{"ok": true, "server": "internal"}'),
        ("/text", "binary", base64.b64encode(b"hello from internal").decode()),
        ("/json", "json", {"ok": True, "server": "internal"}),
        ("/status/204", "json", None),
        ("/status/204", "text", ""),
    ],
)
async def test_http_node_response_formats(
    http: GuardedHttpClient, server: LoopbackServer, path: str, fmt: str, expected: Any
) -> None:
    out = await run(http, {"url": server.url(path), "response_format": fmt})
    assert out["data"] == expected


async def test_http_node_json_format_refuses_a_body_that_is_not_json(
    http: GuardedHttpClient, server: LoopbackServer
) -> None:
    error = await fails(http, {"url": server.url("/badjson"), "response_format": "json"})
    assert error.type == "InvalidResponse"
    assert error.retriable is False
    assert error.details["body"] == "{not json"


async def test_http_node_head_requests_output_no_body(
    http: GuardedHttpClient, server: LoopbackServer
) -> None:
    out = await run(http, {"method": "HEAD", "url": server.url("/json")})
    assert out["status"] == 200
    assert out["data"] is None


async def test_http_node_the_request_is_logged_without_its_query(
    http: GuardedHttpClient, server: LoopbackServer
) -> None:
    node = HttpRequestNode()
    ctx = context(http)
    await node.execute(ctx, node.parse_config({"url": server.url("/json?token=SECRET")}))
    (line,) = ctx.log.lines
    assert line.message == f"GET {server.url('/json')} → 200"
    assert "SECRET" not in line.message


# --- the guard, through the node -------------------------------------------------------


async def test_http_node_blocked_urls_fail_without_retry(servers: Servers) -> None:
    internal = servers.start("internal")
    async with GuardedHttpClient(HttpSettings()) as strict:
        for url in (
            internal.url("/json"),
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "file:///etc/passwd",
        ):
            error = await fails(strict, {"url": "{{input.url}}"}, input={"url": url})
            assert error.type == "SsrfBlocked"
            assert error.retriable is False
            assert error.to_dict()["details"]["reason"]
    assert internal.seen == []


async def test_http_node_connection_failures_are_retriable(http: GuardedHttpClient) -> None:
    error = await fails(http, {"url": f"http://127.0.0.1:{free_port()}/"})
    assert error.type == "ConnectionError"
    assert error.retriable is True


async def test_http_node_oversized_responses_fail(servers: Servers) -> None:
    internal = servers.start("internal")
    settings = HttpSettings(allow_cidrs=("127.0.0.1/32",), max_response_bytes=1000)
    async with GuardedHttpClient(settings) as small:
        error = await fails(small, {"url": internal.url("/bytes?n=5000")})
    assert error.type == "ResponseTooLarge"
    assert error.retriable is False
