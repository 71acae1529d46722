"""The web app in a real browser against a real `flowmill serve` (PostgreSQL, the
embedded engine): what a user does, clicked through, with a screenshot of each page.

Screenshots land in ``tests/acceptance/screenshots/`` (git-ignored) for a person to look
at. Waits are Playwright's auto-retrying ``expect`` with a deadline, never sleeps.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.api_support import FAILING
from tests.browser_support import browser, new_page, shot, sign_in
from tests.conftest import ROOT
from tests.serve_support import Served, cli, last_line, serve
from tests.webhook_support import SEED

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DELAYED: dict[str, Any] = {
    # Long enough that a loaded machine still connects the page's stream before it ends.
    "name": "Waits five seconds",
    "nodes": [
        {"id": "start", "type": "trigger", "config": {"triggerType": "manual"}},
        {"id": "pause", "name": "Five seconds", "type": "delay", "config": {"ms": 5000}},
        {"id": "done", "type": "transform", "config": {"mapping": {"ok": True}}},
    ],
    "edges": [{"source": "start", "target": "pause"}, {"source": "pause", "target": "done"}],
}


@pytest.fixture
async def served(tmp_path: Path, postgres_url: str) -> AsyncIterator[Served]:
    async with serve(tmp_path, env={"FLOWMILL_DATABASE_URL": postgres_url}) as s:
        assert s.key is not None, s.lines
        yield s


def client(s: Served, key: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=s.url, headers={"Authorization": f"Bearer {key or s.key}"}, timeout=30
    )


async def assert_clean(page: Page, errors: list[str]) -> None:
    """No uncaught exception or console error, and the key never in the URL."""
    assert not errors, errors
    assert "fm_" not in page.url


async def test_web_app_imports_publishes_and_shows_a_webhook_execution(
    served: Served, tmp_path: Path
) -> None:
    draft = {**json.loads(SEED.read_text()), "status": "draft"}  # so that we publish it
    seed_file = tmp_path / "seed-webhook-test.json"
    seed_file.write_text(json.dumps(draft))
    async with browser() as b:
        page, errors = await new_page(b)
        await sign_in(page, served.url, served.key or "", "/workflows")
        await expect(page.get_by_text("No workflows yet.")).to_be_visible()
        await shot(page, "01-workflows-empty")

        # import the seed example (as a draft) and publish it
        await page.get_by_test_id("import-file").set_input_files(str(seed_file))
        await expect(page.get_by_role("heading", name=re.compile("Test Workflow"))).to_be_visible()
        graph = page.locator(".react-flow")
        for node in ("trigger-1", "process-1", "response-1"):
            await expect(graph.locator(f'[data-node-id="{node}"]')).to_be_visible()
        await expect(page.locator(".react-flow__edge")).to_have_count(2)
        await page.get_by_role("button", name="Publish v1").click()
        await expect(page.get_by_text("Version 1 is live")).to_be_visible()
        await shot(page, "02-workflow-graph")

        # its webhook URL, with a copy button, on the Triggers tab
        await page.get_by_role("tab", name="Triggers").click()
        url_box = page.locator("code.url").first
        await expect(url_box).to_contain_text("/webhooks/")
        await expect(page.get_by_role("button", name=re.compile("^Copy URL"))).to_be_visible()
        hook_url = (await url_box.inner_text()).strip()
        await shot(page, "03-workflow-triggers")

        # a sender calls the webhook; the execution appears in the list by itself
        await page.get_by_role("link", name="Executions", exact=True).click()
        await expect(page.get_by_text("No executions yet.")).to_be_visible()
        async with httpx.AsyncClient(timeout=30) as c:
            r = await c.post(hook_url, json={"message": "from the browser test"})
        assert r.status_code in (200, 202), r.text
        row = page.locator("tr[data-execution-id]").first
        await expect(row).to_be_visible(timeout=15_000)
        await expect(row.locator(".status")).to_have_text("succeeded", timeout=15_000)
        await expect(row).to_contain_text("Test Workflow")
        await shot(page, "04-executions")

        # open it: nodes coloured, output shown
        await row.locator("a.mono").click()
        await expect(page.get_by_test_id("execution-status")).to_have_text("succeeded")
        for node in ("trigger-1", "process-1", "response-1"):
            await expect(page.locator(f'.react-flow [data-node-id="{node}"]')).to_have_attribute(
                "data-status", "succeeded"
            )
        await expect(page.locator(".gantt-bar")).to_have_count(3)
        await expect(page.get_by_label("execution output")).to_contain_text(
            "The processed result is: from the browser test processed"
        )
        await shot(page, "05-execution")
        execution_url = page.url

        # a deep link survives a reload (the session keeps the key, the URL does not)
        await page.reload()
        await expect(page.get_by_test_id("execution-status")).to_have_text("succeeded")
        assert page.url == execution_url

        # the webhook event with its verification result on the workflow page
        await page.locator(".facts").get_by_role("link", name="Test Workflow").click()
        await page.get_by_role("tab", name="Webhook events").click()
        await expect(page.locator("tr[data-event-id]")).to_have_count(1)
        await expect(page.locator("tr[data-event-id]")).to_contain_text("processed")
        await shot(page, "06-workflow-webhook-events")

        await page.goto(served.url + "/workflows")
        wf_row = page.locator("tr[data-workflow-id]").first
        await expect(wf_row).to_contain_text("100 %")
        await shot(page, "07-workflows")
        await assert_clean(page, errors)


# The live test's own: at load 5-6 (CI beside bench/distributed.py) the page's stream took
# more than five seconds to connect, and with a five-second delay the execution could end
# before the page ever followed it live.
SLOW_DELAYED: dict[str, Any] = {
    **DELAYED,
    "name": "Waits fifteen seconds",
    "nodes": [
        DELAYED["nodes"][0],
        {"id": "pause", "name": "Fifteen seconds", "type": "delay", "config": {"ms": 15_000}},
        DELAYED["nodes"][2],
    ],
}


async def test_web_app_follows_a_delayed_execution_live_until_it_succeeds(served: Served) -> None:
    async with client(served) as c:
        body = {**SLOW_DELAYED, "status": "active"}
        wf = (await c.post("/api/workflows", json=body)).json()["id"]
    async with browser() as b:
        page, errors = await new_page(b, dark=True)
        await sign_in(page, served.url, served.key or "", f"/workflows/{wf}?tab=run")
        await expect(page.get_by_text("Valid JSON")).to_be_visible()
        editor = page.get_by_label(re.compile("^Input"))
        await editor.fill('{"broken": ')
        await expect(page.get_by_text(re.compile("^Not valid JSON"))).to_be_visible()
        await expect(page.get_by_role("button", name="Run", exact=True)).to_be_disabled()
        await editor.fill('{"n": 1}')
        await page.get_by_role("button", name="Run", exact=True).click()

        # the execution page: live while the delay waits, then succeeded, no reload
        status = page.get_by_test_id("execution-status")
        await expect(status).to_have_text(re.compile("^(pending|queued|running|waiting)$"))
        await page.evaluate("window.__sameDocument = true")
        await expect(page.get_by_test_id("stream-state")).to_contain_text(
            "following live", timeout=12_000
        )
        await shot(page, "08-execution-live-dark")
        await expect(status).to_have_text("succeeded", timeout=40_000)
        await expect(page.locator('.react-flow [data-node-id="done"]')).to_have_attribute(
            "data-status", "succeeded"
        )
        assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        await shot(page, "09-execution-succeeded-dark")
        await assert_clean(page, errors)


async def test_web_app_finds_a_failed_execution_by_filter_and_retries_it(served: Served) -> None:
    async with client(served) as c:
        ok = await c.post("/api/workflows", json={**DELAYED, "name": "Fine", "status": "active"})
        bad = (await c.post("/api/workflows", json={**FAILING, "status": "active"})).json()["id"]
        for _ in range(2):
            r = await c.post(f"/api/workflows/{ok.json()['id']}/execute", json={"input": {}})
            assert r.status_code == 202
        r = await c.post(
            f"/api/workflows/{bad}/execute", params={"wait": 10}, json={"input": {"x": 1}}
        )
        failed = r.json()
        assert failed["status"] == "failed", failed
    async with browser() as b:
        page, errors = await new_page(b)
        await sign_in(page, served.url, served.key or "", "/executions")
        await expect(page.locator("tr[data-execution-id]")).to_have_count(3)
        await page.get_by_role("checkbox", name="failed").check()
        await expect(page).to_have_url(re.compile(r"status=failed"))
        rows = page.locator("tr[data-execution-id]")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-execution-id", failed["id"])
        await shot(page, "10-executions-filtered-failed")

        await rows.first.locator("a.mono").click()
        await expect(page.get_by_test_id("execution-status")).to_have_text("failed")
        await expect(page.locator('.step[data-node-id="boom"]')).to_have_attribute("open", "")
        await expect(page.get_by_label("boom error")).to_contain_text("no")
        await shot(page, "11-execution-failed")
        await page.get_by_role("button", name="Retry from failed").click()
        await expect(page).not_to_have_url(re.compile(failed["id"]))
        await expect(page.locator(".facts")).to_contain_text("Retry of")
        await expect(page.get_by_test_id("execution-status")).to_have_text("failed")
        new_id = page.url.rsplit("/", 1)[-1]
        async with client(served) as c:
            retried = (await c.get(f"/api/executions/{new_id}")).json()
        assert retried["retry_of"] == failed["id"]
        # the succeeded nodes were reused, the failed one ran again
        assert [n["node_id"] for n in retried["nodes"]][-1] == "boom"

        # a graph with branches and an error route: labelled handles, a dashed red edge
        async with client(served) as c:
            doc = json.loads((ROOT / "examples" / "graph-branch-join.json").read_text())
            branchy = (await c.post("/api/workflows", json=doc)).json()["id"]
        await page.goto(f"{served.url}/workflows/{branchy}")
        labels = page.locator(".react-flow__edge-text")
        await expect(labels.filter(has_text="true")).to_have_count(2)
        await expect(labels.filter(has_text="false")).to_have_count(1)
        await expect(labels.filter(has_text="error")).to_have_count(1)
        await expect(page.locator(".react-flow__edge.edge-error")).to_have_count(1)
        await expect(page.locator(".react-flow__handle.handle-error")).to_have_count(1)
        await shot(page, "15-workflow-graph-branches")

        await page.get_by_role("link", name="Analytics").click()
        await expect(page.get_by_role("heading", name="Executions over time")).to_be_visible(
            timeout=30_000
        )
        await expect(page.get_by_role("heading", name="Most failing nodes")).to_be_visible()
        await expect(page.locator("section", has_text="Most failing nodes")).to_contain_text("boom")
        await shot(page, "12-analytics")
        await page.get_by_role("link", name="Operations").click()
        await expect(page.locator('[data-queue="in-process"]')).to_be_visible()
        await expect(page.get_by_text("alive")).to_be_visible()
        await shot(page, "13-operations-queues")
        await page.get_by_role("tab", name="API keys").click()
        await expect(page.locator("td.mono").first).to_contain_text("fm_")
        await shot(page, "14-operations-keys")
        await assert_clean(page, errors)


async def test_web_app_refuses_a_wrong_key_with_a_clear_message(served: Served) -> None:
    async with browser() as b:
        page, errors = await new_page(b)
        await page.goto(served.url + "/executions")
        await page.get_by_label("API key or JWT").fill("fm_00000000_" + "0" * 48)
        await page.get_by_role("button", name="Sign in").click()
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("This API key was refused")
        await expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
        assert await page.evaluate("sessionStorage.length") == 0
        await shot(page, "00-sign-in-refused")
        # the right key then works, on the page that was asked for
        await page.get_by_label("API key or JWT").fill(served.key or "")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Executions")).to_be_visible()
        assert page.url.endswith("/executions")
        # the 401 of the refused key is the browser's own log line, not the app's error
        await assert_clean(page, [e for e in errors if "401" not in e])


async def test_web_app_never_shows_another_tenants_workflows_or_executions(
    served: Served, tmp_path: Path, postgres_url: str
) -> None:
    env = {"FLOWMILL_DATABASE_URL": postgres_url}
    other = last_line(await cli(tmp_path, "tenants", "create", "Other Corp", env=env))
    other_key = last_line(await cli(tmp_path, "keys", "create", "--tenant", other, env=env))
    async with client(served, other_key) as c:
        theirs = (
            await c.post(
                "/api/workflows", json={**FAILING, "name": "Their secret", "status": "active"}
            )
        ).json()["id"]
        their_run = (
            await c.post(
                f"/api/workflows/{theirs}/execute", params={"wait": 10}, json={"input": {}}
            )
        ).json()["id"]
    async with client(served) as c:
        mine = (
            await c.post("/api/workflows", json={**FAILING, "name": "Mine", "status": "active"})
        ).json()["id"]
        my_run = (
            await c.post(f"/api/workflows/{mine}/execute", params={"wait": 10}, json={"input": {}})
        ).json()["id"]
    async with browser() as b:
        page, errors = await new_page(b)
        await sign_in(page, served.url, served.key or "", "/workflows")
        await expect(page.locator("tr[data-workflow-id]")).to_have_count(1)
        await expect(page.locator("tbody")).to_contain_text("Mine")
        await expect(page.locator("body")).not_to_contain_text("Their secret")
        await page.get_by_role("link", name="Executions", exact=True).click()
        await expect(page.locator("tr[data-execution-id]")).to_have_count(1)
        await expect(page.locator("tr[data-execution-id]")).to_have_attribute(
            "data-execution-id", my_run
        )
        await expect(page.locator(f'[data-execution-id="{their_run}"]')).to_have_count(0)
        # deep links to the other tenant's objects are "not found", not their data
        await page.goto(f"{served.url}/executions/{their_run}")
        await expect(page.get_by_role("alert")).to_contain_text("Not found")
        await page.goto(f"{served.url}/workflows/{theirs}")
        await expect(page.get_by_role("alert")).to_contain_text("Not found")
        await expect(page.locator("body")).not_to_contain_text("Their secret")
        await page.goto(f"{served.url}/analytics")
        await expect(page.get_by_role("heading", name="Executions over time")).to_be_visible(
            timeout=30_000
        )
        await expect(page.locator(".cards .stat-n").first).to_have_text("1")
    assert all("404" in e for e in errors), errors
