"""``/api/triggers``: every trigger (webhooks, schedules, event triggers), switching
them on and off, and the next fire times of a schedule; ``POST /api/events``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from flowmill.api.deps import Caller, Ctx, decode_cursor, encode_cursor
from flowmill.api.errors import ERROR_RESPONSES, NOT_FOUND, ApiError, not_found
from flowmill.api.trigger_schemas import (
    EventIn,
    EventOut,
    NextRunsOut,
    TriggerOut,
    TriggerPage,
    TriggerPatchIn,
)
from flowmill.store.triggers import TriggerFilter, TriggerRecord
from flowmill.triggers.definitions import TriggerKind, compile_schedule
from flowmill.triggers.schedule import ScheduleError, next_runs

router = APIRouter(tags=["triggers"], responses=ERROR_RESPONSES)
RESERVED_PREFIXES = ("execution.", "node.", "workflow.", "webhook.", "tenant.", "credential.")


def trigger_out(t: TriggerRecord) -> TriggerOut:
    """A trigger for the API (secrets and hints left out)."""
    config = {k: v for k, v in t.config.items() if k not in ("secret_hint",)}
    return TriggerOut(
        id=t.id,
        workflow_id=t.workflow_id,
        node_id=t.node_id,
        kind=t.kind.value,
        name=t.name,
        origin="definition" if t.origin == "definition" else "api",
        enabled=t.enabled,
        provider=t.provider,
        config=config,
        last_run_at=t.last_run_at,
        next_run_at=t.next_run_at,
        created_at=t.created_at,
        updated_at=t.updated_at,
    )


@router.get("/api/triggers", response_model=TriggerPage, summary="List triggers")
async def list_triggers(
    ctx: Ctx,
    caller: Caller,
    kind: Annotated[
        str | None, Query(pattern="^(webhook|schedule|event)$", description="Only this kind.")
    ] = None,
    workflow_id: Annotated[uuid.UUID | None, Query(description="Only of this workflow.")] = None,
    enabled: Annotated[bool | None, Query(description="Only enabled or disabled ones.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> TriggerPage:
    """The tenant's triggers with `last_run_at`/`next_run_at`, newest first."""
    f = TriggerFilter(
        kind=TriggerKind(kind) if kind else None,
        workflow_id=str(workflow_id) if workflow_id else None,
        enabled=enabled,
        before_id=decode_cursor(cursor, "trigger"),
    )
    items, more = await ctx.runtime.triggers.triggers.page(caller.tenant_id, f, limit)
    return TriggerPage(
        items=[trigger_out(t) for t in items],
        next_cursor=encode_cursor("trigger", items[-1].id) if more and items else None,
    )


async def owned_trigger(
    ctx: Ctx, tenant_id: str, trigger_id: uuid.UUID, kind: TriggerKind | None = None
) -> TriggerRecord:
    """The caller's trigger (of ``kind`` when given), else a 404 naming it."""
    t = await ctx.runtime.triggers.triggers.get(tenant_id, str(trigger_id))
    if t is None or (kind is not None and t.kind is not kind):
        raise not_found(kind.value if kind is not None else "trigger", trigger_id)
    return t


@router.get(
    "/api/triggers/{trigger_id}",
    response_model=TriggerOut,
    responses=NOT_FOUND,
    summary="Get a trigger",
)
async def get_trigger(ctx: Ctx, caller: Caller, trigger_id: uuid.UUID) -> TriggerOut:
    """One trigger."""
    return trigger_out(await owned_trigger(ctx, caller.tenant_id, trigger_id))


@router.patch(
    "/api/triggers/{trigger_id}",
    response_model=TriggerOut,
    responses=NOT_FOUND,
    summary="Enable or disable a trigger",
)
async def patch_trigger(
    ctx: Ctx, caller: Caller, trigger_id: uuid.UUID, body: TriggerPatchIn
) -> TriggerOut:
    """Switch a trigger on or off. A schedule switched on starts from now: the fire
    times it had while off are not "missed"."""
    await owned_trigger(ctx, caller.tenant_id, trigger_id)
    t = await ctx.runtime.triggers.triggers.set_enabled(
        caller.tenant_id, str(trigger_id), body.enabled
    )
    if t is None:
        raise not_found("trigger", trigger_id)
    ctx.runtime.triggers.ingress.forget()
    return trigger_out(t)


@router.get(
    "/api/triggers/{trigger_id}/next_runs",
    response_model=NextRunsOut,
    responses=NOT_FOUND,
    summary="Preview a schedule's next fire times",
)
async def trigger_next_runs(
    ctx: Ctx,
    caller: Caller,
    trigger_id: uuid.UUID,
    n: Annotated[int, Query(ge=1, le=100, description="How many.")] = 5,
) -> NextRunsOut:
    """The next `n` fire times of a schedule trigger (UTC), from now."""
    t = await owned_trigger(ctx, caller.tenant_id, trigger_id)
    if t.kind is not TriggerKind.SCHEDULE:
        raise ApiError(409, "not_a_schedule", f"trigger {trigger_id} is a {t.kind.value} trigger")
    try:
        schedule = compile_schedule(t.config)
    except ScheduleError as e:
        raise ApiError(409, "invalid_schedule", str(e)) from None
    runs = next_runs(schedule, ctx.runtime.engine.clock.now(), n)
    return NextRunsOut(trigger_id=t.id, timezone=schedule.spec.timezone, next_runs=runs)


@router.post("/api/events", response_model=EventOut, status_code=201, summary="Post an event")
async def post_event(ctx: Ctx, caller: Caller, body: EventIn) -> EventOut:
    """Append a custom event to the tenant's event store. Workflows whose event trigger
    names this `type` start with `data` as their input (exactly once per event)."""
    if body.type.startswith(RESERVED_PREFIXES):
        raise ApiError(
            422,
            "invalid_request",
            "invalid request: body.type",
            [{"field": "body.type", "message": "reserved for domain events", "code": "reserved"}],
        )
    e = await ctx.runtime.triggers.feed.append(
        caller.tenant_id, body.type, {"data": body.data, "custom": True}
    )
    return EventOut(id=e.id, type=e.type, sequence=e.sequence, timestamp=e.timestamp)
