"""The :class:`~flowmill.agents.ports.AgentBackend` over the database and the SDKs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowmill.agents.ports import AgentConfig, ChatModel, Turn
from flowmill.agents.providers import build_model
from flowmill.agents.store import AgentRepository, ConversationQueries
from flowmill.store.database import Database

if TYPE_CHECKING:
    from flowmill.engine.services import HttpClient


class SqlAgentBackend:
    """Agents and history from the database; models from the providers' SDKs."""

    def __init__(self, db: Database) -> None:
        self.agents = AgentRepository(db)
        self.conversations = ConversationQueries(db)

    async def agent(self, tenant_id: str, ref: str) -> AgentConfig | None:
        return await self.agents.get(tenant_id, ref)

    async def history(
        self, tenant_id: str, conversation_id: str, client_id: str, limit: int
    ) -> list[Turn]:
        return await self.conversations.latest(tenant_id, conversation_id, client_id, limit)

    def model(
        self, provider: str, *, api_key: str | None, base_url: str | None, http: HttpClient
    ) -> ChatModel:
        return build_model(provider, api_key=api_key, base_url=base_url, http=http)
