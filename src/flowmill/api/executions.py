"""Executions: start one, list, read with node runs, logs, cancel, retry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator, JsonValue

from flowmill.api.deps import (
    Caller,
    Ctx,
    ExecutionIdPath,
    WorkflowIdPath,
    decode_cursor,
    encode_cursor,
    signal_box,
)
from flowmill.api.errors import (
    CONFLICT,
    ERROR_RESPONSES,
    NOT_FOUND,
    ApiError,
    not_found,
    over_quota,
)
from flowmill.api.jsonvalue import SafeStr
from flowmill.api.schemas import (
    STATUS_ALIASES,
    CancelResult,
    ExecuteIn,
    ExecutionAccepted,
    ExecutionDetail,
    ExecutionPage,
    ExecutionStatusFilter,
    LogLineOut,
    LogPage,
    RetryExecutionIn,
    SignalAccepted,
)
from flowmill.api.views import execution_detail, execution_summary
from flowmill.domain.states import ExecutionStatus
from flowmill.engine.starts import downstream
from flowmill.store.queries import ExecutionFilter

router = APIRouter(tags=["executions"], responses=ERROR_RESPONSES)

Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
]
Statuses = Annotated[
    list[ExecutionStatusFilter] | None,
    Query(
        description="Only these statuses (repeat the parameter for several); `completed` "
        "(the seeds' name) is `succeeded`."
    ),
]
MetadataValue = Annotated[
    SafeStr | None,
    Query(max_length=255, description="Only executions whose metadata has this value."),
]
TriggerType = Annotated[
    SafeStr | None, Query(max_length=64, description="Only started this way (manual...).")
]


def _iso_datetime(value: object) -> datetime:
    """Only ISO 8601 date-times (as documented); not the Unix numbers pydantic would
    also take. No offset means UTC."""
    if isinstance(value, str) and ("T" in value.upper() or " " in value.strip()):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError("must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_datetime)]
From = Annotated[
    IsoDateTime | None,
    Query(description="Only executions started at or after this time (ISO 8601)."),
]
To = Annotated[
    IsoDateTime | None,
    Query(description="Only executions started at or before this time (ISO 8601)."),
]
DateFrom = Annotated[
    IsoDateTime | None,
    Query(alias="dateFrom", description="Seed 004's name of `started_from` / `received_from`."),
]
DateTo = Annotated[
    IsoDateTime | None,
    Query(alias="dateTo", description="Seed 004's name of `started_to` / `received_to`."),
]


def statuses(given: Sequence[str] | None) -> tuple[str, ...]:
    """The statuses of a filter, the seeds' names read as Flowmill's, each once."""
    return tuple(dict.fromkeys(STATUS_ALIASES.get(s, s) for s in given or ()))


def either(name: str, alias: str, value: datetime | None, seed: datetime | None) -> datetime | None:
    """A query parameter given under its name or the seeds' alias (not both, unless equal).

    Raises:
        ApiError: 422 when both are given and differ.
    """
    if value is not None and seed is not None and value != seed:
        field = f"query.{alias}"
        raise ApiError(
            422,
            "invalid_request",
            f"invalid request: {field}",
            [{"field": field, "message": f"disagrees with {name}", "code": "conflict"}],
        )
    return _utc(value if value is not None else seed)


LOG_LEVELS = ("debug", "info", "warn", "error")


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _accepted(execution_id: str, workflow_id: str, version: int, status: str) -> JSONResponse:
    body = ExecutionAccepted(
        execution_id=execution_id,
        workflow_id=workflow_id,
        version=version,
        status=status,
    )
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/api/executions/{execution_id}"},
    )


async def _page(
    ctx: Ctx,
    caller: Caller,
    f: ExecutionFilter,
    limit: int,
) -> ExecutionPage:
    items, more = await ctx.executions.page(caller.tenant_id, f, limit)
    return ExecutionPage(
        items=[execution_summary(s) for s in items],
        next_cursor=encode_cursor("execution", items[-1].id) if more and items else None,
    )


@router.post(
    "/api/workflows/{workflow_id}/execute",
    status_code=202,
    response_model=ExecutionAccepted,
    responses={
        **NOT_FOUND,
        **CONFLICT,
        200: {"model": ExecutionDetail, "description": "It ended within `wait` seconds."},
    },
    summary="Execute a workflow",
)
async def execute_workflow(
    ctx: Ctx,
    caller: Caller,
    workflow_id: WorkflowIdPath,
    body: Annotated[ExecuteIn | None, Body()] = None,
    wait: Annotated[
        float | None,
        Query(
            ge=0,
            # a large wait is capped, as documented, not refused
            le=10**9,
            description="Wait up to this many seconds (capped by FLOWMILL_API_MAX_WAIT_S) "
            "and answer 200 with the execution if it ended by then.",
        ),
    ] = None,
) -> JSONResponse:
    """Start an execution of the published version (or ``version``) with ``input`` as
    its trigger data, at its first trigger or at ``trigger_node_id`` (seed 004's
    ``triggerWorkflowNode``). Answers 202 with its id at once, or, with ``wait``, 200
    with the whole execution if it ended in time."""
    body = body or ExecuteIn()
    rt = ctx.runtime
    tenant, wf_id = caller.tenant_id, str(workflow_id)
    record = await rt.workflows.get(tenant, wf_id)
    if record is None:
        raise not_found("workflow", wf_id)
    version = body.version or record.active_version
    if version is None:
        raise ApiError(
            409,
            "not_published",
            "the workflow has no published version: publish it, or pass a version",
            [{"field": "body.version", "message": "required for drafts", "code": "missing"}],
        )
    if body.version is not None and await ctx.workflows.version(tenant, wf_id, version) is None:
        raise not_found("version", f"{wf_id}/{version}")
    if body.trigger_node_id is not None:
        await _check_trigger_node(ctx, wf_id, version, body.trigger_node_id)
    if (wait_s := await rt.quotas.throttled(tenant, "starts_per_minute")) is not None:
        raise over_quota("executions started", wait_s)
    start: dict[str, Any] = {
        "tenant_id": tenant,
        "workflow_id": wf_id,
        "version": version,
        "data": body.input,
        "node_id": body.trigger_node_id,
        "metadata": body.metadata,
        "priority": body.priority,
    }
    if wait:
        loop = asyncio.get_running_loop()
        timeout = min(wait, ctx.settings.api_max_wait_s)
        deadline = loop.time() + timeout
        # Run in place when this process has a worker: the answer needs no queue
        # round trip and no read to learn the end (see Engine.start_and_wait).
        execution_id, ended = await rt.engine.start_and_wait(timeout, **start)
        if ended is None:
            left = max(0.0, deadline - loop.time())
            ended = (await rt.engine.wait(execution_id, timeout=left)).status
        if ended.terminal:
            detail = await ctx.executions.detail(tenant, execution_id)
            assert detail is not None
            out = execution_detail(*detail)
            return JSONResponse(out.model_dump(mode="json"), status_code=200)
        return _accepted(execution_id, wf_id, version, ended.value)
    execution_id = await rt.engine.start_execution(**start)
    status = ExecutionStatus.PENDING
    limits = (await rt.engine.compiled(wf_id, version)).workflow.settings
    capped = (await rt.quotas.get(tenant)).concurrent_executions > 0
    if capped or limits.max_concurrent is not None or limits.per_minute is not None:
        # It may wait for its turn: say so rather than "pending".
        started = await rt.executions.get_execution(execution_id)
        if started is not None:
            status = started.status
    return _accepted(execution_id, wf_id, version, status.value)


async def _check_trigger_node(ctx: Ctx, workflow_id: str, version: int, node_id: str) -> None:
    """Refuse (422, naming the field) a start node that is not a trigger of the version."""
    compiled = await ctx.runtime.engine.compiled(workflow_id, version)
    triggers = compiled.graph.triggers
    if node_id not in triggers:
        field = "body.trigger_node_id"
        raise ApiError(
            422,
            "invalid_request",
            f"invalid request: {field}",
            [
                {
                    "field": field,
                    "message": f"not a trigger node of version {version}; its triggers: "
                    + ", ".join(triggers),
                    "code": "not_a_trigger",
                }
            ],
        )


@router.get(
    "/api/workflows/{workflow_id}/executions",
    response_model=ExecutionPage,
    responses=NOT_FOUND,
    summary="List a workflow's executions",
)
async def list_workflow_executions(
    ctx: Ctx,
    caller: Caller,
    workflow_id: WorkflowIdPath,
    status: Statuses = None,
    trigger_type: TriggerType = None,
    started_from: From = None,
    started_to: To = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ExecutionPage:
    """The workflow's executions, newest first (also those of a deleted workflow)."""
    if not await ctx.workflows.exists(caller.tenant_id, str(workflow_id)):
        raise not_found("workflow", workflow_id)
    f = ExecutionFilter(
        workflow_id=str(workflow_id),
        statuses=statuses(status),
        trigger_type=trigger_type,
        created_from=either("started_from", "dateFrom", started_from, date_from),
        created_to=either("started_to", "dateTo", started_to, date_to),
        before_id=decode_cursor(cursor, "execution"),
    )
    return await _page(ctx, caller, f, limit)


