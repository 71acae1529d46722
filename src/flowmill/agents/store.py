"""Agent configs and conversation turns in the database. Every query is tenant-scoped.

Turns are written only by the step that produced them, with its checkpoint
(``Effects.turns``); this module reads them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowmill.agents.ports import AgentConfig, AgentSettings, ToolSpec, Turn
from flowmill.clock import Clock, SystemClock
from flowmill.domain.errors import Invalid
from flowmill.domain.events import DomainEvent, EventType
from flowmill.ids import uuid7
from flowmill.store.database import Database
from flowmill.store.executions import append_events
from flowmill.store.tables import agent_configs, conversation_history

ac = agent_configs
ch = conversation_history
#: Columns an update may change.
EDITABLE = (
    "name",
    "provider",
    "model",
    "character",
    "max_tokens",
    "temperature",
    "history_window",
    "credential",
    "base_url",
    "settings",
)


class DuplicateAgentError(Invalid):
    """The tenant already has an agent with that name."""


def settings_from(raw: Mapping[str, Any] | None) -> AgentSettings:
    """Stored settings as the value type (unknown keys ignored)."""
    raw = dict(raw or {})
    tools = tuple(
        ToolSpec(
            name=str(t.get("name", "")),
            description=str(t.get("description", "")),
            workflow_id=str(t.get("workflow_id", "")),
            parameters=dict(t.get("parameters") or {}),
            version=int(t["version"]) if t.get("version") is not None else None,
        )
        for t in raw.get("tools") or ()
        if isinstance(t, Mapping)
    )
    defaults = AgentSettings()
    # agents saved before tools existed stored 0 rounds: they get the default
    rounds = int(raw.get("max_tool_rounds") or 0) or defaults.max_tool_rounds
    return AgentSettings(
        timeout_s=float(raw.get("timeout_s", defaults.timeout_s)),
        max_retries=int(raw.get("max_retries", defaults.max_retries)),
        max_retry_wait_s=float(raw.get("max_retry_wait_s", defaults.max_retry_wait_s)),
        tools=tools,
        max_tool_rounds=rounds,
    )


def settings_to(settings: AgentSettings) -> dict[str, Any]:
    """The value type as stored."""
    out = asdict(settings)
    out["tools"] = [asdict(t) for t in settings.tools]
    return out


def _agent(row: Any) -> AgentConfig:
    return AgentConfig(
        id=str(row.id),
        tenant_id=row.tenant_id,
        name=row.name,
        provider=row.provider,
        model=row.model,
        character=dict(row.character or {}),
        max_tokens=row.max_tokens,
        temperature=row.temperature,
        history_window=row.history_window,
        credential=row.credential,
        base_url=row.base_url,
        settings=settings_from(row.settings),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _turn(row: Any) -> Turn:
    return Turn(
        id=str(row.id),
        conversation_id=row.conversation_id,
        client_id=row.client_id,
        role=row.role,
        content=row.content,
        timestamp=row.timestamp,
        execution_id=str(row.execution_id) if row.execution_id is not None else None,
        node_id=row.node_id,
        metadata=row.metadata,
    )


def _by_ref(query: sa.Select[Any], tenant_id: str, ref: str) -> sa.Select[Any]:
    try:
        uuid.UUID(ref)
    except ValueError:
        return query.where(ac.c.tenant_id == tenant_id, ac.c.name == ref)
    return query.where(
        ac.c.tenant_id == tenant_id, sa.or_(ac.c.id == ref, ac.c.name == ref)
    ).order_by(sa.case((ac.c.id == ref, 0), else_=1))


class AgentRepository:
    """The tenant's agents (``agent_configs``)."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or SystemClock()

    def _event(self, tenant_id: str, agent_id: str, type_: EventType, **payload: Any) -> Any:
        payload["agent_id"] = agent_id
        return DomainEvent(uuid7(), tenant_id, agent_id, type_.value, payload, self.clock.now())

    async def create(self, tenant_id: str, values: Mapping[str, Any]) -> AgentConfig:
        """Store a new agent (``values``: the :data:`EDITABLE` columns).

        Raises:
            DuplicateAgentError: The name is taken.
        """
        agent_id = uuid7()
        now = self.clock.now()

        def _tx(conn: Connection) -> AgentConfig:
            self._check_name(conn, tenant_id, str(values["name"]), None)
            conn.execute(
                ac.insert().values(
                    id=agent_id, tenant_id=tenant_id, created_at=now, updated_at=now, **values
                )
            )
            event = self._event(tenant_id, agent_id, EventType.AGENT_CREATED, name=values["name"])
            append_events(conn, tenant_id, [event])
            return _agent(conn.execute(sa.select(ac).where(ac.c.id == agent_id)).one())

        return await self.db.write(_tx)

    @staticmethod
    def _check_name(conn: Connection, tenant_id: str, name: str, agent_id: str | None) -> None:
        q = sa.select(ac.c.id).where(ac.c.tenant_id == tenant_id, ac.c.name == name)
        if agent_id is not None:
            q = q.where(ac.c.id != agent_id)
        if conn.execute(q).first() is not None:
            raise DuplicateAgentError(f"an agent named {name!r} exists")

    async def get(self, tenant_id: str, ref: str) -> AgentConfig | None:
        """The tenant's agent with id or name ``ref``."""
        q = _by_ref(sa.select(ac), tenant_id, ref)
        row = await self.db.read(lambda c: c.execute(q).first())
        return _agent(row) if row is not None else None

    async def list(self, tenant_id: str) -> list[AgentConfig]:
        """The tenant's agents by name."""
        q = sa.select(ac).where(ac.c.tenant_id == tenant_id).order_by(ac.c.name)
        return await self.db.read(lambda c: [_agent(r) for r in c.execute(q)])

    async def update(
        self, tenant_id: str, agent_id: str, values: Mapping[str, Any]
    ) -> AgentConfig | None:
        """Change some columns; ``None`` if not this tenant's.

        Raises:
            DuplicateAgentError: The new name is taken.
        """
        now = self.clock.now()

        def _tx(conn: Connection) -> AgentConfig | None:
            where = (ac.c.id == agent_id, ac.c.tenant_id == tenant_id)
            if conn.execute(sa.select(ac.c.id).where(*where)).first() is None:
                return None
            if "name" in values:
                self._check_name(conn, tenant_id, str(values["name"]), agent_id)
            conn.execute(ac.update().where(*where).values(updated_at=now, **values))
            event = self._event(tenant_id, agent_id, EventType.AGENT_UPDATED, fields=sorted(values))
            append_events(conn, tenant_id, [event])
            return _agent(conn.execute(sa.select(ac).where(*where)).one())

        return await self.db.write(_tx)

    async def delete(self, tenant_id: str, agent_id: str) -> bool:
        """Delete an agent (its conversations stay). Whether it existed."""

        def _tx(conn: Connection) -> bool:
            gone = conn.execute(
                ac.delete().where(ac.c.id == agent_id, ac.c.tenant_id == tenant_id)
            ).rowcount
            if gone:
                append_events(
                    conn, tenant_id, [self._event(tenant_id, agent_id, EventType.AGENT_DELETED)]
                )
            return bool(gone)

        return await self.db.write(_tx)


