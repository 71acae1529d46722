"""OpenTelemetry traces exported over OTLP/HTTP to a stand-in collector on loopback
(it decodes the protobuf requests as a collector does): one trace per execution whose
id is the execution's, its own span from start to end, a span per step under it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.api_support import FAILING, THREE_NODES, open_api
from tests.conftest import unavailable

try:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_service
except ImportError:  # pragma: no cover - the dev setup installs flowmill[otel]
    trace_service = None


class Collector(ThreadingHTTPServer):
    """Receives ``POST /v1/traces`` (OTLP/HTTP, protobuf) and keeps the spans."""

    daemon_threads = True

    def __init__(self) -> None:
        self.spans: list[Any] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Collector

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert self.path == "/v1/traces"
        assert self.headers["Content-Type"] == "application/x-protobuf"
        request = trace_service.ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.server.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def collector() -> Iterator[Collector]:
    if trace_service is None:
        unavailable("the flowmill[otel] extra is not installed")
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield server
    server.shutdown()
    thread.join()
    server.server_close()


def _attrs(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = value.string_value or value.int_value
    return out


async def test_tracing_one_trace_per_execution_a_span_per_step(
    sqlite_url: str, collector: Collector
) -> None:
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}/v1/traces"
    async with open_api(
        sqlite_url, sandbox_enabled=False, otel_enabled=True, otel_endpoint=endpoint
    ) as api:
        ok = await api.run(await api.workflow(THREE_NODES), {"message": "m"})
        bad = await api.run(await api.workflow(FAILING), {"x": 1})
    # closing the runtime flushed the exporter
    by_trace: dict[bytes, list[Any]] = {}
    for span in collector.spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    for execution, steps in ((ok, {"process-1", "response-1"}), (bad, {"a", "boom"})):
        ident = uuid.UUID(execution["id"])
        spans = by_trace[ident.bytes]  # the trace id is the execution id
        [root] = [s for s in spans if s.name == "execution"]
        assert root.span_id == ident.bytes[8:]
        assert not root.parent_span_id
        assert _attrs(root)["flowmill.execution_id"] == execution["id"]
        children = [s for s in spans if s is not root]
        assert {s.name for s in children} == {f"step {n}" for n in steps}
        assert all(s.parent_span_id == root.span_id for s in children)
        # the execution's start is its end less its duration in whole milliseconds
        slack = 1_000_000
        assert all(root.start_time_unix_nano - slack <= s.start_time_unix_nano for s in children)
        assert all(s.end_time_unix_nano <= root.end_time_unix_nano for s in children)
    [boom] = [s for s in by_trace[uuid.UUID(bad["id"]).bytes] if s.name == "step boom"]
    assert boom.status.code == 2  # ERROR
    assert _attrs(boom)["flowmill.node_type"] == "fail"
    assert len(by_trace) == 2
