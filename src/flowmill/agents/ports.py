"""The agent layer's port and value types: what the ``agent`` node asks for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from flowmill.domain.errors import NodeError

if TYPE_CHECKING:
    from flowmill.engine.services import HttpClient

Role = Literal["user", "assistant"]
PROVIDERS = ("openai", "anthropic")
#: Rounds of tool calls an agent may make unless its settings say otherwise.
DEFAULT_TOOL_ROUNDS = 5
#: Tools one agent may be given (each is described in every request).
MAX_TOOLS = 32


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for.

    Attributes:
        id: The provider's id of the call (echoed with its result).
        name: The tool's name.
        arguments: The arguments as parsed JSON (a string when the model sent text
            that is not JSON: the call is answered with an error, not run).
    """

    id: str
    name: str
    arguments: Any


@dataclass(frozen=True)
class ToolResult:
    """What a tool call gave, sent back to the model."""

    call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class ChatMessage:
    """One turn sent to a model.

    An assistant turn may carry ``tool_calls``; a user turn carrying ``tool_results``
    answers them (OpenAI ``tool`` messages, Anthropic ``tool_result`` blocks).
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()


@dataclass(frozen=True)
class ChatRequest:
    """One call of a chat model.

    Attributes:
        model: The provider's model name.
        system: The persona and instructions (system prompt).
        messages: History then the new user message, oldest first.
        max_tokens: Cap on the reply's length.
        temperature: Sampling temperature.
        timeout_s: Limit of one HTTP exchange with the provider.
        tools: Function tools the model may call (none: a plain chat call).
    """

    model: str
    system: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int
    temperature: float
    timeout_s: float = 60.0
    tools: tuple[ToolSpec, ...] = ()


@dataclass(frozen=True)
class Usage:
    """Tokens one call consumed, as the provider counted them."""

    input_tokens: int = 0
    output_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        """``{"input_tokens", "output_tokens", "total_tokens"}``."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }


@dataclass(frozen=True)
class ChatReply:
    """A model's answer."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    stop_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


class ModelError(NodeError):
    """A provider call failed; ``retriable`` and ``retry_after_s`` say what may help.

    Messages never include the API key (:func:`flowmill.agents.errors.scrub`).
    """

    def __init__(
        self,
        message: str,
        *,
        retriable: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        details: dict[str, Any] = {}
        if status is not None:
            details["status"] = status
        if retry_after_s is not None:
            details["retry_after_s"] = retry_after_s
        super().__init__(message, type="ModelError", retriable=retriable, details=details)

    @property
    def retry_after_s(self) -> float | None:
        """How long the provider asked to wait (``Retry-After``), if it said."""
        value = self.details.get("retry_after_s")
        return float(value) if value is not None else None


class ChatModel(Protocol):
    """A chat model of one provider, bound to an API key and base URL."""

    async def complete(self, request: ChatRequest) -> ChatReply:
        """One call, no retries (the caller retries).

        Raises:
            ModelError: The provider refused or failed.
            NodeError: The HTTP layer refused (``SsrfBlocked``...).
        """
        ...


@dataclass(frozen=True)
class ToolSpec:
    """A sub-workflow offered to the model as a function tool: each call runs as a
    child execution of ``workflow_id`` (its active version, or ``version``) with the
    call's arguments as its trigger data (docs/agents.md, Tools)."""

    name: str
    description: str
    workflow_id: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    version: int | None = None


@dataclass(frozen=True)
class AgentSettings:
    """How an agent calls its model.

    Attributes:
        timeout_s: Limit of one call to the provider.
        max_retries: Further calls after a 429/5xx/timeout within one attempt.
        max_retry_wait_s: Longest ``Retry-After`` waited for in the node; a longer one
            fails the attempt as retriable, and the node's retry policy waits at least
            that long (durably, no worker held).
        tools: Sub-workflows the model may call (see :class:`ToolSpec`).
        max_tool_rounds: Rounds of tool calls at most; a model still calling tools
            after that many fails the node (``MaxToolRoundsExceeded``).
    """

    timeout_s: float = 60.0
    max_retries: int = 2
    max_retry_wait_s: float = 30.0
    tools: tuple[ToolSpec, ...] = ()
    max_tool_rounds: int = DEFAULT_TOOL_ROUNDS


@dataclass(frozen=True)
class AgentConfig:
    """A row of ``agent_configs``: a persona bound to a provider and model."""

    id: str
    tenant_id: str
    name: str
    provider: str
    model: str
    character: dict[str, Any]
    max_tokens: int
    temperature: float
    history_window: int
    credential: str | None
    base_url: str | None
    settings: AgentSettings
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Turn:
    """One stored turn of a conversation."""

    id: str
    conversation_id: str
    client_id: str
    role: str
    content: str
    timestamp: datetime
    execution_id: str | None = None
    node_id: str | None = None
    metadata: dict[str, Any] | None = None


class AgentBackend(Protocol):
    """What the ``agent`` node needs besides credentials and HTTP."""

    async def agent(self, tenant_id: str, ref: str) -> AgentConfig | None:
        """The tenant's agent with id or name ``ref``; ``None`` if there is none."""
        ...

    async def history(
        self, tenant_id: str, conversation_id: str, client_id: str, limit: int
    ) -> list[Turn]:
        """The last ``limit`` turns of a conversation, oldest first."""
        ...

    def model(
        self, provider: str, *, api_key: str | None, base_url: str | None, http: HttpClient
    ) -> ChatModel:
        """A client of ``provider`` whose HTTP goes through ``http``.

        Raises:
            ModelError: Unknown provider, or its SDK is not installed.
        """
        ...
