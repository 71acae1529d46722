"""``/api/agents`` (the seed's ``agent_configs``) and ``/api/conversations/{id}``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator

from flowmill.agents.ports import (
    DEFAULT_TOOL_ROUNDS,
    MAX_TOOLS,
    AgentConfig,
    AgentSettings,
    ToolSpec,
    Turn,
)
from flowmill.agents.store import (
    AgentRepository,
    ConversationQueries,
    DuplicateAgentError,
    settings_to,
)
from flowmill.api.deps import Caller, Ctx, decode_cursor, encode_cursor
from flowmill.api.errors import CONFLICT, ERROR_RESPONSES, NOT_FOUND, ApiError, not_found
from flowmill.api.jsonvalue import JsonObject, SafeStr

router = APIRouter(tags=["agents"], responses=ERROR_RESPONSES)

AgentIdPath = Annotated[uuid.UUID, Path(description="Agent id.")]
# strict: a JSON `true` is not a number here (pydantic would take it as 1)
SInt = Annotated[int, Strict()]
SFloat = Annotated[float, Strict()]
Provider = Literal["openai", "anthropic"]
Name = Annotated[SafeStr, Field(min_length=1, max_length=255)]
Ref = Annotated[SafeStr, Field(min_length=1, max_length=200)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AgentToolIn(_Body):
    """A sub-workflow the model may call as a function tool; each call runs as a child
    execution with the call's arguments as its input."""

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    description: Annotated[SafeStr, Field(max_length=1000)] = ""
    workflow_id: uuid.UUID
    version: SInt | None = Field(None, ge=1, description="Pinned version; default: active.")
    parameters: JsonObject = Field(
        default_factory=dict, description="JSON Schema of the arguments (an object)."
    )


class AgentSettingsIn(_Body):
    """How the agent calls its model."""

    timeout_s: SFloat = Field(60.0, gt=0, le=600, description="Limit of one model call.")
    max_retries: SInt = Field(2, ge=0, le=10, description="Retries of 429/5xx per attempt.")
    max_retry_wait_s: SFloat = Field(
        30.0, ge=0, le=600, description="Longest Retry-After waited for inside the node."
    )
    tools: list[AgentToolIn] = Field(
        default_factory=list,
        max_length=MAX_TOOLS,
        description="Sub-workflows the model may call as function tools (docs/agents.md).",
    )
    max_tool_rounds: SInt = Field(
        DEFAULT_TOOL_ROUNDS,
        ge=1,
        le=50,
        description="Rounds of tool calls at most; more fails the node (MaxToolRoundsExceeded).",
    )

    @field_validator("tools")
    @classmethod
    def _unique_names(cls, tools: list[AgentToolIn]) -> list[AgentToolIn]:
        names = [t.name for t in tools]
        if len(set(names)) != len(names):
            raise ValueError("tool names must be unique")
        return tools


class AgentIn(_Body):
    """A new agent: a persona bound to a provider and model."""

    name: Name
    provider: Provider = Field(
        "openai", description="`openai`: any OpenAI-compatible server; `anthropic`."
    )
    model: Annotated[SafeStr, Field(min_length=1, max_length=255)]
    character: JsonObject = Field(
        default_factory=dict,
        description="Persona: name, persona, style, instructions, examples [{user, assistant}].",
    )
    max_tokens: SInt = Field(1024, ge=1, le=1_000_000)
    temperature: SFloat = Field(0.7, ge=0, le=2)
    history_window: SInt = Field(20, ge=0, le=1000, description="Past turns sent each time.")
    credential: Ref | None = Field(None, description="Id or name of the API key's credential.")
    base_url: Annotated[str, Field(max_length=500, pattern=r"^https?://")] | None = Field(
        None, description="The server's base URL (Ollama, vLLM, Azure...); provider's default."
    )
    settings: AgentSettingsIn = Field(default_factory=AgentSettingsIn)


class AgentPatch(_Body):
    """Change some fields of an agent."""

    name: Name | None = None
    provider: Provider | None = None
    model: Annotated[SafeStr, Field(min_length=1, max_length=255)] | None = None
    character: JsonObject | None = None
    max_tokens: SInt | None = Field(None, ge=1, le=1_000_000)
    temperature: SFloat | None = Field(None, ge=0, le=2)
    history_window: SInt | None = Field(None, ge=0, le=1000)
    credential: Ref | None = None
    base_url: Annotated[str, Field(max_length=500, pattern=r"^https?://")] | None = None
    settings: AgentSettingsIn | None = None


class AgentOut(BaseModel):
    """An agent."""

    id: str
    name: str
    provider: str
    model: str
    character: dict[str, Any]
    max_tokens: int
    temperature: float
    history_window: int
    credential: str | None
    base_url: str | None
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class AgentList(BaseModel):
    """The tenant's agents, by name."""

    items: list[AgentOut]


class TurnOut(BaseModel):
    """One turn of a conversation."""

    id: str
    role: str
    content: str
    timestamp: datetime
    client_id: str
    execution_id: str | None
    node_id: str | None
    metadata: dict[str, Any] | None = Field(description="Model and token usage of a reply.")


class ConversationOut(BaseModel):
    """A conversation's turns, oldest first (keyset pages)."""

    conversation_id: str
    items: list[TurnOut]
    next_cursor: str | None


def agent_out(a: AgentConfig) -> AgentOut:
    """The API view of an agent."""
    return AgentOut(
        id=a.id,
        name=a.name,
        provider=a.provider,
        model=a.model,
        character=a.character,
        max_tokens=a.max_tokens,
        temperature=a.temperature,
        history_window=a.history_window,
        credential=a.credential,
        base_url=a.base_url,
        settings=settings_to(a.settings),
        created_at=a.created_at,
        updated_at=a.updated_at,
    )


