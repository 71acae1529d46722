"""The editor's config forms and views in a real browser against a real `flowmill serve`:
`{{ }}` completion from a test run's and a pin's data, highlighted JavaScript and
Python, the credential picker (only the types a node takes; no secret on the page), the
YAML view kept in step with the canvas, loop bodies and sub-workflows opened from the
canvas (with a test run's iterations and the body's problems on it), and Fit.

Waits are Playwright's auto-retrying ``expect``, never sleeps.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser_support import SCREENSHOTS, browser, new_page, shot, sign_in
from tests.editor_canvas_support import chain, client, fan_out, field, node, open_editor
from tests.serve_support import Served, serve
from tests.stubs_support import eventually

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
async def served(tmp_path: Path, postgres_url: str) -> AsyncIterator[Served]:
    """A server with a vault key, so that credentials can be stored."""
    vault_key = base64.b64encode(bytes(range(32))).decode()
    env = {"FLOWMILL_DATABASE_URL": postgres_url, "FLOWMILL_SECRET_KEYS": f"k1:{vault_key}"}
    async with serve(tmp_path, env=env) as s:
        assert s.key is not None, s.lines
        yield s


SECRET = "tok_live_web_picker_0123456789"


async def created(s: Served, definition: dict[str, Any]) -> str:
    async with client(s) as c:
        r = await c.post("/api/workflows", json=definition)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def greets_back() -> dict[str, Any]:
    return {
        "name": "Greets back",
        "settings": {"variables": {"region": "eu"}},
        "nodes": [
            {"id": "trigger", "type": "trigger", "config": {"triggerType": "manual"}},
            {"id": "shape", "type": "transform",
             "config": {"mapping": {"greeting": "{{ trigger.data.message }}"}}},
            {"id": "reply", "type": "response", "config": {"template": "ok"}},
        ],
        "edges": [{"source": "trigger", "target": "shape"}, {"source": "shape", "target": "reply"}],
    }  # fmt: skip


async def run_test(page: Page, data: str) -> None:
    await page.get_by_role("tab", name="Test run").click()
    await page.get_by_label(re.compile("^Trigger input")).fill(data)
    await page.get_by_role("button", name="Run test").click()
    await expect(page.get_by_test_id("test-run")).to_have_attribute(
        "data-status", "succeeded", timeout=30_000
    )


async def test_web_editor_completes_template_paths_as_you_type(served: Served) -> None:
    wf_id = await created(served, greets_back())
    async with browser() as b:
        page, errors = await new_page(b)
        await sign_in(page, served.url, served.key or "", f"/workflows/{wf_id}/edit")
        await run_test(page, '{"message": "hi"}')

        # the response's template: typing inside {{ lists what the run gave its input
        await node(page, "reply").click()
        template = field(page, "template")
        await template.fill("")
        await template.press_sequentially("Said: {{ inp")
        paths = page.get_by_role("listbox", name="Paths this node can use")
        await expect(paths.get_by_role("option")).to_have_text(["input", "input.greeting"])
        await page.keyboard.press("ArrowDown")
        await expect(paths.get_by_role("option", selected=True)).to_have_text("input.greeting")
        await shot(page, "editor-08-template-completion")
        await page.keyboard.press("Enter")
        await expect(template).to_have_value("Said: {{ input.greeting }}")
        await expect(paths).to_have_count(0)

        # filtered as typed, taken with the mouse; vars and execution are there too
        await template.press_sequentially(" in {{ vars.")
        await expect(paths.get_by_role("option")).to_have_text(["vars.region"])
        # Typed on at once: the completion is in the field when Tab returns (a key typed
        # as it landed once went in at the old caret: "{{ vars.region }}at ... ")
        await page.keyboard.press("Tab")
        await template.press_sequentially(" at {{ execution.st")
        await paths.get_by_role("option", name="execution.started_at").click()
        await expect(template).to_have_value(
            "Said: {{ input.greeting }} in {{ vars.region }} at {{ execution.started_at }}"
        )
        await template.press_sequentially(" {{ zz")
        await expect(paths).to_have_count(0)  # nothing matches: no list
        await template.press("Backspace")
        await template.press("Backspace")
        await page.keyboard.press("Escape")
        await expect(paths).to_have_count(0)

        # a pinned output is offered as soon as it is pinned
        await node(page, "shape").click()
        await page.get_by_role("button", name="Pin this output as test data").click()
        pinned = page.get_by_label(re.compile("^Pinned output"))
        await pinned.fill('{"greeting": "pinned", "mood": "glad"}')
        await node(page, "reply").click()
        await template.fill("")
        await template.press_sequentially("{{ input.m")
        await expect(paths.get_by_role("option")).to_have_text(["input.mood"])
        await page.keyboard.press("Enter")
        await expect(template).to_have_value("{{ input.mood }}")
        assert not errors, errors


async def test_web_editor_highlights_javascript_in_code_fields(served: Served) -> None:
    definition = {
        "name": "Doubles",
        "nodes": [
            {"id": "trigger", "type": "trigger", "config": {"triggerType": "manual"}},
            {"id": "double", "type": "function", "config": {"code": "return { n: 1 };"}},
        ],
        "edges": [{"source": "trigger", "target": "double"}],
    }
    wf_id = await created(served, definition)
    async with browser() as b:
        page, errors = await new_page(b)
        await sign_in(page, served.url, served.key or "", f"/workflows/{wf_id}/edit")
        await node(page, "double").click()
        code = field(page, "code")
        shown = page.get_by_test_id("code-field").locator(".code-highlight")
        await expect(shown.locator(".tok-keyword")).to_have_text(["return"])

        source = (
            '// double it\nconst n = input.data.n * 2;\nreturn { n, label: "twice", ok: true };'
        )
        await code.fill(source)
        await expect(shown.locator(".tok-comment")).to_have_text(["// double it"])
        await expect(shown.locator(".tok-keyword")).to_have_text(["const", "return"])
        await expect(shown.locator(".tok-string")).to_have_text(['"twice"'])
        await expect(shown.locator(".tok-number")).to_have_text(["2"])
        await expect(shown.locator(".tok-literal")).to_have_text(["true"])
        # what is drawn is what is typed, under a textarea whose own text is invisible
        assert (await shown.text_content() or "").rstrip("\n") == source
        await expect(code).to_have_css("color", "rgba(0, 0, 0, 0)")
        plain = await shown.evaluate("e => getComputedStyle(e).color")
        for kind in ("keyword", "string", "comment", "number"):
            colour = await shown.locator(f".tok-{kind}").first.evaluate(
                "e => getComputedStyle(e).color"
            )
            assert colour != plain, kind
        # Tab indents inside the code
        await code.press("Control+End")
        await code.press("Enter")
        await code.press("Tab")
        await expect(code).to_have_value(source + "\n  ")
        await shot(page, "editor-09-code")
        await page.get_by_test_id("code-field").screenshot(
            path=str(SCREENSHOTS / "editor-09b-code-field.png")
        )
        assert not errors, errors


async def test_web_editor_highlights_python_in_a_python_code_node(served: Served) -> None:
    source = (
        "@staticmethod\n"
        "def total(lines):  # the sum\n"
        '    """Add them\n    up."""\n'
        "    return sum(l['amount'] for l in lines) * 1.5 if lines else None\n"
        "return {'total': total(input['data']['lines'])}"
    )
    definition = {
        "name": "Totals",
        "nodes": [
            {"id": "trigger", "type": "trigger", "config": {"triggerType": "manual"}},
            {"id": "sum", "type": "custom_code", "config": {"language": "python", "code": source}},
        ],
        "edges": [{"source": "trigger", "target": "sum"}],
    }  # fmt: skip
    wf_id = await created(served, definition)
    async with browser() as b:
        page, errors = await new_page(b)
        await sign_in(page, served.url, served.key or "", f"/workflows/{wf_id}/edit")
        await node(page, "sum").click()
        code = field(page, "code")
        await expect(code).to_have_attribute("data-language", "python")
        await expect(page.locator('[data-field="code"] label')).to_contain_text("Python")
        shown = page.get_by_test_id("code-field").locator(".code-highlight")
        await expect(shown.locator(".tok-decorator")).to_have_text(["@staticmethod"])
        await expect(shown.locator(".tok-keyword")).to_have_text(
            ["def", "return", "for", "in", "if", "else", "return"]
        )
        await expect(shown.locator(".tok-comment")).to_have_text(["# the sum"])
        await expect(shown.locator(".tok-string")).to_have_text(
            ['"""Add them\n    up."""', "'amount'", "'total'", "'data'", "'lines'"]
        )
        await expect(shown.locator(".tok-number")).to_have_text(["1.5"])
        await expect(shown.locator(".tok-literal")).to_have_text(["None"])
        assert (await shown.text_content() or "").rstrip("\n") == source
        plain = await shown.evaluate("e => getComputedStyle(e).color")
        for kind in ("decorator", "keyword", "string", "comment", "number", "literal"):
            colour = await shown.locator(f".tok-{kind}").first.evaluate(
                "e => getComputedStyle(e).color"
            )
            assert colour != plain, kind
        await page.get_by_test_id("code-field").screenshot(
            path=str(SCREENSHOTS / "editor-09c-python-code-field.png")
        )

        # typed: a comment and a triple-quoted string as Python reads them
        await code.fill("# note\ns = '''a # b'''\nreturn s")
        await expect(shown.locator(".tok-comment")).to_have_text(["# note"])
        await expect(shown.locator(".tok-string")).to_have_text(["'''a # b'''"])

        # the same node set to JavaScript: highlighted as JavaScript at once
        await field(page, "language").select_option("javascript")
        await expect(code).to_have_attribute("data-language", "javascript")
        await code.fill("// js\nconst s = 1;")
        await expect(shown.locator(".tok-comment")).to_have_text(["// js"])
        await expect(shown.locator(".tok-keyword")).to_have_text(["const"])
        assert not errors, errors


async def test_web_editor_picks_a_credential_and_never_shows_its_secret(served: Served) -> None:
    async with client(served) as c:
        r = await c.post(
            "/api/credentials",
            json={"name": "billing-api", "type": "bearer", "data": {"token": SECRET}},
        )
        assert r.status_code == 201, r.text
        hint = r.json()["hint"]
    definition = {
        "name": "Bills",
        "nodes": [
            {"id": "trigger", "type": "trigger", "config": {"triggerType": "manual"}},
            {"id": "call", "type": "http_request",
             "config": {"method": "GET", "url": "http://127.0.0.1:9/bill"}},
        ],
        "edges": [{"source": "trigger", "target": "call"}],
    }  # fmt: skip
    wf_id = await created(served, definition)
    async with browser() as b:
        page, errors = await new_page(b)
        await open_editor(page, served, wf_id)
        await node(page, "call").click()
        picker = field(page, "credential")
        await expect(picker).to_have_js_property("tagName", "SELECT")
        await expect(picker.locator("option", has_text="billing-api (bearer)")).to_have_count(1)
        await picker.select_option(label="billing-api (bearer)")
        await picker.scroll_into_view_if_needed()
        await page.locator('[data-field="credential"]').screenshot(
            path=str(SCREENSHOTS / "editor-10-credential-picker.png")
        )
        await page.get_by_role("tab", name="JSON").click()
        await expect(page.get_by_label("Definition (Flowmill JSON)")).to_contain_text(
            '"credential": "billing-api"'
        )
        html = await page.content()
        assert SECRET not in html
        assert hint and hint not in html, hint

        # a template instead: "Other" gives a text field, and the picker says so
        await page.get_by_role("tab", name="Node").click()
        await picker.select_option(label="Other (a name or a {{ }} template)…")
        other = page.locator('[data-field="credential"] input[type="text"]')
        await other.fill("{{ trigger.data.account }}")
        await expect(picker.locator("option:checked")).to_have_text(
            "Other: {{ trigger.data.account }}"
        )
        await picker.select_option(label="billing-api (bearer)")
        await expect(other).to_have_count(0)
        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page.get_by_test_id("save-state")).to_have_text("Saved as v2")
        async with client(served) as c:
            saved = (await c.get(f"/api/workflows/{wf_id}")).json()["definition"]
        assert saved["nodes"][1]["config"]["credential"] == "billing-api"
        assert not errors, errors


async def test_web_editor_lists_only_the_credentials_of_the_types_a_node_takes(
    served: Served,
) -> None:
    smtp_password = "smtp_pw_web_picker_0123456789"
    async with client(served) as c:
        for body in (
            {"name": "billing-api", "type": "bearer", "data": {"token": SECRET}},
            {"name": "mail-server", "type": "smtp",
             "data": {"host": "smtp.example.com", "username": "ops", "password": smtp_password}},
            {"name": "backup-mail", "type": "smtp", "data": {"host": "smtp2.example.com"}},
        ):  # fmt: skip
            r = await c.post("/api/credentials", json=body)
            assert r.status_code == 201, r.text
    definition = {
        "name": "Mails",
        "nodes": [
            {"id": "trigger", "type": "trigger", "config": {"triggerType": "manual"}},
            # chosen before: a bearer token, which an e-mail node cannot use
            {"id": "mail", "type": "email_send",
             "config": {"credential": "billing-api", "from": "ops@example.com",
                        "to": "{{ trigger.data.to }}", "subject": "Hi"}},
        ],
        "edges": [{"source": "trigger", "target": "mail"}],
    }  # fmt: skip
    wf_id = await created(served, definition)
    async with browser() as b:
        page, errors = await new_page(b)
        await open_editor(page, served, wf_id)
        await node(page, "mail").click()
        picker = field(page, "credential")
        await expect(picker).to_have_attribute("data-credential-types", "smtp")
        box = page.locator('[data-field="credential"]')
        # the chosen one stays, said to be of the wrong type
        await expect(picker.locator("option:checked")).to_have_text("billing-api (bearer)")
        await expect(box.locator(".field-error")).to_have_text(
            "billing-api is a bearer credential; this node takes smtp."
        )
        await picker.select_option(label="mail-server (smtp)")
        # once another is chosen, only the smtp ones are listed, then "Other…"
        await expect(picker.locator("option")).to_have_text(
            [
                "Choose a credential (smtp)…",
                "backup-mail (smtp)",
                "mail-server (smtp)",
                "Other (a name or a {{ }} template)…",
            ]
        )
        await expect(box.locator(".field-error")).to_have_count(0)
        await expect(page.get_by_test_id("credentials-hidden")).to_have_text(
            "1 credential of other types not listed: this node takes smtp."
        )
        await picker.scroll_into_view_if_needed()
        await box.screenshot(path=str(SCREENSHOTS / "editor-10b-credential-picker-by-type.png"))
        # any other name still goes through "Other…"
        await picker.select_option(label="Other (a name or a {{ }} template)…")
        await box.locator('input[type="text"]').fill("{{ vars.mailer }}")
        await expect(picker.locator("option:checked")).to_have_text("Other: {{ vars.mailer }}")
        await picker.select_option(label="backup-mail (smtp)")
        html = await page.content()
        assert SECRET not in html and smtp_password not in html
        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page.get_by_test_id("save-state")).to_have_text("Saved as v2")
        async with client(served) as c:
            saved = (await c.get(f"/api/workflows/{wf_id}")).json()["definition"]
        assert saved["nodes"][1]["config"]["credential"] == "backup-mail"
        assert not errors, errors


async def test_web_editor_edits_the_definition_as_yaml_in_step_with_the_canvas(
    served: Served,
) -> None:
    wf_id = await created(served, {**chain(2), "name": "Two steps"})
    async with browser() as b:
        page, errors = await new_page(b)
        await sign_in(page, served.url, served.key or "", f"/workflows/{wf_id}/edit")
        await expect(page.locator(".react-flow__node")).to_have_count(3)
        await page.get_by_role("tab", name="JSON").click()
        await page.get_by_role("radio", name="YAML").check()
        text = page.get_by_label("Definition (YAML)")
        await expect(text).to_have_value(re.compile(r"^name: Two steps$", re.M))
        await expect(text).to_have_value(re.compile(r"^  - id: step-2$", re.M))

        # a YAML edit redraws the canvas: a renamed workflow, a third step wired in
        yaml = (await text.input_value()).replace("name: Two steps", "name: From YAML")
        yaml = yaml.replace(
            "edges:\n",
            "edges:\n  - source: step-2\n    target: step-3\n",
        ).replace(
            "nodes:\n",
            "nodes:\n  - id: step-3\n    type: noop\n    position: { x: 900, y: 0 }\n",
        )
        await text.fill(yaml)
        await expect(page.get_by_label("Workflow name")).to_have_value("From YAML")
        await expect(page.locator(".react-flow__node")).to_have_count(4)
        await expect(page.locator(".react-flow__edge")).to_have_count(3)
        await expect(page.get_by_test_id("problems")).to_have_attribute("data-count", "0")

        # broken YAML: the line and column, and the canvas keeps the last valid version
        await text.fill(yaml.replace("  - id: step-3", "  - id: [step-3"))
        problem = page.get_by_test_id("definition-error")
        await expect(problem).to_contain_text(re.compile(r"Not valid YAML, line \d+, column \d+"))
        await expect(page.locator(".react-flow__node")).to_have_count(4)
        await shot(page, "editor-11-yaml-error")
        await text.fill(yaml)
        await expect(problem).to_have_count(0)

        # the canvas's changes show in the YAML: a node deleted there (the panel shows
        # the node while one is selected; YAML stays the chosen format)...
        # (step-3 was added past the canvas's right edge: fit first, or the click may
        # land on its last visible pixels, or on the minimap that now shows for it)
        await page.get_by_role("button", name="Fit", exact=True).click()
        await node(page, "step-3").click()
        await expect(node(page, "step-3")).to_have_class(re.compile(r"\bselected\b"))
        await page.keyboard.press("Delete")
        await expect(page.locator(".react-flow__node")).to_have_count(3)
        await page.get_by_role("tab", name="JSON").click()
        await expect(text).not_to_have_value(re.compile("step-3"))
        # ...and back by Undo, while the YAML is open
        await page.get_by_role("button", name="Undo").click()
        await expect(text).to_have_value(re.compile(r"^  - id: step-3$", re.M))
        await shot(page, "editor-12-yaml")
        # and back to JSON, the same definition
        await page.get_by_role("radio", name="JSON").check()
        shown = json.loads(await page.get_by_label("Definition (Flowmill JSON)").input_value())
        assert shown["name"] == "From YAML"
        assert sorted(n["id"] for n in shown["nodes"]) == ["step-1", "step-2", "step-3", "trigger"]
        assert not errors, errors


async def test_web_editor_opens_a_loop_body_and_a_sub_workflow_from_the_canvas(
    served: Served,
) -> None:
    child_id = await created(served, {**chain(1), "name": "Child"})
    body = {
        "nodes": [
            {"id": "each", "type": "trigger", "config": {"triggerType": "manual"}},
            {"id": "price", "type": "transform", "config": {"mapping": {"p": 1}}},
        ],
        "edges": [{"source": "each", "target": "price"}],
    }
    parent = {
        "name": "Parent",
        "nodes": [
            {"id": "trigger", "type": "trigger", "config": {"triggerType": "manual"}},
            {"id": "orders", "type": "loop",
             "config": {"items": "{{ trigger.data.orders }}", "body": body}},
            {"id": "child", "type": "sub_workflow", "config": {"workflow_id": child_id}},
        ],
        "edges": [
            {"source": "trigger", "target": "orders"},
            {"source": "orders", "target": "child"},
        ],
    }  # fmt: skip
    wf_id = await created(served, parent)
    async with browser() as b:
        page, errors = await new_page(b)
        await open_editor(page, served, wf_id)
        # the palette draws these types with icons of their own
        for t in ("loop", "sub_workflow", "wait"):
            icon = page.locator(f'.palette-item[data-node-type="{t}"] .palette-icon')
            await expect(icon).not_to_have_text("◆")

        await expect(node(page, "orders").get_by_test_id("open-body")).to_have_text(
            "Open body (2 nodes) ↘"
        )
        await shot(page, "editor-13a-loop-and-sub-workflow")
        await node(page, "orders").get_by_test_id("open-body").click()
        await expect(page.get_by_test_id("scope-bar")).to_contain_text("orders: body")
        await expect(page.locator(".react-flow__node")).to_have_count(2)
        await node(page, "price").click()
        # inside a body, templates also see the iteration's item
        await field(page, "mapping").fill("")
        await field(page, "mapping").press_sequentially("{{ ite")
        paths = page.get_by_role("listbox", name="Paths this node can use")
        await expect(paths.get_by_role("option").first).to_have_text("item")
        await page.keyboard.press("Escape")
        await field(page, "mapping").fill('{"p": 2}')
        await shot(page, "editor-13-loop-body")
        await page.get_by_role("button", name="Back to the workflow").click()
        await expect(page.get_by_test_id("scope-bar")).to_have_count(0)
        await expect(page.locator(".react-flow__node")).to_have_count(3)
        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page.get_by_test_id("save-state")).to_have_text("Saved as v2")
        async with client(served) as c:
            saved = (await c.get(f"/api/workflows/{wf_id}")).json()["definition"]
        price = saved["nodes"][1]["config"]["body"]["nodes"][1]
        assert price["config"]["mapping"] == {"p": 2}

        # a double-click opens the body too; undoing the loop away leaves the body
        await node(page, "orders").dblclick()
        await expect(page.get_by_test_id("scope-bar")).to_be_visible()
        await page.get_by_test_id("scope-bar").get_by_role("button", name="Parent").click()
        await expect(page.get_by_test_id("scope-bar")).to_have_count(0)

        # the sub-workflow node opens the workflow it runs
        await node(page, "child").get_by_test_id("open-workflow").click()
        await expect(page).to_have_url(re.compile(f"/workflows/{child_id}/edit$"))
        await expect(page.get_by_label("Workflow name")).to_have_value("Child")
        await expect(page.locator(".react-flow__node")).to_have_count(2)
        assert not errors, errors


FITTED = """() => {
    const pane = document.querySelector('.editor-canvas .react-flow').getBoundingClientRect();
    const boxes = [...document.querySelectorAll('.react-flow__node')]
        .map(n => n.getBoundingClientRect());
    const left = Math.min(...boxes.map(b => b.left));
    const right = Math.max(...boxes.map(b => b.right));
    const top = Math.min(...boxes.map(b => b.top));
    const bottom = Math.max(...boxes.map(b => b.bottom));
    const viewport = document.querySelector('.react-flow__viewport').style.transform;
    return {
        zoom: Number(/scale\\(([\\d.]+)\\)/.exec(viewport)[1]),
        width: (right - left) / pane.width,
        height: (bottom - top) / pane.height,
        inside: Number(left >= pane.left && right <= pane.right
                       && top >= pane.top && bottom <= pane.bottom),
    };
}"""


async def fitted(page: Page) -> dict[str, float]:
    """The zoom, and how much of the canvas the nodes' box spans."""
    return dict(await page.evaluate(FITTED))


