"""``/api/webhooks``: register, list, read, deactivate webhooks; their event history.

``POST /api/webhooks/{id}`` is also one of the webhook's own URLs (ingress, verified by
its provider, no API key), and ``GET /api/webhooks/{id}`` with ``hub.mode`` in the query
is Meta's handshake on it; without, it is the authenticated read of the webhook.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import ValidationError

from flowmill.api.deps import Caller, Ctx, _bearer, decode_cursor, encode_cursor
from flowmill.api.errors import ERROR_RESPONSES, NOT_FOUND, ApiError, field_path, not_found
from flowmill.api.executions import DateFrom, DateTo, IsoDateTime, either
from flowmill.api.ingress import _ANY_BODY, INGRESS_RESPONSES, by_trigger, is_uuid
from flowmill.api.jsonvalue import SafeStr
from flowmill.api.trigger_schemas import (
    RespondOut,
    WebhookEventOut,
    WebhookEventPage,
    WebhookEventStatusName,
    WebhookIn,
    WebhookOut,
    WebhookPage,
)
from flowmill.api.triggers import owned_trigger
from flowmill.credentials.crypto import CredentialError
from flowmill.store.triggers import TriggerFilter, TriggerRecord
from flowmill.store.webhook_events import EventFilter, WebhookEventRow
from flowmill.triggers.definitions import TriggerKind, respond_of
from flowmill.triggers.secrets import seal_secrets, secret_hint

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES)

WebhookId = Annotated[uuid.UUID, "webhook id"]


def _urls(request: Request, t: TriggerRecord) -> list[str]:
    base = str(request.base_url).rstrip("/")
    if t.origin == "definition" and t.route:
        return [f"{base}/webhooks/{t.tenant_id}/{t.route}"]
    return [f"{base}/webhooks/{t.id}/{t.provider}", f"{base}/api/webhooks/{t.id}"]


def webhook_out(request: Request, t: TriggerRecord) -> WebhookOut:
    """A webhook row for the API (no secret)."""
    mode, timeout = respond_of(t.config)
    return WebhookOut(
        id=t.id,
        name=t.name,
        workflow_id=t.workflow_id,
        node_id=t.node_id,
        provider=t.provider or "none",
        origin="definition" if t.origin == "definition" else "api",
        status="active" if t.enabled else "inactive",
        urls=_urls(request, t),
        config=dict(t.config.get("provider") or {}),
        respond=RespondOut(mode=mode.value, timeout_s=timeout),
        secret_hint=t.config.get("secret_hint"),
        created_at=t.created_at,
        updated_at=t.updated_at,
    )


def _invalid(field: str, message: str, code: str = "invalid") -> ApiError:
    return ApiError(
        422,
        "invalid_request",
        f"invalid request: {field}",
        [{"field": field, "message": message, "code": code}],
    )


@router.post("", response_model=WebhookOut, status_code=201, responses=NOT_FOUND)
async def create_webhook(ctx: Ctx, caller: Caller, request: Request, body: WebhookIn) -> WebhookOut:
    """Register a webhook for a trigger node of a workflow. Senders call its `urls`."""
    rt = ctx.runtime
    parts = rt.triggers
    tenant, wf_id = caller.tenant_id, str(body.workflow_id)
    record = await rt.workflows.get(tenant, wf_id, with_definition=True)
    if record is None:
        raise not_found("workflow", wf_id)
    nodes = {n.get("id"): n for n in record.definition.get("nodes") or []}
    node = nodes.get(body.node_id)
    if node is None or node.get("type") != "trigger":
        raise _invalid("body.node_id", "not a trigger node of the workflow's latest version")
    if body.provider not in parts.providers:
        known = ", ".join(parts.providers)
        raise _invalid("body.provider", f"unknown provider; known: {known}", "unknown_provider")
    provider = parts.providers.get(body.provider)
    try:
        provider.parse_config(body.config or {})
    except ValidationError as e:
        first = e.errors()[0]
        where = field_path(("body", "config", *first["loc"]))
        raise _invalid(where, str(first["msg"]).removeprefix("Value error, ")) from None
    secrets = [s for s in (body.secret, body.previous_secret) if s]
    if provider.requires_secret and not body.secret:
        raise _invalid("body.secret", f"provider {body.provider!r} verifies with a secret")
    if body.secret and (issue := provider.secret_issue(body.secret)):
        raise _invalid("body.secret", issue)
    config: dict[str, Any] = {"provider": body.config or {}}
    if body.respond is not None:
        config["respond"] = body.respond.model_dump()
    if body.secret:
        config["secret_hint"] = secret_hint(body.secret)
    keyring = ctx.settings.keyring()

    def _seal(trigger_id: str) -> bytes | None:
        if not secrets:
            return None
        return seal_secrets(keyring, tenant, trigger_id, secrets)

    try:
        created = await parts.triggers.create_webhook(
            tenant_id=tenant,
            workflow_id=wf_id,
            node_id=body.node_id,
            name=body.name,
            provider=body.provider,
            config=config,
            seal=_seal,
        )
    except CredentialError as e:
        raise ApiError(409, "secrets_unavailable", str(e)) from None
    except LookupError:
        raise not_found("workflow", wf_id) from None
    return webhook_out(request, created)


@router.get("", response_model=WebhookPage, summary="List webhooks")
async def list_webhooks(
    ctx: Ctx,
    caller: Caller,
    request: Request,
    workflow_id: Annotated[uuid.UUID | None, Query(description="Only of this workflow.")] = None,
    provider: Annotated[SafeStr | None, Query(max_length=32)] = None,
    status: Annotated[
        str | None, Query(pattern="^(active|inactive)$", description="Active or deactivated.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    workflow_id_seed: Annotated[
        uuid.UUID | None, Query(alias="workflowId", description="Seed 004's `workflow_id`.")
    ] = None,
) -> WebhookPage:
    """The tenant's webhooks (registered ones and the routes of published workflows)."""
    if workflow_id is not None and workflow_id_seed not in (None, workflow_id):
        raise _invalid("query.workflowId", "disagrees with workflow_id", "conflict")
    workflow_id = workflow_id or workflow_id_seed
    f = TriggerFilter(
        kind=TriggerKind.WEBHOOK,
        workflow_id=str(workflow_id) if workflow_id else None,
        provider=provider,
        enabled=None if status is None else status == "active",
        before_id=decode_cursor(cursor, "webhook"),
    )
    items, more = await ctx.runtime.triggers.triggers.page(caller.tenant_id, f, limit)
    return WebhookPage(
        items=[webhook_out(request, t) for t in items],
        next_cursor=encode_cursor("webhook", items[-1].id) if more and items else None,
    )


