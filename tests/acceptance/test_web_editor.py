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

import pytest
from playwright.async_api import expect

from tests.browser_support import browser, new_page, shot, sign_in
from tests.editor_canvas_support import chain, client, drop, fan_out, field, node, wire
from tests.editor_support import install_greeting_plugin
from tests.serve_support import Served, serve

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
async def served(tmp_path: Path, postgres_url: str) -> AsyncIterator[Served]:
    env = {"FLOWMILL_DATABASE_URL": postgres_url, **install_greeting_plugin(tmp_path / "plugins")}
    async with serve(tmp_path, env=env) as s:
        assert s.key is not None, s.lines
        yield s


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
        await page.get_by_role("button", name="Publish", exact=True).click()
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

        # pin the trigger's output, change it, and run the draft from its second node
        await node(page, "trigger-1").click()
        await page.get_by_role("button", name="Pin this output as test data").click()
        pinned = page.get_by_label(re.compile("^Pinned output"))
        await pinned.fill((await pinned.input_value()).replace('"tested"', '"pinned"'))
        trigger = node(page, "trigger-1").locator(".flow-node")
        await expect(trigger).to_have_attribute("data-pinned", "true")
        await node(page, "function-1").click()
        await page.get_by_role("button", name="Run from here").click()
        await expect(response.get_by_test_id("node-output")).to_contain_text(
            "The processed result is: pinned processed", timeout=20_000
        )
        async with client(served) as c:
            runs = (await c.get("/api/executions", params={"workflow_id": wf_id})).json()
            rerun = (await c.get(f"/api/executions/{runs['items'][0]['id']}")).json()
        assert rerun["retry_of"] is not None
        assert rerun["input"] == {"message": "pinned"}
        await shot(page, "editor-04-run-from-a-node")

        # the response's template is offered the paths the last run gave it
        await node(page, "response-1").click()
        await page.get_by_label("Insert a path into template").select_option("input.result")
        await expect(field(page, "template")).to_have_value(
            "The processed result is: {{result}}{{ input.result }}"
        )
        assert not errors, errors


async def test_web_editor_refuses_a_save_over_another_editors_version(served: Served) -> None:
    async with client(served) as c:
        r = await c.post("/api/workflows", json={**chain(3), "name": "Shared"})
        wf_id = r.json()["id"]
    async with browser() as b:
        first, errors_1 = await new_page(b)
        second, errors_2 = await new_page(b)  # its own context: another person
        for page in (first, second):
            await sign_in(page, served.url, served.key or "", f"/workflows/{wf_id}/edit")
            await expect(node(page, "step-2")).to_be_visible()

        await first.get_by_label("Workflow name").fill("Shared, renamed by the first")
        await first.get_by_role("button", name="Save", exact=True).click()
        await expect(first.get_by_test_id("save-state")).to_have_text("Saved as v2")

        await second.get_by_label("Workflow name").fill("Shared, renamed by the second")
        await second.get_by_role("button", name="Save", exact=True).click()
        conflict = second.get_by_test_id("save-conflict")
        await expect(conflict).to_contain_text("someone else saved this workflow first")
        await expect(conflict).to_contain_text("version 1 is no longer the latest")
        await expect(second.get_by_test_id("save-state")).to_have_text("Not saved")
        await shot(second, "editor-05-conflict")
        async with client(served) as c:
            latest = (await c.get(f"/api/workflows/{wf_id}")).json()
        assert (latest["latest_version"], latest["name"]) == (2, "Shared, renamed by the first")

        # taking the latest version back, the second editor can save again
        await conflict.get_by_role("button", name=re.compile("^Load the latest")).click()
        await expect(second.get_by_label("Workflow name")).to_have_value(
            "Shared, renamed by the first"
        )
        await second.get_by_label("Workflow name").fill("Shared, then the second")
        await second.get_by_role("button", name="Save", exact=True).click()
        await expect(second.get_by_test_id("save-state")).to_have_text("Saved as v3")

        # publishing over a live version shows what changes, then publishes
        await second.get_by_role("button", name="Publish", exact=True).click()
        await expect(second.get_by_test_id("live-version")).to_have_text("v3 is live")
        await node(second, "step-2").click()
        await field(second, "mapping").fill('{"i": 22}')
        await second.get_by_role("button", name="Publish", exact=True).click()
        review = second.get_by_test_id("publish-review")
        await expect(review).to_contain_text("Publishing v4 replaces the live v3")
        await expect(review).to_contain_text("node step-2 changed")
        await shot(second, "editor-05b-publish-review")
        await review.get_by_role("button", name="Publish v4").click()
        await expect(second.get_by_test_id("live-version")).to_have_text("v4 is live")
        await expect(review).to_have_count(0)
        assert not errors_1, errors_1
        # the browser logs the refused request itself; nothing else went wrong
        assert [e for e in errors_2 if "409 (Conflict)" not in e] == [], errors_2


