"""Tenants' quotas over HTTP: a tenant reads its own; the admin API sets anyone's.

- ``GET /api/tenant/quotas`` (a tenant's API key or JWT): the effective quotas.
- ``GET`` / ``PATCH /api/admin/tenants/{tenant_id}/quotas`` (``Authorization: Bearer
  <FLOWMILL_ADMIN_KEY>``): the overrides and the effective quotas; a ``PATCH`` sets a
  field to a number or clears it with ``null``. Without ``FLOWMILL_ADMIN_KEY`` the admin
  routes answer 404, as if they did not exist.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from flowmill.api.deps import Caller, Ctx, _bearer
from flowmill.api.errors import ERROR_RESPONSES, NOT_FOUND, ApiError, not_found
from flowmill.quotas import Quotas
from flowmill.store.quotas import QuotaStore
from flowmill.store.tenants import TENANT_ID_PATTERN

router = APIRouter(tags=["quotas"], responses=ERROR_RESPONSES)

_LIMIT = Annotated[StrictInt, Field(ge=0, le=10**9)]


class QuotasOut(BaseModel):
    """Quotas of a tenant; 0 means unlimited (see docs/quotas.md)."""

    model_config = ConfigDict(extra="forbid")
    api_requests_per_minute: int
    webhook_requests_per_minute: int
    starts_per_minute: int
    concurrent_executions: int
    concurrent_steps: int
    sandbox_concurrency: int


class QuotaOverridesIn(BaseModel):
    """Fields to set (a whole number, 0 for unlimited) or clear (``null``: the default)."""

    model_config = ConfigDict(extra="forbid")
    api_requests_per_minute: _LIMIT | None = None
    webhook_requests_per_minute: _LIMIT | None = None
    starts_per_minute: _LIMIT | None = None
    concurrent_executions: _LIMIT | None = None
    concurrent_steps: _LIMIT | None = None
    sandbox_concurrency: _LIMIT | None = None


class TenantQuotasOut(BaseModel):
    """A tenant's overrides and the quotas in effect."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: str
    overrides: dict[str, int] = Field(description="Fields set for this tenant.")
    effective: QuotasOut = Field(description="Defaults with the overrides applied.")


def _out(q: Quotas) -> QuotasOut:
    return QuotasOut(**q.__dict__)


@router.get("/api/tenant/quotas", response_model=QuotasOut, summary="The caller's quotas")
async def my_quotas(ctx: Ctx, caller: Caller) -> QuotasOut:
    """The quotas in effect for the caller's tenant (0: unlimited)."""
    return _out(await ctx.runtime.quotas.get(caller.tenant_id))


async def _admin(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    expected = ctx.settings.admin_key
    if not expected:
        raise ApiError(404, "not_found", "no admin API here (FLOWMILL_ADMIN_KEY is not set)")
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "the admin API takes Authorization: Bearer <FLOWMILL_ADMIN_KEY>",
            headers={"WWW-Authenticate": "Bearer"},
        )


Admin = Annotated[None, Depends(_admin)]
TenantIdPath = Annotated[str, Path(pattern=TENANT_ID_PATTERN, description="The tenant id.")]


async def _admin_view(ctx: Ctx, tenant_id: str, overrides: dict[str, int]) -> TenantQuotasOut:
    effective = ctx.runtime.quotas.defaults.with_overrides(overrides)
    return TenantQuotasOut(tenant_id=tenant_id, overrides=overrides, effective=_out(effective))


@router.get(
    "/api/admin/tenants/{tenant_id}/quotas",
    response_model=TenantQuotasOut,
    responses=NOT_FOUND,
    tags=["admin"],
    summary="A tenant's quotas (admin)",
)
async def get_tenant_quotas(ctx: Ctx, _: Admin, tenant_id: TenantIdPath) -> TenantQuotasOut:
    """Any tenant's overrides and effective quotas."""
    if await ctx.tenants.get(tenant_id) is None:
        raise not_found("tenant", tenant_id)
    overrides = await QuotaStore(ctx.runtime.db).overrides(tenant_id)
    return await _admin_view(ctx, tenant_id, overrides)


@router.patch(
    "/api/admin/tenants/{tenant_id}/quotas",
    response_model=TenantQuotasOut,
    responses=NOT_FOUND,
    tags=["admin"],
    summary="Change a tenant's quotas (admin)",
)
async def patch_tenant_quotas(
    ctx: Ctx, _: Admin, tenant_id: TenantIdPath, body: QuotaOverridesIn
) -> TenantQuotasOut:
    """Set fields (a number; 0 is unlimited) or clear them (``null``: the default).

    Every process reads the change within a few seconds (``QuotaBook`` refresh).
    """
    changes = body.model_dump(exclude_unset=True)
    try:
        overrides = await QuotaStore(ctx.runtime.db).update(tenant_id, changes)
    except LookupError:
        raise not_found("tenant", tenant_id) from None
    ctx.runtime.quotas.forget()
    return await _admin_view(ctx, tenant_id, overrides)
