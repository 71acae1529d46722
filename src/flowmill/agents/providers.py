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

from typing import TYPE_CHECKING, Any

from flowmill.agents.ports import ChatModel, ChatReply, ChatRequest, ModelError, Usage
from flowmill.domain.errors import NodeError
from flowmill.net.retry_after import retry_after_s

if TYPE_CHECKING:
    from flowmill.engine.services import HttpClient

OPENAI_BASE_URL = "https://api.openai.com/v1"
ANTHROPIC_BASE_URL = "https://api.anthropic.com"
NO_KEY = "no-key"  # servers without auth (a local Ollama) still get a syntactically valid key
RETRIABLE_STATUSES = frozenset({408, 409, 429})
MAX_MESSAGE = 300


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

        messages: list[dict[str, Any]] = [{"role": "system", "content": request.system}]
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
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
                )
            except openai.OpenAIError as e:
                raise translate(e, "the model server", self._key) from None
        if not answer.choices:
            raise ModelError("the model server answered without a choice", retriable=True)
        choice = answer.choices[0]
        usage = answer.usage
        return ChatReply(
            text=choice.message.content or "",
            model=answer.model or request.model,
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
            stop_reason=choice.finish_reason,
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

        messages: list[Any] = [{"role": m.role, "content": m.content} for m in request.messages]
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
                    messages=messages,
                )
            except anthropic.AnthropicError as e:
                raise translate(e, "Anthropic", self._key) from None
        text = "".join(getattr(block, "text", "") for block in answer.content)
        return ChatReply(
            text=text,
            model=answer.model or request.model,
            usage=Usage(answer.usage.input_tokens, answer.usage.output_tokens),
            stop_reason=answer.stop_reason,
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