async def test_web_editor_gives_a_plugin_node_a_working_form(served: Served) -> None:
    async with client(served) as c:
        r = await c.post("/api/workflows", json={**chain(1), "name": "Greets"})
        wf_id = r.json()["id"]
    async with browser() as b:
        page, errors = await new_page(b)
        await sign_in(page, served.url, served.key or "", f"/workflows/{wf_id}/edit")
        await page.get_by_label("Search node types").fill("greet")
        await expect(page.locator(".palette-item")).to_have_count(1)
        await drop(page, "greeting", 500, 300)
        greeting = node(page, "greeting-1")
        await expect(greeting).to_be_visible()
        # the form comes from the plugin's pydantic model: a required text, an enum, a number
        await expect(field(page, "style")).to_have_js_property("tagName", "SELECT")
        await expect(greeting.locator(".flow-node")).not_to_have_attribute("data-problems", "0")
        await field(page, "name").fill("{{ input.data.who }}")
        await field(page, "style").select_option("shout")
        await field(page, "repeat").fill("9")  # over its maximum of 5
        await expect(page.locator('[data-field="repeat"] .field-error')).to_contain_text("5")
        await field(page, "repeat").fill("2")
        await wire(page, "trigger", "greeting-1")
        await expect(page.get_by_test_id("problems")).to_have_attribute("data-count", "0")
        await shot(page, "editor-06-plugin-form")
        # valid and left alone, the draft saves itself
        await expect(page.get_by_test_id("save-state")).to_have_text("Saved as v2")

        await page.get_by_role("tab", name="Test run").click()
        await page.get_by_label(re.compile("^Trigger input")).fill('{"who": "plugin"}')
        await page.get_by_role("button", name="Run test").click()
        await expect(page.get_by_test_id("test-run")).to_have_attribute(
            "data-status", "succeeded", timeout=20_000
        )
        await expect(greeting.get_by_test_id("node-output")).to_contain_text(
            "HELLO, PLUGIN! HELLO, PLUGIN!"
        )

        # the trigger's data of that run, pinned as the test input, outlives a reload
        await node(page, "trigger").click()
        await page.get_by_role("button", name="Use its data as test input").click()
        test_input = page.get_by_label(re.compile("^Trigger input"))
        await expect(test_input).to_have_value(re.compile(r'"who": "plugin"'))
        await page.get_by_role("button", name="Pin as test data").click()
        await expect(page.get_by_test_id("pinned")).to_be_visible()
        # autosaved: nothing is lost by the reload
        await expect(page.get_by_test_id("save-state")).to_have_text("Saved as v2")
        await page.reload()
        await page.get_by_role("tab", name="Test run").click()
        await expect(test_input).to_have_value(re.compile(r'"who": "plugin"'))
        await expect(page.get_by_test_id("pinned")).to_be_visible()

        # delete it again: selected, then the Delete key
        await greeting.click()
        await page.keyboard.press("Delete")
        await expect(greeting).to_have_count(0)
        await page.keyboard.press("Control+z")
        await expect(greeting).to_be_visible()
        assert not errors, errors


async def test_web_editor_draws_a_30_node_workflow(served: Served) -> None:
    async with client(served) as c:
        r = await c.post("/api/workflows", json=fan_out(branches=8, depth=3))
        assert r.status_code == 201, r.text
        wf_id = r.json()["id"]
    async with browser() as b:
        page, errors = await new_page(b)
        await page.set_viewport_size({"width": 1600, "height": 1000})
        await sign_in(page, served.url, served.key or "", f"/workflows/{wf_id}/edit")
        await expect(page.locator(".react-flow__node")).to_have_count(30)
        await expect(page.get_by_test_id("problems")).to_have_attribute("data-count", "0")
        await page.get_by_role("button", name="Auto-layout").click()
        await page.get_by_role("button", name="Fit", exact=True).click()
        await expect(page.get_by_test_id("problems")).not_to_contain_text("checking")
        path = await shot(page, "editor-07-30-nodes")
        assert path.stat().st_size > 10_000
        assert not errors, errors
