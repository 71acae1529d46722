"""``/api/analytics/...`` (the read models, seed 004's query APIs) and
``/api/projections`` (how far behind they are).

Figures lag the writes by the projector's lag (about a second); ``/api/projections``
says how much. The routes read only the read models, after checking that the workflow
asked about is the caller's (another tenant's is a 404).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from flowmill.api.analytics_schemas import (
    BucketOut,
    DurationsOut,
    NodeAnalyticsList,
    NodeAnalyticsOut,
    ProjectionList,
    ProjectionOut,
    WebhookAnalyticsList,
    WebhookAnalyticsOut,
    WorkflowAnalyticsOut,
    WorkflowAnalyticsPage,
    WorkflowTimelineOut,
)
from flowmill.api.deps import Caller, Ctx, WorkflowIdPath, decode_cursor, encode_cursor
from flowmill.api.errors import ERROR_RESPONSES, NOT_FOUND, ApiError, not_found
from flowmill.projections.analytics import (
    BUCKET_HOURS,
    AnalyticsQueries,
    Durations,
    WorkflowFigures,
)
from flowmill.projections.projector import Projector

router = APIRouter(tags=["analytics"], responses=ERROR_RESPONSES)
MAX_BUCKETS = 2000
_DEFAULT_SPAN = {"hour": timedelta(hours=24), "day": timedelta(days=30)}


def _durations(d: Durations) -> DurationsOut:
    return DurationsOut(
        count=d.count, avg_ms=d.avg_ms, p50_ms=d.p50_ms, p95_ms=d.p95_ms, p99_ms=d.p99_ms
    )


def _workflow(f: WorkflowFigures) -> WorkflowAnalyticsOut:
    ended = f.succeeded + f.failed
    return WorkflowAnalyticsOut(
        workflow_id=f.workflow_id,
        name=f.name,
        created_by=f.created_by,
        created_at=f.created_at,
        deleted=f.deleted,
        executions=f.executions,
        queued=f.queued,
        succeeded=f.succeeded,
        failed=f.failed,
        cancelled=f.cancelled,
        success_rate=round(f.succeeded / ended, 4) if ended else None,
        last_executed_at=f.last_executed_at,
        durations=_durations(f.durations),
    )


def _empty(workflow_id: str) -> WorkflowFigures:
    return WorkflowFigures(workflow_id, None, None, None, False, 0, 0, 0, 0, 0, None, Durations())


def _time(raw: str, field: str) -> datetime:
    """An ISO 8601 date-time (UTC when it names no offset). Stricter than pydantic's
    datetime, which also takes numbers as Unix times."""
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _bad_query(field, "not an ISO 8601 date-time, e.g. 2026-12-06T09:00:00Z") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _bad_query(field: str, message: str) -> ApiError:
    return ApiError(
        422,
        "invalid_request",
        f"invalid request: query.{field}",
        [{"field": f"query.{field}", "message": message, "code": "invalid"}],
    )


@router.get(
    "/api/analytics/workflows",
    response_model=WorkflowAnalyticsPage,
    summary="Workflows' execution figures",
)
async def workflows_analytics(
    ctx: Ctx,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    include_deleted: bool = False,
) -> WorkflowAnalyticsPage:
    """Every workflow of the caller's with executions by status, the last run, average
    and p95 duration (the read model `workflow_summary`), by workflow id."""
    items, more = await AnalyticsQueries(ctx.runtime.db).workflows(
        caller.tenant_id,
        after_id=decode_cursor(cursor, "workflow"),
        limit=limit,
        include_deleted=include_deleted,
    )
    return WorkflowAnalyticsPage(
        items=[_workflow(f) for f in items],
        next_cursor=encode_cursor("workflow", items[-1].workflow_id) if more and items else None,
    )


@router.get(
    "/api/analytics/workflows/{workflow_id}",
    response_model=WorkflowTimelineOut,
    responses=NOT_FOUND,
    summary="A workflow's executions over time",
)
async def workflow_analytics(
    ctx: Ctx,
    caller: Caller,
    workflow_id: WorkflowIdPath,
    bucket: Literal["hour", "day"] = "hour",
    start: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=40,
            description="ISO 8601 date-time. Default: 24 hours (hour) or 30 days (day) ago.",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    end: Annotated[
        str | None,
        Query(
            alias="to",
            max_length=40,
            description="ISO 8601 date-time. Default: now.",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
) -> WorkflowTimelineOut:
    """All-time figures and, per hour or day (UTC) from `from` to `to`: executions
    started in the bucket, ended in it by status, and the durations of those that ended
    (count, average, p50/p95/p99)."""
    wf = str(workflow_id)
    if not await ctx.workflows.exists(caller.tenant_id, wf):
        raise not_found("workflow", wf)
    end_at = _time(end, "to") if end is not None else datetime.now(UTC)
    try:
        start_at = _time(start, "from") if start is not None else end_at - _DEFAULT_SPAN[bucket]
    except OverflowError:
        raise _bad_query("to", "too early") from None
    if start_at >= end_at:
        raise _bad_query("from", "must be before `to`")
    span_hours = (end_at - start_at).total_seconds() / 3600
    if span_hours / BUCKET_HOURS[bucket] > MAX_BUCKETS:
        raise _bad_query("from", f"more than {MAX_BUCKETS} buckets; use a shorter range or day")
    queries = AnalyticsQueries(ctx.runtime.db)
    figures = await queries.workflow(caller.tenant_id, wf) or _empty(wf)
    buckets = await queries.buckets(caller.tenant_id, wf, start_at, end_at, bucket)
    return WorkflowTimelineOut(
        workflow=_workflow(figures),
        bucket=bucket,
        start=start_at,
        end=end_at,
        buckets=[
            BucketOut(
                start=b.start,
                started=b.started,
                succeeded=b.succeeded,
                failed=b.failed,
                cancelled=b.cancelled,
                durations=_durations(b.durations),
            )
            for b in buckets
        ],
    )


@router.get(
    "/api/analytics/nodes",
    response_model=NodeAnalyticsList,
    responses=NOT_FOUND,
    summary="Nodes' attempts, failures, retries and durations",
)
async def nodes_analytics(
    ctx: Ctx,
    caller: Caller,
    workflow_id: Annotated[uuid.UUID | None, Query(description="Only this workflow.")] = None,
) -> NodeAnalyticsList:
    """Per node (of one workflow, or all the caller's): attempts that ended, failed
    attempts, retries scheduled, average and p95 duration (`node_performance`)."""
    wf = str(workflow_id) if workflow_id is not None else None
    if wf is not None and not await ctx.workflows.exists(caller.tenant_id, wf):
        raise not_found("workflow", wf)
    items = await AnalyticsQueries(ctx.runtime.db).nodes(caller.tenant_id, wf)
    return NodeAnalyticsList(
        items=[
            NodeAnalyticsOut(
                workflow_id=n.workflow_id,
                node_id=n.node_id,
                runs=n.runs,
                failures=n.failures,
                retries=n.retries,
                last_run_at=n.last_run_at,
                durations=_durations(n.durations),
            )
            for n in items
        ]
    )


@router.get(
    "/api/analytics/webhooks",
    response_model=WebhookAnalyticsList,
    summary="Webhooks' calls by outcome",
)
async def webhooks_analytics(
    ctx: Ctx,
    caller: Caller,
    provider: Annotated[str | None, Query(max_length=32, description="Only this provider.")] = None,
) -> WebhookAnalyticsList:
    """Per webhook: calls, processed, rejected, duplicates, no match, failed, and the
    last call (`webhook_analytics`)."""
    items = await AnalyticsQueries(ctx.runtime.db).webhooks(caller.tenant_id, provider)
    return WebhookAnalyticsList(
        items=[
            WebhookAnalyticsOut(
                webhook_id=w.webhook_id,
                provider=w.provider,
                total=w.total,
                succeeded=w.succeeded,
                rejected=w.rejected,
                duplicates=w.duplicates,
                no_match=w.no_match,
                failed=w.failed,
                last_called_at=w.last_called_at,
            )
            for w in items
        ]
    )


@router.get("/api/projections", response_model=ProjectionList, summary="Read models' lag")
async def projections_status(ctx: Ctx, caller: Caller) -> ProjectionList:
    """How far each read model has applied the caller's events, and how far behind."""
    lags = await Projector(ctx.runtime.db).lag(caller.tenant_id)
    return ProjectionList(
        items=[
            ProjectionOut(
                name=g.projection,
                position=g.position,
                head=g.head,
                behind=g.events,
                lag_seconds=g.seconds,
            )
            for g in lags
        ]
    )
