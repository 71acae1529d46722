"""The ``agent`` node on the real engine (SQLite and PostgreSQL) against local servers
speaking the OpenAI Chat Completions and Anthropic Messages wire formats: persona,
history and message in the request; turns stored once with the step; retries of
429/5xx; usage recorded; the API key in no output, log or event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from flowmill.store.tables import conversation_history, event_store, execution_logs
from tests.api_support import Api, open_api
from tests.stubs_support import (
    Stub,
    anthropic_error,
    anthropic_reply,
    openai_error,
    openai_reply,
    stub_server,
)

API_KEY = "sk-test-0123456789abcdefghij"
KEYS = "k1:QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
CHARACTER = {
    "name": "Ava, of Rosa's Bakery",
    "persona": "You help customers of a small bakery in Lisbon.",
    "style": ["warm", "short answers"],
    "examples": [{"user": "Open on Sunday?", "assistant": "Yes, 8 to 13!"}],
}


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with open_api(
        database_url,
        http_allow_cidrs=["127.0.0.1/32"],
        sandbox_enabled=False,
        secret_keys=KEYS,
    ) as a:
        yield a


def workflow() -> dict[str, Any]:
    return {
        "name": "answers",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {
                "id": "ask",
                "type": "agent",
                "config": {
                    "agent": "ava",
                    "message": "{{data.text}}",
                    "conversation_id": "{{data.conversation}}",
                    "client_id": "shop-1",
                },
            },
        ],
        "edges": [{"source": "t", "target": "ask"}],
    }


async def _setup(api: Api, stub: Stub, provider: str = "openai", **agent: Any) -> str:
    r = await api.a.post(
        "/api/credentials", json={"name": "llm", "type": "bearer", "data": {"token": API_KEY}}
    )
    assert r.status_code == 201, r.text
    base = f"{stub.url}/v1" if provider == "openai" else stub.url
    body = {
        "name": "ava",
        "provider": provider,
        "model": "model-x",
        "character": CHARACTER,
        "credential": "llm",
        "base_url": base,
        "history_window": 4,
        "max_tokens": 300,
        **agent,
    }
    r = await api.a.post("/api/agents", json=body)
    assert r.status_code == 201, r.text
    return await api.workflow(workflow())


async def _turns(api: Api) -> list[tuple[str, str]]:
    ch = conversation_history
    rows = await api.runtime.db.read(
        lambda c: c.execute(sa.select(ch.c.role, ch.c.content).order_by(ch.c.id)).all()
    )
    return [(r.role, r.content) for r in rows]


async def _everything_recorded(api: Api) -> str:
    def _read(c: Any) -> str:
        events = c.execute(sa.select(event_store.c.payload)).all()
        logs = c.execute(sa.select(execution_logs.c.message, execution_logs.c.metadata)).all()
        return repr(events) + repr(logs)

    return str(await api.runtime.db.read(_read))


async def test_agent_node_sends_persona_history_and_message_and_stores_both_turns(
    api: Api,
) -> None:
    with stub_server(
        {
            "POST /v1/chat/completions": [
                openai_reply("Yes! Pastéis de nata until 18h."),
                openai_reply("We are at Rua Augusta 12."),
            ]
        }
    ) as stub:
        wf = await _setup(api, stub)
        first = await api.run(wf, {"text": "Do you have pastéis?", "conversation": "c-1"})
        assert first["status"] == "succeeded", first
        out = first["output"]
        assert out["reply"] == "Yes! Pastéis de nata until 18h."
        assert out["model"] == "gpt-test"
        assert out["usage"] == {"input_tokens": 42, "output_tokens": 7, "total_tokens": 49}
        (call,) = stub.calls("POST", "/v1/chat/completions")
        assert call.headers["authorization"] == f"Bearer {API_KEY}"
        sent = call.json()
        assert sent["model"] == "model-x" and sent["max_tokens"] == 300
        system = sent["messages"][0]
        assert system["role"] == "system" and "Rosa's Bakery" in system["content"]
        assert "Open on Sunday?" in system["content"]  # examples are part of the persona
        assert sent["messages"][1:] == [{"role": "user", "content": "Do you have pastéis?"}]

        second = await api.run(wf, {"text": "Where are you?", "conversation": "c-1"})
        assert second["status"] == "succeeded"
        sent = stub.calls("POST", "/v1/chat/completions")[1].json()
        assert sent["messages"][1:] == [
            {"role": "user", "content": "Do you have pastéis?"},
            {"role": "assistant", "content": "Yes! Pastéis de nata until 18h."},
            {"role": "user", "content": "Where are you?"},
        ]
    assert await _turns(api) == [
        ("user", "Do you have pastéis?"),
        ("assistant", "Yes! Pastéis de nata until 18h."),
        ("user", "Where are you?"),
        ("assistant", "We are at Rua Augusta 12."),
    ]
    r = await api.a.get("/api/conversations/c-1")
    assert r.status_code == 200
    items = r.json()["items"]
    assert [i["role"] for i in items] == ["user", "assistant", "user", "assistant"]
    assert items[1]["metadata"]["usage"]["total_tokens"] == 49
    assert items[1]["execution_id"] == first["id"] and items[1]["client_id"] == "shop-1"
    assert (await api.b.get("/api/conversations/c-1")).status_code == 404
    recorded = await _everything_recorded(api)
    assert API_KEY not in recorded
    assert API_KEY not in str(first) + str(second)


async def test_agent_node_history_window_sends_only_the_last_turns(api: Api) -> None:
    with stub_server({"POST /v1/chat/completions": openai_reply("ok")}) as stub:
        wf = await _setup(api, stub, history_window=2)
        for text in ("one", "two", "three"):
            assert (await api.run(wf, {"text": text, "conversation": "w"}))["status"] == (
                "succeeded"
            )
        sent = stub.calls("POST", "/v1/chat/completions")[2].json()["messages"][1:]
        assert sent == [
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "three"},
        ]


async def test_agent_node_500_then_200_answers_once_and_stores_one_exchange(api: Api) -> None:
    with stub_server(
        {"POST /v1/chat/completions": [openai_error(500), openai_reply("fine now")]}
    ) as stub:
        wf = await _setup(api, stub)
        done = await api.run(wf, {"text": "hello", "conversation": "r"})
        assert done["status"] == "succeeded" and done["output"]["reply"] == "fine now"
        assert len(stub.calls("POST", "/v1/chat/completions")) == 2
    assert await _turns(api) == [("user", "hello"), ("assistant", "fine now")]


async def test_agent_node_429_with_retry_after_is_honoured_then_succeeds(api: Api) -> None:
    limited = openai_error(429, "slow down", retry_after="0.2")
    with stub_server({"POST /v1/chat/completions": [limited, openai_reply("hi")]}) as stub:
        wf = await _setup(api, stub)
        done = await api.run(wf, {"text": "hey", "conversation": "q"})
        assert done["status"] == "succeeded"
        assert len(stub.requests) == 2


async def test_agent_node_refused_key_fails_without_retry_or_turns(api: Api) -> None:
    refused = openai_error(401, f"Incorrect API key provided: {API_KEY}")
    with stub_server({"POST /v1/chat/completions": refused}) as stub:
        wf = await _setup(api, stub)
        done = await api.run(wf, {"text": "hey", "conversation": "z"})
        assert done["status"] == "failed"
        assert len(stub.requests) == 1
        assert API_KEY not in str(done)
    assert await _turns(api) == []
    assert API_KEY not in await _everything_recorded(api)


async def test_agent_node_anthropic_messages_wire_format(api: Api) -> None:
    with stub_server(
        {
            "POST /v1/messages": [
                anthropic_error(529, "overloaded_error"),
                anthropic_reply("Olá! Yes, until 18h."),
                anthropic_reply("Rua Augusta 12."),
            ]
        }
    ) as stub:
        wf = await _setup(api, stub, provider="anthropic")
        first = await api.run(wf, {"text": "Open today?", "conversation": "a-1"})
        assert first["status"] == "succeeded", first
        assert first["output"]["usage"] == {
            "input_tokens": 40,
            "output_tokens": 9,
            "total_tokens": 49,
        }
        await api.run(wf, {"text": "Where?", "conversation": "a-1"})
        calls = stub.calls("POST", "/v1/messages")
        assert len(calls) == 3
        # this SDK generation sends the key as a bearer token (older ones: x-api-key)
        headers = calls[1].headers
        assert API_KEY in (headers.get("x-api-key"), headers.get("authorization", "")[7:])
        assert "anthropic-version" in calls[1].headers
        sent = calls[2].json()
        assert "Rosa's Bakery" in sent["system"] and sent["max_tokens"] == 300
        assert sent["messages"] == [
            {"role": "user", "content": "Open today?"},
            {"role": "assistant", "content": "Olá! Yes, until 18h."},
            {"role": "user", "content": "Where?"},
        ]
    assert [role for role, _ in await _turns(api)] == ["user", "assistant"] * 2


async def test_agent_node_base_url_is_ssrf_guarded(database_url: str) -> None:
    async with open_api(database_url, sandbox_enabled=False, secret_keys=KEYS) as api:
        with stub_server({"POST /v1/chat/completions": openai_reply("x")}) as stub:
            wf = await _setup(api, stub)
            done = await api.run(wf, {"text": "hey", "conversation": "s"})
            assert done["status"] == "failed"
            assert stub.requests == []
            (run,) = [n for n in done["nodes"] if n["node_id"] == "ask"]
            assert run["error"]["type"] == "SsrfBlocked"
