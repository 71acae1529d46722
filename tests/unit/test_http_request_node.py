"""The ``http_request`` node on the engine with a scripted HTTP client and credentials:
the credential reaches the request and nowhere else; another tenant's does not open."""

from __future__ import annotations

import json

from flowmill.domain.states import ExecutionStatus as X
from flowmill.engine.services import HttpResponse, NodeServices
from flowmill.testing import FakeHttp, InMemoryCredentials
from tests.engine_support import open_harness, wf

SECRET = "tok_live_0123456789abcdef"
URL = "https://billing.example/invoices"


def calling(credential: str) -> dict[str, object]:
    return wf(
        [
            {
                "id": "call",
                "type": "http_request",
                "config": {"url": URL, "credential": credential},
            }
        ],
        [("t", "call")],
    )


def services(http: FakeHttp, owner: str = "t1") -> NodeServices:
    vault = InMemoryCredentials({(owner, "billing"): ("bearer", {"token": SECRET})})
    return NodeServices(http=http, credentials=vault)


async def test_http_request_node_sends_the_credential_and_keeps_it_out_of_the_records() -> None:
    http = FakeHttp(
        {f"GET {URL}": HttpResponse(200, {"content-type": "application/json"}, b'{"n": 3}', URL, 2)}
    )
    async with open_harness(services(http)) as harness:
        ex, runs = await harness.run(calling("billing"))
        records = json.dumps(
            [[r.output, r.error, r.input] for r in runs.values()]
            + [e.payload for e in harness.store.events]
            + [line.message for line in harness.store.logs],
            default=str,
        )
    assert ex.status is X.SUCCEEDED
    assert runs["call"].output["data"] == {"n": 3}
    [sent] = http.requests
    assert sent["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in records


async def test_http_request_node_another_tenants_credential_does_not_open() -> None:
    http = FakeHttp()
    async with open_harness(services(http, owner="someone-else")) as harness:
        ex, runs = await harness.run(calling("billing"))
    assert ex.status is X.FAILED
    assert runs["call"].error is not None and runs["call"].error["type"] == "CredentialError"
    assert http.requests == []  # refused before anything was sent