def _turn_out(t: Turn) -> TurnOut:
    return TurnOut(
        id=t.id,
        role=t.role,
        content=t.content,
        timestamp=t.timestamp,
        client_id=t.client_id,
        execution_id=t.execution_id,
        node_id=t.node_id,
        metadata=t.metadata,
    )


def _settings(s: AgentSettingsIn) -> dict[str, Any]:
    return settings_to(
        AgentSettings(
            timeout_s=s.timeout_s,
            max_retries=s.max_retries,
            max_retry_wait_s=s.max_retry_wait_s,
            tools=tuple(
                ToolSpec(t.name, t.description, str(t.workflow_id), t.parameters, t.version)
                for t in s.tools
            ),
            max_tool_rounds=s.max_tool_rounds,
        )
    )


async def _check_tools(ctx: Ctx, tenant_id: str, s: AgentSettingsIn | None) -> None:
    """Each tool names a workflow of the tenant (another tenant's is as unknown)."""
    for i, tool in enumerate(s.tools if s is not None else ()):
        if await ctx.runtime.workflows.get(tenant_id, str(tool.workflow_id)) is None:
            raise ApiError(
                422,
                "invalid_request",
                f"tool {tool.name!r}: no workflow {tool.workflow_id} in this tenant",
                [
                    {
                        "field": f"body.settings.tools[{i}].workflow_id",
                        "message": "no such workflow",
                        "code": "not_found",
                    }
                ],
            )


def _repo(ctx: Ctx) -> AgentRepository:
    return AgentRepository(ctx.runtime.db)


def _conflict(name: str) -> ApiError:
    return ApiError(
        409,
        "conflict",
        f"an agent named {name!r} exists",
        [{"field": "body.name", "message": "taken in this tenant", "code": "duplicate"}],
    )


@router.post(
    "/api/agents",
    status_code=201,
    response_model=AgentOut,
    responses=CONFLICT,
    summary="Create an agent",
)
async def create_agent(ctx: Ctx, caller: Caller, body: AgentIn) -> AgentOut:
    """A persona bound to a provider and model; ``agent`` nodes name it."""
    await _check_tools(ctx, caller.tenant_id, body.settings)
    values = body.model_dump(exclude={"settings"})
    values["settings"] = _settings(body.settings)
    try:
        return agent_out(await _repo(ctx).create(caller.tenant_id, values))
    except DuplicateAgentError:
        raise _conflict(body.name) from None


@router.get("/api/agents", response_model=AgentList, summary="List agents")
async def list_agents(ctx: Ctx, caller: Caller) -> AgentList:
    """The tenant's agents by name."""
    return AgentList(items=[agent_out(a) for a in await _repo(ctx).list(caller.tenant_id)])


@router.get(
    "/api/agents/{agent_id}", response_model=AgentOut, responses=NOT_FOUND, summary="Get an agent"
)
async def get_agent(ctx: Ctx, caller: Caller, agent_id: AgentIdPath) -> AgentOut:
    """One agent."""
    found = await _repo(ctx).get(caller.tenant_id, str(agent_id))
    if found is None or found.id != str(agent_id):
        raise not_found("agent", agent_id)
    return agent_out(found)


@router.patch(
    "/api/agents/{agent_id}",
    response_model=AgentOut,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Update an agent",
)
async def update_agent(
    ctx: Ctx, caller: Caller, agent_id: AgentIdPath, body: AgentPatch
) -> AgentOut:
    """Change the fields given; the others are kept."""
    values = body.model_dump(exclude_unset=True, exclude={"settings"})
    if body.settings is not None:
        await _check_tools(ctx, caller.tenant_id, body.settings)
        values["settings"] = _settings(body.settings)
    for required in ("name", "provider", "model", "character", "max_tokens", "temperature"):
        if required in values and values[required] is None:
            raise ApiError(
                422,
                "invalid_request",
                f"{required} cannot be removed",
                [{"field": f"body.{required}", "message": "must not be null", "code": "null"}],
            )
    try:
        found = await _repo(ctx).update(caller.tenant_id, str(agent_id), values)
    except DuplicateAgentError:
        raise _conflict(str(values.get("name"))) from None
    if found is None:
        raise not_found("agent", agent_id)
    return agent_out(found)


@router.delete(
    "/api/agents/{agent_id}", status_code=204, responses=NOT_FOUND, summary="Delete an agent"
)
async def delete_agent(ctx: Ctx, caller: Caller, agent_id: AgentIdPath) -> None:
    """Delete the agent; its conversations stay."""
    if not await _repo(ctx).delete(caller.tenant_id, str(agent_id)):
        raise not_found("agent", agent_id)


@router.get(
    "/api/conversations/{conversation_id}",
    response_model=ConversationOut,
    responses=NOT_FOUND,
    summary="Get a conversation",
)
async def get_conversation(
    ctx: Ctx,
    caller: Caller,
    conversation_id: Annotated[SafeStr, Path(max_length=255, description="Conversation id.")],
    client_id: Annotated[
        SafeStr | None, Query(max_length=255, description="Only this client's (channel's).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ConversationOut:
    """The conversation's turns, oldest first; each says which execution wrote it."""
    after = decode_cursor(cursor, "turn")
    turns, more = await ConversationQueries(ctx.runtime.db).page(
        caller.tenant_id, conversation_id, client_id, limit, after
    )
    if not turns and after is None:
        raise not_found("conversation", conversation_id)
    return ConversationOut(
        conversation_id=conversation_id,
        items=[_turn_out(t) for t in turns],
        next_cursor=encode_cursor("turn", turns[-1].id) if more and turns else None,
    )