async def test_web_editor_shows_a_test_run_and_problems_inside_a_loop_body(
    served: Served,
) -> None:
    body = {
        "nodes": [
            {"id": "each", "type": "trigger", "config": {"triggerType": "manual"}},
            {"id": "price", "type": "transform", "config": {"mapping": {"seen": "{{ item }}"}}},
        ],
        "edges": [{"source": "each", "target": "price"}],
    }
    definition = {
        "name": "Prices",
        "nodes": [
            {"id": "trigger", "type": "trigger", "config": {"triggerType": "manual"}},
            {"id": "orders", "type": "loop",
             "config": {"items": "{{ trigger.data.orders }}", "body": body}},
        ],
        "edges": [{"source": "trigger", "target": "orders"}],
    }  # fmt: skip
    wf_id = await created(served, definition)
    async with browser() as b:
        page, errors = await new_page(b)
        await open_editor(page, served, wf_id)
        await run_test(page, '{"orders": [51, 73]}')

        # inside the body: the run's first iteration on the canvas, any other on demand
        await node(page, "orders").get_by_test_id("open-body").click()
        iteration = page.get_by_label("Iteration of orders")
        await expect(iteration.locator("option")).to_have_text(
            ["0 · succeeded", "1 · succeeded"], timeout=15_000
        )
        await expect(iteration).to_have_value("0")
        price = node(page, "price")
        await expect(price.locator(".flow-node")).to_have_attribute("data-status", "succeeded")
        await expect(price.get_by_test_id("node-output")).to_contain_text("51")
        await iteration.select_option("1")
        await expect(price.get_by_test_id("node-output")).to_contain_text("73")
        await price.click()
        panel = page.get_by_test_id("node-panel")
        await expect(panel).to_contain_text("Test run, orders item 1: succeeded")
        pin = panel.get_by_role("button", name="Pin this output as test data")
        await expect(pin).to_have_count(0)  # an iteration's output is no test data
        await shot(page, "editor-13c-loop-body-test-run")

        # a problem in the body shows on the body's node and field, as at the top
        await field(page, "mapping").fill("not a mapping")
        await expect(price.locator(".flow-node")).to_have_attribute("data-problems", "1")
        await expect(page.locator('[data-field="mapping"] .field-error')).to_have_count(1)
        listed = page.get_by_test_id("problems").get_by_role("button", name="orders \u203a price")
        await expect(listed).to_have_count(1)
        # from the top, the problem's link opens the body with its node selected
        await page.get_by_role("button", name="Back to the workflow").click()
        await expect(node(page, "orders").locator(".flow-node")).to_have_attribute(
            "data-problems", "1"
        )
        await listed.click()
        await expect(page.get_by_test_id("scope-bar")).to_contain_text("orders: body")
        await expect(panel).to_have_attribute("data-node-id", "price")
        await field(page, "mapping").fill('{"seen": "{{ item }}"}')
        await expect(page.get_by_test_id("problems")).to_have_attribute("data-count", "0")
        await expect(price.locator(".flow-node")).to_have_attribute("data-problems", "0")
        assert not errors, errors


