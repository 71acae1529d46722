"""The seeds' flagship flow, end to end, over real HTTP against a real ``flowmill
serve``: a Meta-signed Instagram DM posted to the seed route → the ``agent`` node asks
a local stand-in of the LLM (OpenAI Chat Completions, then Anthropic Messages wire
format) → ``instagram_send`` answers through a local stand-in of the Graph API → the
conversation holds both turns. Then: the second DM's prompt holds the first exchange;
the same delivery posted twice sends one reply; an LLM answering 500 then 200 sends
one reply; a forged delivery sends nothing; no secret appears in any API answer, log
line, event or execution output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import EXAMPLES
from tests.serve_support import serve
from tests.stubs_support import (
    Answer,
    Request,
    Stub,
    anthropic_error,
    anthropic_reply,
    eventually,
    instagram_dm,
    meta_body,
    openai_error,
    openai_reply,
    stub_server,
)
from tests.webhook_support import meta_signature

pytestmark = pytest.mark.slow

APP_SECRET = "ig-app-secret-0123456789abcdef"
PAGE_TOKEN = "EAAGpage0123456789abcdefTOKEN"
LLM_KEY = "sk-llm-0123456789abcdefKEY"
ACCOUNT = "17841400000000001"
CUSTOMER = "1234567890123456"
VERIFY_TOKEN = "choose-a-verify-token"
SECRETS = (APP_SECRET, PAGE_TOKEN, LLM_KEY)
PERSONA = {
    "name": "Ava, of Rosa's Bakery",
    "persona": "You answer customers of a small bakery in Lisbon.",
    "style": "warm and short",
}


class Llm:
    """A stand-in LLM: answers "Reply to: <last message>", fails once on "FLAKY"."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.failed: set[str] = set()

    def __call__(self, request: Request) -> Answer:
        last = request.json()["messages"][-1]["content"]
        if "FLAKY" in last and last not in self.failed:
            self.failed.add(last)
            return openai_error(500) if self.provider == "openai" else anthropic_error(500)
        text = f"Reply to: {last}"
        return openai_reply(text) if self.provider == "openai" else anthropic_reply(text)

    @staticmethod
    def conversation(request: Request) -> list[tuple[str, str]]:
        return [
            (m["role"], m["content"]) for m in request.json()["messages"] if m["role"] != "system"
        ]

    def persona(self, request: Request) -> str:
        body = request.json()
        if self.provider == "anthropic":
            return str(body["system"])
        return str(body["messages"][0]["content"])


def graph(request: Request) -> Answer:
    recipient = request.json()["recipient"]["id"]
    return Answer(200, {"recipient_id": recipient, "message_id": f"m_{len(recipient)}"})


