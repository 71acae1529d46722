"""``http_request`` config: the schema, its checks, and the seed examples compiling."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from flowmill.engine.validation import load_and_compile
from flowmill.nodes.http_request import HttpRequestNode
from flowmill.nodes.registry import NodeRegistry

NODE = HttpRequestNode()

# The http_request nodes of /work/shared/examples, verbatim.
GRAPH_EXAMPLE = {
    "name": "lead routing",
    "nodes": [
        {"id": "in", "type": "trigger", "config": {"triggerType": "webhook", "actionType": "lead"}},
        {
            "id": "enrich",
            "type": "http_request",
            "config": {"method": "GET", "url": "{{trigger.data.enrich_url}}"},
            "retry": {"max_attempts": 2, "backoff_ms": 100},
            "on_error": "route",
        },
        {"id": "enrich_failed", "type": "error_handler", "config": {}},
    ],
    "edges": [
        {"source": "in", "target": "enrich"},
        {"source": "enrich", "target": "enrich_failed", "sourceHandle": "error"},
    ],
}
STEPS_EXAMPLE = {
    "name": "order follow-up",
    "trigger": {"type": "manual"},
    "steps": [
        {
            "id": "fetch",
            "type": "http_request",
            "config": {"method": "GET", "url": "{{trigger.data.order_url}}", "timeout_s": 10},
        },
        {"id": "summarise", "type": "transform", "config": {"mapping": {"text": "{{input}}"}}},
        {
            "id": "notify",
            "type": "http_request",
            "config": {
                "method": "POST",
                "url": "{{trigger.data.notify_url}}",
                "body": {
                    "text": "{{nodes.summarise.output.text}}",
                    "total": "{{nodes.summarise.output.total}}",
                },
            },
        },
    ],
}


def test_http_request_config_the_node_is_registered_by_entry_point() -> None:
    registry = NodeRegistry.from_entry_points()
    assert isinstance(registry.get("http_request"), HttpRequestNode)


@pytest.mark.parametrize("example", [GRAPH_EXAMPLE, STEPS_EXAMPLE])
def test_http_request_config_the_seed_examples_compile(example: dict[str, Any]) -> None:
    compiled = load_and_compile(example, NodeRegistry.from_entry_points())
    assert any(n.type.type_name == "http_request" for n in compiled.nodes.values())


def test_http_request_config_body_templates_count_as_node_references() -> None:
    config = NODE.parse_config(STEPS_EXAMPLE["steps"][2]["config"])  # type: ignore[index]
    assert NODE.referenced_nodes(config) == {"summarise"}


def test_http_request_config_defaults() -> None:
    config = NODE.parse_config({"url": "https://api.example.com/"})
    assert config.method == "GET"
    assert config.timeout_s is None
    assert config.follow_redirects is True
    assert config.response_format == "auto"
    assert config.fail_on_status is True
    assert config.idempotency_header == "Idempotency-Key"


def test_http_request_config_methods_are_case_insensitive() -> None:
    assert NODE.parse_config({"method": "patch", "url": "https://x.test/"}).method == "PATCH"


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"url": "https://x.test/", "method": "TRACE"},
        {"url": "https://x.test/", "method": "CONNECT"},
        {"url": "https://x.test/", "body": {"a": 1}, "json": {"a": 1}},
        {"url": "https://x.test/", "text": "a", "form": {"a": "b"}},
        {"url": "https://x.test/", "timeout_s": 0},
        {"url": "https://x.test/", "timeout_s": -1},
        {"url": "https://x.test/", "response_format": "xml"},
        {"url": "https://x.test/", "idempotency_header": "Bad Header"},
        {"url": "https://x.test/", "json_body": {"a": 1}},  # the alias is the only name
        {"url": "https://x.test/", "timeout": 5},  # typo: unknown keys are errors
    ],
)
def test_http_request_config_invalid_configs(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        NODE.parse_config(raw)


def test_http_request_config_an_empty_idempotency_header_disables_it() -> None:
    config = NODE.parse_config({"url": "https://x.test/", "idempotency_header": ""})
    assert config.idempotency_header is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://x.test/", None),
        ("{{trigger.data.url}}", None),
        ("https://{{vars.host}}/x", None),
        ("ftp://x.test/", "must start with http:// or https://"),
        ("x.test/path", "must start with http:// or https://"),
        ("https://x.test/{{input.a", "unbalanced"),
    ],
)
def test_config_issues(url: str, problem: str | None) -> None:
    issues = NODE.config_issues(NODE.parse_config({"url": url}), expressions_enabled=False)
    if problem is None:
        assert issues == []
    else:
        assert any(problem in issue for issue in issues), issues
