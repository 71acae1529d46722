"""Queue jobs by id (seed 004's ``getJobStatus(jobId)``), and the jobs of an execution.

Two kinds of job:

- A **step job** (``s-{execution id}-{node digest}-{attempt}``, on the node queue, in
  both deployments): its state comes from the database, which is the truth (DESIGN §4),
  in BullMQ's words; ``queue_state`` adds what the queue itself says while it holds the
  job. A step run inline by the worker of the step before it never went through the
  queue: it has a job id all the same, and no ``queue_state``.
- A **trigger job** (BullMQ's own ids, distributed mode only): what another service
  added to the trigger queue, or a seed trigger-node job on the node queue. Its state
  is BullMQ's, and its ``execution_ids`` are those its handler started (kept as the
  job's ``returnvalue``, as long as BullMQ keeps the job). The in-process queue of the
  embedded deployment gives its trigger jobs no ids.

A job belongs to the tenant of its execution, or named in its data (``tenant_id``,
``tenantId`` or ``metadata.clientId``); any other tenant's job is a 404. A job's data
is never answered: producers put secrets there (seed 004 puts credentials).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from flowmill.api.deps import Caller, Ctx, ExecutionIdPath
from flowmill.api.errors import ERROR_RESPONSES, NOT_FOUND, not_found
from flowmill.api.job_schemas import JobList, JobStatusOut
from flowmill.constants import QUEUE_NAME_PATTERN, node_digest, parse_step_job_id, step_job_id
from flowmill.domain.execution import NodeRun
from flowmill.domain.states import NodeRunStatus
from flowmill.engine.ports import JobInfo

router = APIRouter(tags=["jobs"], responses=ERROR_RESPONSES)

JobIdPath = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9_.-]{1,200}$",
        description="A step job's id (`s-...`, from an execution's jobs) or a BullMQ job id.",
    ),
]
QueueName = Annotated[
    str | None,
    Query(
        pattern=QUEUE_NAME_PATTERN,
        description="Only in this queue (BullMQ numbers each queue's jobs on its own).",
    ),
]

_STEP_STATE = {
    NodeRunStatus.PENDING: "waiting",
    NodeRunStatus.QUEUED: "waiting",
    NodeRunStatus.RUNNING: "active",
    NodeRunStatus.WAITING: "delayed",
    NodeRunStatus.SUCCEEDED: "completed",
    NodeRunStatus.SKIPPED: "completed",
    NodeRunStatus.FAILED: "failed",
    NodeRunStatus.CANCELLED: "failed",
}
_KNOWN_STATES = {
    "waiting",
    "prioritized",
    "delayed",
    "active",
    "completed",
    "failed",
    "paused",
    "waiting-children",
}


def _state(value: str) -> str:
    # BullMQ answers "wait" for waiting jobs in some versions, "unknown" for none.
    value = "waiting" if value == "wait" else value
    return value if value in _KNOWN_STATES else "unknown"


def _ms(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if value else None


def step_job(run: NodeRun, now: datetime, queued: JobInfo | None) -> JobStatusOut:
    """The job of one node run, its state from the database."""
    state = _STEP_STATE[run.status]
    if state == "waiting" and run.not_before is not None and run.not_before > now:
        state = "delayed"  # a retry's backoff, or a start held for later
    error = run.error or {}
    reason = error.get("message") if run.status is NodeRunStatus.FAILED else None
    if run.status is NodeRunStatus.CANCELLED:
        reason = "cancelled"
    return JobStatusOut(
        id=step_job_id(run.execution_id, run.node_id, run.attempt),
        kind="step",
        state=state,
        queue=queued.queue if queued is not None else None,
        queue_state=_state(queued.state) if queued is not None else None,
        execution_id=run.execution_id,
        execution_ids=[run.execution_id],
        node_id=run.node_id,
        attempt=run.attempt,
        node_status=run.status.value,
        failed_reason=str(reason) if reason is not None else None,
        attempts_made=1 if run.started_at is not None else 0,
        created_at=run.created_at,
        processed_at=run.started_at,
        finished_at=run.completed_at,
    )


def _owner(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    meta = data.get("metadata")
    tenant = data.get("tenant_id") or data.get("tenantId")
    if tenant is None and isinstance(meta, dict):
        tenant = meta.get("clientId")
    return str(tenant) if tenant is not None else None


def _started(result: Any) -> list[str]:
    ids = result.get("executionIds") if isinstance(result, dict) else None
    return [str(i) for i in ids] if isinstance(ids, list) else []


def trigger_job(info: JobInfo) -> JobStatusOut:
    """A trigger job as the queue holds it."""
    started = _started(info.result)
    return JobStatusOut(
        id=info.id,
        kind="trigger",
        state=_state(info.state),
        queue=info.queue,
        queue_state=_state(info.state),
        execution_id=started[0] if started else None,
        execution_ids=started,
        node_id=None,
        attempt=None,
        node_status=None,
        failed_reason=info.failed_reason,
        attempts_made=info.attempts_made,
        created_at=_ms(info.created_ms),
        processed_at=_ms(info.processed_ms),
        finished_at=_ms(info.finished_ms),
    )


async def _queued(ctx: Ctx, job_id: str) -> JobInfo | None:
    infos = await ctx.runtime.queue.inspect(job_id)
    return infos[0] if infos else None


@router.get(
    "/api/jobs/{job_id}",
    response_model=JobStatusOut,
    responses=NOT_FOUND,
    summary="Get a job's status",
)
async def get_job(
    ctx: Ctx, caller: Caller, job_id: JobIdPath, queue: QueueName = None
) -> JobStatusOut:
    """A queue job by id (seed 004's `getJobStatus(jobId)`): a step job of one of the
    tenant's executions, or a trigger job the tenant's producers added (distributed
    mode). `state` is in BullMQ's words; a step's comes from the database."""
    ref = parse_step_job_id(job_id)
    if ref is not None:
        detail = await ctx.executions.detail(caller.tenant_id, ref.execution_id)
        runs = [
            r
            for r in (detail[1] if detail is not None else [])
            if r.attempt == ref.attempt and node_digest(r.node_id) == ref.node_digest
        ]
        if not runs:
            raise not_found("job", job_id)
        queued = await _queued(ctx, job_id)
        now = ctx.runtime.engine.clock.now()
        return step_job(runs[0], now, queued).model_copy(update={"id": job_id})
    for info in await ctx.runtime.queue.inspect(job_id):
        if (queue is None or info.queue == queue) and _owner(info.data) == caller.tenant_id:
            return trigger_job(info)
    raise not_found("job", job_id)


@router.get(
    "/api/executions/{execution_id}/jobs",
    response_model=JobList,
    responses=NOT_FOUND,
    summary="List an execution's jobs",
)
async def execution_jobs(ctx: Ctx, caller: Caller, execution_id: ExecutionIdPath) -> JobList:
    """The step jobs behind an execution, one per attempt of each node that ran or
    will run (trigger nodes and skipped nodes have none), oldest first; those still
    live say what the queue holds of them."""
    detail = await ctx.executions.detail(caller.tenant_id, str(execution_id))
    if detail is None:
        raise not_found("execution", execution_id)
    ex, runs = detail
    triggers = set((await ctx.runtime.engine.compiled(ex.workflow_id, ex.version)).graph.triggers)
    now = ctx.runtime.engine.clock.now()
    items = []
    for run in runs:
        if run.node_id in triggers or run.status is NodeRunStatus.SKIPPED:
            continue
        queued = None
        if not run.status.terminal:
            queued = await _queued(ctx, step_job_id(run.execution_id, run.node_id, run.attempt))
        items.append(step_job(run, now, queued))
    return JobList(items=items)
