"""Local stand-ins of outside services (LLMs, Graph API, Slack, Gmail, Twilio, OAuth2
token endpoints), speaking each service's documented wire format over real HTTP on
loopback. Each records the requests it saw; each route answers from a script (a list
of answers used in turn, the last one repeated) or a function of the request.

Formats, as documented by the services:

- OpenAI Chat Completions: ``POST /v1/chat/completions`` → ``{"id", "object":
  "chat.completion", "model", "choices": [{"index", "message": {"role", "content"},
  "finish_reason"}], "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}``;
  errors ``{"error": {"message", "type", "code"}}``.
- Anthropic Messages: ``POST /v1/messages`` → ``{"id", "type": "message", "role":
  "assistant", "model", "content": [{"type": "text", "text"}], "stop_reason",
  "usage": {"input_tokens", "output_tokens"}}``; errors ``{"type": "error", "error":
  {"type", "message"}}``.
- Tool calls: Chat Completions' ``message.tool_calls`` ``[{"id", "type": "function",
  "function": {"name", "arguments": "<JSON text>"}}]`` answered by ``{"role": "tool",
  "tool_call_id", "content"}`` messages; Messages' ``{"type": "tool_use", "id", "name",
  "input"}`` blocks answered by a user turn of ``{"type": "tool_result", "tool_use_id",
  "content", "is_error"}`` blocks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """One request a stand-in received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Answer:
    """What a route sends back."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    hold: threading.Event | None = None  # answer only once this is set

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        return json.dumps(self.body).encode(), "application/json"


Handler = Callable[[Request], Answer]
Script = Answer | list[Answer] | Handler


@dataclass
class Stub:
    """A running stand-in: ``routes["POST /v1/messages"] = script``."""

    routes: dict[str, Script] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)
    answered: int = 0  # answers written out whole
    _used: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def answer(self, request: Request) -> Answer:
        key = f"{request.method} {request.path}"
        with self._lock:
            script = self.routes.get(key)
            n = self._used.get(key, 0)
            self._used[key] = n + 1
        if script is None:
            return Answer(404, {"error": {"message": f"no route {key}"}})
        if isinstance(script, Answer):
            return script
        if isinstance(script, list):
            return script[min(n, len(script) - 1)]
        return script(request)


@contextmanager
def stub_server(routes: dict[str, Script] | None = None) -> Iterator[Stub]:
    """Serve a stand-in on a free loopback port for the block."""
    stub = Stub(dict(routes or {}))

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = Request(
                self.command,
                parts.path,
                parse_qs(parts.query),
                {k.lower(): v for k, v in self.headers.items()},
                body,
            )
            stub.requests.append(request)
            stub.arrived.set()
            answer = stub.answer(request)
            if answer.hold is not None:
                answer.hold.wait(60)
            if answer.delay_s:
                threading.Event().wait(answer.delay_s)
            data, content_type = answer.encoded()
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in answer.headers.items():
                    if name.lower() != "content-type":
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                stub.answered += 1
            except OSError:
                pass  # the client went away (a killed worker)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    stub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- wire formats ------------------------------------------------------------------------


def openai_reply(
    text: str, model: str = "gpt-test", prompt: int = 42, completion: int = 7
) -> Answer:
    """A Chat Completions answer."""
    return Answer(
        200,
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        },
    )


def openai_error(status: int, message: str = "boom", **headers: str) -> Answer:
    """A Chat Completions error."""
    return Answer(
        status,
        {"error": {"message": message, "type": "server_error", "code": None}},
        {k.replace("_", "-"): v for k, v in headers.items()},
    )


def anthropic_reply(
    text: str, model: str = "claude-test", input_tokens: int = 40, output_tokens: int = 9
) -> Answer:
    """A Messages answer."""
    return Answer(
        200,
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        },
    )


def openai_tool_calls(
    *calls: tuple[str, str, Any], prompt: int = 30, completion: int = 5
) -> Answer:
    """A Chat Completions answer calling tools: ``(call id, name, arguments)``; the
    arguments travel as a JSON string, as the API sends them."""
    return Answer(
        200,
        {
            "id": "chatcmpl-2",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-test",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": i,
                                "type": "function",
                                "function": {"name": n, "arguments": json.dumps(a)},
                            }
                            for i, n, a in calls
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        },
    )


def anthropic_tool_use(
    *calls: tuple[str, str, Any], input_tokens: int = 30, output_tokens: int = 5
) -> Answer:
    """A Messages answer calling tools: a text block then ``tool_use`` blocks."""
    return Answer(
        200,
        {
            "id": "msg_2",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [{"type": "text", "text": "Let me check."}]
            + [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in calls],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        },
    )


def anthropic_error(
    status: int, kind: str = "api_error", message: str = "boom", **headers: str
) -> Answer:
    """A Messages error."""
    return Answer(
        status,
        {"type": "error", "error": {"type": kind, "message": message}},
        {k.replace("_", "-"): v for k, v in headers.items()},
    )


def token_answer(
    access_token: str, expires_in: int = 3600, refresh_token: str | None = None
) -> Answer:
    """An OAuth2 token endpoint's success (RFC 6749 §5.1)."""
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
    }
    if refresh_token:
        body["refresh_token"] = refresh_token
    return Answer(200, body)


def instagram_dm(
    account_id: str, sender_id: str, text: str, mid: str, *, echo: bool = False
) -> dict[str, Any]:
    """An Instagram messaging webhook payload, as Meta delivers it."""
    message: dict[str, Any] = {"mid": mid, "text": text}
    if echo:
        message["is_echo"] = True
    return {
        "object": "instagram",
        "entry": [
            {
                "id": account_id,
                "time": 1_700_000_000_000,
                "messaging": [
                    {
                        "sender": {"id": sender_id},
                        "recipient": {"id": account_id},
                        "timestamp": 1_700_000_000_000,
                        "message": message,
                    }
                ],
            }
        ],
    }


def meta_body(payload: Any) -> bytes:
    """A payload as Meta sends it: non-ASCII escaped, ``/`` as ``\\/``."""
    return json.dumps(payload, ensure_ascii=True).replace("/", "\\/").encode()


async def eventually(check: Callable[[], Any], *, timeout: float = 30, every: float = 0.05) -> Any:
    """``check()`` (awaited if it is a coroutine) once it returns something truthy; fails
    with its last value after ``timeout`` seconds. For waiting on other processes."""
    import asyncio
    import inspect
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {value!r}")
        await asyncio.sleep(every)  # not a wait: the pace of a scripted stream