async def test_web_editor_fit_fills_the_canvas_and_far_out_skips_unreadable_text(
    served: Served,
) -> None:
    big = await created(served, fan_out(branches=8, depth=3))
    small = await created(served, chain(1))
    async with browser() as b:
        page, errors = await new_page(b)
        await sign_in(page, served.url, served.key or "", f"/workflows/{big}/edit")
        await expect(page.locator(".react-flow__node")).to_have_count(30)
        await page.get_by_role("button", name="Auto-layout").click()
        await page.get_by_role("button", name="Fit", exact=True).click()
        # the wider side of the graph spans the canvas but for the fixed margins
        f = await eventually(lambda: _filled(page), timeout=10)
        assert f["inside"] == 1, f
        await shot(page, "editor-14-fit-30-nodes")
        # this far out (zoom ~0.3) the type lines are too small to read: not drawn
        canvas = page.locator(".editor-canvas")
        await expect(canvas).to_have_attribute("data-detail", "far")
        await expect(node(page, "check").locator(".flow-node-meta")).to_be_hidden()
        await expect(node(page, "check").locator(".flow-node-name")).to_be_visible()

        await page.goto(f"{served.url}/workflows/{small}/edit")
        await expect(page.locator(".react-flow__node")).to_have_count(2)
        await page.get_by_role("button", name="Fit", exact=True).click()
        f = await fitted(page)
        assert f["zoom"] == 1 and f["inside"] == 1, f  # its real size, not enlarged
        await expect(page.locator(".editor-canvas")).to_have_attribute("data-detail", "near")
        await expect(node(page, "step-1").locator(".flow-node-meta")).to_be_visible()
        assert not errors, errors


async def _filled(page: Page) -> dict[str, float] | None:
    f = await fitted(page)
    return f if max(f["width"], f["height"]) >= 0.92 else None
