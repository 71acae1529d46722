"""The agent layer with fakes: prompts from characters, conversations, retries as the
provider asks (fake clock), error translation without secrets, the agent node's output,
turns and defaults from a channel's metadata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowmill.agents.ports import AgentConfig, AgentSettings, ChatMessage, ModelError, Turn
from flowmill.agents.prompt import conversation, system_prompt
from flowmill.agents.providers import scrub
from flowmill.agents.retry import with_retries
from flowmill.domain.errors import NodeError
from flowmill.engine.services import NodeServices
from flowmill.net.retry_after import retry_after_s
from flowmill.nodes.agent import AgentNode
from flowmill.nodes.base import NodeResult
from flowmill.testing import FakeClock, InMemoryAgents, InMemoryCredentials, ScriptedChatModel
from tests.node_attempt_support import run_node

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def turn(role: str, content: str, conv: str = "c", client: str = "shop") -> Turn:
    return Turn("id", conv, client, role, content, T0)


def agent(**overrides: Any) -> AgentConfig:
    values: dict[str, Any] = {
        "id": "a-1",
        "tenant_id": "acme",
        "name": "ava",
        "provider": "openai",
        "model": "m",
        "character": {"name": "Ava", "persona": "A baker."},
        "max_tokens": 100,
        "temperature": 0.2,
        "history_window": 10,
        "credential": "llm",
        "base_url": "http://llm.example/v1",
        "settings": AgentSettings(max_retries=2, max_retry_wait_s=30),
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(overrides)
    return AgentConfig(**values)


def test_agents_system_prompt_has_persona_style_examples_and_other_keys() -> None:
    text = system_prompt(
        {
            "name": "Ava",
            "persona": "A baker in Lisbon.",
            "style": ["warm", "brief"],
            "examples": [{"user": "Open?", "assistant": "Yes!"}],
            "languages": ["pt", "en"],
        }
    )
    assert text.startswith("You are Ava.")
    for part in ("A baker in Lisbon.", "- warm", "User: Open?", "You: Yes!", "languages:"):
        assert part in text


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([], [("user", "new")]),
        (
            [turn("user", "a"), turn("assistant", "b")],
            [("user", "a"), ("assistant", "b"), ("user", "new")],
        ),
        # a reply lost to a failed step leaves two user turns: merged, alternation kept
        ([turn("user", "a")], [("user", "a\n\nnew")]),
        # a window starting on a reply: dropped, the model must see the user first
        (
            [turn("assistant", "b"), turn("user", "c"), turn("assistant", "d")],
            [("user", "c"), ("assistant", "d"), ("user", "new")],
        ),
    ],
)
def test_agents_conversation_alternates_and_starts_with_the_user(
    history: list[Turn], expected: list[tuple[str, str]]
) -> None:
    assert conversation(history, "new") == tuple(ChatMessage(r, c) for r, c in expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "Thu, 01 Jan 2026 00:00:10 GMT"}, 10.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_agents_retry_after_is_read_as_the_provider_wrote_it(
    headers: dict[str, str], seconds: float | None
) -> None:
    assert retry_after_s(headers, now=T0.timestamp()) == seconds


def test_agents_scrub_removes_the_key_from_messages() -> None:
    assert "sk-secret-123" not in scrub(
        "Incorrect API key provided: sk-secret-123", "sk-secret-123"
    )


async def test_agents_retries_wait_as_long_as_retry_after_says() -> None:
    clock = FakeClock(T0)
    model = ScriptedChatModel(
        [
            ModelError("busy", retriable=True, status=429, retry_after_s=7),
            ModelError("x", retriable=True, status=500),
            "done",
        ]
    )
    reply = await with_retries(
        lambda: model.complete(_request()), AgentSettings(max_retries=2), clock
    )
    assert reply.text == "done"
    assert clock.now() - T0 == timedelta(seconds=7 + 1)  # Retry-After, then 2nd backoff


async def test_agents_a_longer_retry_after_fails_the_attempt_for_the_engine() -> None:
    clock = FakeClock(T0)
    model = ScriptedChatModel(
        [ModelError("busy", retriable=True, status=429, retry_after_s=120), "x"]
    )
    with pytest.raises(ModelError) as caught:
        await with_retries(lambda: model.complete(_request()), AgentSettings(), clock)
    assert caught.value.retriable and caught.value.details["retry_after_s"] == 120
    assert clock.now() == T0 and len(model.requests) == 1


async def test_agents_non_retriable_errors_are_not_retried() -> None:
    model = ScriptedChatModel([ModelError("bad key", retriable=False, status=401), "x"])
    with pytest.raises(ModelError):
        await with_retries(lambda: model.complete(_request()), AgentSettings(), FakeClock(T0))
    assert len(model.requests) == 1


def _request() -> Any:
    from flowmill.agents.ports import ChatRequest

    return ChatRequest("m", "sys", (ChatMessage("user", "hi"),), 10, 0.1)


def _services(backend: InMemoryAgents) -> NodeServices:
    creds = InMemoryCredentials({("acme", "llm"): ("bearer", {"token": "sk-abc"})})
    return NodeServices(credentials=creds, agents=backend, clock=FakeClock(T0))


async def test_agents_node_defaults_come_from_the_channel_metadata() -> None:
    backend = InMemoryAgents()
    backend.add("acme", agent())
    backend.history_turns.append(("acme", turn("user", "earlier", conv="ig:42")))
    backend.history_turns.append(("acme", turn("assistant", "hello", conv="ig:42")))
    backend.chat.script = ["Sure!"]
    trigger = {
        "metadata": {
            "agentId": "a-1",
            "text": "Can I order?",
            "conversationId": "ig:42",
            "clientId": "shop",
        }
    }
    result = await run_node(AgentNode(), {}, _services(backend), trigger=trigger, node_id="ask")
    assert isinstance(result, NodeResult)
    assert result.output == {
        "reply": "Sure!",
        "usage": {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12},
        "model": "m",
        "conversation_id": "ig:42",
        "client_id": "shop",
        "tool_calls": [],
    }
    assert [(t.role, t.content, t.seq) for t in result.turns] == [
        ("user", "Can I order?", 0),
        ("assistant", "Sure!", 1),
    ]
    (request,) = backend.chat.requests
    assert request.system.startswith("You are Ava.")
    assert [m.content for m in request.messages] == ["earlier", "hello", "Can I order?"]
    assert backend.models == [("openai", "sk-abc", "http://llm.example/v1")]


@pytest.mark.parametrize(
    ("config", "error_type"),
    [
        ({"agent": "nobody", "message": "x", "conversation_id": "c"}, "AgentNotFound"),
        ({"agent": "ava", "message": "{{data.missing}}", "conversation_id": "c"}, "AgentError"),
        ({"agent": "ava", "message": "x", "conversation_id": "{{data.none}}"}, "AgentError"),
    ],
)
async def test_agents_node_bad_config_fails_without_calling_the_model(
    config: dict[str, Any], error_type: str
) -> None:
    backend = InMemoryAgents()
    backend.add("acme", agent())
    with pytest.raises(NodeError) as caught:
        await run_node(AgentNode(), config, _services(backend), input={"data": {}})
    assert caught.value.type == error_type and not caught.value.retriable
    assert backend.chat.requests == []


def test_agents_node_tool_names_must_be_unique() -> None:
    node = AgentNode()
    tool = {"name": "lookup", "workflow_id": "w"}
    config = node.parse_config({"tools": [tool, tool]})
    issues = node.config_issues(config, expressions_enabled=False)
    assert issues == ["tools: tool names must be unique"]
    one = node.parse_config({"tools": [tool]})
    assert node.config_issues(one, expressions_enabled=False) == []
