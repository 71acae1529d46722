"""``agent``: answer a message as one of the tenant's agents, remembering the conversation.

One attempt: render the message, load the agent (``/api/agents``) and the last
``history_window`` turns of the conversation, call the model (retrying 429/5xx as the
provider asks), and return ``{reply, usage, model, conversation_id, client_id}`` with
the user turn and the reply as :attr:`~flowmill.nodes.base.NodeResult.turns`. The
engine writes those turns in the step's checkpoint transaction: a step retried or
recovered after a crash stores its turns once, and only if its success is recorded
(docs/agents.md).

Inside a channel's workflow every field has a default from the trigger's metadata
(``agentId``, ``text``, ``conversationId``, ``clientId``), so ``"config": {}`` answers
the incoming message with the channel's agent.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from flowmill.agents.ports import AgentConfig, ChatRequest, ModelError
from flowmill.agents.prompt import conversation, system_prompt
from flowmill.agents.retry import with_retries
from flowmill.agents.store import settings_from
from flowmill.credentials import kinds
from flowmill.credentials.crypto import CredentialError
from flowmill.domain.errors import NodeError
from flowmill.domain.execution import ConversationTurn
from flowmill.engine.templates import stringify
from flowmill.nodes.base import NodeConfig, NodeContext, NodeResult, NodeType

MAX_MESSAGE_CHARS = 100_000


class AgentTool(NodeConfig):
    """A sub-workflow offered to the model as a function tool (reserved)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str = Field("", max_length=1000)
    workflow_id: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)


class AgentNodeConfig(NodeConfig):
    """Config of ``agent`` nodes; strings are templates.

    Attributes:
        agent: The agent's id or name.
        message: The user's message.
        conversation_id: Which conversation to load and extend.
        client_id: Whose conversation (the channel).
        model: Overrides the agent's model.
        max_tokens: Overrides the agent's ``max_tokens``.
        temperature: Overrides the agent's temperature.
        history_window: Overrides how many past turns are sent.
        timeout_s: Overrides the limit of one model call.
        max_retries: Overrides the retries of one attempt.
        tools: Sub-workflows as function tools: reserved for the sub-workflow node;
            a non-empty list does not validate yet.
        max_tool_rounds: Tool-calling rounds at most (reserved).
    """

    agent: str = Field("{{trigger.metadata.agentId}}", min_length=1)
    message: str = Field("{{trigger.metadata.text}}", min_length=1)
    conversation_id: str = Field("{{trigger.metadata.conversationId}}", min_length=1)
    client_id: str = Field("{{trigger.metadata.clientId}}")
    model: str | None = Field(None, min_length=1, max_length=255)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    temperature: float | None = Field(None, ge=0, le=2)
    history_window: int | None = Field(None, ge=0, le=1000)
    timeout_s: float | None = Field(None, gt=0, le=600)
    max_retries: int | None = Field(None, ge=0, le=10)
    tools: list[AgentTool] = Field(default_factory=list)
    max_tool_rounds: int = Field(0, ge=0, le=50)


def _fail(message: str, type_: str = "AgentError", *, retriable: bool = False) -> NodeError:
    return NodeError(message, type=type_, retriable=retriable)


class AgentNode(NodeType[AgentNodeConfig]):
    """Calls the agent's model with its persona and the conversation so far."""

    type_name = "agent"
    Config = AgentNodeConfig
    default_timeout_s = 300.0
    description: ClassVar[str] = "Answer a message as an AI agent with memory."

    def config_issues(self, config: AgentNodeConfig, *, expressions_enabled: bool) -> list[str]:
        issues = super().config_issues(config, expressions_enabled=expressions_enabled)
        if config.tools:
            issues.append(
                "tools: agent tools run sub-workflows, which this version cannot yet; "
                "leave tools empty"
            )
        return issues

    async def execute(self, ctx: NodeContext, config: AgentNodeConfig) -> Any:
        backend = ctx.services.agents
        if backend is None:
            raise _fail("agents are not available here", "AgentUnavailable")
        fields = await ctx.render(
            {
                "agent": config.agent,
                "message": config.message,
                "conversation_id": config.conversation_id,
                "client_id": config.client_id,
            }
        )
        for name in ("agent", "message", "conversation_id"):
            if fields[name] is None or stringify(fields[name]).strip() == "":
                raise _fail(f"{name} rendered to nothing; set it in the node's config")
        message = stringify(fields["message"])[:MAX_MESSAGE_CHARS]
        conversation_id = stringify(fields["conversation_id"])[:255]
        client_id = stringify(fields["client_id"] or "")[:255]
        agent = await backend.agent(ctx.tenant_id, stringify(fields["agent"]))
        if agent is None:
            raise _fail(f"no agent {stringify(fields['agent'])!r}", "AgentNotFound")
        api_key = await self._api_key(ctx, agent)
        window = (
            config.history_window if config.history_window is not None else agent.history_window
        )
        history = await backend.history(ctx.tenant_id, conversation_id, client_id, window)
        settings = settings_from(
            {
                "timeout_s": config.timeout_s or agent.settings.timeout_s,
                "max_retries": (
                    config.max_retries
                    if config.max_retries is not None
                    else agent.settings.max_retries
                ),
                "max_retry_wait_s": agent.settings.max_retry_wait_s,
            }
        )
        request = ChatRequest(
            model=config.model or agent.model,
            system=system_prompt(agent.character),
            messages=conversation(history, message),
            max_tokens=config.max_tokens or agent.max_tokens,
            temperature=config.temperature if config.temperature is not None else agent.temperature,
            timeout_s=settings.timeout_s,
        )
        model = backend.model(
            agent.provider, api_key=api_key, base_url=agent.base_url, http=ctx.services.http
        )

        def _retrying(error: ModelError, wait: float) -> None:
            ctx.log.warn(f"model call failed ({error.message}); again in {wait:g} s")

        reply = await with_retries(
            lambda: model.complete(request), settings, ctx.services.clock, _retrying
        )
        usage = reply.usage.to_dict()
        ctx.log.info(
            f"{agent.provider} {reply.model}: {usage['total_tokens']} tokens",
            model=reply.model,
            **usage,
        )
        answered = ctx.services.clock.now()
        return NodeResult(
            output={
                "reply": reply.text,
                "usage": usage,
                "model": reply.model,
                "conversation_id": conversation_id,
                "client_id": client_id,
            },
            turns=[
                ConversationTurn(conversation_id, client_id, "user", message, ctx.now, 0),
                ConversationTurn(
                    conversation_id,
                    client_id,
                    "assistant",
                    reply.text,
                    max(answered, ctx.now),
                    1,
                    {"model": reply.model, "usage": usage, "agent_id": agent.id},
                ),
            ],
        )

    async def _api_key(self, ctx: NodeContext, agent: AgentConfig) -> str | None:
        """The agent's API key, opened for this attempt (none for keyless servers)."""
        if not agent.credential:
            return None
        vault = ctx.services.credentials
        if vault is None:
            raise _fail("credentials are not available here", "CredentialError")
        try:
            kind, data = await vault.resolve(ctx.tenant_id, agent.credential, ctx.credential_use())
            if kind == "oauth2":
                return await vault.access_token(
                    ctx.tenant_id, agent.credential, ctx.credential_use()
                )
        except CredentialError as e:
            retriable = getattr(e, "retriable", False)
            raise _fail(str(e), "CredentialError", retriable=retriable) from None
        key = kinds.main_secret(kind, data)
        if key is None:
            raise _fail(f"credential {agent.credential!r} holds no API key", "CredentialError")
        return key
