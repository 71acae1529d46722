"""Chat models of the providers, through their official SDKs.

- ``openai``: any server speaking OpenAI's Chat Completions (OpenAI, Azure OpenAI's
  v1 endpoint, Ollama, vLLM, OpenRouter, LM Studio...), chosen by ``base_url``.
- ``anthropic``: Anthropic's Messages API.

Each call builds an SDK client over :class:`~flowmill.agents.transport.PortTransport`,
with the SDK's own retries off (the node retries, honouring ``Retry-After``) and every
setting given explicitly, so no environment variable of the server (``OPENAI_API_KEY``,
``ANTHROPIC_BASE_URL``...) ever stands in for a tenant's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from flowmill.agents.ports import (
    ChatModel,
    ChatReply,
    ChatRequest,
    ModelError,
    ToolCall,
    Usage,
)
from flowmill.domain.errors import NodeError
from flowmill.net.retry_after import retry_after_s

if TYPE_CHECKING:
    from flowmill.engine.services import HttpClient

OPENAI_BASE_URL = "https://api.openai.com/v1"
ANTHROPIC_BASE_URL = "https://api.anthropic.com"
NO_KEY = "no-key"  # servers without auth (a local Ollama) still get a syntactically valid key
RETRIABLE_STATUSES = frozenset({408, 409, 429})
MAX_MESSAGE = 300
#: The schema of a tool declared without parameters (providers want an object schema).
EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def scrub(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` (providers quote parts of a refused key)."""
    if secret and secret != NO_KEY:
        text = text.replace(secret, "[redacted]")
    return text[:MAX_MESSAGE]


def translate(error: Exception, provider: str, api_key: str | None) -> NodeError:
    """An SDK exception as the node error users see."""
    cause = error.__cause__ or error.__context__
    if isinstance(cause, NodeError):
        return cause  # the HTTP port's own error (SsrfBlocked, HttpTimeout...)
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        response = getattr(error, "response", None)
        headers = dict(response.headers) if response is not None else {}
        if status in (401, 403):
            message = f"{provider} refused the API key (HTTP {status})"
        else:
            message = f"{provider} answered HTTP {status}: {scrub(str(error), api_key)}"
        return ModelError(
            message,
            retriable=status >= 500 or status in RETRIABLE_STATUSES,
            status=status,
            retry_after_s=retry_after_s(headers),
        )
    name = type(error).__name__
    if "Timeout" in name:
        return ModelError(f"{provider} did not answer in time", retriable=True)
    return ModelError(f"{provider} call failed: {scrub(str(error), api_key)}", retriable=True)


def _need_sdk(sdk: str) -> None:
    """Fail the node, without retries, when the agents extra is not installed."""
    from flowmill.extras import MissingExtra, require

    try:
        for module in (sdk, "httpx2"):
            require(module)
    except MissingExtra as e:
        raise ModelError(str(e), retriable=False) from None


def parse_arguments(text: str | None) -> Any:
    """A tool call's JSON arguments, parsed; the text itself when it is not JSON (the
    call is then answered with an error instead of being run)."""
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text


