"""A real browser for acceptance tests: Debian's Chromium driven by Playwright.

Playwright cannot download its own browsers here, so it launches the system's
``chromium`` (``executable_path``); a machine without it skips locally and fails in CI
(``unavailable``). Screenshots go to ``tests/acceptance/screenshots/`` (git-ignored),
one per main page, so a person can look at them.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import ROOT, unavailable

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = ROOT / "tests" / "acceptance" / "screenshots"

# Playwright's assertions wait 5 s by default, apart from the context's timeout. A page
# beside a loaded CI run (issue "Tests that can fail": three runs under load) can take
# longer to render a test run's result; a passing assertion returns as soon as it holds,
# so the longer wait costs only failing runs.
expect.set_options(timeout=15_000)


def chromium() -> str:
    """The system's Chromium, or skip (fail in CI)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        unavailable("chromium is not installed (apt-get install chromium)")
    return path


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium under Playwright."""
    path = chromium()
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def new_page(b: Browser, *, dark: bool = False) -> tuple[Page, list[str]]:
    """A page in a fresh context (its own sessionStorage); also the list its console
    errors and uncaught exceptions are collected into."""
    context = await b.new_context(
        viewport={"width": 1360, "height": 900}, color_scheme="dark" if dark else "light"
    )
    context.set_default_timeout(20_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"exception: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("dialog", lambda d: d.accept())  # confirmations ("Unpublish?", "Retry?")
    return page, errors


async def sign_in(page: Page, url: str, key: str, path: str = "/workflows") -> None:
    """Open ``path`` and sign in with ``key`` through the form."""
    await page.goto(url + path)
    await page.get_by_label("API key or JWT").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


async def shot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as ``screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
