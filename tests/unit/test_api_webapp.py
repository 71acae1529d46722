"""The web app's pages and files at ``/``, and that they shadow no API route.

The app is served by a plain ASGI layer (``api/webapp.py``) in front of the API, from
the built assets in ``src/flowmill/ui/dist``; these tests use a small stand-in build in
a temporary folder, so they do not depend on Node.js.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from flowmill.api.webapp import DIST, WebApp
from tests.api_support import open_api

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

INDEX = b"<!doctype html><title>Flowmill</title><div id=root></div>" + b" " * 2000
SCRIPT = b"console.log('flowmill');" * 200


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_bytes(INDEX)
    (tmp_path / "assets" / "index-abc123.js").write_bytes(SCRIPT)
    (tmp_path / "favicon.svg").write_bytes(b"<svg/>")
    return tmp_path


def api_app(dist: Path) -> FastAPI:
    """A small API behind the web app layer, with the app's first segments nearby."""
    inner = FastAPI()

    @inner.get("/api/workflows")
    async def workflows() -> dict[str, str]:
        return {"from": "api"}

    @inner.post("/webhooks/{a}/{b}")
    async def hook(a: str, b: str) -> dict[str, str]:
        return {"hook": f"{a}/{b}"}

    inner.add_middleware(WebApp, dist=dist)
    return inner


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize(
    "path",
    ["/", "/workflows", "/workflows/0193aa", "/executions/0193aa?node=x", "/analytics",
     "/operations?tab=keys", "/signin"],
)  # fmt: skip
async def test_webapp_pages_answer_index_html_so_deep_links_reload(dist: Path, path: str) -> None:
    async with client(api_app(dist)) as c:
        r = await c.get(path, headers={"Accept-Encoding": "identity", "Accept": BROWSER})
    assert r.status_code == 200
    assert r.content == INDEX
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"  # it names this build's hashed assets
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/api/workflows", 200), ("GET", "/api/nothing", 404), ("POST", "/nothing", 404),
     ("POST", "/workflows", 404), ("POST", "/webhooks/a/b", 200), ("GET", "/docsx", 404),
     ("GET", "/assets/missing.js", 404), ("GET", "/assets/../index.html", 404)],
)  # fmt: skip
async def test_webapp_leaves_other_paths_and_methods_to_the_api(
    dist: Path, method: str, path: str, status: int
) -> None:
    async with client(api_app(dist)) as c:
        r = await c.request(method, path)
    assert r.status_code == status
    assert "text/html" not in r.headers.get("content-type", "")


async def test_webapp_assets_are_immutable_and_gzipped_when_asked(dist: Path) -> None:
    async with client(api_app(dist)) as c:
        zipped = await c.get("/assets/index-abc123.js", headers={"Accept-Encoding": "gzip"})
        plain = await c.get("/assets/index-abc123.js", headers={"Accept-Encoding": "identity"})
        icon = await c.get("/favicon.svg")
    assert zipped.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == SCRIPT  # httpx decodes; the wire carried fewer bytes
    assert int(zipped.headers["content-length"]) < len(SCRIPT) // 10
    assert zipped.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert zipped.headers["content-type"].startswith("text/javascript")
    assert "content-encoding" not in plain.headers and plain.content == SCRIPT
    assert icon.status_code == 200 and icon.headers["cache-control"] == "no-cache"
    assert gzip.decompress(gzip.compress(SCRIPT)) == SCRIPT


async def test_webapp_without_a_build_says_how_to_build_it(tmp_path: Path) -> None:
    async with client(api_app(tmp_path / "none")) as c:
        r = await c.get("/workflows", headers={"Accept": BROWSER})
        api = await c.get("/api/workflows")
    assert r.status_code == 200
    assert b"The web app is not built" in r.content and b"npm run build" in r.content
    assert api.json() == {"from": "api"}


def test_webapp_build_ships_in_the_package() -> None:
    """The committed build is where the server looks, and names only files it has."""
    index = (DIST / "index.html").read_text()
    assert '<div id="root">' in index
    for name in __import__("re").findall(r'(?:src|href)="/(assets/[^"]+)"', index):
        assert (DIST / name).is_file(), name


async def test_webapp_is_installed_in_front_of_the_real_api(sqlite_url: str) -> None:
    async with open_api(sqlite_url, worker=False) as api:
        page = await api.anon.get(
            "/executions/0193", headers={"Accept-Encoding": "identity", "Accept": BROWSER}
        )
        # The same paths are the seed documents' API for clients that do not ask for HTML.
        seed_api = await api.a.get("/workflows", headers={"Accept": "application/json"})
        assert seed_api.status_code == 200, seed_api.text
        assert seed_api.headers["content-type"].startswith("application/json")
        assert "items" in seed_api.json()
        health = await api.anon.get("/health")
        spec = await api.anon.get("/openapi.json")
        unknown = await api.a.get("/api/unknown")
    assert page.status_code == 200 and b'<div id="root">' in page.content
    assert health.json() == {"status": "ok"}
    assert "/api/queues" in spec.json()["paths"]
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
