"""The customer's example workflows run unchanged through ``flowmill run``.

Outside services are stood in for by a local HTTP API; the SSRF guard lets the engine
reach it only because the test allow-lists 127.0.0.1, as a self-hosted user would.
"""

from __future__ import annotations

import json

from flowmill.testing import stub_api
from tests.acceptance.conftest import EXAMPLES, Flowmill

ALLOW_LOCAL = {"FLOWMILL_HTTP_ALLOW_HOSTS": "127.0.0.1"}


def test_examples_seed_webhook_test(flowmill: Flowmill) -> None:
    result = flowmill(
        "run", str(EXAMPLES / "seed-webhook-test.json"), "--input", '{"message": "hello"}', "--json"
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["status"] == "succeeded"
    assert doc["output"] == "The processed result is: hello processed"
    assert doc["nodes"]["process-1"]["output"] == {"result": "hello processed"}


def test_examples_order_follow_up_calls_both_apis(flowmill: Flowmill) -> None:
    with stub_api(
        {"GET /orders/42": (200, {"id": 42, "total": 99.5}), "POST /notify": (201, {"ok": True})}
    ) as api:
        data = {"order_url": api.url("/orders/42"), "notify_url": api.url("/notify")}
        result = flowmill(
            "run",
            str(EXAMPLES / "steps-order-followup.json"),
            "--input",
            json.dumps(data),
            "--json",
            extra_env=ALLOW_LOCAL,
        )
        assert result.code == 0, result.stderr
        doc = result.json()
        assert doc["status"] == "succeeded"
        (notify,) = api.calls("POST", "/notify")
        assert notify.json() == {"text": "Order 42 totals 99.5", "total": 99.5}
        assert notify.headers["idempotency-key"].endswith(":notify:1")
        assert doc["nodes"]["pause"]["status"] == "succeeded"
        assert doc["output"]["status"] == 201


def test_examples_order_follow_up_is_blocked_without_the_allow_list(
    flowmill: Flowmill,
) -> None:
    with stub_api({"GET /orders/42": (200, {"id": 42, "total": 99.5})}) as api:
        data = {"order_url": api.url("/orders/42"), "notify_url": api.url("/notify")}
        result = flowmill(
            "run",
            str(EXAMPLES / "steps-order-followup.json"),
            "--input",
            json.dumps(data),
            "--json",
        )
        assert result.code == 1
        doc = result.json()
        assert doc["nodes"]["fetch"]["error"]["type"] == "SsrfBlocked"
        assert api.seen == []


def test_examples_lead_routing_big_budget_enriched(flowmill: Flowmill) -> None:
    with stub_api({"GET /enrich": (200, {"company": "Acme"})}) as api:
        data = {"budget": 25000, "enrich_url": api.url("/enrich")}
        result = flowmill(
            "run",
            str(EXAMPLES / "graph-branch-join.json"),
            "--input",
            json.dumps(data),
            "--json",
            extra_env=ALLOW_LOCAL,
        )
    assert result.code == 0, result.stderr
    doc = result.json()
    nodes = {k: v["status"] for k, v in doc["nodes"].items()}
    assert nodes == {
        "in": "succeeded",
        "is_big": "succeeded",
        "enrich": "succeeded",
        "enrich_failed": "skipped",
        "score": "succeeded",
        "small": "skipped",
        "join": "succeeded",
        "done": "succeeded",
    }
    assert doc["output"] == 25  # a lone {{path}} keeps its type
    assert set(doc["nodes"]["join"]["output"]) == {"enrich", "score"}


def test_examples_lead_routing_enrichment_fails_over_to_the_error_route(
    flowmill: Flowmill,
) -> None:
    with stub_api({"GET /enrich": (503, {"error": "down"})}) as api:
        data = {"budget": 12000, "enrich_url": api.url("/enrich")}
        result = flowmill(
            "run",
            str(EXAMPLES / "graph-branch-join.json"),
            "--input",
            json.dumps(data),
            "--json",
            extra_env=ALLOW_LOCAL,
        )
        assert len(api.calls("GET", "/enrich")) == 2  # retry max_attempts 2
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["nodes"]["enrich"]["status"] == "failed"
    assert doc["nodes"]["enrich"]["attempts"] == 2
    assert doc["nodes"]["enrich_failed"]["status"] == "succeeded"
    assert set(doc["nodes"]["join"]["output"]) == {"enrich_failed", "score"}
    assert doc["output"] == 12


def test_examples_lead_routing_small_budget(flowmill: Flowmill) -> None:
    result = flowmill(
        "run", str(EXAMPLES / "graph-branch-join.json"), "--input", '{"budget": 500}', "--json"
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["nodes"]["small"]["output"] == {"queue": "self-serve"}
    assert doc["nodes"]["join"]["status"] == "skipped"
    assert doc["output"] == {"queue": "self-serve"}
