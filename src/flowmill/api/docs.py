"""The ``/docs`` page, served without a CDN, and ``/openapi.json`` encoded once.

FastAPI's default page loads Swagger UI from jsdelivr, so on a self-hosted machine
without internet access the page stays blank. The same assets (Swagger UI 5, which
renders OpenAPI 3.1) ship in the ``fastapi-offline`` package; we serve them ourselves.

FastAPI keeps the OpenAPI document as a dict and encodes it again (270 KB of JSON) on
every request, in the event loop: 150 to 180 ms at load 10 on 2 cores, and the web app
asks for it on every page load (capabilities.ts), so each page load held up the
requests behind it. The encoded document is kept instead; the routes never change
after start.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

ASSETS = "/docs/assets"


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` from local files, and the OpenAPI document encoded
    once, on its first request."""
    install_openapi(app)
    static = files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — docs",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )


def install_openapi(app: FastAPI) -> None:
    """Replace FastAPI's ``/openapi.json`` route with one that encodes the document once.

    The document is built on the first request (not at start: building it takes about
    half a second of CPU, which every server started by the tests would pay).
    """
    url = app.openapi_url or "/openapi.json"
    encoded: list[bytes] = []

    async def openapi_json(request: Request) -> Response:
        if not encoded:
            encoded.append(bytes(JSONResponse(app.openapi()).body))
        return Response(encoded[0], media_type="application/json")

    def is_default(route: BaseRoute) -> bool:
        return isinstance(route, Route) and route.path == url

    app.router.routes[:] = [r for r in app.router.routes if not is_default(r)]
    app.router.routes.append(Route(url, openapi_json, methods=["GET"], include_in_schema=False))
