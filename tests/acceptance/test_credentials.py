"""Credentials end to end: sealed by the CLI, opened only inside the HTTP node."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.conftest import Flowmill
from tests.acceptance.stub_api import stub_api

SECRET = "tok_live_0123456789abcdef"


def workflow(tenant: str, url: str) -> dict[str, object]:
    return {
        "name": "uses a credential",
        "tenant_id": tenant,
        "nodes": [
            {"id": "t", "type": "trigger"},
            {
                "id": "call",
                "type": "http_request",
                "config": {"method": "GET", "url": url, "credential": "billing"},
            },
        ],
        "edges": [{"source": "t", "target": "call"}],
    }


def test_credentials_flow_from_cli_to_the_http_node(flowmill: Flowmill, tmp_path: Path) -> None:
    created = flowmill(
        "credentials",
        "create",
        "--tenant",
        "acme",
        "--name",
        "billing",
        "--type",
        "bearer",
        "--data",
        json.dumps({"token": SECRET}),
    )
    assert created.code == 0, created.stderr
    listing = flowmill("credentials", "list", "--tenant", "acme")
    assert "billing" in listing.stdout
    assert SECRET not in listing.stdout
    with stub_api({"GET /invoices": (200, {"n": 3})}) as api:
        path = tmp_path / "wf.json"
        path.write_text(json.dumps(workflow("acme", api.url("/invoices"))))
        result = flowmill(
            "run", str(path), "--json", extra_env={"FLOWMILL_HTTP_ALLOW_HOSTS": "127.0.0.1"}
        )
        assert result.code == 0, result.stderr
        (call,) = api.calls("GET", "/invoices")
        assert call.headers["authorization"] == f"Bearer {SECRET}"
        assert SECRET not in result.stdout  # not in outputs, logs or errors
    for f in (tmp_path / "home").glob("flowmill.db*"):
        assert SECRET.encode() not in f.read_bytes()


def test_credentials_another_tenant_cannot_use_them(flowmill: Flowmill, tmp_path: Path) -> None:
    assert (
        flowmill(
            "credentials",
            "create",
            "--tenant",
            "acme",
            "--name",
            "billing",
            "--type",
            "bearer",
            "--data",
            json.dumps({"token": SECRET}),
        ).code
        == 0
    )
    with stub_api({"GET /invoices": (200, {"n": 3})}) as api:
        path = tmp_path / "wf.json"
        path.write_text(json.dumps(workflow("globex", api.url("/invoices"))))
        result = flowmill(
            "run", str(path), "--json", extra_env={"FLOWMILL_HTTP_ALLOW_HOSTS": "127.0.0.1"}
        )
        assert result.code == 1
        error = result.json()["nodes"]["call"]["error"]
        assert error["type"] == "CredentialError"
        assert api.requests == []


def test_credentials_bad_data_names_the_field(flowmill: Flowmill) -> None:
    result = flowmill(
        "credentials",
        "create",
        "--tenant",
        "acme",
        "--name",
        "x",
        "--type",
        "basic",
        "--data",
        '{"username": "u"}',
    )
    assert result.code == 2
    assert "password" in result.stderr
