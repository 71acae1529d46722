"""``agent``: answer a message as one of the tenant's agents, remembering the conversation.

One attempt: render the message, load the agent (``/api/agents``) and the last
``history_window`` turns of the conversation, call the model (retrying 429/5xx as the
provider asks), and return ``{reply, usage, model, conversation_id, client_id,
tool_calls}`` with
the user turn and the reply as :attr:`~flowmill.nodes.base.NodeResult.turns`. The
engine writes those turns in the step's checkpoint transaction: a step retried or
recovered after a crash stores its turns once, and only if its success is recorded
(docs/agents.md).

With tools (sub-workflows offered as function tools), an answer that calls tools is
recorded first (once per round: :meth:`Control.record_once`), then each call runs as a
child execution started once per ``(execution, node, round, call)``, the node parks
without a worker until they end (the conversation in the parked run's state, see
:mod:`flowmill.agents.tools`), and the results go back to the model, up to
``max_tool_rounds``. The output then also
lists ``tool_calls`` ``[{name, arguments, execution_id, result}]``, and ``usage`` sums
every model call.

Inside a channel's workflow every field has a default from the trigger's metadata
(``agentId``, ``text``, ``conversationId``, ``clientId``), so ``"config": {}`` answers
the incoming message with the channel's agent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field

from flowmill.agents.ports import (
    MAX_TOOLS,
    AgentBackend,
    AgentConfig,
    ChatMessage,
    ChatReply,
    ChatRequest,
    ModelError,
    ToolResult,
    ToolSpec,
)
from flowmill.agents.prompt import conversation, system_prompt
from flowmill.agents.retry import backoff_s, with_retries
from flowmill.agents.store import settings_from
from flowmill.agents.tools import (
    MAX_MODEL_RETRIES,
    ToolLoop,
    answer_from_json,
    answer_to_json,
    error_text,
    result_text,
)
from flowmill.credentials import kinds
from flowmill.credentials.crypto import CredentialError
from flowmill.domain.errors import NodeError, NodeFailure
from flowmill.domain.execution import ConversationTurn
from flowmill.domain.states import ExecutionStatus
from flowmill.engine.control import WAKE_CHILDREN, ChildRecord, Control, ControlError
from flowmill.engine.templates import stringify
from flowmill.nodes._children import control_of, poll_delay, start_failed
from flowmill.nodes.base import NodeConfig, NodeContext, NodeResult, NodeType, Suspend


class MaxToolRoundsExceeded(NodeFailure):
    """The model kept calling tools past ``max_tool_rounds``."""


MAX_MESSAGE_CHARS = 100_000


class AgentTool(NodeConfig):
    """A sub-workflow offered to the model as a function tool: each call runs as a
    child execution of ``workflow_id`` (its active version, or ``version``) with the
    call's arguments as its input."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str = Field("", max_length=1000)
    workflow_id: str = Field(min_length=1, max_length=200)
    version: int | None = Field(None, ge=1)
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
        tools: Sub-workflows as function tools; replaces the agent's own tools.
        max_tool_rounds: Overrides the agent's rounds of tool calls at most.
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
    tools: list[AgentTool] = Field(default_factory=list, max_length=MAX_TOOLS)
    max_tool_rounds: int | None = Field(None, ge=1, le=50)


def _fail(message: str, type_: str = "AgentError", *, retriable: bool = False) -> NodeError:
    return NodeError(message, type=type_, retriable=retriable)


def _tools(config: AgentNodeConfig, agent: AgentConfig) -> tuple[ToolSpec, ...]:
    """The node's tools, or else the agent's."""
    if config.tools:
        return tuple(
            ToolSpec(t.name, t.description, t.workflow_id, t.parameters, t.version)
            for t in config.tools
        )
    return agent.settings.tools