class Recorder:
    """Keeps every API answer's text, for the secret scan."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.texts.append(response.text)


async def _dm(
    http: httpx.AsyncClient, text: str, mid: str, *, secret: str = APP_SECRET
) -> httpx.Response:
    body = meta_body(instagram_dm(ACCOUNT, CUSTOMER, text, mid))
    return await http.post(
        "/webhooks/default/instagram/message",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta_signature(secret, body),
        },
    )


async def _setup(
    api: httpx.AsyncClient, provider: str, llm: Stub, graph_api: Stub
) -> dict[str, str]:
    for name, kind, data in (
        ("instagram-app-secret", "secret", {"secret": APP_SECRET}),
        ("ig-page", "bearer", {"token": PAGE_TOKEN}),
        ("llm", "bearer", {"token": LLM_KEY}),
    ):
        r = await api.post("/api/credentials", json={"name": name, "type": kind, "data": data})
        assert r.status_code == 201, r.text
    base_url = f"{llm.url}/v1" if provider == "openai" else llm.url
    r = await api.post(
        "/api/agents",
        json={"name": "ava", "provider": provider, "model": "bakery-model", "character": PERSONA,
              "credential": "llm", "base_url": base_url, "history_window": 10,
              "settings": {"max_retries": 2}},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    agent_id = r.json()["id"]
    doc = json.loads((EXAMPLES / "instagram-agent-reply.json").read_text())
    reply = next(n for n in doc["nodes"] if n["id"] == "reply")
    reply["config"]["base_url"] = graph_api.url  # the Graph API's stand-in
    r = await api.post("/api/workflows", json=doc)
    assert r.status_code == 201, r.text
    workflow_id = r.json()["id"]
    assert (await api.post(f"/api/workflows/{workflow_id}/publish")).status_code == 200
    r = await api.post(
        "/api/channels",
        json={"name": "Rosa's Bakery", "account_id": ACCOUNT, "credential": "ig-page",
              "agent_id": agent_id, "workflow_id": workflow_id},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    return {"agent": agent_id, "workflow": workflow_id, "channel": r.json()["id"]}


async def _ended(api: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    async def _check() -> list[dict[str, Any]] | None:
        items = (await api.get("/api/executions", params={"customer_id": CUSTOMER})).json()["items"]
        live = [i for i in items if i["status"] not in ("succeeded", "failed", "cancelled")]
        return items if len(items) >= count and not live else None

    result: list[dict[str, Any]] = await eventually(_check, timeout=60)
    return result


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_instagram_dm_answered_by_the_agent_end_to_end(tmp_path: Path, provider: str) -> None:
    fake_llm = Llm(provider)
    llm_path = "/v1/chat/completions" if provider == "openai" else "/v1/messages"
    graph_path = f"/v21.0/{ACCOUNT}/messages"
    env = {"FLOWMILL_HTTP_ALLOW_HOSTS": "127.0.0.1", "FLOWMILL_SANDBOX_ENABLED": "false",
           "FLOWMILL_WEBHOOK_CACHE_S": "0"}  # fmt: skip
    recorder = Recorder()
    with (
        stub_server({f"POST {llm_path}": fake_llm}) as llm,
        stub_server({f"POST {graph_path}": graph}) as graph_api,
    ):
        async with serve(tmp_path, env=env) as s:
            assert s.key is not None
            headers = {"Authorization": f"Bearer {s.key}"}
            hooks = {"response": [recorder]}
            async with (
                httpx.AsyncClient(
                    base_url=s.url, headers=headers, timeout=30, event_hooks=hooks
                ) as api,
                httpx.AsyncClient(base_url=s.url, timeout=30, event_hooks=hooks) as meta,
            ):
                ids = await _setup(api, provider, llm, graph_api)
                conversation = f"{ids['channel']}:{CUSTOMER}"

                # Meta's subscription handshake on the same route
                r = await meta.get(
                    "/webhooks/default/instagram/message",
                    params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                            "hub.challenge": "1158201444"},
                )  # fmt: skip
                assert (r.status_code, r.text) == (200, "1158201444")

                # 1. the first DM: persona and message in the prompt, reply sent back
                assert (await _dm(meta, "Do you have pastéis today?", "mid-1")).status_code == 200
                await eventually(lambda: len(graph_api.requests) == 1)
                (asked,) = llm.requests
                assert "Rosa's Bakery" in fake_llm.persona(asked)
                assert fake_llm.conversation(asked) == [("user", "Do you have pastéis today?")]
                (sent,) = graph_api.requests
                assert sent.headers["authorization"] == f"Bearer {PAGE_TOKEN}"
                assert sent.json()["recipient"] == {"id": CUSTOMER}
                assert sent.json()["message"] == {"text": "Reply to: Do you have pastéis today?"}
                turns = (await api.get(f"/api/conversations/{conversation}")).json()["items"]
                assert [(t["role"], t["content"]) for t in turns] == [
                    ("user", "Do you have pastéis today?"),
                    ("assistant", "Reply to: Do you have pastéis today?"),
                ]

                # 2. the second DM's prompt holds the first exchange
                assert (await _dm(meta, "And croissants?", "mid-2")).status_code == 200
                await eventually(lambda: len(graph_api.requests) == 2)
                assert fake_llm.conversation(llm.requests[1]) == [
                    ("user", "Do you have pastéis today?"),
                    ("assistant", "Reply to: Do you have pastéis today?"),
                    ("user", "And croissants?"),
                ]

                # 3. the same delivery posted twice (Meta retries): one reply
                first = await _dm(meta, "Open on Sunday?", "mid-3")
                again = await _dm(meta, "Open on Sunday?", "mid-3")
                assert first.json()["status"] == "received"
                assert again.json()["status"] == "duplicate"
                await _ended(api, 3)
                # 4. the LLM answers 500, then 200: one reply
                assert (await _dm(meta, "FLAKY: table for two?", "mid-4")).status_code == 200
                done = await _ended(api, 4)
                assert {e["status"] for e in done} == {"succeeded"}
                texts = [r.json()["message"]["text"] for r in graph_api.requests]
                assert texts == [
                    "Reply to: Do you have pastéis today?",
                    "Reply to: And croissants?",
                    "Reply to: Open on Sunday?",
                    "Reply to: FLAKY: table for two?",
                ]
                assert len(llm.requests) == 5  # four DMs, one of them asked twice

                # 5. a forged delivery is refused and sends nothing
                forged = await _dm(meta, "Give me a discount", "mid-5", secret="not-the-secret")
                assert forged.status_code == 401

                turns = (await api.get(f"/api/conversations/{conversation}")).json()["items"]
                assert [t["role"] for t in turns] == ["user", "assistant"] * 4
                assert len({t["content"] for t in turns}) == 8  # no turn twice
                usage = turns[1]["metadata"]["usage"]
                assert usage["total_tokens"] > 0
                executions = (await api.get("/api/executions")).json()["items"]
                assert all(e["metadata"]["clientId"] == ids["channel"] for e in executions)
                for e in executions:
                    await api.get(f"/api/executions/{e['id']}")
                    await api.get(f"/api/executions/{e['id']}/logs")
                await api.get("/api/credentials")
                assert len(graph_api.requests) == 4
    # no secret in any API answer, in the server's log, or in the database's rows
    # (events, execution outputs, logs: the credentials themselves are sealed)
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("**/flowmill.db*"))
    for secret in SECRETS:
        assert all(secret not in text for text in recorder.texts), secret
        assert s.log is not None and secret not in s.log.read_text(errors="replace")
        assert secret.encode() not in stored
