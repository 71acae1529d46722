"""Agent tools on the real engine (SQLite and PostgreSQL) against local servers speaking
the OpenAI Chat Completions and Anthropic Messages wire formats: tools declared on the
agent through /api/agents, two parallel calls (one tool failing) run as child
executions, their results sent back in each provider's shape, usage summed, two turns
stored; and a restart while a tool runs, after which the tool has run once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from flowmill.agents.store import AgentRepository
from flowmill.config import Settings
from flowmill.domain.states import ExecutionStatus as X
from flowmill.engine.services import NodeServices
from flowmill.runs import register
from flowmill.runtime import Runtime, open_runtime
from flowmill.store.tables import conversation_history, node_executions, workflow_executions
from flowmill.testing import eventually
from tests.api_support import Api, open_api
from tests.node_attempt_support import node_context
from tests.stubs_support import (
    Answer,
    Request,
    anthropic_reply,
    anthropic_tool_use,
    openai_reply,
    openai_tool_calls,
    stub_server,
)

SCHEMA = {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}
STOCK = {
    "name": "stock",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {
            "id": "count",
            "type": "transform",
            "config": {"mapping": {"sku": "{{data.sku}}", "n": 3}},
        },
    ],
    "edges": [{"source": "t", "target": "count"}],
}
BROKEN = {
    "name": "broken",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "boom", "type": "fail", "config": {"message": "stock service down"}},
    ],
    "edges": [{"source": "t", "target": "boom"}],
}


def asking(name: str = "ask stock", **config: Any) -> dict[str, Any]:
    node = {
        "id": "ask",
        "type": "agent",
        "config": {
            "agent": "ava",
            "message": "{{data.text}}",
            "conversation_id": "c-1",
            "client_id": "shop",
            **config,
        },
    }
    return {
        "name": name,
        "status": "active",
        "nodes": [{"id": "t", "type": "trigger"}, node],
        "edges": [{"source": "t", "target": "ask"}],
    }


def answered(provider: str, request: Request) -> bool:
    """Whether the request carries tool results (the model's second turn)."""
    last = request.json()["messages"][-1]
    if provider == "openai":
        return bool(last["role"] == "tool")
    content = last["content"]
    return isinstance(content, list) and content[0].get("type") == "tool_result"


def llm(provider: str, *calls: tuple[str, str, Any]) -> Any:
    """A stand-in model: tool calls first, a text answer once it has the results."""

    def _answer(request: Request) -> Answer:
        if answered(provider, request):
            reply = openai_reply if provider == "openai" else anthropic_reply
            return reply("A: 3 left. I could not check B.")
        tool_use = openai_tool_calls if provider == "openai" else anthropic_tool_use
        return tool_use(*calls)

    return _answer


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with open_api(
        database_url, http_allow_cidrs=["127.0.0.1/32"], sandbox_enabled=False
    ) as a:
        yield a


async def _turns(rt: Runtime) -> list[tuple[str, str]]:
    ch = conversation_history
    q = sa.select(ch.c.role, ch.c.content).order_by(ch.c.id)
    return [(r[0], r[1]) for r in await rt.db.read(lambda c: c.execute(q).all())]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_agent_tools_two_parallel_calls_over_the_wire(api: Api, provider: str) -> None:
    stock_id = await api.workflow(STOCK)
    broken_id = await api.workflow(BROKEN)
    path = "/v1/chat/completions" if provider == "openai" else "/v1/messages"
    script = llm(provider, ("call_1", "stock", {"sku": "A"}), ("call_2", "broken", {"sku": "B"}))
    with stub_server({f"POST {path}": script}) as stub:
        tools = [
            {"name": "stock", "description": "Units left.", "workflow_id": stock_id,
             "parameters": SCHEMA},
            {"name": "broken", "description": "Also units.", "workflow_id": broken_id},
        ]  # fmt: skip
        r = await api.a.post(
            "/api/agents",
            json={
                "name": "ava",
                "provider": provider,
                "model": "model-x",
                "character": {"name": "Ava"},
                "base_url": f"{stub.url}/v1" if provider == "openai" else stub.url,
                "settings": {"max_retries": 0, "tools": tools, "max_tool_rounds": 2},
            },
        )
        assert r.status_code == 201, r.text
        assert [t["name"] for t in r.json()["settings"]["tools"]] == ["stock", "broken"]
        done = await api.run(await api.workflow(asking()), {"text": "Stock of A and B?"}, 20)
        assert done["status"] == "succeeded", done
        # (a third call may come from two wakes racing: asking is at-least-once, the
        # record is not; see the exactly-once checks below)
        first, second = (c.json() for c in stub.calls("POST", path)[:2])

    out = done["output"]
    assert out["reply"] == "A: 3 left. I could not check B."
    (stock, broken) = out["tool_calls"]
    assert stock["name"] == "stock" and stock["arguments"] == {"sku": "A"}
    assert stock["result"] == {"sku": "A", "n": 3}
    assert broken["result"] is None and broken["error"]["type"] == "WorkflowFailed"
    # usage: the tool-calling answer (30 + 5) and the final one, summed
    final_in, final_out = (42, 7) if provider == "openai" else (40, 9)
    assert out["usage"] == {
        "input_tokens": 30 + final_in,
        "output_tokens": 5 + final_out,
        "total_tokens": 35 + final_in + final_out,
    }
    kids = (await api.a.get(f"/api/executions/{done['id']}/children")).json()["items"]
    assert sorted(k["id"] for k in kids) == sorted([stock["execution_id"], broken["execution_id"]])
    assert {k["parent_node_id"] for k in kids} == {"ask"}

    if provider == "openai":
        assert first["tools"][0] == {
            "type": "function",
            "function": {"name": "stock", "description": "Units left.", "parameters": SCHEMA},
        }
        assert second["messages"][2]["tool_calls"][0] == {
            "id": "call_1",
            "type": "function",
            "function": {"name": "stock", "arguments": '{"sku": "A"}'},
        }
        tool_1, tool_2 = second["messages"][3:]
        assert tool_1["role"] == "tool" and tool_1["tool_call_id"] == "call_1"
        assert json.loads(tool_1["content"]) == {"sku": "A", "n": 3}  # the tool's output
        assert tool_2["tool_call_id"] == "call_2"
        assert "stock service down" in tool_2["content"]
    else:
        assert first["tools"][0] == {
            "name": "stock",
            "description": "Units left.",
            "input_schema": SCHEMA,
        }
        assert second["messages"][1]["content"][1] == {
            "type": "tool_use",
            "id": "call_1",
            "name": "stock",
            "input": {"sku": "A"},
        }
        result_1, result_2 = second["messages"][2]["content"]
        assert json.loads(result_1.pop("content")) == {"sku": "A", "n": 3}
        assert result_1 == {"type": "tool_result", "tool_use_id": "call_1", "is_error": False}
        assert result_2["is_error"] is True and "stock service down" in result_2["content"]
    assert await _turns(api.runtime) == [
        ("user", "Stock of A and B?"),
        ("assistant", "A: 3 left. I could not check B."),
    ]


async def test_agent_tools_api_refuses_a_tool_of_no_workflow_of_the_tenant(api: Api) -> None:
    other = await api.b.post("/api/workflows", json=STOCK)
    assert other.status_code == 201, other.text
    mine = await api.workflow(STOCK)
    for workflow_id in (other.json()["id"], "0193a000-0000-7000-8000-000000000000"):
        tools = [{"name": "ok", "workflow_id": mine}, {"name": "x", "workflow_id": workflow_id}]
        r = await api.a.post(
            "/api/agents",
            json={"name": "ava", "model": "m", "settings": {"tools": tools}},
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["field"] == "body.settings.tools[1].workflow_id"
    dup = [{"name": "ok", "workflow_id": mine}, {"name": "ok", "workflow_id": mine}]
    r = await api.a.post(
        "/api/agents", json={"name": "ava", "model": "m", "settings": {"tools": dup}}
    )
    assert r.status_code == 422 and "unique" in r.text
    r = await api.a.post("/api/agents", json={"name": "ava", "model": "m"})
    assert r.status_code == 201
    assert r.json()["settings"]["max_tool_rounds"] == 5
    patched = await api.a.patch(
        f"/api/agents/{r.json()['id']}",
        json={"settings": {"tools": [{"name": "x", "workflow_id": other.json()["id"]}]}},
    )
    assert patched.status_code == 422


@contextlib.asynccontextmanager
async def runtime(url: str) -> AsyncIterator[Runtime]:
    settings = Settings(
        database_url=url,
        sweep_interval_s=0.05,
        control_poll_s=5,
        http_allow_cidrs=["127.0.0.1/32"],
        sandbox_enabled=False,
    )
    async with open_runtime(settings) as rt:
        yield rt


async def _rows(rt: Runtime, query: Any) -> list[Any]:
    return list(await rt.db.read(lambda c: c.execute(query).all()))


async def test_agent_tools_restart_while_a_tool_runs_runs_it_once(database_url: str) -> None:
    slow = {
        "name": "slow stock",
        "status": "active",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "nap", "type": "delay", "config": {"ms": 1500}},
            {"id": "count", "type": "transform", "config": {"mapping": {"n": 3}}},
        ],
        "edges": [{"source": "t", "target": "nap"}, {"source": "nap", "target": "count"}],
    }
    we, nr = workflow_executions, node_executions
    with stub_server(
        {"POST /v1/chat/completions": llm("openai", ("call_1", "stock", {"sku": "A"}))}
    ) as stub:
        async with runtime(database_url) as rt, rt.engine.running():
            tool_id, _, tenant = await register(rt, slow, None)
            await AgentRepository(rt.db).create(
                tenant,
                {"name": "ava", "provider": "openai", "model": "m", "character": {},
                 "max_tokens": 100, "temperature": 0.5, "history_window": 10,
                 "base_url": f"{stub.url}/v1",
                 "settings": {"max_retries": 0, "tools": [
                     {"name": "stock", "description": "", "workflow_id": tool_id,
                      "parameters": SCHEMA}]}},
            )  # fmt: skip
            wf_id, version, _ = await register(rt, asking("restart"), None)
            parent = await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=wf_id, version=version, data={"text": "A?"}
            )

            async def _tool_parked() -> bool:
                kids = await _rows(rt, sa.select(we.c.id).where(we.c.parent_execution_id == parent))
                if not kids:
                    return False
                parked = sa.select(nr.c.id).where(
                    nr.c.execution_id == kids[0][0], nr.c.node_id == "nap", nr.c.status == "waiting"
                )
                return bool(await _rows(rt, parked))

            await eventually(_tool_parked, 10, "the tool's child parked in its delay")
        # Stopped with the agent parked on its tool and the tool mid-run; a new process
        # takes both over.
        async with runtime(database_url) as rt2, rt2.engine.running():
            ex = await rt2.engine.wait(parent, timeout=20)
            assert ex.status is X.SUCCEEDED, ex.error
            assert ex.output["tool_calls"][0]["result"] == {"n": 3}
            kids = await _rows(rt2, sa.select(we.c.id).where(we.c.parent_execution_id == parent))
            assert len(kids) == 1
            done = await _rows(
                rt2,
                sa.select(nr.c.node_id)
                .where(nr.c.execution_id == kids[0][0], nr.c.status == "succeeded")
                .order_by(nr.c.node_id),
            )
            assert [r[0] for r in done] == ["count", "nap", "t"]  # each node once
            asked = [c.json()["messages"] for c in stub.calls("POST", "/v1/chat/completions")]
            assert asked[0][-1]["role"] == "user"  # asked once before the restart
            assert all(m[-1]["role"] == "tool" for m in asked[1:])  # then with the result
            assert await _turns(rt2) == [
                ("user", "A?"),
                ("assistant", "A: 3 left. I could not check B."),
            ]


async def test_agent_tools_record_once_keeps_one_value_under_concurrent_runs(
    database_url: str,
) -> None:
    """Eight runs of a node recording their own answer for one round at once (on
    PostgreSQL a concurrent take skips the locked row): all get the same one."""
    async with runtime(database_url) as rt:
        wf_id, version, tenant = await register(rt, {**STOCK, "status": "active"}, None)
        execution_id = await rt.engine.start_execution(
            tenant_id=tenant, workflow_id=wf_id, version=version, data={}
        )
        control = rt.engine.control
        assert control is not None
        ctx = dataclasses.replace(
            node_context(NodeServices(), node_type="agent", node_id="ask", tenant_id=tenant),
            execution_id=execution_id,
        )
        values = await asyncio.gather(
            *(control.record_once(ctx, "round:1", {"n": i}) for i in range(8))
        )
        assert len({v["n"] for v in values}) == 1
        assert await control.record_once(ctx, "round:1", {"n": 99}) == values[0]
        assert (await control.record_once(ctx, "round:2", {"n": 99}))["n"] == 99
