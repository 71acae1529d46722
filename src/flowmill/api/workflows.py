"""``/api/workflows``: list, create, read, update, delete, publish, export, import."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowmill.api.deps import Caller, Ctx, WorkflowIdPath, decode_cursor, encode_cursor
from flowmill.api.errors import ERROR_RESPONSES, NOT_FOUND, not_found
from flowmill.api.jsonvalue import SafeStr
from flowmill.api.schemas import (
    VersionDefinitionIn,
    Workflow,
    WorkflowDefinitionIn,
    WorkflowPage,
    WorkflowPatchIn,
)
from flowmill.api.views import canonical, document_of, patched_document, workflow_out
from flowmill.api.views import workflow_summary as summary
from flowmill.store.workflow_queries import WorkflowFilter

router = APIRouter(prefix="/api/workflows", tags=["workflows"], responses=ERROR_RESPONSES)


@router.get("", response_model=WorkflowPage, summary="List workflows")
async def list_workflows(
    ctx: Ctx,
    caller: Caller,
    status: Annotated[
        str | None,
        Query(pattern="^(draft|active|inactive)$", description="Only workflows in this status."),
    ] = None,
    tag: Annotated[SafeStr | None, Query(max_length=100, description="Only with this tag.")] = None,
    search: Annotated[
        SafeStr | None,
        Query(max_length=200, description="Case-insensitive text in the name or description."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor`.")] = None,
) -> WorkflowPage:
    """The tenant's workflows, newest first, a page at a time."""
    f = WorkflowFilter(
        status=status, tag=tag, search=search, before_id=decode_cursor(cursor, "workflow")
    )
    items, more = await ctx.workflows.page(caller.tenant_id, f, limit)
    return WorkflowPage(
        items=[summary(w) for w in items],
        next_cursor=encode_cursor("workflow", items[-1].id) if more and items else None,
    )


async def _create(ctx: Ctx, caller: Caller, body: WorkflowDefinitionIn) -> Workflow:
    rt = ctx.runtime
    definition = await canonical(rt.engine, document_of(body), caller.tenant_id)
    record = await rt.workflows.create(
        caller.tenant_id,
        definition,
        publish=body.status == "active" or body.enabled is True,
        created_by=f"{caller.auth}:{caller.subject}",
    )
    return workflow_out(record)


@router.post("", response_model=Workflow, status_code=201, summary="Create a workflow")
async def create_workflow(ctx: Ctx, caller: Caller, body: WorkflowDefinitionIn) -> Workflow:
    """Create a workflow from a seed-format definition, as its version 1.

    It stays a draft unless the body says ``"status": "active"`` (or seed 003's
    ``"enabled": true``), which publishes it. ``{"name": "..."}`` alone makes a
    workflow with one manual trigger, to grow version by version (seed 002).
    """
    return await _create(ctx, caller, body)


@router.post("/import", response_model=Workflow, status_code=201, summary="Import a workflow")
async def import_workflow(ctx: Ctx, caller: Caller, body: WorkflowDefinitionIn) -> Workflow:
    """Create a workflow from an exported document (or any seed-format definition).

    The document's ``id``, ``version`` and ``tenant_id`` are ignored: the import is a new
    workflow of the caller's tenant; ``"status": "active"`` publishes it.
    """
    return await _create(ctx, caller, body)


