"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``.

``details`` lists the problems, each naming its field (``body.nodes[0].type``,
``query.limit``), so a client can point at what to fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowmill.api.schemas import ErrorResponse
from flowmill.domain.errors import DefinitionError, FlowmillError, Issue

log = structlog.get_logger("flowmill.api")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}

# Shown in the OpenAPI document on every route that can answer with them.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The body is not JSON (or not UTF-8)."},
    401: {"model": ErrorResponse, "description": "Missing, unknown or expired credentials."},
    413: {"model": ErrorResponse, "description": "The request body is too large."},
    415: {
        "model": ErrorResponse,
        "description": "A body was sent without `Content-Type: application/json`.",
    },
    422: {"model": ErrorResponse, "description": "The request is not valid; see details."},
    429: {
        "model": ErrorResponse,
        "description": "Over the tenant's quota; `Retry-After` says when to try again.",
        "headers": {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        },
    },
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such object for this tenant."}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "The object is not in a state for this."}
}


class ApiError(FlowmillError):
    """An error answered as JSON with ``status``.

    Args:
        status: HTTP status code.
        code: Stable machine-readable code.
        message: What happened, for people.
        details: ``{"field", "message", "code"}`` items.
        headers: Extra response headers (``WWW-Authenticate``...).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = headers


def not_found(what: str, ident: object) -> ApiError:
    """A 404 for an object that does not exist for this tenant."""
    return ApiError(404, "not_found", f"{what} {ident} not found")


def error_json(
    status: int,
    code: str,
    message: str,
    details: Sequence[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The JSON response of an error."""
    body = {"error": {"code": code, "message": message, "details": list(details)}}
    return JSONResponse(body, status_code=status, headers=headers)


def over_quota(what: str, wait_s: float) -> ApiError:
    """A 429 for a tenant over one of its quotas, with ``Retry-After``."""
    seconds = max(1, math.ceil(wait_s))
    return ApiError(
        429,
        "rate_limited",
        f"{what} over this tenant's quota; try again in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "nodes", 0, "type")`` → ``body.nodes[0].type``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_json(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    wrong_type = _not_json(request, errors)
    if wrong_type is not None:
        return wrong_type
    definition = _definition_issues(request, exc)
    if definition is not None:
        return definition
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = errors[0].get("ctx", {}).get("error", "JSON decode error")
        return error_json(
            400,
            "invalid_json",
            "the request body is not valid JSON",
            [{"field": "body", "message": str(detail), "code": "json_invalid"}],
        )
    details = [
        {
            "field": field_path(e.get("loc", ())),
            "message": str(e.get("msg", "invalid")),
            "code": str(e.get("type", "invalid")),
        }
        for e in errors
    ]
    fields = ", ".join(sorted({d["field"] for d in details})) or "request"
    return error_json(422, "invalid_request", f"invalid request: {fields}", details)


async def _definition_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DefinitionError)
    return _definition_json(exc.issues, [])


def _definition_json(issues: list[Issue], others: list[dict[str, Any]]) -> JSONResponse:
    """A definition's issues as ``flowmill validate`` prints them, under ``body.``."""
    details = [
        {"field": f"body.{i.path}" if i.path else "body", "message": i.message, "code": i.code}
        for i in issues
    ]
    details += others
    summary = "; ".join(str(i) for i in issues[:5]) + (" …" if len(issues) > 5 else "")
    count = f"{len(details)} problem{'s' if len(details) != 1 else ''}"
    return error_json(
        422,
        "invalid_definition",
        f"the workflow definition is not valid ({count}): {summary}",
        details,
    )


def _not_json(request: Request, errors: list[Any]) -> JSONResponse | None:
    """A body sent without ``Content-Type: application/json`` reaches the model as
    bytes; say what to send instead of "Input should be a valid dictionary"."""
    content_type = request.headers.get("content-type", "")
    if "json" in content_type.lower():
        return None
    for e in errors:
        loc = tuple(e.get("loc", ()))
        if loc == ("body",) and e.get("type") in ("model_attributes_type", "dict_type"):
            sent = content_type.split(";", 1)[0].strip() or "no Content-Type"
            return error_json(
                415,
                "unsupported_media_type",
                f"send the body as JSON with the header Content-Type: application/json "
                f"(this request has {sent})",
                [{"field": "header.content-type", "message": sent, "code": "not_json"}],
            )
    return None


_DEFINITION_PARTS = ("body.nodes", "body.edges", "body.steps", "body.actions", "body.settings")


def _definition_issues(request: Request, exc: RequestValidationError) -> JSONResponse | None:
    """A workflow body the request schema refused, checked as ``flowmill validate``
    checks a file: every problem at once, by node id, with "did you mean"; ``None``
    when the route takes no definition or the checker finds nothing to say."""
    from flowmill.api.schemas import VersionDefinitionIn, WorkflowDefinitionIn
    from flowmill.validation import check_document

    route = request.scope.get("route")
    body_field = getattr(route, "body_field", None)
    model = getattr(getattr(body_field, "field_info", None), "annotation", None)
    document = getattr(exc, "body", None)
    if model not in (WorkflowDefinitionIn, VersionDefinitionIn) or not isinstance(document, dict):
        return None
    graph = any(k in document for k in ("nodes", "steps", "actions"))
    if model is VersionDefinitionIn:
        if not graph:
            return None  # a partial update: only the schema can judge it alone
        document = {"name": "(kept)", **document}
    elif not graph:
        from flowmill.api.views import STARTER_NODES

        document = {**document, "nodes": STARTER_NODES}  # as the route would make it
    ctx = getattr(request.app.state, "flowmill", None)
    engine = getattr(getattr(ctx, "runtime", None), "engine", None)
    if engine is None:
        return None
    report = check_document(
        document, engine.registry, expressions_enabled=engine.services.sandbox_available
    )
    if not report.issues:
        return None
    named = {f"body.{i.path}" for i in report.issues}
    others = []
    for e in exc.errors():
        field = field_path(e.get("loc", ()))
        if field in named or field.startswith(_DEFINITION_PARTS):
            continue  # the checker said it, in its words
        others.append({"field": field, "message": str(e.get("msg")), "code": str(e.get("type"))})
    return _definition_json(report.issues, others)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 400 and message == "There was an error parsing the body":
        code, message = "invalid_json", "the request body is not valid JSON in UTF-8"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # The router names the methods of the first route on the path only; FastAPI
        # makes one route per method, so list them all.
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_json(exc.status_code, code, message, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document gives the request's path (its most specific
    paths: ``/api/workflows/import`` is not also ``/api/workflows/{workflow_id}``)."""
    app = request.app
    table: list[tuple[re.Pattern[str], int, list[str]]] | None = getattr(
        app.state, "allow_table", None
    )
    if table is None:
        table = []
        for path, item in app.openapi().get("paths", {}).items():
            params = path.count("{")
            pattern = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$")
            methods = [m.upper() for m in item if m in _HTTP_METHODS]
            table.append((pattern, params, methods))
        app.state.allow_table = table
    found: dict[int, set[str]] = {}
    for pattern, params, methods in table:
        if pattern.match(request.url.path):
            found.setdefault(params, set()).update(methods)
    return sorted(found[min(found)]) if found else []


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return error_json(500, "internal_error", "internal error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error in the one shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DefinitionError, _definition_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
