"""``/api/credentials``: the tenant's secrets, sealed; answers never hold a secret.

A credential is shown as its name, type, non-secret ``details`` (a token URL, a user
name) and a ``hint`` (``"…wxyz"``, the end of a long secret). Nodes name a credential
by id or name; every decryption is recorded as a ``credential.used`` event.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from flowmill.api.deps import Caller, Ctx
from flowmill.api.errors import CONFLICT, ERROR_RESPONSES, NOT_FOUND, ApiError, not_found
from flowmill.api.jsonvalue import JsonObject, SafeStr
from flowmill.api.schemas import ErrorResponse
from flowmill.credentials import kinds
from flowmill.credentials.crypto import CredentialError
from flowmill.credentials.vault import CredentialInfo, DuplicateCredentialError

router = APIRouter(tags=["credentials"], responses=ERROR_RESPONSES)

CredentialType = Literal[
    "bearer", "basic", "header", "query", "secret", "oauth2", "database", "smtp"
]
CredentialIdPath = Annotated[uuid.UUID, Path(description="Credential id.")]
Name = Annotated[SafeStr, Field(min_length=1, max_length=200, pattern=r"^[^\s].*$")]
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorResponse,
        "description": "No encryption key is configured (FLOWMILL_SECRET_KEYS).",
    }
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CredentialIn(_Body):
    """A new credential. ``data`` is the secret, by type (see docs/credentials.md)."""

    name: Name = Field(description="Unique in the tenant; nodes use it (or the id).")
    type: CredentialType
    data: JsonObject = Field(description="The secret fields of the type; never shown again.")


class CredentialPatch(_Body):
    """Rename, and/or change some fields of the data (``null`` removes an optional
    field); the other fields are kept."""

    name: Name | None = None
    data: JsonObject | None = None


class CredentialRotate(_Body):
    """A new secret (the whole data); without it the stored secret is re-sealed under
    the active key."""

    data: JsonObject | None = None


class CredentialOut(BaseModel):
    """A credential as shown: never its secret."""

    id: str
    name: str
    type: str
    details: dict[str, Any] = Field(description="The type's non-secret fields.")
    hint: str | None = Field(description="`…wxyz`: the end of a long secret, else `…`.")
    key_id: str = Field(description="Id of the key that sealed it.")
    created_at: datetime
    updated_at: datetime


class CredentialList(BaseModel):
    """The tenant's credentials, by name."""

    items: list[CredentialOut]


def credential_out(info: CredentialInfo) -> CredentialOut:
    """The API view of a credential."""
    return CredentialOut(
        id=info.id,
        name=info.name,
        type=info.type,
        details=info.details,
        hint=info.hint,
        key_id=info.key_id,
        created_at=info.created_at,
        updated_at=info.updated_at,
    )


def _invalid(kind: str, data: dict[str, Any]) -> None:
    found = kinds.problems(kind, data)
    if found:
        for item in found:
            item["field"] = f"body.{item['field']}"
        fields = ", ".join(d["field"] for d in found)
        raise ApiError(422, "invalid_request", f"invalid {kind} credential: {fields}", found)


def _conflict(name: str) -> ApiError:
    return ApiError(
        409,
        "conflict",
        f"a credential named {name!r} exists",
        [{"field": "body.name", "message": "taken in this tenant", "code": "duplicate"}],
    )


def _unavailable(e: CredentialError) -> ApiError:
    return ApiError(503, "unavailable", str(e))


@router.post(
    "/api/credentials",
    status_code=201,
    response_model=CredentialOut,
    responses={**CONFLICT, **UNAVAILABLE},
    summary="Store a credential",
)
async def create_credential(ctx: Ctx, caller: Caller, body: CredentialIn) -> CredentialOut:
    """Seal and store a secret. The answer shows its details and hint only."""
    _invalid(body.type, body.data)
    try:
        info = await ctx.runtime.credentials.create(
            caller.tenant_id, body.name, body.type, body.data
        )
    except DuplicateCredentialError:
        raise _conflict(body.name) from None
    except CredentialError as e:
        raise _unavailable(e) from None
    return credential_out(info)


@router.get("/api/credentials", response_model=CredentialList, summary="List credentials")
async def list_credentials(ctx: Ctx, caller: Caller) -> CredentialList:
    """The tenant's credentials by name (no secrets)."""
    items = await ctx.runtime.credentials.list(caller.tenant_id)
    return CredentialList(items=[credential_out(i) for i in items])


@router.get(
    "/api/credentials/{credential_id}",
    response_model=CredentialOut,
    responses=NOT_FOUND,
    summary="Get a credential",
)
async def get_credential(
    ctx: Ctx, caller: Caller, credential_id: CredentialIdPath
) -> CredentialOut:
    """One credential: details and hint, never the secret."""
    info = await ctx.runtime.credentials.get(caller.tenant_id, str(credential_id))
    if info is None or info.id != str(credential_id):
        raise not_found("credential", credential_id)
    return credential_out(info)


@router.patch(
    "/api/credentials/{credential_id}",
    response_model=CredentialOut,
    responses={**NOT_FOUND, **CONFLICT, **UNAVAILABLE},
    summary="Update a credential",
)
async def update_credential(
    ctx: Ctx, caller: Caller, credential_id: CredentialIdPath, body: CredentialPatch
) -> CredentialOut:
    """Rename it and/or change fields of its data; the rest is kept."""
    vault = ctx.runtime.credentials
    current = await vault.get(caller.tenant_id, str(credential_id))
    if current is None or current.id != str(credential_id):
        raise not_found("credential", credential_id)
    try:
        info = await vault.update(caller.tenant_id, current.id, name=body.name, data=body.data)
    except DuplicateCredentialError:
        raise _conflict(str(body.name)) from None
    except CredentialError as e:
        raise _unavailable(e) from None
    except ValueError as e:
        raise ApiError(
            422,
            "invalid_request",
            str(e),
            [{"field": "body.data", "message": str(e), "code": "invalid"}],
        ) from None
    if info is None:
        raise not_found("credential", credential_id)
    return credential_out(info)


@router.post(
    "/api/credentials/{credential_id}/rotate",
    response_model=CredentialOut,
    responses={**NOT_FOUND, **UNAVAILABLE},
    summary="Rotate a credential",
)
async def rotate_credential(
    ctx: Ctx, caller: Caller, credential_id: CredentialIdPath, body: CredentialRotate | None = None
) -> CredentialOut:
    """Give it a new secret, or (without ``data``) re-seal it under the active key."""
    vault = ctx.runtime.credentials
    current = await vault.get(caller.tenant_id, str(credential_id))
    if current is None or current.id != str(credential_id):
        raise not_found("credential", credential_id)
    data = body.data if body is not None else None
    if data is not None:
        _invalid(current.type, data)
    try:
        info = await vault.rotate_one(caller.tenant_id, current.id, data)
    except CredentialError as e:
        raise _unavailable(e) from None
    if info is None:
        raise not_found("credential", credential_id)
    return credential_out(info)


@router.delete(
    "/api/credentials/{credential_id}",
    status_code=204,
    responses=NOT_FOUND,
    summary="Delete a credential",
)
async def delete_credential(ctx: Ctx, caller: Caller, credential_id: CredentialIdPath) -> None:
    """Delete it; nodes naming it fail from now on."""
    if not await ctx.runtime.credentials.delete(caller.tenant_id, str(credential_id)):
        raise not_found("credential", credential_id)