@router.get(
    "/{webhook_id}",
    response_model=WebhookOut,
    responses=NOT_FOUND,
    summary="Get a webhook",
)
async def get_webhook(ctx: Ctx, request: Request, webhook_id: uuid.UUID) -> Any:
    """A webhook, with its URLs. (With `hub.mode` in the query this URL answers Meta's
    subscription handshake instead, without an API key.)"""
    if "hub.mode" in request.query_params:
        return await by_trigger(ctx, request, str(webhook_id), None)
    credentials: HTTPAuthorizationCredentials | None = await _bearer(request)
    caller = await ctx.auth.authenticate(credentials.credentials if credentials else None)
    webhook = await owned_trigger(ctx, caller.tenant_id, webhook_id, TriggerKind.WEBHOOK)
    return webhook_out(request, webhook)


@router.post(
    "/{webhook_id}",
    responses=INGRESS_RESPONSES,
    openapi_extra=_ANY_BODY,
    summary="Receive a webhook (by webhook id)",
    tags=["webhook ingress"],
)
async def receive_webhook(ctx: Ctx, request: Request, webhook_id: str) -> Response:
    """A sender's request to a registered webhook (verified by its provider)."""
    if not is_uuid(webhook_id):
        raise ApiError(404, "not_found", "no active webhook at this URL")
    return await by_trigger(ctx, request, webhook_id, None)


@router.delete("/{webhook_id}", status_code=204, responses=NOT_FOUND, summary="Deactivate")
async def delete_webhook(ctx: Ctx, caller: Caller, webhook_id: uuid.UUID) -> Response:
    """Deactivate a webhook: its URLs answer 404 from now on; its history stays."""
    await owned_trigger(ctx, caller.tenant_id, webhook_id, TriggerKind.WEBHOOK)
    await ctx.runtime.triggers.triggers.set_enabled(caller.tenant_id, str(webhook_id), False)
    ctx.runtime.triggers.ingress.forget()
    return Response(status_code=204)


def _event_out(e: WebhookEventRow) -> WebhookEventOut:
    return WebhookEventOut(
        id=e.id,
        webhook_id=e.trigger_id,
        status=e.status.value,
        verified=e.verified,
        verification_error=e.verification_error,
        event_type=e.event_type,
        dedupe_key=e.dedupe_key,
        method=e.method,
        path=e.route,
        execution_ids=e.execution_ids,
        error=e.error,
        received_at=e.received_at,
        processed_at=e.processed_at,
    )


@router.get(
    "/{webhook_id}/events",
    response_model=WebhookEventPage,
    responses=NOT_FOUND,
    summary="A webhook's event history",
)
async def webhook_events(
    ctx: Ctx,
    caller: Caller,
    webhook_id: uuid.UUID,
    status: Annotated[
        list[WebhookEventStatusName] | None, Query(description="Only these statuses.")
    ] = None,
    received_from: Annotated[IsoDateTime | None, Query(description="ISO 8601.")] = None,
    received_to: Annotated[IsoDateTime | None, Query(description="ISO 8601.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
) -> WebhookEventPage:
    """Requests the webhook received, newest first: status, verification result,
    execution ids. Keyset pages: pass `next_cursor` back as `cursor`."""
    await owned_trigger(ctx, caller.tenant_id, webhook_id, TriggerKind.WEBHOOK)
    f = EventFilter(
        trigger_id=str(webhook_id),
        statuses=tuple(dict.fromkeys(status or ())),
        received_from=either("received_from", "dateFrom", received_from, date_from),
        received_to=either("received_to", "dateTo", received_to, date_to),
        before_id=decode_cursor(cursor, "webhook_event"),
    )
    items, more = await ctx.runtime.triggers.events.page(caller.tenant_id, f, limit)
    return WebhookEventPage(
        items=[_event_out(e) for e in items],
        next_cursor=encode_cursor("webhook_event", items[-1].id) if more and items else None,
    )
