"""The seed documents' own paths, served by the handlers of the ``/api`` routes.

Seed 003 (the NestJS service) documents its endpoints under ``/workflows`` with JWT
authentication. Each of its paths here is the very endpoint function of an ``/api``
route, registered a second time (same parameters, body, answers, errors, tenant
scoping; a JWT or an API key, as everywhere), under the OpenAPI tag "seed
compatibility". ``PUT /workflows/{id}`` is served by ``PATCH /api/workflows/{id}``:
NestJS update bodies are partial, and a partial body given to a replace would drop
the fields it leaves out.

Seed 002 lists ``GET``/``POST /api/workflows/{id}/triggers``; those two delegate to the
trigger list and to webhook registration. ``docs/seed-compatibility.md`` maps every
endpoint of every seed document.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.routing import APIRoute
from pydantic import Field

from flowmill.api import executions, workflows
from flowmill.api.deps import Caller, Ctx, WorkflowIdPath
from flowmill.api.errors import ERROR_RESPONSES, NOT_FOUND, ApiError, not_found
from flowmill.api.jsonvalue import JsonObject, SafeStr
from flowmill.api.schemas import NodeId, _In
from flowmill.api.trigger_schemas import (
    ProviderName,
    RespondIn,
    TriggerPage,
    WebhookIn,
    WebhookOut,
)
from flowmill.api.triggers import list_triggers
from flowmill.api.webhooks import create_webhook, webhook_out

SEED_TAG = "seed compatibility"

# (method, seed 003 path, method and path of the /api route whose handler serves it)
SEED_003_ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("POST", "/workflows", "POST", "/api/workflows"),
    ("GET", "/workflows", "GET", "/api/workflows"),
    ("GET", "/workflows/executions/history", "GET", "/api/executions"),
    ("GET", "/workflows/executions/{execution_id}", "GET", "/api/executions/{execution_id}"),
    ("GET", "/workflows/{workflow_id}", "GET", "/api/workflows/{workflow_id}"),
    ("PUT", "/workflows/{workflow_id}", "PATCH", "/api/workflows/{workflow_id}"),
    ("DELETE", "/workflows/{workflow_id}", "DELETE", "/api/workflows/{workflow_id}"),
    ("POST", "/workflows/{workflow_id}/trigger", "POST", "/api/workflows/{workflow_id}/execute"),
    (
        "GET",
        "/workflows/{workflow_id}/executions",
        "GET",
        "/api/workflows/{workflow_id}/executions",
    ),
)


def _mirror(router: APIRouter, sources: list[Any]) -> None:
    """Register each seed 003 path with the endpoint of its ``/api`` route."""
    by_route = {
        (method, r.path): r
        for r in sources
        if isinstance(r, APIRoute)
        for method in r.methods or ()
    }
    for method, path, api_method, api_path in SEED_003_ROUTES:
        src = by_route[(api_method, api_path)]
        router.add_api_route(
            path,
            src.endpoint,
            methods=[method],
            response_model=src.response_model,
            status_code=src.status_code,
            responses=src.responses,
            summary=f"{src.summary} (seed 003)",
            description=f"Seed 003's `{method} {path}`, served by `{api_method} {api_path}`."
            f"\n\n{src.description}",
            tags=[SEED_TAG],
            name=f"seed_{src.name}",
        )


router = APIRouter(responses=ERROR_RESPONSES)
_mirror(router, [*workflows.router.routes, *executions.router.routes])


class WorkflowTriggerIn(_In):
    """A trigger for the workflow in the path (seed 002's Trigger: type, config, enabled).

    Only ``webhook`` triggers are made here (a registered webhook, as ``POST
    /api/webhooks``); schedule, event and manual triggers are trigger nodes of the
    definition, made when it is published.
    """

    type: Literal["webhook", "manual", "schedule", "event", "api"]
    node_id: NodeId | None = Field(
        None, description="The trigger node (default: the latest version's first)."
    )
    name: Annotated[SafeStr, Field(max_length=200)] = ""
    provider: ProviderName = "none"
    secret: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    previous_secret: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    config: JsonObject | None = Field(None, description="The provider's config.")
    respond: RespondIn | None = None
    enabled: bool = True


@router.get(
    "/api/workflows/{workflow_id}/triggers",
    response_model=TriggerPage,
    responses=NOT_FOUND,
    tags=[SEED_TAG],
    summary="List a workflow's triggers (seed 002)",
)
async def workflow_triggers(
    ctx: Ctx,
    caller: Caller,
    workflow_id: WorkflowIdPath,
    kind: Annotated[
        str | None, Query(pattern="^(webhook|schedule|event)$", description="Only this kind.")
    ] = None,
    enabled: Annotated[bool | None, Query(description="Only enabled or disabled ones.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> TriggerPage:
    """`GET /api/triggers?workflow_id=...` for seed 002's path; 404 for a workflow the
    tenant does not have."""
    if await ctx.runtime.workflows.get(caller.tenant_id, str(workflow_id)) is None:
        raise not_found("workflow", workflow_id)
    return await list_triggers(
        ctx,
        caller,
        kind=kind,
        workflow_id=workflow_id,
        enabled=enabled,
        limit=limit,
        cursor=cursor,
    )


@router.post(
    "/api/workflows/{workflow_id}/triggers",
    response_model=WebhookOut,
    status_code=201,
    responses=NOT_FOUND,
    tags=[SEED_TAG],
    summary="Create a workflow's trigger (seed 002)",
)
async def create_workflow_trigger(
    ctx: Ctx,
    caller: Caller,
    request: Request,
    workflow_id: WorkflowIdPath,
    body: WorkflowTriggerIn,
) -> WebhookOut:
    """A webhook trigger is registered as `POST /api/webhooks` would (its `urls` are
    where senders post). Other types are trigger nodes of the definition: add one in a
    new version (`triggerType: schedule | event | manual`) and publish it."""
    tenant = caller.tenant_id
    record = await ctx.runtime.workflows.get(tenant, str(workflow_id), with_definition=True)
    if record is None:
        raise not_found("workflow", workflow_id)
    if body.type != "webhook":
        raise ApiError(
            422,
            "invalid_request",
            "invalid request: body.type",
            [
                {
                    "field": "body.type",
                    "message": f"a {body.type} trigger is a trigger node of the definition "
                    f'(config.triggerType "{body.type}"): add it in a new version and publish',
                    "code": "not_here",
                }
            ],
        )
    node_id = body.node_id or _first_trigger(record.definition)
    webhook = await create_webhook(
        ctx,
        caller,
        request,
        WebhookIn.model_validate(
            {
                "name": body.name,
                "workflow_id": workflow_id,
                "node_id": node_id or "",
                "provider": body.provider,
                "secret": body.secret,
                "previous_secret": body.previous_secret,
                "config": body.config,
                "respond": body.respond,
            }
        ),
    )
    if body.enabled:
        return webhook
    switched = await ctx.runtime.triggers.triggers.set_enabled(tenant, webhook.id, False)
    ctx.runtime.triggers.ingress.forget()
    if switched is None:  # deleted with its workflow in between
        raise not_found("workflow", workflow_id)
    return webhook_out(request, switched)


def _first_trigger(definition: dict[str, Any]) -> str | None:
    for node in definition.get("nodes") or ():
        if isinstance(node, dict) and node.get("type") == "trigger":
            return str(node.get("id"))
    return None
