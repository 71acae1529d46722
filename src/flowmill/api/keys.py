"""``/api/tenant`` and ``/api/keys``: who am I, and the tenant's API keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from flowmill.api.deps import Caller, Ctx
from flowmill.api.errors import ERROR_RESPONSES, NOT_FOUND, not_found
from flowmill.api.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyList, ApiKeyOut, TenantOut
from flowmill.store.api_keys import ApiKeyRecord

router = APIRouter(tags=["tenant"], responses=ERROR_RESPONSES)


def _key_out(r: ApiKeyRecord) -> ApiKeyOut:
    return ApiKeyOut(
        id=r.id,
        name=r.name,
        prefix=r.prefix,
        created_at=r.created_at,
        last_used_at=r.last_used_at,
        revoked_at=r.revoked_at,
    )


@router.get("/api/tenant", response_model=TenantOut, summary="The caller's tenant")
async def get_tenant(ctx: Ctx, caller: Caller) -> TenantOut:
    """The tenant the credentials belong to (every request is scoped to it)."""
    tenant = await ctx.tenants.get(caller.tenant_id)
    if tenant is None:  # a key outliving its tenant cannot happen (foreign key)
        raise not_found("tenant", caller.tenant_id)
    return TenantOut(id=tenant.id, name=tenant.name, created_at=tenant.created_at, auth=caller.auth)


@router.get("/api/keys", response_model=ApiKeyList, summary="List API keys")
async def list_keys(ctx: Ctx, caller: Caller) -> ApiKeyList:
    """The tenant's API keys, newest first, revoked ones included (never the secrets)."""
    return ApiKeyList(items=[_key_out(k) for k in await ctx.keys.for_tenant(caller.tenant_id)])


@router.post("/api/keys", response_model=ApiKeyCreated, status_code=201, summary="Create a key")
async def create_key(ctx: Ctx, caller: Caller, body: ApiKeyIn | None = None) -> ApiKeyCreated:
    """A new API key for the tenant. The response is the only time ``key`` is shown."""
    new = await ctx.keys.create(caller.tenant_id, body.name if body else "")
    return ApiKeyCreated(**_key_out(new.record).model_dump(), key=new.secret)


@router.delete(
    "/api/keys/{key_id}", response_model=ApiKeyOut, responses=NOT_FOUND, summary="Revoke a key"
)
async def revoke_key(
    ctx: Ctx, caller: Caller, key_id: Annotated[uuid.UUID, Path(description="Key id.")]
) -> ApiKeyOut:
    """Revoke one of the tenant's keys; requests with it fail from now on."""
    record = await ctx.keys.revoke(str(key_id), tenant_id=caller.tenant_id)
    if record is None:
        raise not_found("API key", key_id)
    return _key_out(record)
