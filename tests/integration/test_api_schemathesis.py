"""Property-based testing of the whole API from its OpenAPI document (schemathesis).

The app runs for real (uvicorn, engine worker, SQLite) in a thread. Every operation
gets generated valid and invalid requests, authenticated as a tenant that owns a
published workflow and some executions; no answer may be a 5xx or differ from the
documented status codes, content types and schemas.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from flowmill.api.app import build_app, build_context, create_app
from flowmill.api.server import _Server
from flowmill.config import Settings
from flowmill.runtime import open_runtime
from flowmill.testing import eventually, free_port
from tests.api_support import FAILING, THREE_NODES

EXAMPLES = 25
# A workflow body's coverage walk is ~3,000 requests: 30-45 s quiet, past the default
# 120 s at load 15 (seen). The walk is the point; the timeout only catches a hang.
pytestmark = pytest.mark.timeout(400)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


class LiveApi:
    """uvicorn + worker on a SQLite file, in a thread with its own event loop."""

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = ""
        self.ids: dict[str, str] = {}
        self._home = home
        self._ready = threading.Event()
        self._server: _Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        s = Settings(
            database_url=f"sqlite:///{self._home / 'fm.db'}",
            api_max_wait_s=0.2,
            # Generated negative bodies (1001-item lists) must reach validation, not the
            # size limit: 413 is a right answer but not one schemathesis expects.
            max_request_bytes=64 * 1024 * 1024,
            shutdown_grace_s=1,
            sweep_interval_s=0.2,
        )
        async with open_runtime(s) as rt:
            ctx = build_context(rt)
            app = create_app(rt, context=ctx)
            await ctx.tenants.ensure("fuzz")
            self.key = (await ctx.keys.create("fuzz", "schemathesis")).secret
            import uvicorn

            config = uvicorn.Config(app, port=self.port, log_level="error", lifespan="off")
            self._server = _Server(config)
            async with rt.engine.running():
                serving = asyncio.create_task(self._server.serve())
                server = self._server
                await eventually(lambda: server.started, 30, "uvicorn serving")
                await self._seed()
                self._ready.set()
                await serving

    async def _seed(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10) as c:
            wf = (await c.post("/api/workflows", json={**THREE_NODES, "status": "active"})).json()
            bad = (await c.post("/api/workflows", json={**FAILING, "status": "active"})).json()
            ok = await c.post(f"/api/workflows/{wf['id']}/execute?wait=5", json={"input": {}})
            failed = await c.post(f"/api/workflows/{bad['id']}/execute?wait=5", json={})
            self.ids = {
                "workflow": wf["id"],
                "execution": ok.json()["id"],
                "failed": failed.json()["id"],
            }

    def __enter__(self) -> LiveApi:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(30)


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with LiveApi(tmp_path_factory.mktemp("schemathesis")) as api:
        yield api


# The document the running app serves is the one build_app renders (no runtime needed),
# so it can be loaded at collection time.
# The tenant's event stream never ends (it follows the feed), so a fuzzed call could
# only time out; test_analytics_api.py follows it and resumes it.
#
# The coverage phase walks every boundary of a request body: about 3,000 cases, 30-45 s,
# for a workflow definition. Operations that take the same body model as another one
# (the seeds' routes and the import beside POST /api/workflows, the seeds' PUT beside
# PATCH) are fuzzed and given examples, but their body's boundaries are walked once, on
# the operation named in SAME_BODY_AS, which has the same validation in front of it.
SAME_BODY_AS = {
    ("POST", "/api/workflows/import"): ("POST", "/api/workflows"),
    ("POST", "/workflows"): ("POST", "/api/workflows"),
    ("PUT", "/workflows/{workflow_id}"): ("PATCH", "/api/workflows/{workflow_id}"),
}
_DOCUMENT = build_app(Settings()).openapi()


def _is_repeat(ctx: Any) -> bool:
    return (ctx.operation.method.upper(), ctx.operation.path) in SAME_BODY_AS


schema = (
    schemathesis.openapi.from_dict(_DOCUMENT)
    .exclude(path="/api/events/stream")
    .exclude(func=_is_repeat)
)
schema.config.generation.update(max_examples=EXAMPLES)
repeats = schemathesis.openapi.from_dict(_DOCUMENT).include(func=_is_repeat)
repeats.config.generation.update(max_examples=EXAMPLES)
repeats.config.phases.coverage.enabled = False


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_schemathesis_no_5xx_and_conforms(case: Any, live_api: LiveApi) -> None:
    _call_and_validate(case, live_api)


@repeats.parametrize()
@FUZZ_SETTINGS
def test_api_schemathesis_same_body_routes_no_5xx_and_conform(case: Any, live_api: LiveApi) -> None:
    _call_and_validate(case, live_api)


def test_api_schemathesis_same_body_routes_share_their_model() -> None:
    # The coverage phase is skipped for these only because another operation walks the
    # same body model; if a model drifts apart, they need their own walk again.
    for (method, path), (m2, p2) in SAME_BODY_AS.items():
        body = _DOCUMENT["paths"][path][method.lower()]["requestBody"]
        other = _DOCUMENT["paths"][p2][m2.lower()]["requestBody"]
        assert body == other, f"{method} {path} no longer takes the body of {m2} {p2}"


def _call_and_validate(case: Any, live_api: LiveApi) -> None:
    # Point half the generated path ids at objects that exist, so handlers past the
    # 404 are exercised too; and authenticate, unless the case is about a bad header.
    # Which half is decided by a checksum of the case, the same in every process (the
    # builtin hash() of a string is salted per process: the run could not be repeated).
    if case.path_parameters and not _negated(case, "path"):
        for name in ("workflow_id", "execution_id"):
            if name in case.path_parameters and _stable_half(case.path_parameters):
                key = "workflow" if name == "workflow_id" else "execution"
                case.path_parameters[name] = live_api.ids[key]
    headers = {} if _negated(case, "header") else {"Authorization": f"Bearer {live_api.key}"}
    response = case.call(base_url=live_api.url, headers=headers, timeout=30)
    if _refused_by_the_http_server(response):
        return  # never reached the API: nothing of it to check
    case.validate_response(response, checks=CHECKS, headers=headers)


def _refused_by_the_http_server(response: Any) -> bool:
    """uvicorn's own answer to a request its HTTP/1.1 parser refuses (the fuzzer once
    sent an empty ``Content-Length`` header): plain text, before any routing, so no
    route of the API answered it."""
    return bool(
        response.status_code == 400
        and response.headers.get("content-type", [""])[0].startswith("text/plain")
        and response.content == b"Invalid HTTP request received."
    )


def _stable_half(value: Any) -> bool:
    """True for half of all values, the same way in every process and run."""
    return zlib.crc32(repr(sorted(value.items())).encode()) % 2 == 0


def _negated(case: Any, location: str) -> bool:
    """Whether schemathesis made this part of the request invalid on purpose."""
    meta = case.meta
    if meta is None:
        return False
    return any(
        str(getattr(loc, "value", loc)).lower() == location and info.mode.value == "negative"
        for loc, info in meta.components.items()
    )
