"""Analytics queries over the read models (the query side; never used by the engine).

Totals come from ``workflow_summary``, ``node_performance`` and ``webhook_analytics``;
anything over a time range from ``workflow_activity``'s hours, whose duration sketches
merge into any bucket, so percentiles per bucket cost no raw rows. Every query is
scoped to one tenant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from flowmill.projections import sketch
from flowmill.projections.workflow_activity import hour_of
from flowmill.store.database import Database
from flowmill.store.tables import (
    node_performance,
    webhook_analytics,
    workflow_activity,
    workflow_summary,
)

Bucket = Literal["hour", "day"]
BUCKET_HOURS = {"hour": 1, "day": 24}
_STATUS_COUNTERS = ("started", "succeeded", "failed", "cancelled")


@dataclass
class Durations:
    """Durations of the executions (or attempts) counted, in milliseconds."""

    count: int = 0
    avg_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None

    @classmethod
    def of(cls, count: int, total_ms: int, bins: dict[str, int]) -> Durations:
        """From a count, a sum and a sketch."""
        return cls(
            count=count,
            avg_ms=round(total_ms / count, 3) if count else None,
            p50_ms=sketch.quantile(bins, 0.5),
            p95_ms=sketch.quantile(bins, 0.95),
            p99_ms=sketch.quantile(bins, 0.99),
        )


@dataclass
class WorkflowFigures:
    """One workflow's executions, by status."""

    workflow_id: str
    name: str | None
    created_by: str | None
    created_at: datetime | None
    deleted: bool
    executions: int
    queued: int
    succeeded: int
    failed: int
    cancelled: int
    last_executed_at: datetime | None
    durations: Durations


@dataclass
class BucketFigures:
    """Executions in one time bucket: started in it, ended in it by status."""

    start: datetime
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    durations: Durations = field(default_factory=Durations)


@dataclass
class NodeFigures:
    """One node's attempts."""

    workflow_id: str
    node_id: str
    runs: int
    failures: int
    retries: int
    last_run_at: datetime | None
    durations: Durations


@dataclass
class WebhookFigures:
    """One webhook's calls, by outcome."""

    webhook_id: str
    provider: str | None
    total: int
    succeeded: int
    rejected: int
    duplicates: int
    no_match: int
    failed: int
    last_called_at: datetime | None


def bucket_starts(start: datetime, end: datetime, bucket: Bucket) -> list[datetime]:
    """The starts of the buckets that cover ``[start, end)`` (UTC, whole hours/days)."""
    step = BUCKET_HOURS[bucket]
    first = hour_of(start) // step * step
    last = hour_of(end - timedelta(microseconds=1)) // step * step
    return [_at(h) for h in range(first, last + 1, step)]


def _at(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, UTC)


class AnalyticsQueries:
    """Reads the read models for the analytics API."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def workflows(
        self,
        tenant_id: str,
        *,
        after_id: str | None = None,
        limit: int = 100,
        include_deleted: bool = False,
    ) -> tuple[list[WorkflowFigures], bool]:
        """All-time figures of the tenant's workflows, by id; and whether more follow."""
        ws = workflow_summary
        q = sa.select(ws).where(ws.c.tenant_id == tenant_id)
        if not include_deleted:
            q = q.where(ws.c.deleted_at.is_(None))
        if after_id is not None:
            q = q.where(ws.c.workflow_id > after_id)
        q = q.order_by(ws.c.workflow_id).limit(limit + 1)
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [_workflow(r._mapping) for r in rows[:limit]], len(rows) > limit

    async def workflow(self, tenant_id: str, workflow_id: str) -> WorkflowFigures | None:
        """One workflow's all-time figures (``None`` before its first event is applied)."""
        ws = workflow_summary
        q = sa.select(ws).where(ws.c.tenant_id == tenant_id, ws.c.workflow_id == workflow_id)
        row = await self.db.read(lambda c: c.execute(q).first())
        return _workflow(row._mapping) if row is not None else None

    async def buckets(
        self, tenant_id: str, workflow_id: str, start: datetime, end: datetime, bucket: Bucket
    ) -> list[BucketFigures]:
        """Every bucket from ``start`` to ``end`` (empty ones too), oldest first."""
        starts = bucket_starts(start, end, bucket)
        if not starts:
            return []
        step = BUCKET_HOURS[bucket]
        wa = workflow_activity
        first, last = hour_of(starts[0]), hour_of(starts[-1]) + step
        q = sa.select(wa).where(
            wa.c.tenant_id == tenant_id,
            wa.c.workflow_id == workflow_id,
            wa.c.hour >= first,
            wa.c.hour < last,
        )
        rows = await self.db.read(lambda c: c.execute(q).all())
        grouped: dict[int, list[Any]] = {}
        for r in rows:
            grouped.setdefault(int(r.hour) // step * step, []).append(r._mapping)
        out = []
        for at in starts:
            members = grouped.get(hour_of(at), [])
            figures = BucketFigures(start=at)
            for name in _STATUS_COUNTERS:
                setattr(figures, name, sum(int(m[name]) for m in members))
            figures.durations = Durations.of(
                sum(int(m["duration_count"]) for m in members),
                sum(int(m["duration_sum_ms"]) for m in members),
                sketch.merge(m["durations"] or {} for m in members),
            )
            out.append(figures)
        return out

    async def nodes(self, tenant_id: str, workflow_id: str | None = None) -> list[NodeFigures]:
        """Per node of a workflow (or of all the tenant's workflows)."""
        npf = node_performance
        q = sa.select(npf).where(npf.c.tenant_id == tenant_id)
        if workflow_id is not None:
            q = q.where(npf.c.workflow_id == workflow_id)
        q = q.order_by(npf.c.workflow_id, npf.c.node_id)
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [
            NodeFigures(
                workflow_id=m["workflow_id"],
                node_id=m["node_id"],
                runs=int(m["runs"]),
                failures=int(m["failures"]),
                retries=int(m["retries"]),
                last_run_at=m["last_run_at"],
                durations=_durations(m),
            )
            for m in (r._mapping for r in rows)
        ]

    async def webhooks(self, tenant_id: str, provider: str | None = None) -> list[WebhookFigures]:
        """Per webhook of the tenant (one provider's, if given)."""
        wa = webhook_analytics
        q = sa.select(wa).where(wa.c.tenant_id == tenant_id)
        if provider is not None:
            q = q.where(wa.c.provider == provider)
        rows = await self.db.read(lambda c: c.execute(q.order_by(wa.c.webhook_id)).all())
        counters = ("total", "succeeded", "rejected", "duplicates", "no_match", "failed")
        return [
            WebhookFigures(
                webhook_id=m["webhook_id"],
                provider=m["provider"],
                **{k: int(m[k]) for k in counters},
                last_called_at=m["last_called_at"],
            )
            for m in (r._mapping for r in rows)
        ]


def _durations(m: Any) -> Durations:
    return Durations.of(int(m["duration_count"]), int(m["duration_sum_ms"]), m["durations"] or {})


def _workflow(m: Any) -> WorkflowFigures:
    return WorkflowFigures(
        workflow_id=m["workflow_id"],
        name=m["name"],
        created_by=m["created_by"],
        created_at=m["created_at"],
        deleted=m["deleted_at"] is not None,
        executions=int(m["executions"]),
        queued=int(m["queued"]),
        succeeded=int(m["succeeded"]),
        failed=int(m["failed"]),
        cancelled=int(m["cancelled"]),
        last_executed_at=m["last_executed_at"],
        durations=_durations(m),
    )
