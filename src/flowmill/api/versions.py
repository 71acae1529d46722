"""``/api/workflows/{id}/versions``: immutable versions, publishing one, diffs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from flowmill.api.deps import (
    Caller,
    Ctx,
    VersionPath,
    WorkflowIdPath,
    decode_cursor,
    encode_cursor,
    version_number,
)
from flowmill.api.errors import CONFLICT, ERROR_RESPONSES, NOT_FOUND, ApiError, not_found
from flowmill.api.schemas import (
    EdgeOut,
    FieldChangeOut,
    NodeChangeOut,
    Version,
    VersionCreated,
    VersionDiff,
    VersionIn,
    VersionPage,
    Workflow,
)
from flowmill.api.views import canonical, document_of, version_out, version_summary, workflow_out
from flowmill.domain.diffing import FieldChange, diff_definitions
from flowmill.store.workflows import StaleVersion

router = APIRouter(
    prefix="/api/workflows/{workflow_id}/versions", tags=["versions"], responses=ERROR_RESPONSES
)


@router.get("", response_model=VersionPage, responses=NOT_FOUND, summary="List versions")
async def list_versions(
    ctx: Ctx,
    caller: Caller,
    workflow_id: WorkflowIdPath,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> VersionPage:
    """A workflow's versions, newest first (definitions left out; get one to see it)."""
    page = await ctx.workflows.versions(
        caller.tenant_id, str(workflow_id), decode_cursor(cursor, "version"), limit
    )
    if page is None:
        raise not_found("workflow", workflow_id)
    items, more = page
    return VersionPage(
        items=[version_summary(v) for v in items],
        next_cursor=encode_cursor("version", items[-1].version) if more and items else None,
    )


@router.post(
    "",
    response_model=VersionCreated,
    status_code=201,
    responses={
        **NOT_FOUND,
        **CONFLICT,
        200: {"model": VersionCreated, "description": "Equal to the latest; nothing added."},
    },
    summary="Add a version",
)
async def create_version(
    ctx: Ctx, caller: Caller, workflow_id: WorkflowIdPath, body: VersionIn
) -> JSONResponse:
    """Add a definition as the workflow's next version (201), optionally publishing it.

    The definition may be in any of the seed shapes; without a ``name`` (or a graph)
    it keeps the workflow's. A definition equal to the latest version adds nothing and answers 200
    with that one. The answer's ``id`` addresses the version as well as its number.

    With ``base_version`` (the version the change was made from), a save made after
    someone else's is refused with 409 ``version_conflict`` instead of replacing it.
    """
    rt = ctx.runtime
    existing = await rt.workflows.get(caller.tenant_id, str(workflow_id), with_definition=True)
    if existing is None:
        raise not_found("workflow", workflow_id)
    document = document_of(body.definition, existing.definition)
    definition = await canonical(rt.engine, document, caller.tenant_id)
    try:
        record, created = await rt.workflows.add_version(
            caller.tenant_id,
            str(workflow_id),
            definition,
            publish=body.publish,
            note=body.note,
            base_version=body.base_version,
        )
    except LookupError:
        raise not_found("workflow", workflow_id) from None
    except StaleVersion as e:
        raise stale_version_error(e) from None
    v = await ctx.workflows.version(caller.tenant_id, str(workflow_id), record.latest_version)
    if v is None:  # deleted in between
        raise not_found("workflow", workflow_id)
    out = VersionCreated(**version_out(v).model_dump(), created=created)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if created else 200)


@router.get("/{version}", response_model=Version, responses=NOT_FOUND, summary="Get a version")
async def get_version(
    ctx: Ctx, caller: Caller, workflow_id: WorkflowIdPath, version: VersionPath
) -> Version:
    """One version with its definition (by number, or by its id)."""
    v = await ctx.workflows.version(
        caller.tenant_id, str(workflow_id), version_number(workflow_id, version)
    )
    if v is None:
        raise not_found("version", f"{workflow_id}/{version}")
    return version_out(v)


@router.post(
    "/{version}/publish",
    response_model=Workflow,
    responses=NOT_FOUND,
    summary="Publish a version",
)
async def publish_version(
    ctx: Ctx, caller: Caller, workflow_id: WorkflowIdPath, version: VersionPath
) -> Workflow:
    """Make this version (by number, or by its id) the active one; also to roll back."""
    number = version_number(workflow_id, version)
    try:
        record = await ctx.runtime.workflows.publish(caller.tenant_id, str(workflow_id), number)
    except LookupError:
        raise not_found("version", f"{workflow_id}/{version}") from None
    return workflow_out(record)


def stale_version_error(e: StaleVersion) -> ApiError:
    """The 409 of a save made from a version someone else has saved over."""
    message = (
        f"version {e.base_version} is no longer the latest: version {e.latest_version} was "
        f"saved at {e.updated_at.isoformat(timespec='seconds')}. Nothing was saved; load the "
        "latest version and apply your changes to it."
    )
    detail = {"field": "body.base_version", "message": message, "code": "version_conflict"}
    return ApiError(409, "version_conflict", message, [detail])


def _changes(items: list[FieldChange]) -> list[FieldChangeOut]:
    return [FieldChangeOut(path=c.path, before=c.before, after=c.after) for c in items]


@router.get(
    "/{a}/diff/{b}", response_model=VersionDiff, responses=NOT_FOUND, summary="Compare versions"
)
async def diff_versions(
    ctx: Ctx,
    caller: Caller,
    workflow_id: WorkflowIdPath,
    a: VersionPath,
    b: VersionPath,
) -> VersionDiff:
    """What changed from version ``a`` to version ``b``: fields, nodes and edges."""
    na, nb = version_number(workflow_id, a), version_number(workflow_id, b)
    va = await ctx.workflows.version(caller.tenant_id, str(workflow_id), na)
    vb = await ctx.workflows.version(caller.tenant_id, str(workflow_id), nb)
    if va is None or vb is None:
        raise not_found("version", f"{workflow_id}/{a if va is None else b}")
    d = diff_definitions(va.definition or {}, vb.definition or {})
    return VersionDiff(
        workflow_id=str(workflow_id),
        from_version=na,
        to_version=nb,
        identical=d.identical,
        fields=_changes(d.fields),
        nodes_added=d.nodes_added,
        nodes_removed=d.nodes_removed,
        nodes_changed=[
            NodeChangeOut(id=k, changes=_changes(v)) for k, v in d.nodes_changed.items()
        ],
        edges_added=[
            EdgeOut(source=e.source, target=e.target, sourceHandle=e.source_handle)
            for e in d.edges_added
        ],
        edges_removed=[
            EdgeOut(source=e.source, target=e.target, sourceHandle=e.source_handle)
            for e in d.edges_removed
        ],
    )