class AgentNode(NodeType[AgentNodeConfig]):
    """Calls the agent's model with its persona and the conversation so far; runs the
    tools it calls as child executions, parked while they run (docs/agents.md)."""

    type_name = "agent"
    Config = AgentNodeConfig
    default_timeout_s = 300.0
    description: ClassVar[str] = "Answer a message as an AI agent with memory and tools."

    def config_issues(self, config: AgentNodeConfig, *, expressions_enabled: bool) -> list[str]:
        issues = super().config_issues(config, expressions_enabled=expressions_enabled)
        names = [t.name for t in config.tools]
        if len(set(names)) != len(names):
            issues.append("tools: tool names must be unique")
        return issues

    async def execute(self, ctx: NodeContext, config: AgentNodeConfig) -> Any:
        backend = ctx.services.agents
        if backend is None:
            raise _fail("agents are not available here", "AgentUnavailable")
        loop = ToolLoop.from_state(ctx.state) if ctx.resumed else None
        if loop is not None:
            return await self._resume(ctx, config, backend, loop)
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
        window = (
            config.history_window if config.history_window is not None else agent.history_window
        )
        history = await backend.history(ctx.tenant_id, conversation_id, client_id, window)
        request = ChatRequest(
            model=config.model or agent.model,
            system=system_prompt(agent.character),
            messages=conversation(history, message),
            max_tokens=config.max_tokens or agent.max_tokens,
            temperature=config.temperature if config.temperature is not None else agent.temperature,
            timeout_s=config.timeout_s or agent.settings.timeout_s,
            tools=_tools(config, agent),
        )
        reply = await self._ask(ctx, config, agent, request)
        loop = ToolLoop(
            phase="ask",
            round=0,
            messages=list(request.messages),
            calls=[],
            request={
                "model": request.model,
                "system": request.system,
                "max_tokens": request.max_tokens,
                "temperature": request.temperature,
                "timeout_s": request.timeout_s,
            },
            turn={
                "agent_id": agent.id,
                "message": message,
                "conversation_id": conversation_id,
                "client_id": client_id,
                "asked_at": ctx.now.isoformat(),
            },
        )
        return await self._answered(ctx, config, agent, loop, reply)

    async def _resume(
        self, ctx: NodeContext, config: AgentNodeConfig, backend: AgentBackend, loop: ToolLoop
    ) -> Any:
        """One more step of a conversation that calls tools, from its parked state."""
        agent = await backend.agent(ctx.tenant_id, str(loop.turn["agent_id"]))
        if agent is None:
            raise _fail(f"agent {loop.turn['agent_id']} was deleted", "AgentNotFound")
        tools = _tools(config, agent)
        control = control_of(ctx)
        if loop.phase == "wait":
            ended: dict[int, ChildRecord] = {}
            for index, call in enumerate(loop.calls):
                if call.get("execution_id"):
                    child = await control.store.child(str(call["execution_id"]))
                    if child is None or not child.status.terminal:
                        return self._park_for_children(ctx, control, loop)
                    ended[index] = child
            self._collect(loop, ended)
            loop.phase = "ask"
        request = ChatRequest(
            model=str(loop.request["model"]),
            system=str(loop.request["system"]),
            messages=tuple(loop.messages),
            max_tokens=int(loop.request["max_tokens"]),
            temperature=float(loop.request["temperature"]),
            timeout_s=float(loop.request["timeout_s"]),
            tools=tools,
        )
        try:
            reply = await self._ask(ctx, config, agent, request)
        except ModelError as e:
            # Tools have run: a retry of the node would start the conversation over and
            # ask the model again for every round (replaying the recorded answers; the
            # tools do not run again). Asking again from this state costs one call.
            if not e.retriable or loop.failures >= MAX_MODEL_RETRIES:
                raise
            loop.failures += 1
            wait = e.retry_after_s if e.retry_after_s is not None else backoff_s(loop.failures)
            ctx.log.warn(f"model call failed ({e.message}); asking again in {wait:g} s")
            return Suspend(until=ctx.now + timedelta(seconds=wait), state=loop.to_state())
        loop.failures = 0
        return await self._answered(ctx, config, agent, loop, reply)

    async def _answered(
        self,
        ctx: NodeContext,
        config: AgentNodeConfig,
        agent: AgentConfig,
        loop: ToolLoop,
        reply: ChatReply,
    ) -> Suspend | NodeResult:
        """The model answered: start the tools it called and park, or finish."""
        if not reply.tool_calls:
            loop.add_usage(reply.usage)
            loop.model = reply.model
            return self._final(ctx, agent, loop, reply)
        rounds = config.max_tool_rounds or agent.settings.max_tool_rounds
        if loop.round >= rounds:
            loop.add_usage(reply.usage)
            raise MaxToolRoundsExceeded(
                f"the model still called tools after {loop.round} rounds "
                f"(max_tool_rounds {rounds})",
                details={"tool_calls": loop.made, "usage": loop.usage.to_dict()},
            )
        control = control_of(ctx)
        # The answer is recorded before any tool starts; a run repeated after a crash
        # (which asked the model again) or racing this one acts on the first answer.
        kept = answer_from_json(
            await control.record_once(ctx, f"round:{loop.round + 1}", answer_to_json(reply))
        )
        loop.add_usage(kept.usage)
        loop.model = kept.model
        loop.round += 1
        loop.messages.append(ChatMessage("assistant", kept.text, kept.tool_calls))
        loop.calls = ToolLoop.calls_of(kept.tool_calls)
        ctx.log.info(
            f"round {loop.round}: the model calls " + ", ".join(c.name for c in kept.tool_calls),
            round=loop.round,
        )
        tools = {t.name: t for t in _tools(config, agent)}
        await self._start_calls(ctx, control, loop, tools)
        loop.phase = "wait"
        return self._park_for_children(ctx, control, loop)

    async def _start_calls(
        self,
        ctx: NodeContext,
        control: Control,
        loop: ToolLoop,
        tools: dict[str, ToolSpec],
    ) -> None:
        """Start the round's children (once each, whatever crashes happen)."""
        for index, call in enumerate(loop.calls):
            if call.get("execution_id") or call.get("error"):
                continue
            spec = tools.get(str(call["name"]))
            if spec is None:
                call["error"] = f"no tool named {call['name']!r}; the tools are: " + ", ".join(
                    sorted(tools)
                )
                continue
            if not isinstance(call["arguments"], dict):
                call["error"] = "the arguments must be a JSON object"
                continue
            try:
                call["execution_id"] = await control.start_child(
                    ctx,
                    data=call["arguments"],
                    workflow_id=spec.workflow_id,
                    version=spec.version,
                    trigger_type="agent_tool",
                    mark={"tool": spec.name},
                    slot=f"tool:{loop.round}:{index}:{str(call['id'])[:64]}",
                )
            except ControlError as e:
                raise start_failed(e) from e

    @staticmethod
    def _park_for_children(ctx: NodeContext, control: Control, loop: ToolLoop) -> Suspend:
        ids = [str(c["execution_id"]) for c in loop.calls if c.get("execution_id")]
        if not ids:  # every call was answered with an error: ask again at once
            return Suspend(until=ctx.now, state=loop.to_state())

        async def _ended() -> bool:
            for child_id in ids:
                child = await control.store.child(child_id)
                if child is None or not child.status.terminal:
                    return False
            return True

        return Suspend(
            until=ctx.now + poll_delay(control),
            state=loop.to_state(),
            wake_on=WAKE_CHILDREN,
            recheck=_ended,
        )

    @staticmethod
    def _collect(loop: ToolLoop, ended: dict[int, ChildRecord]) -> None:
        """The round's results into the conversation and the list of calls made.

        A tool whose workflow failed is an error result the model reads (it may try
        otherwise or explain), not a failure of the node."""
        results: list[ToolResult] = []
        for index, call in enumerate(loop.calls):
            child = ended.get(index)
            made: dict[str, Any] = {
                "name": call["name"],
                "arguments": call["arguments"],
                "execution_id": call.get("execution_id"),
                "result": None,
                "round": loop.round,
            }
            if child is not None and child.status is ExecutionStatus.SUCCEEDED:
                made["result"] = child.output
                results.append(ToolResult(str(call["id"]), result_text(child.output)))
            else:
                if child is not None:
                    error: Any = child.error or {"message": child.status.value}
                else:
                    error = {"type": "ToolCallRefused", "message": call.get("error")}
                made["error"] = error
                results.append(ToolResult(str(call["id"]), error_text(error), is_error=True))
            loop.made.append(made)
        loop.messages.append(ChatMessage("user", "", tool_results=tuple(results)))
        loop.calls = []

    async def _ask(
        self, ctx: NodeContext, config: AgentNodeConfig, agent: AgentConfig, request: ChatRequest
    ) -> ChatReply:
        """One model call, retried within the attempt as the provider asks."""
        backend = ctx.services.agents
        assert backend is not None
        api_key = await self._api_key(ctx, agent)
        settings = settings_from(
            {
                "timeout_s": request.timeout_s,
                "max_retries": (
                    config.max_retries
                    if config.max_retries is not None
                    else agent.settings.max_retries
                ),
                "max_retry_wait_s": agent.settings.max_retry_wait_s,
            }
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
        return reply

    def _final(
        self, ctx: NodeContext, agent: AgentConfig, loop: ToolLoop, reply: ChatReply
    ) -> NodeResult:
        """The node's output and the exchange's two turns (stored with the checkpoint)."""
        usage = loop.usage.to_dict()
        turn = loop.turn
        conversation_id, client_id = str(turn["conversation_id"]), str(turn["client_id"])
        asked = datetime.fromisoformat(str(turn["asked_at"]))
        answered = ctx.services.clock.now()
        metadata: dict[str, Any] = {"model": reply.model, "usage": usage, "agent_id": agent.id}
        if loop.made:
            metadata["tool_calls"] = [
                {"name": m["name"], "execution_id": m["execution_id"]} for m in loop.made
            ]
        return NodeResult(
            output={
                "reply": reply.text,
                "usage": usage,
                "model": reply.model,
                "conversation_id": conversation_id,
                "client_id": client_id,
                "tool_calls": [
                    {k: m.get(k) for k in ("name", "arguments", "execution_id", "result")}
                    | ({"error": m["error"]} if "error" in m else {})
                    for m in loop.made
                ],
            },
            turns=[
                ConversationTurn(
                    conversation_id, client_id, "user", str(turn["message"]), asked, 0
                ),
                ConversationTurn(
                    conversation_id,
                    client_id,
                    "assistant",
                    reply.text,
                    max(answered, asked),
                    1,
                    metadata,
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
