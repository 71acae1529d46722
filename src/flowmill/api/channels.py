"""``/api/channels``: a tenant's connected accounts (seed 004).

An Instagram channel names the account (its id in Meta's payloads), the credential its
replies are sent with, and the agent and workflow that answer by default. A webhook
delivery for the account is matched to the channel: the execution gets the customer
and the channel as metadata (``customerId``, ``clientId``) and the conversation
``<channel>:<customer>``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, Strict

from flowmill.agents.store import AgentRepository
from flowmill.api.deps import Caller, Ctx
from flowmill.api.errors import CONFLICT, ERROR_RESPONSES, NOT_FOUND, ApiError, not_found
from flowmill.api.jsonvalue import SafeStr
from flowmill.channels.store import Channel, ChannelRepository, DuplicateChannelError

router = APIRouter(tags=["channels"], responses=ERROR_RESPONSES)

ChannelIdPath = Annotated[uuid.UUID, Path(description="Channel id.")]
Kind = Literal["instagram"]
Name = Annotated[SafeStr, Field(min_length=1, max_length=200)]
AccountId = Annotated[SafeStr, Field(min_length=1, max_length=200, pattern=r"^[^\s]+$")]
Ref = Annotated[SafeStr, Field(min_length=1, max_length=200)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChannelIn(_Body):
    """A new channel."""

    kind: Kind = "instagram"
    name: Name
    account_id: AccountId = Field(description="The account's id in the service's payloads.")
    credential: Ref | None = Field(None, description="Id or name of the reply credential.")
    agent_id: uuid.UUID | None = Field(None, description="The agent that answers by default.")
    workflow_id: uuid.UUID | None = Field(
        None, description="Only this workflow starts for the channel's messages."
    )
    enabled: Annotated[bool, Strict()] = True


class ChannelPatch(_Body):
    """Change some fields of a channel (``null`` clears an optional one)."""

    name: Name | None = None
    account_id: AccountId | None = None
    credential: Ref | None = None
    agent_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    enabled: Annotated[bool, Strict()] | None = None


class ChannelOut(BaseModel):
    """A channel."""

    id: str
    kind: str
    name: str
    account_id: str
    credential: str | None
    agent_id: str | None
    workflow_id: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime


class ChannelList(BaseModel):
    """The tenant's channels, by name."""

    items: list[ChannelOut]


def channel_out(c: Channel) -> ChannelOut:
    """The API view of a channel."""
    return ChannelOut(
        id=c.id,
        kind=c.kind,
        name=c.name,
        account_id=c.account_id,
        credential=c.credential,
        agent_id=c.agent_id,
        workflow_id=c.workflow_id,
        enabled=c.enabled,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def _repo(ctx: Ctx) -> ChannelRepository:
    return ChannelRepository(ctx.runtime.db)


def _conflict(account_id: object) -> ApiError:
    return ApiError(
        409,
        "conflict",
        f"the account {account_id} has a channel already",
        [{"field": "body.account_id", "message": "has a channel", "code": "duplicate"}],
    )


async def _check_refs(ctx: Ctx, tenant_id: str, values: dict[str, Any]) -> None:
    """The agent, workflow and credential named must be the tenant's own (422 if not):
    a channel cannot point at another tenant's objects."""
    problems = []
    if (
        values.get("agent_id")
        and await AgentRepository(ctx.runtime.db).get(tenant_id, str(values["agent_id"])) is None
    ):
        problems.append(("body.agent_id", "no such agent in this tenant"))
    if values.get("workflow_id") and not await ctx.workflows.exists(
        tenant_id, str(values["workflow_id"])
    ):
        problems.append(("body.workflow_id", "no such workflow in this tenant"))
    if (
        values.get("credential")
        and await ctx.runtime.credentials.get(tenant_id, str(values["credential"])) is None
    ):
        problems.append(("body.credential", "no such credential in this tenant"))
    if problems:
        raise ApiError(
            422,
            "invalid_request",
            f"invalid request: {', '.join(f for f, _ in problems)}",
            [{"field": f, "message": m, "code": "not_found"} for f, m in problems],
        )


def _values(body: BaseModel, *, unset: bool) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=unset, exclude={"kind"})
    for key in ("agent_id", "workflow_id"):
        if values.get(key) is not None:
            values[key] = str(values[key])
    return values


@router.post(
    "/api/channels",
    status_code=201,
    response_model=ChannelOut,
    responses=CONFLICT,
    summary="Connect a channel",
)
async def create_channel(ctx: Ctx, caller: Caller, body: ChannelIn) -> ChannelOut:
    """A connected account; its webhook deliveries are matched to it by account id."""
    values = _values(body, unset=False)
    await _check_refs(ctx, caller.tenant_id, values)
    try:
        return channel_out(await _repo(ctx).create(caller.tenant_id, body.kind, values))
    except DuplicateChannelError:
        raise _conflict(body.account_id) from None


@router.get("/api/channels", response_model=ChannelList, summary="List channels")
async def list_channels(
    ctx: Ctx,
    caller: Caller,
    kind: Annotated[Kind | None, Query(description="Only of this kind.")] = None,
) -> ChannelList:
    """The tenant's channels by name."""
    return ChannelList(
        items=[channel_out(c) for c in await _repo(ctx).list(caller.tenant_id, kind)]
    )


@router.get(
    "/api/channels/{channel_id}",
    response_model=ChannelOut,
    responses=NOT_FOUND,
    summary="Get a channel",
)
async def get_channel(ctx: Ctx, caller: Caller, channel_id: ChannelIdPath) -> ChannelOut:
    """One channel."""
    found = await _repo(ctx).get(caller.tenant_id, str(channel_id))
    if found is None:
        raise not_found("channel", channel_id)
    return channel_out(found)


@router.patch(
    "/api/channels/{channel_id}",
    response_model=ChannelOut,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Update a channel",
)
async def update_channel(
    ctx: Ctx, caller: Caller, channel_id: ChannelIdPath, body: ChannelPatch
) -> ChannelOut:
    """Change the fields given."""
    values = _values(body, unset=True)
    for required in ("name", "account_id", "enabled"):
        if required in values and values[required] is None:
            raise ApiError(
                422,
                "invalid_request",
                f"{required} cannot be removed",
                [{"field": f"body.{required}", "message": "must not be null", "code": "null"}],
            )
    if await _repo(ctx).get(caller.tenant_id, str(channel_id)) is None:
        raise not_found("channel", channel_id)
    await _check_refs(ctx, caller.tenant_id, values)
    try:
        found = await _repo(ctx).update(caller.tenant_id, str(channel_id), values)
    except DuplicateChannelError:
        raise _conflict(values.get("account_id")) from None
    if found is None:
        raise not_found("channel", channel_id)
    return channel_out(found)


@router.delete(
    "/api/channels/{channel_id}", status_code=204, responses=NOT_FOUND, summary="Delete a channel"
)
async def delete_channel(ctx: Ctx, caller: Caller, channel_id: ChannelIdPath) -> None:
    """Disconnect the account; its deliveries no longer match."""
    if not await _repo(ctx).delete(caller.tenant_id, str(channel_id)):
        raise not_found("channel", channel_id)
