"""Loop, sub_workflow and wait nodes on real databases: SQLite and PostgreSQL, same
tables of cases as the unit tests, plus restarts (a parked parent or wait survives
its process) and the API routes (children, signals, resume URLs)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from flowmill.config import Settings
from flowmill.domain.states import ExecutionStatus as X
from flowmill.runs import register
from flowmill.runtime import Runtime, open_runtime
from flowmill.store.tables import workflow_executions
from flowmill.testing import eventually
from tests.api_support import Api


@contextlib.asynccontextmanager
async def runtime(url: str, **overrides: Any) -> AsyncIterator[Runtime]:
    settings = Settings(database_url=url, sweep_interval_s=0.05, control_poll_s=5, **overrides)
    async with open_runtime(settings) as rt:
        yield rt


async def start(rt: Runtime, doc: dict[str, Any], data: Any) -> str:
    wf_id, version, tenant = await register(rt, doc, None)
    return await rt.engine.start_execution(
        tenant_id=tenant, workflow_id=wf_id, version=version, data=data
    )


async def children(rt: Runtime, parent_id: str) -> list[tuple[int | None, str]]:
    we = workflow_executions
    q = (
        sa.select(we.c.iteration, we.c.status)
        .where(we.c.parent_execution_id == parent_id)
        .order_by(we.c.iteration)
    )
    return [(r[0], r[1]) for r in await rt.db.read(lambda c: c.execute(q).all())]


def body(*nodes: dict[str, Any], edges: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"nodes": list(nodes), "edges": edges or []}


DOUBLE = {"id": "double", "type": "transform", "config": {"mapping": {"v": "{{item}}"}}}
CHECKED = body(
    {
        "id": "check",
        "type": "conditional",
        "config": {"condition": {"left": "{{item}}", "op": "<", "right": 0}},
    },
    {"id": "boom", "type": "fail", "config": {"message": "negative {{item}}"}},
    {"id": "ok", "type": "transform", "config": {"mapping": {"v": "{{item}}"}}},
    edges=[
        {"source": "check", "target": "boom", "sourceHandle": "true"},
        {"source": "check", "target": "ok", "sourceHandle": "false"},
    ],
)


def looping(name: str, **config: Any) -> dict[str, Any]:
    node = {"id": "each", "type": "loop", "config": {"items": "{{data.xs}}", **config}}
    return {
        "name": name,
        "nodes": [{"id": "t", "type": "trigger"}, node],
        "edges": [{"source": "t", "target": "each"}],
    }


INNER = {"id": "inner", "type": "loop", "config": {"items": "{{item}}", "body": body(DOUBLE)}}
LOOPS = [
    # (name, config, items, status, output or error type)
    ("sequential", {"body": body(DOUBLE)}, [3, 1, 2], X.SUCCEEDED, [{"v": 3}, {"v": 1}, {"v": 2}]),
    (
        "parallel",
        {"body": body(DOUBLE), "mode": "parallel", "concurrency": 3},
        list(range(10)),
        X.SUCCEEDED,
        [{"v": i} for i in range(10)],
    ),
    ("empty", {"body": body(DOUBLE)}, [], X.SUCCEEDED, []),
    (
        "nested",
        {"body": body(INNER), "mode": "parallel"},
        [[1, 2], [], [3]],
        X.SUCCEEDED,
        [[{"v": 1}, {"v": 2}], [], [{"v": 3}]],
    ),
    (
        "max-iterations",
        {"body": body(DOUBLE), "max_iterations": 2},
        [1, 2, 3],
        X.FAILED,
        "MaxIterationsExceeded",
    ),
    ("item-fails", {"body": CHECKED, "mode": "parallel"}, [1, -2, 3], X.FAILED, "ChildFailed"),
    (
        "item-continues",
        {"body": CHECKED, "on_item_error": "continue"},
        [1, -2, 3],
        X.SUCCEEDED,
        {"results": [{"v": 1}, None, {"v": 3}]},
    ),
]


async def test_loop_cases_on_each_database(database_url: str) -> None:
    async with runtime(database_url) as rt, rt.engine.running():
        for name, config, items, status, expected in LOOPS:
            execution_id = await start(rt, looping(name, **config), {"xs": items})
            ex = await rt.engine.wait(execution_id, timeout=20)
            assert ex.status is status, (name, ex.error)
            if status is X.FAILED:
                assert ex.error is not None and ex.error["type"] == expected, (name, ex.error)
                continue
            if isinstance(expected, dict):
                assert ex.output["results"] == expected["results"], name
                assert [e["index"] for e in ex.output["errors"]] == [1], name
            else:
                assert ex.output == expected, name
            kids = await children(rt, execution_id)
            assert [k[0] for k in kids] == list(range(len(items))), name  # once each


COUNTER = body({"id": "n", "type": "transform", "config": {"mapping": {"n": "{{index}}"}}})
JS_WHILE = [
    # (name, while, max_iterations, status, output or error type)
    ("sees-last", "last === null || last.n < 3", 10, X.SUCCEEDED, [{"n": i} for i in range(4)]),
    ("sees-index-and-input", "index < input.data.stop", 10, X.SUCCEEDED, [{"n": 0}, {"n": 1}]),
    ("max-iterations", "true", 3, X.FAILED, "MaxIterationsExceeded"),
]


async def test_loop_while_javascript_runs_in_the_sandbox_on_each_database(
    database_url: str,
) -> None:
    async with runtime(database_url) as rt, rt.engine.running():
        for name, condition, cap, status, expected in JS_WHILE:
            node = {
                "id": "again",
                "type": "loop",
                "config": {"while": condition, "max_iterations": cap, "body": COUNTER},
            }
            doc = {
                "name": f"js-while-{name}",
                "nodes": [{"id": "t", "type": "trigger"}, node],
                "edges": [{"source": "t", "target": "again"}],
            }
            execution_id = await start(rt, doc, {"stop": 2})
            ex = await rt.engine.wait(execution_id, timeout=30)
            assert ex.status is status, (name, ex.error)
            if status is X.FAILED:
                assert ex.error is not None and ex.error["type"] == expected, (name, ex.error)
                assert len(await children(rt, execution_id)) == cap, name
                continue
            assert ex.output == expected, name


def calling(name: str, **config: Any) -> dict[str, Any]:
    node = {"id": "call", "type": "sub_workflow", "config": {"input": "{{data}}", **config}}
    return {
        "name": name,
        "nodes": [{"id": "t", "type": "trigger"}, node],
        "edges": [{"source": "t", "target": "call"}],
    }


CHILD = {
    "name": "child",
    "status": "active",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "n", "type": "transform", "config": {"mapping": {"n": "{{data.n}}"}}},
    ],
    "edges": [{"source": "t", "target": "n"}],
}
BROKEN = {
    "name": "broken child",
    "status": "active",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "boom", "type": "fail", "config": {"message": "child broke"}},
    ],
    "edges": [{"source": "t", "target": "boom"}],
}


async def test_subworkflow_cases_on_each_database(database_url: str) -> None:
    async with runtime(database_url, max_child_depth=3) as rt, rt.engine.running():
        child_id, _, _ = await register(rt, CHILD, None)
        broken_id, _, _ = await register(rt, BROKEN, None)
        waited = await start(rt, calling("waits", workflow_id=child_id), {"n": 5})
        ex = await rt.engine.wait(waited, timeout=10)
        assert ex.status is X.SUCCEEDED and ex.output == {"n": 5}

        fired = await start(rt, calling("fires", workflow_id=child_id, wait=False), {"n": 6})
        ex = await rt.engine.wait(fired, timeout=10)
        kid = await rt.engine.wait(ex.output["execution_id"], timeout=10)
        assert (kid.output, kid.parent_execution_id, kid.parent_node_id) == (
            {"n": 6},
            fired,
            "call",
        )

        failed = await start(rt, calling("propagates", workflow_id=broken_id), {})
        ex = await rt.engine.wait(failed, timeout=10)
        assert ex.status is X.FAILED and ex.error is not None
        assert ex.error["type"] == "ChildFailed" and "child broke" in ex.error["message"]

        junk = await start(rt, calling("not an id", workflow_id="{{data.id}}"), {"id": "x y"})
        ex = await rt.engine.wait(junk, timeout=10)
        assert ex.error is not None and ex.error["type"] == "SubWorkflowNotFound"

        doc = calling("recurses", workflow_id="{{trigger.data.me}}")
        doc["status"] = "active"
        me, _, tenant = await register(rt, doc, None)
        top = await rt.engine.start_execution(
            tenant_id=tenant, workflow_id=me, version=1, data={"me": me}
        )
        ex = await rt.engine.wait(top, timeout=10)
        assert ex.status is X.FAILED and ex.error is not None
        assert "over the limit of 3" in ex.error["message"]


def approval(name: str, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "pause", "type": "delay", "config": {"ms": "{{data.delay}}"}},
            {"id": "approve", "type": "wait", "config": config},
            {"id": "after", "type": "transform", "config": {"mapping": {"got": "{{input}}"}}},
        ],
        "edges": [
            {"source": "t", "target": "pause"},
            {"source": "pause", "target": "approve"},
            {"source": "approve", "target": "after"},
        ],
    }


async def _parked(rt: Runtime, execution_id: str) -> bool:
    ex = await rt.executions.get_execution(execution_id)
    runs = await rt.executions.node_runs(execution_id)
    return ex is not None and ex.status is X.WAITING and any(r.node_id == "approve" for r in runs)


async def test_wait_signals_and_timeouts_on_each_database(database_url: str) -> None:
    async with runtime(database_url) as rt, rt.engine.running():
        engine = rt.engine
        before = await start(rt, approval("before", signal="go"), {"delay": 400})
        assert await engine.signals.send("default", before, "go", {"n": 1})
        during = await start(rt, approval("during", signal="go"), {"delay": 0})
        await eventually(lambda: _parked(rt, during), 10, "the wait parked")
        assert await engine.signals.send("default", during, "go", {"n": 2})
        for execution_id, n in ((before, 1), (during, 2)):
            ex = await engine.wait(execution_id, timeout=10)
            assert ex.status is X.SUCCEEDED and ex.output == {"got": {"n": n}}
        assert not await engine.signals.send("default", during, "go", {})  # after: refused

        fails = await start(rt, approval("times out", timeout=0.2), {"delay": 0})
        goes_on = await start(
            rt,
            approval("goes on", timeout=0.2, on_timeout="continue", default="late"),
            {"delay": 0},
        )
        ex = await engine.wait(fails, timeout=10)
        assert ex.status is X.FAILED and ex.error is not None and ex.error["type"] == "WaitTimeout"
        ex = await engine.wait(goes_on, timeout=10)
        assert ex.status is X.SUCCEEDED and ex.output == {"got": "late"}


async def test_wait_and_loop_survive_a_restart(database_url: str) -> None:
    slow = body(
        {"id": "nap", "type": "delay", "config": {"ms": 300}},
        DOUBLE,
        edges=[{"source": "nap", "target": "double"}],
    )
    async with runtime(database_url) as rt, rt.engine.running():
        waiting = await start(rt, approval("restart", signal="go"), {"delay": 0})
        looping_id = await start(
            rt,
            looping("restart loop", body=slow, mode="parallel", concurrency=4),
            {"xs": list(range(8))},
        )
        await eventually(lambda: _parked(rt, waiting), 10, "the wait parked")
    # Stopped mid-loop, with the wait parked; a new process takes both over.
    async with runtime(database_url) as rt2, rt2.engine.running():
        assert await rt2.engine.signals.send("default", waiting, "go", {"after": "restart"})
        ex = await rt2.engine.wait(waiting, timeout=10)
        assert ex.status is X.SUCCEEDED and ex.output == {"got": {"after": "restart"}}
        ex = await rt2.engine.wait(looping_id, timeout=20)
        assert ex.status is X.SUCCEEDED, ex.error
        assert ex.output == [{"v": i} for i in range(8)]
        assert await children(rt2, looping_id) == [(i, "succeeded") for i in range(8)]


@pytest.mark.api_settings(secret_keys="k1:" + "A" * 43 + "=")
async def test_loop_children_signals_and_resume_url_through_the_api(api_each_db: Api) -> None:
    api = api_each_db
    doc = approval("api approval")
    doc["nodes"][3]["config"] = {"mapping": {"got": "{{input}}", "url": "{{execution.resume_url}}"}}
    approval_id = await api.workflow(doc)
    loop_id = await api.workflow(looping("api loop", body=body(DOUBLE), mode="parallel"))

    r = await api.a.post(
        f"/api/workflows/{loop_id}/execute?wait=20", json={"input": {"xs": [1, 2, 3]}}
    )
    assert r.status_code == 200, r.text
    parent = r.json()["id"]
    kids = (await api.a.get(f"/api/executions/{parent}/children")).json()["items"]
    assert sorted(k["iteration"] for k in kids) == [0, 1, 2]
    assert {k["parent_node_id"] for k in kids} == {"each"}
    listed = (await api.a.get(f"/api/executions?parent_execution_id={parent}")).json()["items"]
    assert {k["id"] for k in listed} == {k["id"] for k in kids}
    assert (await api.b.get(f"/api/executions/{parent}/children")).status_code == 404

    r = await api.a.post(f"/api/workflows/{approval_id}/execute", json={"input": {"delay": 0}})
    execution_id = r.json()["execution_id"]
    assert (
        await api.b.post(f"/api/executions/{execution_id}/signals/resume", json={})
    ).status_code == 404
    bad = await api.a.post(f"/api/executions/{execution_id}/signals/$resume", json={})
    assert bad.status_code == 422

    async def _waiting() -> bool:
        return (await api.a.get(f"/api/executions/{execution_id}")).json()["status"] == "waiting"

    await eventually(_waiting, 10, "the wait parked")
    token = api.runtime.engine.control.resume_token(execution_id)  # type: ignore[union-attr]
    page = await api.a.get(f"/api/resume/{token}")
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert (await api.a.get(f"/api/resume/{token[:-2]}00")).status_code == 404
    first = await api.a.post(f"/api/resume/{token}", json={"approved": True})
    assert first.status_code == 200, first.text
    second = await api.a.post(f"/api/resume/{token}", json={"approved": False})
    assert second.status_code == 410 and second.json()["error"]["code"] == "already_used"
    ex = await api.runtime.engine.wait(execution_id, timeout=10)
    assert ex.output["got"] == {"approved": True}
    assert ex.output["url"].endswith(f"/api/resume/{token}")
    late = await api.a.post(f"/api/executions/{execution_id}/signals/resume", json={})
    assert late.status_code == 409
