"""Helpers of the editor's browser tests: the canvas driven with the mouse, and the
definitions drawn (a chain, a 30-node fan-out)."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import Locator, Page

from tests.browser_support import sign_in
from tests.serve_support import Served


def client(s: Served) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=s.url, headers={"Authorization": f"Bearer {s.key}"}, timeout=30
    )


async def open_editor(page: Page, s: Served, wf_id: str) -> None:
    """Sign in straight into the workflow's editor, with autosave off: the test saves
    once, by the button, and knows which version it made."""
    await sign_in(page, s.url, s.key or "", f"/workflows/{wf_id}/edit")
    await page.get_by_label("Autosave").uncheck()


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
    return page.locator(f'[data-testid="node-panel"] [data-field="{name}"] [id^="f-"]')


def chain(n: int) -> dict[str, Any]:
    """A manual trigger and ``n`` transform steps in a row."""
    nodes: list[dict[str, Any]] = [
        {"id": "trigger", "type": "trigger", "config": {"triggerType": "manual"}}
    ]
    edges = []
    for i in range(1, n + 1):
        nodes.append({"id": f"step-{i}", "type": "transform", "config": {"mapping": {"i": i}}})
        edges.append({"source": nodes[-2]["id"], "target": f"step-{i}"})
    return {"name": f"{n} steps", "nodes": nodes, "edges": edges}


def fan_out(branches: int, depth: int) -> dict[str, Any]:
    """A webhook trigger, a switch with ``branches`` outputs (cases and its default),
    each a chain of ``depth`` transforms, merged, noted and answered:
    ``branches * depth + 6`` nodes."""
    cases = [{"handle": f"kind-{i}", "equals": i} for i in range(1, branches)]
    nodes: list[dict[str, Any]] = [
        {"id": "hook", "name": "Order received", "type": "trigger",
         "config": {"triggerType": "webhook", "actionType": "order"}},
        {"id": "check", "name": "Check", "type": "noop", "config": {}},
        {"id": "note", "name": "Note", "type": "transform", "config": {"mapping": {"ok": True}}},
        {"id": "route", "name": "By kind", "type": "switch",
         "config": {"value": "{{ input.data.kind }}", "cases": cases}},
        {"id": "join", "name": "Join", "type": "merge", "join": "any", "config": {}},
        {"id": "answer", "name": "Answer", "type": "response",
         "config": {"template": "done: {{ input }}"}},
    ]  # fmt: skip
    edges: list[dict[str, Any]] = [
        {"source": "hook", "target": "check"},
        {"source": "check", "target": "route"},
        {"source": "join", "target": "note"},
        {"source": "note", "target": "answer"},
    ]
    for b, handle in enumerate([c["handle"] for c in cases] + ["default"]):
        previous, via = "route", handle
        for d in range(depth):
            step = f"b{b}-s{d}"
            nodes.append(
                {"id": step, "name": f"{handle} step {d + 1}", "type": "transform",
                 "config": {"mapping": {"step": d, "kind": handle}}}
            )  # fmt: skip
            edge: dict[str, Any] = {"source": previous, "target": step}
            if via:
                edge["sourceHandle"] = via
            edges.append(edge)
            previous, via = step, None
        edges.append({"source": previous, "target": "join"})
    return {"name": "Orders by kind (30 nodes)", "nodes": nodes, "edges": edges}