@router.get("/api/executions", response_model=ExecutionPage, summary="List executions")
async def list_executions(
    ctx: Ctx,
    caller: Caller,
    workflow_id: Annotated[uuid.UUID | None, Query(description="Only of this workflow.")] = None,
    status: Statuses = None,
    trigger_type: TriggerType = None,
    started_from: From = None,
    started_to: To = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    customer_id: MetadataValue = None,
    client_id: MetadataValue = None,
    parent_execution_id: Annotated[
        uuid.UUID | None,
        Query(description="Only the children of this execution (loop iterations, calls)."),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ExecutionPage:
    """The tenant's executions, newest first, a keyset page at a time: pass
    ``next_cursor`` back as ``cursor`` for the next page (stable while new ones start).
    ``customer_id`` and ``client_id`` match the metadata of channel messages.
    """
    pairs = (("customerId", customer_id), ("clientId", client_id))
    f = ExecutionFilter(
        metadata=tuple((k, v) for k, v in pairs if v is not None),
        workflow_id=str(workflow_id) if workflow_id is not None else None,
        statuses=statuses(status),
        trigger_type=trigger_type,
        created_from=either("started_from", "dateFrom", started_from, date_from),
        created_to=either("started_to", "dateTo", started_to, date_to),
        before_id=decode_cursor(cursor, "execution"),
        parent_execution_id=str(parent_execution_id) if parent_execution_id else None,
    )
    return await _page(ctx, caller, f, limit)


@router.get(
    "/api/executions/{execution_id}/children",
    response_model=ExecutionPage,
    responses=NOT_FOUND,
    summary="List an execution's children",
)
async def list_children(
    ctx: Ctx,
    caller: Caller,
    execution_id: ExecutionIdPath,
    status: Statuses = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ExecutionPage:
    """The executions this one started (loop iterations, sub-workflow calls), newest
    first; each names its ``parent_node_id`` and, for a loop, its ``iteration``."""
    eid = str(execution_id)
    if await ctx.executions.get(caller.tenant_id, eid) is None:
        raise not_found("execution", eid)
    f = ExecutionFilter(
        parent_execution_id=eid,
        statuses=statuses(status),
        before_id=decode_cursor(cursor, "execution"),
    )
    return await _page(ctx, caller, f, limit)


@router.get(
    "/api/executions/{execution_id}",
    response_model=ExecutionDetail,
    responses=NOT_FOUND,
    summary="Get an execution",
)
async def get_execution(ctx: Ctx, caller: Caller, execution_id: ExecutionIdPath) -> ExecutionDetail:
    """An execution with every attempt of every node (input, output, error, timings)."""
    detail = await ctx.executions.detail(caller.tenant_id, str(execution_id))
    if detail is None:
        raise not_found("execution", execution_id)
    return execution_detail(*detail)


@router.get(
    "/api/executions/{execution_id}/logs",
    response_model=LogPage,
    responses=NOT_FOUND,
    summary="Read an execution's log",
)
async def execution_logs(
    ctx: Ctx,
    caller: Caller,
    execution_id: ExecutionIdPath,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    cursor: Cursor = None,
    level: Annotated[
        Literal["debug", "info", "warn", "error"] | None,
        Query(description="Only lines at this level or above (debug < info < warn < error)."),
    ] = None,
    node_id: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Only this node's lines.")
    ] = None,
) -> LogPage:
    """The execution's log lines, oldest first."""
    eid = str(execution_id)
    if await ctx.executions.get(caller.tenant_id, eid) is None:
        raise not_found("execution", eid)
    items, more = await ctx.executions.logs(
        caller.tenant_id,
        eid,
        decode_cursor(cursor, "log"),
        limit,
        levels=LOG_LEVELS[LOG_LEVELS.index(level) :] if level else None,
        node_id=node_id,
    )
    return LogPage(
        items=[
            LogLineOut(
                id=i.id,
                node_id=i.node_id,
                attempt=i.attempt,
                level=i.level,
                message=i.message,
                metadata=i.metadata,
                timestamp=i.timestamp,
            )
            for i in items
        ],
        next_cursor=encode_cursor("log", items[-1].id) if more and items else None,
    )


@router.post(
    "/api/executions/{execution_id}/cancel",
    response_model=CancelResult,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Cancel an execution",
)
async def cancel_execution(ctx: Ctx, caller: Caller, execution_id: ExecutionIdPath) -> CancelResult:
    """Cancel a live execution: its running steps are cancelled, nothing more starts."""
    eid = str(execution_id)
    ex = await ctx.executions.get(caller.tenant_id, eid)
    if ex is None:
        raise not_found("execution", eid)
    if ex.status.terminal or not await ctx.runtime.engine.cancel(eid):
        current = await ctx.executions.get(caller.tenant_id, eid)
        status = current.status.value if current else ex.status.value
        raise ApiError(409, "not_cancellable", f"the execution has ended already ({status})")
    return CancelResult(execution_id=eid, status=ExecutionStatus.CANCELLED.value)


SignalName = Annotated[
    str,
    PathParam(
        pattern=r"^[A-Za-z0-9_.:-]{1,200}$",
        description="The signal's name, as a wait node's `signal` says.",
    ),
]


@router.post(
    "/api/executions/{execution_id}/signals/{name}",
    status_code=202,
    response_model=SignalAccepted,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Send a signal to an execution",
)
async def send_signal(
    ctx: Ctx,
    caller: Caller,
    execution_id: ExecutionIdPath,
    name: SignalName,
    payload: Annotated[JsonValue | None, Body()] = None,
) -> SignalAccepted:
    """Deliver a signal (its JSON body is the payload) to the execution's ``wait`` node
    waiting for ``name``. A signal sent before the execution reaches the wait is kept
    and delivered when it gets there; each signal ends one wait."""
    eid = str(execution_id)
    ex = await ctx.executions.get(caller.tenant_id, eid)
    if ex is None:
        raise not_found("execution", eid)
    if not await signal_box(ctx).send(caller.tenant_id, eid, name, payload):
        current = await ctx.executions.get(caller.tenant_id, eid)
        status = current.status.value if current else ex.status.value
        raise ApiError(409, "execution_ended", f"the execution has ended already ({status})")
    return SignalAccepted(execution_id=eid, signal=name)


@router.post(
    "/api/executions/{execution_id}/retry",
    status_code=202,
    response_model=ExecutionAccepted,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Retry an execution",
)
async def retry_execution(
    ctx: Ctx,
    caller: Caller,
    execution_id: ExecutionIdPath,
    body: Annotated[RetryExecutionIn | None, Body()] = None,
) -> JSONResponse:
    """Run an ended execution again as a new one (its ``retry_of`` points back): from
    the failed node on, reusing the outputs of the nodes that succeeded, or with
    ``from_start`` every node again."""
    body = body or RetryExecutionIn()
    eid = str(execution_id)
    ex = await ctx.executions.get(caller.tenant_id, eid)
    if ex is None:
        raise not_found("execution", eid)
    if not ex.status.terminal:
        raise ApiError(409, "not_retryable", f"the execution is still {ex.status.value}")
    if body.from_node is not None or body.version is not None or body.pinned is not None:
        version = await _rerun_checks(ctx, caller.tenant_id, ex.workflow_id, ex.version, body)
        new_id = await ctx.runtime.engine.retry(
            eid, from_node=body.from_node, version=version, pinned=body.pinned
        )
        return _accepted(new_id, ex.workflow_id, version, ExecutionStatus.PENDING.value)
    if ex.status is ExecutionStatus.SUCCEEDED and not body.from_start:
        raise ApiError(
            409,
            "not_retryable",
            "the execution succeeded: nothing failed to resume from; retry from_start",
            [{"field": "body.from_start", "message": "must be true", "code": "conflict"}],
        )
    new_id = await ctx.runtime.engine.retry(eid, from_start=body.from_start)
    return _accepted(new_id, ex.workflow_id, ex.version, ExecutionStatus.PENDING.value)


async def _rerun_checks(
    ctx: Ctx, tenant_id: str, workflow_id: str, version: int, body: RetryExecutionIn
) -> int:
    """The version a run from a node uses; 422 naming the field for what cannot be."""

    def invalid(field: str, message: str) -> ApiError:
        detail = {"field": f"body.{field}", "message": message, "code": "invalid"}
        return ApiError(422, "invalid_request", f"invalid request: body.{field}", [detail])

    if body.from_node is None:
        field = "version" if body.version is not None else "pinned"
        raise invalid(field, "only with from_node")
    if body.from_start:
        raise invalid("from_start", "from_start and from_node exclude each other")
    chosen = body.version or version
    if await ctx.workflows.version(tenant_id, workflow_id, chosen) is None:
        raise not_found("version", f"{workflow_id}/{chosen}")
    graph = (await ctx.runtime.engine.compiled(workflow_id, chosen)).graph
    if body.from_node not in graph.nodes:
        raise invalid("from_node", f"no node {body.from_node!r} in version {chosen}")
    after = downstream(graph.successors, body.from_node)
    for node_id in body.pinned or {}:
        if node_id not in graph.nodes:
            raise invalid(f"pinned.{node_id}", f"no node {node_id!r} in version {chosen}")
        if node_id in after:
            raise invalid(f"pinned.{node_id}", "runs again: only nodes before from_node")
    return chosen
