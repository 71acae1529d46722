"""Credentials end to end: sealed by the CLI, opened only inside the HTTP node.

The secret must appear nowhere a user or an operator reads: not in the CLI's output,
not in its logs at the most talkative level (``debug``: the ``flowmill`` fixture
silences logs by default, which would hide a leak), not in the database file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from flowmill.testing import stub_api
from tests.acceptance.conftest import Flowmill, Result

SECRET = "tok_live_0123456789abcdef"
VERBOSE = {"FLOWMILL_LOG_LEVEL": "debug"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def assert_no_secret(result: Result, what: str) -> None:
    assert SECRET not in result.stdout, f"{what}: the secret is in the output"
    assert SECRET not in result.stderr, f"{what}: the secret is in the logs"


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
        extra_env=VERBOSE,
    )
    assert created.code == 0, created.stderr
    assert UUID.match(created.stdout.strip()), created.stdout  # its id, nothing else
    assert_no_secret(created, "credentials create")
    listing = flowmill("credentials", "list", "--tenant", "acme", extra_env=VERBOSE)
    assert "billing" in listing.stdout
    assert_no_secret(listing, "credentials list")
    with stub_api({"GET /invoices": (200, {"n": 3})}) as api:
        path = tmp_path / "wf.json"
        path.write_text(json.dumps(workflow("acme", api.url("/invoices"))))
        result = flowmill(
            "run",
            str(path),
            "--json",
            extra_env={**VERBOSE, "FLOWMILL_HTTP_ALLOW_HOSTS": "127.0.0.1"},
        )
        assert result.code == 0, result.stderr
        assert "[debug" in result.stderr  # the logs were on
        (call,) = api.calls("GET", "/invoices")
        assert call.headers["authorization"] == f"Bearer {SECRET}"
        assert_no_secret(result, "run")  # not in outputs, node logs, errors or logs
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
        assert api.seen == []


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