@router.api_route("/import", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def import_other_methods() -> None:
    """``/import`` is not a workflow id: other methods on it are a 405, not a 422."""
    raise StarletteHTTPException(405)


@router.get(
    "/{workflow_id}", response_model=Workflow, responses=NOT_FOUND, summary="Get a workflow"
)
async def get_workflow(ctx: Ctx, caller: Caller, workflow_id: WorkflowIdPath) -> Workflow:
    """A workflow with the definition of its latest version."""
    record = await ctx.runtime.workflows.get(
        caller.tenant_id, str(workflow_id), with_definition=True
    )
    if record is None:
        raise not_found("workflow", workflow_id)
    return workflow_out(record)


async def _new_version(
    ctx: Ctx, caller: Caller, workflow_id: str, document: dict[str, Any]
) -> Workflow:
    rt = ctx.runtime
    definition = await canonical(rt.engine, document, caller.tenant_id)
    try:
        record, _ = await rt.workflows.add_version(caller.tenant_id, workflow_id, definition)
    except LookupError:
        raise not_found("workflow", workflow_id) from None
    return workflow_out(record)


@router.put(
    "/{workflow_id}", response_model=Workflow, responses=NOT_FOUND, summary="Replace a workflow"
)
async def update_workflow(
    ctx: Ctx, caller: Caller, workflow_id: WorkflowIdPath, body: VersionDefinitionIn
) -> Workflow:
    """Store the body as a new draft version (none when it equals the latest).

    Fields the body leaves out keep their value (seed 004 updates with a partial body;
    send `""`, `[]` or `{}` to clear one). A body with a graph (`nodes`, or `steps`)
    replaces the whole graph. The published version keeps running until you publish
    the new one.
    """
    existing = await ctx.runtime.workflows.get(
        caller.tenant_id, str(workflow_id), with_definition=True
    )
    if existing is None:
        raise not_found("workflow", workflow_id)
    changes = body.model_dump(exclude_none=True)
    if "nodes" in changes:
        changes.setdefault("edges", [])
    document = patched_document(existing.definition, changes)
    return await _new_version(ctx, caller, str(workflow_id), document)


@router.patch(
    "/{workflow_id}", response_model=Workflow, responses=NOT_FOUND, summary="Change a workflow"
)
async def patch_workflow(
    ctx: Ctx, caller: Caller, workflow_id: WorkflowIdPath, body: WorkflowPatchIn
) -> Workflow:
    """Replace the given top-level fields of the latest definition, as a new draft version.

    ``"enabled": true`` then publishes that version, ``false`` deactivates the workflow
    (seed 003's update).
    """
    rt = ctx.runtime
    latest = await rt.workflows.get(caller.tenant_id, str(workflow_id), with_definition=True)
    if latest is None:
        raise not_found("workflow", workflow_id)
    changes = body.model_dump(exclude_none=True)
    out = await _new_version(
        ctx, caller, str(workflow_id), patched_document(latest.definition, changes)
    )
    if body.enabled is None:
        return out
    try:
        if body.enabled:
            record = await rt.workflows.publish(caller.tenant_id, str(workflow_id))
        else:
            record = await rt.workflows.unpublish(caller.tenant_id, str(workflow_id))
    except LookupError:
        raise not_found("workflow", workflow_id) from None
    rt.triggers.ingress.forget()
    return workflow_out(record)


@router.delete("/{workflow_id}", status_code=204, responses=NOT_FOUND, summary="Delete a workflow")
async def delete_workflow(ctx: Ctx, caller: Caller, workflow_id: WorkflowIdPath) -> Response:
    """Delete a workflow. Its executions and their history stay readable."""
    if not await ctx.runtime.workflows.delete(caller.tenant_id, str(workflow_id)):
        raise not_found("workflow", workflow_id)
    return Response(status_code=204)


@router.post(
    "/{workflow_id}/publish",
    response_model=Workflow,
    responses=NOT_FOUND,
    summary="Publish the latest version",
)
async def publish_workflow(ctx: Ctx, caller: Caller, workflow_id: WorkflowIdPath) -> Workflow:
    """Make the latest version the active one: triggers and executions use it from now."""
    try:
        record = await ctx.runtime.workflows.publish(caller.tenant_id, str(workflow_id))
    except LookupError:
        raise not_found("workflow", workflow_id) from None
    return workflow_out(record)


@router.get(
    "/{workflow_id}/export",
    response_model=dict[str, Any],
    responses=NOT_FOUND,
    summary="Export a workflow",
)
async def export_workflow(
    ctx: Ctx,
    caller: Caller,
    workflow_id: WorkflowIdPath,
    version: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="Default: the latest.")
    ] = None,
) -> JSONResponse:
    """The seed-format document of a version, ready for ``POST /api/workflows/import``."""
    record = await ctx.runtime.workflows.get(caller.tenant_id, str(workflow_id))
    if record is None:
        raise not_found("workflow", workflow_id)
    v = await ctx.workflows.version(
        caller.tenant_id, str(workflow_id), version or record.latest_version
    )
    if v is None or v.definition is None:
        raise not_found("version", version)
    document = {k: val for k, val in v.definition.items() if k != "tenant_id"}
    if record.active_version == v.version:
        document["status"] = "active"
    slug = re.sub(r"[^a-z0-9]+", "-", record.name.lower()).strip("-")[:60] or "workflow"
    return JSONResponse(
        document,
        headers={"Content-Disposition": f'attachment; filename="{slug}.v{v.version}.json"'},
    )


@router.post(
    "/{workflow_id}/unpublish",
    response_model=Workflow,
    responses=NOT_FOUND,
    summary="Deactivate a workflow",
)
async def unpublish_workflow(ctx: Ctx, caller: Caller, workflow_id: WorkflowIdPath) -> Workflow:
    """No version is active any more: its schedules, event triggers and seed routes stop
    (in the same transaction). Publishing again brings them back."""
    try:
        record = await ctx.runtime.workflows.unpublish(caller.tenant_id, str(workflow_id))
    except LookupError:
        raise not_found("workflow", workflow_id) from None
    ctx.runtime.triggers.ingress.forget()
    return workflow_out(record)
