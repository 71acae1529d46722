"""Prometheus metrics of one process: one registry, no module-level state.

What is counted where, so each figure is counted once per process:

* executions started and ended (by status): the engine's hub, from committed events;
* step durations (by node type and outcome): node middleware around the node's code;
* webhook calls (by provider and status): the webhook event store's listeners
  (``received``/``rejected``/``duplicate`` when recorded, ``processed``/``no_match``/
  ``failed`` when dispatched);
* queue depth (by queue and state) and wait (by queue): a poller and the queues;
* sandbox run times (by language and outcome), store commit latency (by operation):
  wrappers of the engine's ports (``observability/instrumented.py``);
* projection lag: the projector service; event-loop lag: ``loop_lag.py``.

Hot-path cost: a dictionary lookup and an add per event or step. prometheus-client's
``labels()`` checks and locks on every call (about 20 us apiece on the shared bench
machine, several per step), so each instrument's children are kept by label values
(:class:`Children`); a tenant label only when ``tenant_label`` is set (one series per
tenant).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from flowmill.domain.errors import NodeError
from flowmill.domain.execution import Effects
from flowmill.engine.middleware import Invocation, NodeCall
from flowmill.projections.projector import Lag

_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
_ENDS = {
    "execution.completed": "succeeded",
    "execution.failed": "failed",
    "execution.cancelled": "cancelled",
}
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Children:
    """A labelled instrument's children, by label values, made on first use.

    Args:
        metric: A Counter, Gauge or Histogram declared with label names.
    """

    def __init__(self, metric: Counter | Gauge | Histogram) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        """The child for ``values`` (as ``metric.labels(*values)``)."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


class Metrics:
    """The instruments of one process.

    Args:
        tenant_label: Label per-execution series with the tenant (cardinality!).
        registry: Where to register (a new one by default).
    """

    def __init__(self, *, tenant_label: bool = False, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.tenant_label = tenant_label
        r = self.registry
        tenant = ("tenant",) if tenant_label else ()
        self.executions_started = Counter(
            "flowmill_executions_started_total", "Executions that started.", tenant, registry=r
        )
        self.executions_ended = Counter(
            "flowmill_executions_ended_total",
            "Executions that ended, by final status.",
            ("status", *tenant),
            registry=r,
        )
        self.step_duration = Histogram(
            "flowmill_step_duration_seconds",
            "Time in a node's code per attempt, by node type and outcome.",
            ("node_type", "outcome"),
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "flowmill_queue_depth", "Jobs in a queue, by state.", ("queue", "state"), registry=r
        )
        self.queue_wait = Histogram(
            "flowmill_queue_wait_seconds",
            "Time a job waited in its queue before a worker took it (after any delay).",
            ("queue",),
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.webhook_events = Counter(
            "flowmill_webhook_events_total",
            "Webhook calls, by provider and status (received, rejected, duplicate when "
            "recorded; processed, no_match, failed when dispatched).",
            ("provider", "status"),
            registry=r,
        )
        self.sandbox_run = Histogram(
            "flowmill_sandbox_run_seconds",
            "Time of a code node's run in the sandbox, by language and outcome.",
            ("language", "outcome"),
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.store_commit = Histogram(
            "flowmill_store_commit_seconds",
            "Time of the engine's transactions, by operation.",
            ("operation",),
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.projection_lag_events = Gauge(
            "flowmill_projection_lag_events",
            "Events a read model has not applied yet (all tenants).",
            ("projection",),
            registry=r,
        )
        self.projection_lag_seconds = Gauge(
            "flowmill_projection_lag_seconds",
            "Age of the oldest event a read model has not applied yet (worst tenant).",
            ("projection",),
            registry=r,
        )
        self.loop_lag = Histogram(
            "flowmill_event_loop_lag_seconds",
            "How late the event loop ran a timer (a blocked loop delays every request).",
            buckets=(*_FAST_BUCKETS, 2.5, 5, 10),
            registry=r,
        )
        self.http_requests = Histogram(
            "flowmill_http_request_duration_seconds",
            "API requests, by method, route template and status.",
            ("method", "route", "status"),
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        # the hot paths' children (see Children)
        self.step_duration_of = Children(self.step_duration)
        self.queue_wait_of = Children(self.queue_wait)
        self.webhook_events_of = Children(self.webhook_events)
        self.sandbox_run_of = Children(self.sandbox_run)
        self.http_requests_of = Children(self.http_requests)
        self._ended_of = Children(self.executions_ended)
        self._started_of = Children(self.executions_started) if tenant_label else None

    # --- listeners ---------------------------------------------------------------------

    def committed(self, fx: Effects) -> None:
        """Hub listener: count executions that started and ended."""
        for e in fx.events:
            if e.type == "execution.started":
                self._started(fx.tenant_id).inc()
            else:
                status = _ENDS.get(e.type)
                if status is not None:
                    self._ended(status, fx.tenant_id).inc()

    def _started(self, tenant_id: str) -> Any:
        if self._started_of is not None:
            return self._started_of(tenant_id)
        return self.executions_started

    def _ended(self, status: str, tenant_id: str) -> Any:
        if self.tenant_label:
            return self._ended_of(status, tenant_id)
        return self._ended_of(status)

    def webhook_event(self, provider: str, status: str) -> None:
        """Webhook event store listener: one call recorded or dispatched."""
        self.webhook_events_of(provider, status).inc()

    def projection_lag(self, lags: Sequence[Lag]) -> None:
        """Projector listener: lags per projection and tenant."""
        events: dict[str, int] = {}
        seconds: dict[str, float] = {}
        for g in lags:
            events[g.projection] = events.get(g.projection, 0) + g.events
            seconds[g.projection] = max(seconds.get(g.projection, 0.0), g.seconds)
        for name, n in events.items():
            self.projection_lag_events.labels(name).set(n)
            self.projection_lag_seconds.labels(name).set(seconds[name])

    def queue_counts(self, counts: dict[str, dict[str, int]]) -> None:
        """Queue poller listener: jobs per queue and state."""
        for queue, by_state in counts.items():
            for state, n in by_state.items():
                self.queue_depth.labels(queue, state).set(n)

    def queue_waited(self, queue: str, seconds: float) -> None:
        """Queue listener: a job waited ``seconds`` before a worker took it."""
        self.queue_wait_of(queue).observe(max(0.0, seconds))

    # --- middleware --------------------------------------------------------------------

    async def node_middleware(self, inv: Invocation, nxt: NodeCall) -> Any:
        """Times the node's code per attempt, by node type and outcome."""
        started = time.perf_counter()
        outcome = "succeeded"
        try:
            return await nxt(inv)
        except NodeError:
            outcome = "failed"
            raise
        except BaseException:
            outcome = "error"
            raise
        finally:
            self.step_duration_of(inv.node.node.type, outcome).observe(
                time.perf_counter() - started
            )

    # --- exposition --------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of every instrument."""
        return generate_latest(self.registry)