def openai_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The request's messages in Chat Completions' shape: an assistant turn's calls as
    ``tool_calls``, their results as one ``tool`` message each."""
    out: list[dict[str, Any]] = [{"role": "system", "content": request.system}]
    for m in request.messages:
        if m.tool_results:
            out += [
                {"role": "tool", "tool_call_id": r.call_id, "content": r.content}
                for r in m.tool_results
            ]
        elif m.tool_calls:
            out.append(
                {
                    "role": "assistant",
                    "content": m.content or None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": _arguments_text(c)},
                        }
                        for c in m.tool_calls
                    ],
                }
            )
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def anthropic_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The request's messages in the Messages API's shape: calls as ``tool_use``
    blocks, their results as ``tool_result`` blocks of the next user turn."""
    out: list[dict[str, Any]] = []
    for m in request.messages:
        if m.tool_results:
            blocks: list[dict[str, Any]] = [
                {
                    "type": "tool_result",
                    "tool_use_id": r.call_id,
                    "content": r.content,
                    "is_error": r.is_error,
                }
                for r in m.tool_results
            ]
            out.append({"role": "user", "content": blocks})
        elif m.tool_calls:
            blocks = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [
                {
                    "type": "tool_use",
                    "id": c.id,
                    "name": c.name,
                    "input": c.arguments if isinstance(c.arguments, dict) else {},
                }
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def _arguments_text(call: ToolCall) -> str:
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


class OpenAIChat:
    """OpenAI-compatible Chat Completions."""

    def __init__(self, *, api_key: str | None, base_url: str | None, http: HttpClient) -> None:
        self._key = api_key or NO_KEY
        self._base_url = base_url or OPENAI_BASE_URL
        self._http = http

    async def complete(self, request: ChatRequest) -> ChatReply:
        _need_sdk("openai")
        import httpx2
        import openai

        from flowmill.agents.transport import PortTransport

        messages = openai_messages(request)
        extra: dict[str, Any] = {}
        if request.tools:
            extra["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": dict(t.parameters) or EMPTY_SCHEMA,
                    },
                }
                for t in request.tools
            ]
        transport = PortTransport(self._http, request.timeout_s)
        async with httpx2.AsyncClient(transport=transport) as client:
            sdk = openai.AsyncOpenAI(
                api_key=self._key,
                organization="",
                project="",
                base_url=self._base_url,
                http_client=client,
                max_retries=0,
                timeout=request.timeout_s,
            )
            try:
                answer = await sdk.chat.completions.create(
                    model=request.model,
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=request.max_tokens,
                    temperature=request.temperature,
                    **extra,
                )
            except openai.OpenAIError as e:
                raise translate(e, "the model server", self._key) from None
        if not answer.choices:
            raise ModelError("the model server answered without a choice", retriable=True)
        choice = answer.choices[0]
        usage = answer.usage
        calls = tuple(
            ToolCall(c.id, c.function.name, parse_arguments(c.function.arguments))
            for c in choice.message.tool_calls or ()
            if isinstance(c, openai.types.chat.ChatCompletionMessageFunctionToolCall)
        )
        return ChatReply(
            text=choice.message.content or "",
            model=answer.model or request.model,
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
            stop_reason=choice.finish_reason,
            tool_calls=calls,
        )


class AnthropicChat:
    """Anthropic's Messages API."""

    def __init__(self, *, api_key: str | None, base_url: str | None, http: HttpClient) -> None:
        self._key = api_key or NO_KEY
        self._base_url = base_url or ANTHROPIC_BASE_URL
        self._http = http

    async def complete(self, request: ChatRequest) -> ChatReply:
        _need_sdk("anthropic")
        import anthropic
        import httpx2

        from flowmill.agents.transport import PortTransport

        messages = anthropic_messages(request)
        extra: dict[str, Any] = {}
        if request.tools:
            extra["tools"] = [
                {
                    "name": t.name,
                    "description": t.description,
                    "input_schema": dict(t.parameters) or EMPTY_SCHEMA,
                }
                for t in request.tools
            ]
        transport = PortTransport(self._http, request.timeout_s)
        async with httpx2.AsyncClient(transport=transport) as client:
            sdk = anthropic.AsyncAnthropic(
                api_key=self._key,
                base_url=self._base_url,
                http_client=client,
                max_retries=0,
                timeout=request.timeout_s,
            )
            try:
                # No temperature: the Messages API of this SDK generation has none
                # (sampling is the model's); the agent's setting applies to OpenAI-style
                # servers only.
                answer = await sdk.messages.create(
                    model=request.model,
                    max_tokens=request.max_tokens,
                    system=request.system,
                    messages=messages,  # type: ignore[arg-type]
                    **extra,
                )
            except anthropic.AnthropicError as e:
                raise translate(e, "Anthropic", self._key) from None
        text = "".join(getattr(block, "text", "") for block in answer.content)
        calls = tuple(
            ToolCall(block.id, block.name, block.input)
            for block in answer.content
            if isinstance(block, anthropic.types.ToolUseBlock)
        )
        return ChatReply(
            text=text,
            model=answer.model or request.model,
            usage=Usage(answer.usage.input_tokens, answer.usage.output_tokens),
            stop_reason=answer.stop_reason,
            tool_calls=calls,
        )


def build_model(
    provider: str, *, api_key: str | None, base_url: str | None, http: HttpClient
) -> ChatModel:
    """The chat model of ``provider``.

    Raises:
        ModelError: Unknown provider, or its SDK is missing (``flowmill[agents]``).
    """
    classes: dict[str, tuple[str, type[OpenAIChat] | type[AnthropicChat]]] = {
        "openai": ("openai", OpenAIChat),
        "anthropic": ("anthropic", AnthropicChat),
    }
    if provider not in classes:
        raise ModelError(f"unknown provider {provider!r}", retriable=False)
    module, cls = classes[provider]
    try:
        __import__(module)
        __import__("httpx2")
    except ImportError:
        raise ModelError(
            f"the {module} SDK is not installed: pip install 'flowmill[agents]'",
            retriable=False,
        ) from None
    return cls(api_key=api_key, base_url=base_url, http=http)
