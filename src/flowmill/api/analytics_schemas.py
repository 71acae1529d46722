"""Response bodies of the analytics, projections and tenant-feed routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DurationsOut(_Out):
    """Durations in milliseconds; percentiles within 1 % (read from a sketch)."""

    count: int
    avg_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class WorkflowAnalyticsOut(_Out):
    """A workflow's executions: started, ended by status, durations of those that ran
    to an end (completed or failed)."""

    workflow_id: str
    name: str | None
    created_by: str | None = Field(description="`api_key:<id>` or `jwt:<sub>`.")
    created_at: datetime | None
    deleted: bool
    executions: int = Field(description="Executions that started.")
    queued: int = Field(description="Starts held back by max_concurrent / per_minute.")
    succeeded: int
    failed: int
    cancelled: int
    success_rate: float | None = Field(description="succeeded / (succeeded + failed).")
    last_executed_at: datetime | None
    durations: DurationsOut


class WorkflowAnalyticsPage(_Out):
    """A page of workflows' figures."""

    items: list[WorkflowAnalyticsOut]
    next_cursor: str | None


class BucketOut(_Out):
    """Executions in one time bucket: started in it, and ended in it by status."""

    start: datetime
    started: int
    succeeded: int
    failed: int
    cancelled: int
    durations: DurationsOut


class WorkflowTimelineOut(_Out):
    """A workflow's all-time figures and its time buckets."""

    workflow: WorkflowAnalyticsOut
    bucket: Literal["hour", "day"]
    start: datetime
    end: datetime
    buckets: list[BucketOut]


class NodeAnalyticsOut(_Out):
    """A node's attempts: those that ended, those that failed, retries scheduled."""

    workflow_id: str
    node_id: str
    runs: int
    failures: int
    retries: int
    last_run_at: datetime | None
    durations: DurationsOut


class NodeAnalyticsList(_Out):
    """Nodes' figures."""

    items: list[NodeAnalyticsOut]


class WebhookAnalyticsOut(_Out):
    """A webhook's calls by outcome."""

    webhook_id: str = Field(
        description="The webhook's id (`route:<path>` for refused "
        "calls on a seed route that named no single webhook)."
    )
    provider: str | None
    total: int
    succeeded: int = Field(description="Processed: executions started.")
    rejected: int = Field(description="Failed verification.")
    duplicates: int
    no_match: int = Field(description="Verified, but no active workflow took it.")
    failed: int
    last_called_at: datetime | None


class WebhookAnalyticsList(_Out):
    """Webhooks' figures."""

    items: list[WebhookAnalyticsOut]


class ProjectionOut(_Out):
    """How far a read model has applied the caller's events."""

    name: str
    position: int = Field(description="Last sequence number applied.")
    head: int = Field(description="The tenant's last sequence number.")
    behind: int = Field(description="Events not applied yet.")
    lag_seconds: float = Field(description="Age of the oldest event not applied yet.")


class ProjectionList(_Out):
    """Every read model's position."""

    items: list[ProjectionOut]


class FeedEventOut(_Out):
    """One event of the tenant's feed."""

    sequence: int
    id: str
    type: str
    stream_id: str = Field(description="What it is about: an execution, workflow, webhook...")
    timestamp: datetime
    payload: dict[str, Any]


class FeedPage(_Out):
    """Events after a sequence number, in order."""

    items: list[FeedEventOut]
    next_after: int = Field(description="Pass as `after` for the next page.")
    head: int = Field(description="The tenant's last sequence number now.")
