"""The API docs page renders in a real browser, with no CDN to reach.

Headless Chromium loads ``/docs`` from a running ``flowmill serve``; the page must show
the operations of the OpenAPI document. The machine has no internet access, so this
also proves every asset is served locally.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from tests.acceptance.serve_support import serve
from tests.conftest import unavailable


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        unavailable("chromium is not installed (apt-get install chromium)")
    return path


async def test_docs_page_renders_the_operations_in_a_browser(tmp_path: Path) -> None:
    browser = chromium()
    async with serve(tmp_path) as served:
        proc = await asyncio.create_subprocess_exec(
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}",
            "--virtual-time-budget=15000", "--dump-dom", f"{served.url}/docs",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        dom, _ = await asyncio.wait_for(proc.communicate(), 90)
    html = dom.decode()
    assert "swagger-ui" in html
    assert "opblock" in html, "Swagger UI did not render any operation"
    for path in ("/api/workflows", "/api/executions", "/health"):
        assert path in html
    assert "cdn.jsdelivr.net" not in html
