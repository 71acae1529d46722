"""The customer's example workflows run unchanged through ``flowmill run``.

Outside services are stood in for by a local HTTP API; the SSRF guard lets the engine
reach it only because the test allow-lists 127.0.0.1, as a self-hosted user would.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

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


def _readme_inputs() -> dict[str, str]:
    """``file -> input`` from the seed-shapes table of examples/README.md."""
    rows = re.findall(
        r"^\| `([\w.-]+\.json)` \| .* \| `(\{.*\})` \|$",
        (EXAMPLES / "README.md").read_text(),
        re.MULTILINE,
    )
    return dict(rows)


SEED_SHAPE_OUTPUTS: dict[str, Any] = {
    "seed-steps-conditional.json": {"message": "Ada: order of 150 routed"},
    "seed-workflow-limits.json": {"greeting": "Hello, Ada"},
    "seed-action-retry.json": "Done for Ada on attempt 3",
    "seed-steps-loop.json": {"lines": [{"sku": "A-1", "total": 2}, {"sku": "B-7", "total": 1}]},
}


@pytest.mark.parametrize("name", sorted(SEED_SHAPE_OUTPUTS))
def test_examples_seed_shapes_run_with_the_input_in_the_readme(
    flowmill: Flowmill, name: str
) -> None:
    data = _readme_inputs()[name]
    result = flowmill("run", str(EXAMPLES / name), "--input", data, "--json")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["status"] == "succeeded"
    assert doc["output"] == SEED_SHAPE_OUTPUTS[name]
    if name == "seed-steps-conditional.json":
        assert doc["nodes"]["auto"]["status"] == "skipped"
        assert doc["nodes"]["review"]["output"] == {"queue": "manual-review", "amount": 150}
    if name == "seed-action-retry.json":
        assert doc["nodes"]["flaky"]["attempts"] == 3


def test_examples_seed_loop_is_read_as_a_loop_node(flowmill: Flowmill) -> None:
    assert "seed-steps-loop.json" in _readme_inputs()
    result = flowmill("validate", str(EXAMPLES / "seed-steps-loop.json"))
    assert (
        "note steps[0]: (loop with nested steps) read as node each-line whose config.body "
        "is the chain price"
    ) in result.stdout
    assert result.code == 0, result.stdout + result.stderr


CONTROL_FLOW_OUTPUTS: dict[str, Any] = {
    "loop-parallel-items.json": lambda out: (
        out["priced"]
        == [{"sku": "A-1", "qty": 2, "line": 0}, None, {"sku": "C-3", "qty": 5, "line": 2}]
        and [e["index"] for e in out["rejected"]] == [1]
        and "quantity must be positive" in out["rejected"][0]["error"]["message"]
    ),
    "wait-approval.json": lambda out: (
        out == {"customer": "Ada", "approved": False, "reason": "no answer"}
    ),
}


@pytest.mark.parametrize("name", sorted(CONTROL_FLOW_OUTPUTS))
def test_examples_control_flow_run_with_the_input_beside_them(
    flowmill: Flowmill, name: str
) -> None:
    data = (EXAMPLES / name.replace(".json", ".input.json")).read_text()
    result = flowmill("run", str(EXAMPLES / name), "--input", data, "--json")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["status"] == "succeeded"
    assert CONTROL_FLOW_OUTPUTS[name](doc["output"]), doc["output"]
