"""What routes depend on: the API's parts, the caller, ids from the path, cursors."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowmill import jsonutil
from flowmill.api.auth import Authenticator, Principal
from flowmill.api.errors import ApiError, over_quota
from flowmill.config import Settings
from flowmill.engine.signals import SignalBox
from flowmill.ids import version_of_id
from flowmill.runtime import Runtime
from flowmill.store.api_keys import ApiKeyStore
from flowmill.store.queries import ExecutionQueries
from flowmill.store.tenants import TenantStore
from flowmill.store.workflow_queries import WorkflowQueries


@dataclass
class ApiContext:
    """The parts of one API process, shared by every request."""

    runtime: Runtime
    settings: Settings
    executions: ExecutionQueries
    workflows: WorkflowQueries
    keys: ApiKeyStore
    tenants: TenantStore
    auth: Authenticator


def _context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.flowmill
    return ctx


Ctx = Annotated[ApiContext, Depends(_context)]


def signal_box(ctx: ApiContext) -> SignalBox:
    """The engine's signals and resume URLs (every runtime has them)."""
    box = ctx.runtime.engine.signals
    if box is None:  # pragma: no cover - an engine built without a control store
        raise ApiError(503, "unavailable", "this server has no signal box")
    return box


_bearer = HTTPBearer(
    auto_error=False,
    description="An API key (`fm_...`) or, when configured, a JWT.",
)


async def _principal(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    caller = await ctx.auth.authenticate(credentials.credentials if credentials else None)
    # every line the request logs from here on names the tenant (beside its request id)
    structlog.contextvars.bind_contextvars(tenant_id=caller.tenant_id)
    wait = await ctx.runtime.quotas.throttled(caller.tenant_id, "api_requests_per_minute")
    if wait is not None:
        raise over_quota("API requests", wait)
    return caller


Caller = Annotated[Principal, Depends(_principal)]
"""The authenticated caller; every route that touches tenant data takes it."""

WorkflowIdPath = Annotated[uuid.UUID, Path(description="Workflow id.")]
ExecutionIdPath = Annotated[uuid.UUID, Path(description="Execution id.")]
_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
VersionPath = Annotated[
    str,
    Path(
        pattern=f"^([1-9][0-9]{{0,8}}|{_UUID})$",
        description="Version number, or the version's `id` (as version answers give it).",
        examples=["2"],
    ),
]


def version_number(workflow_id: uuid.UUID, ref: str) -> int:
    """The number of the version a path names by number or by id.

    Raises:
        ApiError: 404 when the id is not one of this workflow's versions' ids.
    """
    number = int(ref) if ref.isdigit() else version_of_id(str(workflow_id), ref)
    if not number:
        raise ApiError(404, "not_found", f"version {workflow_id}/{ref} not found")
    return number


# --- cursors ----------------------------------------------------------------------------
# Opaque to clients (base64url of a small JSON document), so the keyset behind them can
# change without breaking anyone who stores one.


def encode_cursor(kind: str, value: Any) -> str:
    """The cursor continuing after ``value`` in a list of ``kind``."""
    raw = jsonutil.dumpb({"k": kind, "v": value})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _invalid_cursor() -> ApiError:
    return ApiError(
        422,
        "invalid_request",
        "invalid request: query.cursor",
        [
            {
                "field": "query.cursor",
                "message": "not a cursor from this list; pass next_cursor unchanged",
                "code": "invalid_cursor",
            }
        ],
    )


def decode_cursor(cursor: str | None, kind: str) -> Any:
    """The value inside a cursor of ``kind`` (``None`` when no cursor was given).

    Raises:
        ApiError: 422 when it is not such a cursor.
    """
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = jsonutil.loads(raw)
    except (ValueError, binascii.Error):
        raise _invalid_cursor() from None
    if not isinstance(doc, dict) or doc.get("k") != kind:
        raise _invalid_cursor()
    value = doc.get("v")
    if kind == "version":
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 2**31:
            raise _invalid_cursor()
        return value
    if not isinstance(value, str):
        raise _invalid_cursor()
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise _invalid_cursor() from None