class ConversationQueries:
    """Reads of ``conversation_history``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def latest(
        self, tenant_id: str, conversation_id: str, client_id: str | None, limit: int
    ) -> list[Turn]:
        """The last ``limit`` turns, oldest first (``client_id`` ``None``: any)."""
        if limit <= 0:
            return []
        q = sa.select(ch).where(
            ch.c.tenant_id == tenant_id, ch.c.conversation_id == conversation_id
        )
        if client_id is not None:
            q = q.where(ch.c.client_id == client_id)
        q = q.order_by(ch.c.id.desc()).limit(limit)
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [_turn(r) for r in reversed(rows)]

    async def page(
        self,
        tenant_id: str,
        conversation_id: str,
        client_id: str | None,
        limit: int,
        after_id: str | None = None,
    ) -> tuple[list[Turn], bool]:
        """Turns oldest first, after ``after_id``; and whether more follow."""
        q = sa.select(ch).where(
            ch.c.tenant_id == tenant_id, ch.c.conversation_id == conversation_id
        )
        if client_id is not None:
            q = q.where(ch.c.client_id == client_id)
        if after_id is not None:
            q = q.where(ch.c.id > after_id)
        q = q.order_by(ch.c.id).limit(limit + 1)
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [_turn(r) for r in rows[:limit]], len(rows) > limit
