"""The FastAPI application: ``create_app(runtime)``.

The app does not own the runtime: whoever opened it (``flowmill serve``, a test) keeps
it open for as long as the app serves, and runs the engine's worker or not.
"""

from __future__ import annotations

from fastapi import FastAPI

from flowmill import __version__
from flowmill.api import (
    agents,
    analytics,
    blobs,
    channels,
    credentials,
    editor,
    events,
    executions,
    feed,
    health,
    ingress,
    jobs,
    keys,
    metrics,
    queues,
    quotas,
    resume,
    seed_routes,
    triggers,
    versions,
    webhooks,
    workflows,
)
from flowmill.api.auth import Authenticator, JwtVerifier
from flowmill.api.deps import ApiContext
from flowmill.api.docs import install_docs
from flowmill.api.errors import install_error_handlers
from flowmill.api.front_door import WebhookFrontDoor
from flowmill.api.limits import BodyLimitMiddleware
from flowmill.api.webapp import WebApp
from flowmill.config import Settings
from flowmill.observability.http import RequestContext
from flowmill.realtime.install import install_socket
from flowmill.runtime import Runtime
from flowmill.store.api_keys import ApiKeyStore
from flowmill.store.queries import ExecutionQueries
from flowmill.store.tenants import TenantStore
from flowmill.store.workflow_queries import WorkflowQueries

DESCRIPTION = """\
Flowmill's HTTP API: workflows and their versions, executions, logs, API keys.

Authenticate with `Authorization: Bearer <API key>` (or a JWT, when configured). Every
object belongs to the caller's tenant; another tenant's object answers 404. Errors are
`{"error": {"code", "message", "details"}}`, each detail naming its field. Lists are
keyset pages: pass `next_cursor` back as `cursor`.
"""


def build_context(runtime: Runtime) -> ApiContext:
    """The API's parts over an open runtime.

    Raises:
        ValueError: JWT settings are incomplete.
    """
    settings = runtime.settings
    tenants = TenantStore(runtime.db, runtime.workflows)
    keys = ApiKeyStore(runtime.db)
    verifier = JwtVerifier(settings) if settings.jwt_algorithm else None
    return ApiContext(
        runtime=runtime,
        settings=settings,
        executions=ExecutionQueries(runtime.db),
        workflows=WorkflowQueries(runtime.db),
        keys=keys,
        tenants=tenants,
        auth=Authenticator(keys, tenants, verifier),
    )


def build_app(settings: Settings) -> FastAPI:
    """Routes, error handlers and limits, not yet bound to a runtime (enough to render
    the OpenAPI document)."""
    app = FastAPI(
        title="Flowmill API",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    install_error_handlers(app)
    app.add_middleware(WebhookFrontDoor)  # inside the body limit: added first
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        webhook_max_bytes=settings.webhook_max_body_bytes,
    )
    app.add_middleware(WebApp)  # the web app's pages and files at /; the rest passes on
    for module in (
        health,
        editor,  # before workflows: /api/workflows/validate is no workflow id
        workflows,
        versions,
        executions,
        resume,
        events,
        keys,
        quotas,
        webhooks,
        triggers,
        ingress,
        queues,
        jobs,
        seed_routes,
        credentials,
        agents,
        channels,
        analytics,
        feed,
        metrics,
        blobs,
    ):
        app.include_router(module.router)
    return app


def create_app(runtime: Runtime, *, context: ApiContext | None = None) -> FastAPI:
    """The API over ``runtime``.

    Args:
        runtime: Open database, stores and engine (its worker may run elsewhere).
        context: Parts to use instead of building them (tests swap one).
    """
    app = build_app(runtime.settings)
    app.state.flowmill = context or build_context(runtime)
    # Socket.IO at /api/socket; whoever serves the app closes it (close_app)
    app.state.realtime = install_socket(app, app.state.flowmill)
    # outermost: every request (Socket.IO's too) gets its id and its timing
    app.add_middleware(RequestContext, metrics=runtime.metrics)
    return app


async def close_app(app: FastAPI) -> None:
    """Stop what the app runs in the background (Socket.IO's feed followers)."""
    realtime = getattr(app.state, "realtime", None)
    if realtime is not None:
        await realtime.close()
        app.state.realtime = None
