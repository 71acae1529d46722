"""Resume URLs: ``{{execution.resume_url}}``, an approval link for a ``wait`` node.

The token in the URL is the credential (an HMAC of the execution id under the
deployment's key), so these routes take no API key. ``GET`` only shows a page asking to
confirm (mail scanners and link previews fetch links; they must not approve anything);
``POST`` resumes, once: the second use is refused with 410.
"""

from __future__ import annotations

import html
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse

from flowmill import jsonutil
from flowmill.api.deps import Ctx, signal_box
from flowmill.api.errors import ERROR_RESPONSES, ApiError
from flowmill.api.schemas import ErrorResponse, ResumeResult

router = APIRouter(tags=["executions"], responses=ERROR_RESPONSES)

Token = Annotated[str, PathParam(min_length=10, max_length=200, pattern=r"^[0-9a-fA-F.-]+$")]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Resume the workflow</title>
<meta name="robots" content="noindex"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>Resume the workflow?</h1>
<p>Execution <code>{execution}</code> is waiting for this confirmation. The link works once.</p>
<form method="post">
<p><label>Comment (optional)<br><textarea name="comment" rows="3" cols="50"></textarea></label></p>
<p><button type="submit" name="approved" value="true">Resume</button></p>
</form></body></html>
"""


def _unknown() -> ApiError:
    return ApiError(404, "not_found", "this resume link is not valid")


@router.get(
    "/api/resume/{token}",
    response_model=None,
    summary="Confirm a resume link",
    responses={
        200: {
            "description": "A page with the button that resumes.",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        404: {"model": ErrorResponse, "description": "Not a valid resume link."},
    },
)
async def resume_page(ctx: Ctx, token: Token) -> HTMLResponse:
    """A page with a button that resumes (a ``GET`` itself changes nothing)."""
    execution_id = signal_box(ctx).execution_of(token)
    if execution_id is None:
        raise _unknown()
    return HTMLResponse(_PAGE.format(execution=html.escape(execution_id)))


@router.post(
    "/api/resume/{token}",
    response_model=ResumeResult,
    summary="Resume a waiting execution",
    responses={
        404: {"model": ErrorResponse, "description": "Not a valid resume link."},
        409: {"model": ErrorResponse, "description": "The execution has ended."},
        410: {"model": ErrorResponse, "description": "The link was used already."},
        415: {"model": ErrorResponse, "description": "Neither JSON nor a URL-encoded form."},
    },
)
async def resume(ctx: Ctx, token: Token, request: Request) -> ResumeResult:
    """Resume the execution's ``wait`` node; the request body (JSON, or a URL-encoded
    form) becomes its output. Works once."""
    if signal_box(ctx).execution_of(token) is None:
        raise _unknown()
    payload = await _payload(request)
    execution_id, outcome = await signal_box(ctx).resume(token, payload)
    if execution_id is None:
        raise _unknown()
    if outcome == "used":
        raise ApiError(410, "already_used", "this resume link was used already")
    if outcome == "ended":
        raise ApiError(409, "execution_ended", "the execution has ended already")
    return ResumeResult(execution_id=execution_id)


async def _payload(request: Request) -> Any:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if kind == "application/x-www-form-urlencoded":
        # The confirmation page's form; read here, without a multipart parser.
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    if kind not in ("", "application/json") and not kind.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send JSON or a URL-encoded form")
    if not raw.strip():
        return None
    try:
        return jsonutil.loads(raw)
    except ValueError as e:
        raise ApiError(
            422,
            "invalid_request",
            "the body is not JSON",
            [{"field": "body", "message": "must be JSON or a form", "code": "json"}],
        ) from e
