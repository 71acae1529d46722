"""OpenTelemetry traces (``FLOWMILL_OTEL_ENABLED``): one trace per execution, a span
per step, exported over OTLP/HTTP to ``FLOWMILL_OTEL_ENDPOINT``.

The trace id *is* the execution id (a UUID has the 128 bits of a trace id), so every
process that runs a step of an execution adds to the same trace without passing any
context along, and a trace is found from an execution id alone. The execution's own
span (its id: the execution id's low 64 bits) is written by the process that ends the
execution, from its start to its end; each attempt of a node is a span under it,
written by node middleware around the node's code.

Needs the ``flowmill[otel]`` extra (opentelemetry-sdk and the OTLP/HTTP exporter).
"""

from __future__ import annotations

import contextvars
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from flowmill.domain.errors import NodeError
from flowmill.domain.execution import Effects
from flowmill.engine.middleware import Invocation, NodeCall

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = structlog.get_logger("flowmill.tracing")
_ENDS = {"execution.completed": "succeeded", "execution.failed": "failed"}
# The ids the next span must have (the execution's own span: the id generator reads them).
_forced: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "flowmill_forced_span", default=None
)


def trace_id_of(execution_id: str) -> int:
    """The trace of an execution: its id's 128 bits."""
    return uuid.UUID(execution_id).int


def root_span_id_of(execution_id: str) -> int:
    """The execution's own span id: its id's low 64 bits (never 0 for a UUIDv7)."""
    return uuid.UUID(execution_id).int & ((1 << 64) - 1) or 1


class ExecutionTracer:
    """Writes the spans of executions and their steps to a tracer provider."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import trace

        self.provider = provider
        self._trace = trace
        self.tracer = provider.get_tracer("flowmill")

    def _parent(self, execution_id: str) -> Any:
        t = self._trace
        parent = t.SpanContext(
            trace_id=trace_id_of(execution_id),
            span_id=root_span_id_of(execution_id),
            is_remote=True,
            trace_flags=t.TraceFlags(t.TraceFlags.SAMPLED),
        )
        return t.set_span_in_context(t.NonRecordingSpan(parent))

    async def node_middleware(self, inv: Invocation, nxt: NodeCall) -> Any:
        """A span for the node's attempt, child of its execution's span."""
        ctx = inv.ctx
        with self.tracer.start_as_current_span(
            f"step {ctx.node.id}",
            context=self._parent(ctx.execution_id),
            attributes={
                "flowmill.tenant_id": ctx.tenant_id,
                "flowmill.workflow_id": ctx.workflow_id,
                "flowmill.execution_id": ctx.execution_id,
                "flowmill.node_id": ctx.node.id,
                "flowmill.node_type": ctx.node.type,
                "flowmill.attempt": ctx.attempt,
            },
            record_exception=False,
        ) as span:
            try:
                return await nxt(inv)
            except NodeError as e:
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(e)))
                span.set_attribute("flowmill.error_type", e.type)
                raise

    def committed(self, fx: Effects) -> None:
        """Hub listener: an execution that ended gets its own span, start to end."""
        for e in fx.events:
            status = _ENDS.get(e.type)
            if status is None or e.timestamp is None:
                continue
            ended = e.timestamp
            started = ended - timedelta(milliseconds=int(e.payload.get("duration_ms") or 0))
            token = _forced.set((trace_id_of(fx.execution_id), root_span_id_of(fx.execution_id)))
            try:
                span = self.tracer.start_span(
                    "execution",
                    context=self._trace.set_span_in_context(self._trace.INVALID_SPAN),
                    start_time=int(started.timestamp() * 1e9),
                    attributes={
                        "flowmill.tenant_id": fx.tenant_id,
                        "flowmill.execution_id": fx.execution_id,
                        "flowmill.workflow_id": str(e.payload.get("workflow_id", "")),
                        "flowmill.status": status,
                    },
                )
            finally:
                _forced.reset(token)
            if status == "failed":
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
            span.end(end_time=int(ended.timestamp() * 1e9))

    def close(self) -> None:
        """Flush and stop the exporter."""
        self.provider.shutdown()


def build_tracer(endpoint: str, exporter: Any = None) -> ExecutionTracer | None:
    """An :class:`ExecutionTracer` exporting to ``endpoint`` (or to ``exporter``), or
    ``None`` when the SDK is not installed (said once in the log)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    except ImportError:
        log.warning("tracing is off: install flowmill[otel] for FLOWMILL_OTEL_ENABLED")
        return None

    class _ExecutionIds(RandomIdGenerator):
        """Random ids, except for an execution's own span (see ``_forced``)."""

        def generate_trace_id(self) -> int:
            forced = _forced.get()
            return forced[0] if forced else super().generate_trace_id()

        def generate_span_id(self) -> int:
            forced = _forced.get()
            return forced[1] if forced else super().generate_span_id()

    provider = TracerProvider(
        resource=Resource.create({"service.name": "flowmill"}), id_generator=_ExecutionIds()
    )
    provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=endpoint)))
    return ExecutionTracer(provider)
