"""The web app's built assets, served at ``/`` (DESIGN §11).

The app is a single page: every page of it has a URL (``/workflows/{id}``,
``/executions?status=failed``...), and a reload of such a URL must give the page again,
so those paths answer ``index.html`` to a browser (``Accept: text/html``) and the app's
router draws the page; other clients of the same paths reach the API (``/workflows/...``
is also the seed documents' API). Only the
app's own top-level paths (:data:`PAGES`) and its files (``/assets/...``) are served
here; everything else (``/api``, ``/webhooks``, ``/docs``, ``/openapi.json``,
``/health``, ``/ready`` and whatever is added later) passes on to the API untouched, so
the app can never shadow a route. It is a plain ASGI layer rather than a catch-all
route because a catch-all ``GET`` would turn the 404 of an unknown ``POST`` into a 405.

The assets are built by Vite from ``src/flowmill/ui/web`` into ``src/flowmill/ui/dist``
and shipped in the wheel, so running the app needs no Node.js. Nothing here imports
the app's sources: it only reads files.
"""

from __future__ import annotations

import gzip
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

DIST = Path(__file__).resolve().parents[1] / "ui" / "dist"
PAGES = frozenset({"workflows", "executions", "analytics", "operations", "signin"})
"""First path segments that belong to the app (``/`` too)."""

_FILE = re.compile(r"^/(assets/[A-Za-z0-9_.-]+|favicon\.svg)$")
_COMPRESSIBLE = (".js", ".css", ".html", ".svg", ".json", ".map")
# Scripts only from this origin; inline styles because the graph library positions
# nodes with style attributes; the app talks to the API on the same origin only.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_SECURITY_HEADERS = {
    "content-security-policy": _CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
_NOT_BUILT = b"""<!doctype html><meta charset="utf-8"><title>Flowmill</title>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>The web app is not built</h1>
<p>This checkout has no built assets in <code>src/flowmill/ui/dist</code>. Build them with
<code>cd src/flowmill/ui/web &amp;&amp; npm ci &amp;&amp; npm run build</code>
(needs Node.js 20), or install Flowmill from a wheel, which ships them.</p>
<p>The API works without it: <a href="/docs">/docs</a>.</p>"""


@dataclass(frozen=True)
class _Asset:
    body: bytes
    gzipped: bytes | None
    media_type: str


class WebApp:
    """Serves the app's pages and files; passes every other request on.

    Files are read and compressed once, on first use, and kept in memory (the whole app
    is a few hundred kilobytes).

    Args:
        app: The API.
        dist: Folder of the built app (``index.html``, ``assets/``).
    """

    def __init__(self, app: ASGIApp, dist: Path = DIST) -> None:
        self.app = app
        self.dist = dist
        self._cache: dict[str, _Asset] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        first = path.strip("/").split("/", 1)[0]
        response: Response | None = None
        if path == "/" or (first in PAGES and _wants_html(scope)):
            response = self._page(scope)
        elif _FILE.match(path):
            response = self._file(scope, path.lstrip("/"))
        if response is None:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    def _page(self, scope: Scope) -> Response:
        asset = self._load("index.html")
        if asset is None:
            return Response(
                _NOT_BUILT,
                media_type="text/html; charset=utf-8",
                headers={"cache-control": "no-store", **_SECURITY_HEADERS},
            )
        # index.html names the hashed assets of this build: always ask again.
        return self._respond(scope, asset, "no-cache")

    def _file(self, scope: Scope, name: str) -> Response | None:
        asset = self._load(name)
        if asset is None:
            return None  # the API answers its JSON 404
        # Vite puts a content hash in every asset's name: a name never changes content.
        hashed = name.startswith("assets/")
        return self._respond(
            scope, asset, "public, max-age=31536000, immutable" if hashed else "no-cache"
        )

    def _respond(self, scope: Scope, asset: _Asset, cache: str) -> Response:
        headers = {"cache-control": cache, "vary": "accept, accept-encoding", **_SECURITY_HEADERS}
        body = asset.body
        if asset.gzipped is not None and _accepts_gzip(scope):
            body = asset.gzipped
            headers["content-encoding"] = "gzip"
        return Response(body, media_type=asset.media_type, headers=headers)

    def _load(self, name: str) -> _Asset | None:
        if name in self._cache:
            return self._cache[name]
        # Only files found are cached, so the cache is bounded by the build's files.
        path = (self.dist / name).resolve()
        asset: _Asset | None = None
        if path.is_file() and path.is_relative_to(self.dist.resolve()):
            body = path.read_bytes()
            media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if media.startswith("text/") or media.endswith(("javascript", "json", "xml")):
                media += "; charset=utf-8"
            squeezed = None
            if path.suffix in _COMPRESSIBLE and len(body) > 1024:
                squeezed = gzip.compress(body, compresslevel=9, mtime=0)
            asset = _Asset(body, squeezed, media)
            self._cache[name] = asset
        return asset


def _wants_html(scope: Scope) -> bool:
    """Whether the request is a browser's page load. ``/workflows/...`` is also the seed
    documents' API (seed 003, JWT): API clients ask for JSON or anything (``*/*``), a
    browser navigating asks for ``text/html`` first."""
    for name, value in scope.get("headers", ()):
        if name == b"accept":
            return b"text/html" in value
    return False


def _accepts_gzip(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"accept-encoding":
            return b"gzip" in value
    return False
