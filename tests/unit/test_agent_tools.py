"""Agent tools on the engine with fakes: a scripted model calls sub-workflows as tools;
each call is a child execution, the results go back to the model, rounds are capped
(a table of cases), and a model failing after the tools ran is asked again without
running them again."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from flowmill.agents.ports import (
    AgentConfig,
    AgentSettings,
    ChatMessage,
    ChatReply,
    ModelError,
    ToolCall,
    ToolResult,
    Usage,
)
from flowmill.agents.providers import anthropic_messages, openai_messages
from flowmill.agents.tools import ToolLoop
from flowmill.domain.errors import NodeError
from flowmill.domain.states import ExecutionStatus as X
from flowmill.engine.control import Control
from flowmill.engine.services import NodeServices
from flowmill.nodes.agent import AgentNode
from flowmill.nodes.base import Suspend
from flowmill.testing import InMemoryAgents, InMemoryControlStore, InMemoryExecutionStore
from tests.engine_support import Harness, open_harness, wf
from tests.node_attempt_support import node_context

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LOOKUP = wf(
    [{"id": "find", "type": "transform", "config": {"mapping": {"sku": "{{data.sku}}", "n": 3}}}],
    [("t", "find")],
)
BROKEN = wf(
    [{"id": "boom", "type": "fail", "config": {"message": "no stock service"}}], [("t", "boom")]
)
TOOLS = [
    {
        "name": "lookup",
        "description": "Stock of a product.",
        "workflow_id": "lookup",
        "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}},
    },
    {"name": "broken", "workflow_id": "broken"},
]


def calls(*pairs: tuple[str, str, dict[str, Any]]) -> ChatReply:
    """A model answer calling tools: ``(call id, tool, arguments)``."""
    return ChatReply(
        "", "m", Usage(10, 2), "tool_calls", tuple(ToolCall(i, n, a) for i, n, a in pairs)
    )


def agent_node(**config: Any) -> dict[str, Any]:
    node = {
        "id": "ask",
        "type": "agent",
        "config": {
            "agent": "ava",
            "message": "{{data.text}}",
            "conversation_id": "c-1",
            "client_id": "shop",
            "tools": TOOLS,
            **config,
        },
    }
    return wf([node], [("t", "ask")])


def _ava(tenant: str) -> AgentConfig:
    return AgentConfig(
        id="a-1",
        tenant_id=tenant,
        name="ava",
        provider="openai",
        model="m",
        character={"name": "Ava"},
        max_tokens=100,
        temperature=0.2,
        history_window=10,
        credential=None,
        base_url=None,
        settings=AgentSettings(max_retries=0),
        created_at=T0,
        updated_at=T0,
    )


@pytest.fixture
async def agents() -> AsyncIterator[tuple[Harness, InMemoryAgents]]:
    backend = InMemoryAgents()
    backend.add("t1", _ava("t1"))
    async with open_harness(services=NodeServices(agents=backend)) as h:
        h.definitions.add("lookup", LOOKUP)
        h.definitions.add("broken", BROKEN)
        yield h, backend


CASES: list[tuple[str, list[Any], dict[str, Any], X, Any]] = [
    # (name, model script, node config, status, expected tool calls [(name, result|error)])
    ("no tool call", ["Hello!"], {}, X.SUCCEEDED, []),
    (
        "two parallel calls in one round",
        [calls(("c1", "lookup", {"sku": "a"}), ("c2", "lookup", {"sku": "b"})), "Both: 3 each."],
        {},
        X.SUCCEEDED,
        [("lookup", {"sku": "a", "n": 3}), ("lookup", {"sku": "b", "n": 3})],
    ),
    (
        "two rounds",
        [calls(("c1", "lookup", {"sku": "a"})), calls(("c1", "lookup", {"sku": "b"})), "Done."],
        {},
        X.SUCCEEDED,
        [("lookup", {"sku": "a", "n": 3}), ("lookup", {"sku": "b", "n": 3})],
    ),
    (
        "a tool workflow fails: an error result, the model answers",
        [calls(("c1", "broken", {})), "Sorry, I cannot check."],
        {},
        X.SUCCEEDED,
        [("broken", "WorkflowFailed")],
    ),
    (
        "an unknown tool or arguments that are not an object: error results, no child",
        [calls(("c1", "nope", {}), ("c2", "lookup", "sku=a")), "Hm."],
        {},
        X.SUCCEEDED,
        [("nope", "ToolCallRefused"), ("lookup", "ToolCallRefused")],
    ),
    (
        "two calls with one id (a sloppy server): two children, results in call order",
        [calls(("c1", "lookup", {"sku": "a"}), ("c1", "lookup", {"sku": "b"})), "Ok."],
        {},
        X.SUCCEEDED,
        [("lookup", {"sku": "a", "n": 3}), ("lookup", {"sku": "b", "n": 3})],
    ),
    (
        "max_tool_rounds hit: the node fails",
        [calls(("c1", "lookup", {"sku": "a"}))],
        {"max_tool_rounds": 2},
        X.FAILED,
        "MaxToolRoundsExceeded",
    ),
]


@pytest.mark.parametrize(
    ("name", "script", "config", "status", "expected"), CASES, ids=[c[0] for c in CASES]
)
async def test_agent_tools_rounds(
    agents: tuple[Harness, InMemoryAgents],
    name: str,
    script: list[Any],
    config: dict[str, Any],
    status: X,
    expected: Any,
) -> None:
    harness, backend = agents
    backend.chat.script = script
    ex, runs = await harness.run(agent_node(**config), {"text": "In stock?"})
    assert ex.status is status, ex.error
    kids = [e for e in harness.store.executions.values() if e.parent_execution_id == ex.id]
    requests = backend.chat.requests
    if status is X.FAILED:
        assert ex.error is not None and ex.error["type"] == expected
        assert len(kids) == 2 and len(requests) == 3  # two rounds ran, the third refused
        assert harness.store.turns == []
        return
    out = runs["ask"].output
    made = out["tool_calls"]
    got = [(m["name"], m["result"] if "error" not in m else m["error"]["type"]) for m in made]
    assert got == expected
    # one child per call that named a tool with object arguments, each its own execution
    started = [m["execution_id"] for m in made if m["execution_id"]]
    assert sorted(started) == sorted(k.id for k in kids)
    assert all(k.parent_node_id == "ask" and k.trigger_type == "agent_tool" for k in kids)
    # every model call's tokens are summed (the script's text replies count 10 + 2 too)
    assert out["usage"]["total_tokens"] == 12 * len(requests)
    assert out["reply"] == script[-1]
    # each request after the first ends with the previous round's results, in call order
    for before, after in itertools.pairwise(requests):
        asked = after.messages[-2]
        answered = after.messages[-1]
        assert asked.role == "assistant" and asked.tool_calls
        assert before.messages == after.messages[:-2]
        assert [r.call_id for r in answered.tool_results] == [c.id for c in asked.tool_calls]
    if name.startswith("a tool workflow fails"):
        (result,) = requests[1].messages[-1].tool_results
        assert result.is_error and "no stock service" in result.content
    # two turns, once: the user's message and the final reply
    turns = [(t.role, t.content) for _, _, t in harness.store.turns]
    assert turns == [("user", "In stock?"), ("assistant", script[-1])]


async def test_agent_tools_model_failing_after_the_tools_ran_is_asked_again_not_the_tools(
    agents: tuple[Harness, InMemoryAgents],
) -> None:
    """A 500 once the tools ran parks the node and asks again from the stored
    conversation: the tool ran once, though the agent allows no retry in the attempt."""
    harness, backend = agents
    backend.chat.script = [
        calls(("c1", "lookup", {"sku": "a"})),
        ModelError("boom", retriable=True, status=500, retry_after_s=0.05),
        "Three.",
    ]
    ex, runs = await harness.run(agent_node(), {"text": "How many?"})
    assert ex.status is X.SUCCEEDED, ex.error
    assert runs["ask"].output["reply"] == "Three."
    assert len(backend.chat.requests) == 3
    kids = [e for e in harness.store.executions.values() if e.parent_execution_id == ex.id]
    assert len(kids) == 1
    assert backend.chat.requests[1].messages == backend.chat.requests[2].messages


async def test_agent_tools_state_round_trips_through_json() -> None:
    loop = ToolLoop(
        phase="wait",
        round=2,
        messages=[
            ChatMessage("user", "hi"),
            ChatMessage("assistant", "", (ToolCall("c1", "lookup", {"sku": "a"}),)),
            ChatMessage("user", "", tool_results=(ToolResult("c1", "3", True),)),
        ],
        calls=[{"id": "c1", "name": "lookup", "arguments": {}, "execution_id": "e"}],
        request={"model": "m"},
        turn={"agent_id": "a"},
        usage=Usage(5, 6),
        made=[{"name": "lookup"}],
        failures=1,
    )
    assert ToolLoop.from_state(loop.to_state()) == loop
    assert ToolLoop.from_state({"other": 1}) is None


def test_agent_tools_wire_shapes_of_calls_and_results() -> None:
    from flowmill.agents.ports import ChatRequest

    request = ChatRequest(
        "m",
        "sys",
        (
            ChatMessage("user", "hi"),
            ChatMessage("assistant", "Let me look.", (ToolCall("c1", "lookup", {"sku": "a"}),)),
            ChatMessage("user", "", tool_results=(ToolResult("c1", "3"),)),
        ),
        10,
        0.1,
    )
    assert openai_messages(request)[2:] == [
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"sku": "a"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "3"},
    ]
    assert anthropic_messages(request)[1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "c1", "name": "lookup", "input": {"sku": "a"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "3", "is_error": False}
            ],
        },
    ]


async def test_agent_tools_a_run_repeated_after_a_crash_starts_the_first_answers_tools_once() -> (
    None
):
    """The step's suspension is lost in a crash after its tools started; the step runs
    again and the model, asked again, calls another tool with another id. The run acts
    on the answer recorded first: the one child it started, not a second."""
    backend = InMemoryAgents()
    backend.add("acme", _ava("acme"))
    backend.chat.script = [
        calls(("c1", "lookup", {"sku": "a"})),
        calls(("c9", "lookup", {"sku": "z"})),
    ]
    started: dict[str, tuple[str, Any]] = {}

    async def start_child(**kwargs: Any) -> str:
        key = kwargs["dedupe_key"]
        started.setdefault(key, (f"child-{len(started)}", kwargs["data"]))
        return started[key][0]

    async def resolve(_tenant: str, _workflow: str, _version: int | None) -> int:
        return 1

    async def cancel(_execution: str, _reason: str) -> bool:
        return False

    control = Control(
        store=InMemoryControlStore(InMemoryExecutionStore()),
        start_child=start_child,
        resolve_version=resolve,
        cancel=cancel,
        resume_key=b"k",
    )
    node = AgentNode()
    config = node.parse_config(agent_node()["nodes"][1]["config"])
    results = []
    for _ in range(2):
        ctx = node_context(
            NodeServices(agents=backend),
            node_type="agent",
            node_id="ask",
            input={"data": {"text": "a?"}},
        )
        ctx.control = control
        results.append(await node.execute(ctx, config))
    assert len(backend.chat.requests) == 2  # the model was asked twice (at-least-once)
    assert list(started.values()) == [("child-0", {"sku": "a"})]  # the tool ran once
    for result in results:
        assert isinstance(result, Suspend)
        loop = ToolLoop.from_state(result.state)
        assert loop is not None and loop.phase == "wait"
        assert loop.calls == [
            {"id": "c1", "name": "lookup", "arguments": {"sku": "a"}, "execution_id": "child-0"}
        ]


async def test_agent_tools_a_retried_attempt_replays_the_recorded_rounds_not_the_tools(
    agents: tuple[Harness, InMemoryAgents],
) -> None:
    """Attempt 1 fails after its tool ran (an error no durable re-ask covers); attempt 2
    starts over, the model calls another tool id, and the attempt acts on round 1's
    recorded answer: the same child, no second run of the tool."""
    harness, backend = agents
    backend.chat.script = [
        calls(("c1", "lookup", {"sku": "a"})),
        NodeError("connection reset", type="HttpError", retriable=True),
        calls(("c7", "lookup", {"sku": "z"})),
        "A: 3.",
    ]
    doc = agent_node()
    doc["nodes"][1]["retry"] = {"max_attempts": 2, "backoff_ms": 10}
    ex, runs = await harness.run(doc, {"text": "A?"})
    assert ex.status is X.SUCCEEDED, ex.error
    assert runs["ask"].attempt == 2
    (made,) = runs["ask"].output["tool_calls"]
    assert made["arguments"] == {"sku": "a"} and made["result"] == {"sku": "a", "n": 3}
    kids = [e for e in harness.store.executions.values() if e.parent_execution_id == ex.id]
    assert [k.id for k in kids] == [made["execution_id"]]
    assert len(backend.chat.requests) == 4


async def test_agent_tools_model_failing_after_the_tools_ran_gives_up_after_three_asks(
    agents: tuple[Harness, InMemoryAgents],
) -> None:
    harness, backend = agents
    backend.chat.script = [
        calls(("c1", "lookup", {"sku": "a"})),
        ModelError("boom", retriable=True, status=500, retry_after_s=0.01),
    ]
    ex, _ = await harness.run(agent_node(), {"text": "How many?"})
    assert ex.status is X.FAILED
    assert ex.error is not None and ex.error["type"] == "ModelError"
    assert len(backend.chat.requests) == 1 + 1 + 3  # the calls, the failure, three more
    assert harness.store.turns == []
