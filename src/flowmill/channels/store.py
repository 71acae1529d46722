"""The ``channels`` table. Every query is tenant-scoped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowmill.clock import Clock, SystemClock
from flowmill.domain.errors import Invalid
from flowmill.domain.events import DomainEvent, EventType
from flowmill.ids import uuid7
from flowmill.store.database import Database
from flowmill.store.executions import append_events
from flowmill.store.tables import channels

cht = channels
#: Columns an update may change.
EDITABLE = ("name", "account_id", "credential", "agent_id", "workflow_id", "enabled")


@dataclass(frozen=True)
class Channel:
    """A connected account: where messages come from and how to answer them.

    Attributes:
        kind: ``instagram``.
        account_id: The account's id in the service (the Instagram account id).
        credential: Id or name of the credential replies are sent with.
        agent_id: The agent that answers by default.
        workflow_id: The workflow its messages start (``None``: every workflow listening
            on the route).
    """

    id: str
    tenant_id: str
    kind: str
    name: str
    account_id: str
    credential: str | None
    agent_id: str | None
    workflow_id: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime


class DuplicateChannelError(Invalid):
    """The tenant already has a channel for this account."""


def _channel(row: Any) -> Channel:
    return Channel(
        id=str(row.id),
        tenant_id=row.tenant_id,
        kind=row.kind,
        name=row.name,
        account_id=row.account_id,
        credential=row.credential,
        agent_id=str(row.agent_id) if row.agent_id is not None else None,
        workflow_id=str(row.workflow_id) if row.workflow_id is not None else None,
        enabled=bool(row.enabled),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class ChannelRepository:
    """The tenant's channels."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or SystemClock()

    def _event(self, tenant_id: str, channel_id: str, type_: EventType, **payload: Any) -> Any:
        payload["channel_id"] = channel_id
        return DomainEvent(uuid7(), tenant_id, channel_id, type_.value, payload, self.clock.now())

    @staticmethod
    def _check_account(
        conn: Connection, tenant_id: str, kind: str, account_id: str, channel_id: str | None
    ) -> None:
        q = sa.select(cht.c.id).where(
            cht.c.tenant_id == tenant_id, cht.c.kind == kind, cht.c.account_id == account_id
        )
        if channel_id is not None:
            q = q.where(cht.c.id != channel_id)
        if conn.execute(q).first() is not None:
            raise DuplicateChannelError(f"a {kind} channel for account {account_id!r} exists")

    async def create(self, tenant_id: str, kind: str, values: Mapping[str, Any]) -> Channel:
        """Store a channel.

        Raises:
            DuplicateChannelError: The account has a channel already.
        """
        channel_id = uuid7()
        now = self.clock.now()

        def _tx(conn: Connection) -> Channel:
            self._check_account(conn, tenant_id, kind, str(values["account_id"]), None)
            conn.execute(
                cht.insert().values(
                    id=channel_id,
                    tenant_id=tenant_id,
                    kind=kind,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
            )
            event = self._event(
                tenant_id, channel_id, EventType.CHANNEL_CREATED, kind=kind, name=values["name"]
            )
            append_events(conn, tenant_id, [event])
            return _channel(conn.execute(sa.select(cht).where(cht.c.id == channel_id)).one())

        return await self.db.write(_tx)

    async def get(self, tenant_id: str, channel_id: str) -> Channel | None:
        """One of the tenant's channels."""
        q = sa.select(cht).where(cht.c.id == channel_id, cht.c.tenant_id == tenant_id)
        row = await self.db.read(lambda c: c.execute(q).first())
        return _channel(row) if row is not None else None

    async def list(self, tenant_id: str, kind: str | None = None) -> list[Channel]:
        """The tenant's channels by name."""
        q = sa.select(cht).where(cht.c.tenant_id == tenant_id)
        if kind is not None:
            q = q.where(cht.c.kind == kind)
        q = q.order_by(cht.c.name, cht.c.id)
        return await self.db.read(lambda c: [_channel(r) for r in c.execute(q)])

    async def by_account(self, tenant_id: str, kind: str, account_id: str) -> Channel | None:
        """The tenant's enabled channel of ``kind`` for ``account_id``."""
        q = sa.select(cht).where(
            cht.c.tenant_id == tenant_id,
            cht.c.kind == kind,
            cht.c.account_id == account_id,
            cht.c.enabled.is_(True),
        )
        row = await self.db.read(lambda c: c.execute(q).first())
        return _channel(row) if row is not None else None

    async def update(
        self, tenant_id: str, channel_id: str, values: Mapping[str, Any]
    ) -> Channel | None:
        """Change some columns; ``None`` if not this tenant's.

        Raises:
            DuplicateChannelError: The new account has a channel already.
        """
        now = self.clock.now()

        def _tx(conn: Connection) -> Channel | None:
            where = (cht.c.id == channel_id, cht.c.tenant_id == tenant_id)
            row = conn.execute(sa.select(cht).where(*where)).first()
            if row is None:
                return None
            if "account_id" in values:
                self._check_account(
                    conn, tenant_id, row.kind, str(values["account_id"]), channel_id
                )
            conn.execute(cht.update().where(*where).values(updated_at=now, **values))
            event = self._event(
                tenant_id, channel_id, EventType.CHANNEL_UPDATED, fields=sorted(values)
            )
            append_events(conn, tenant_id, [event])
            return _channel(conn.execute(sa.select(cht).where(*where)).one())

        return await self.db.write(_tx)

    async def delete(self, tenant_id: str, channel_id: str) -> bool:
        """Delete a channel. Whether it existed."""

        def _tx(conn: Connection) -> bool:
            gone = conn.execute(
                cht.delete().where(cht.c.id == channel_id, cht.c.tenant_id == tenant_id)
            ).rowcount
            if gone:
                event = self._event(tenant_id, channel_id, EventType.CHANNEL_DELETED)
                append_events(conn, tenant_id, [event])
            return bool(gone)

        return await self.db.write(_tx)
