"""The credential vault: tenant-scoped, sealed at rest, opened only for a node."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowmill import jsonutil
from flowmill.clock import Clock, SystemClock
from flowmill.credentials import kinds
from flowmill.credentials.crypto import CredentialError, Keyring
from flowmill.domain.events import DomainEvent, EventType
from flowmill.ids import uuid7
from flowmill.store.database import Database
from flowmill.store.executions import append_events
from flowmill.store.tables import credentials

ct = credentials


@dataclass(frozen=True)
class CredentialInfo:
    """What may be shown of a credential: never its secret."""

    id: str
    tenant_id: str
    name: str
    type: str
    key_id: str
    created_at: datetime
    updated_at: datetime


class DuplicateCredentialError(ValueError):
    """The tenant already has a credential with that name."""


def _aad(tenant_id: str, credential_id: str) -> bytes:
    # Binds the ciphertext to its tenant and row: copied elsewhere it will not open.
    return f"flowmill-credential\x00{tenant_id}\x00{credential_id}".encode()


def _info(row: Any) -> CredentialInfo:
    return CredentialInfo(
        str(row.id), row.tenant_id, row.name, row.type, row.key_id, row.created_at, row.updated_at
    )


class CredentialVault:
    """Stores, lists, resolves and rotates credentials. Every method is tenant-scoped.

    Args:
        db: The database.
        keyring: The keys; without one, storing or opening a secret fails clearly.
        clock: Time.
    """

    def __init__(self, db: Database, keyring: Keyring | None, clock: Clock | None = None) -> None:
        self.db = db
        self.keyring = keyring
        self.clock = clock or SystemClock()

    def _ring(self) -> Keyring:
        if self.keyring is None:
            raise CredentialError(
                "no encryption key is configured: set FLOWMILL_SECRET_KEYS to "
                "'<key id>:<base64 of 32 random bytes>' (see docs/credentials.md)"
            )
        return self.keyring

    async def create(
        self, tenant_id: str, name: str, kind: str, data: dict[str, Any]
    ) -> CredentialInfo:
        """Seal and store a new credential.

        Raises:
            ValueError: Bad type or data (the message names fields, never values).
            DuplicateCredentialError: The name is taken in this tenant.
        """
        clean = kinds.validate(kind, data)
        ring = self._ring()
        cid = uuid7()
        key_id, blob = ring.seal(jsonutil.dumpb(clean), _aad(tenant_id, cid))
        now = self.clock.now()

        def _tx(conn: Connection) -> CredentialInfo:
            taken = conn.execute(
                sa.select(ct.c.id).where(ct.c.tenant_id == tenant_id, ct.c.name == name)
            ).scalar()
            if taken is not None:
                raise DuplicateCredentialError(f"a credential named {name!r} exists")
            conn.execute(
                ct.insert().values(
                    id=cid,
                    tenant_id=tenant_id,
                    name=name,
                    type=kind,
                    key_id=key_id,
                    ciphertext=blob,
                    created_at=now,
                    updated_at=now,
                )
            )
            append_events(
                conn,
                tenant_id,
                [
                    DomainEvent(
                        uuid7(),
                        tenant_id,
                        cid,
                        EventType.CREDENTIAL_CREATED.value,
                        {"credential_id": cid, "name": name, "type": kind},
                        now,
                    )
                ],
            )
            return _info(conn.execute(sa.select(ct).where(ct.c.id == cid)).one())

        return await self.db.write(_tx)

    async def replace(
        self, tenant_id: str, credential_id: str, data: dict[str, Any]
    ) -> CredentialInfo | None:
        """Replace a credential's secret (same type). ``None`` if not this tenant's."""
        info = await self.get(tenant_id, credential_id)
        if info is None:
            return None
        clean = kinds.validate(info.type, data)
        key_id, blob = self._ring().seal(jsonutil.dumpb(clean), _aad(tenant_id, credential_id))
        now = self.clock.now()

        def _tx(conn: Connection) -> CredentialInfo:
            conn.execute(
                ct.update()
                .where(ct.c.id == credential_id, ct.c.tenant_id == tenant_id)
                .values(key_id=key_id, ciphertext=blob, updated_at=now)
            )
            append_events(
                conn,
                tenant_id,
                [
                    DomainEvent(
                        uuid7(),
                        tenant_id,
                        credential_id,
                        EventType.CREDENTIAL_UPDATED.value,
                        {"credential_id": credential_id},
                        now,
                    )
                ],
            )
            return _info(conn.execute(sa.select(ct).where(ct.c.id == credential_id)).one())

        return await self.db.write(_tx)

    async def get(self, tenant_id: str, credential_id: str) -> CredentialInfo | None:
        """A credential's description (no secret), or ``None`` if not this tenant's."""
        q = sa.select(ct).where(ct.c.id == credential_id, ct.c.tenant_id == tenant_id)
        row = await self.db.read(lambda c: c.execute(q).first())
        return _info(row) if row is not None else None

    async def list(self, tenant_id: str) -> list[CredentialInfo]:
        """The tenant's credentials, by name (no secrets)."""
        q = sa.select(ct).where(ct.c.tenant_id == tenant_id).order_by(ct.c.name)
        return await self.db.read(lambda c: [_info(r) for r in c.execute(q)])

    async def delete(self, tenant_id: str, credential_id: str) -> bool:
        """Delete a credential. Returns whether it existed (for this tenant)."""
        now = self.clock.now()

        def _tx(conn: Connection) -> bool:
            gone = conn.execute(
                ct.delete().where(ct.c.id == credential_id, ct.c.tenant_id == tenant_id)
            ).rowcount
            if gone:
                append_events(
                    conn,
                    tenant_id,
                    [
                        DomainEvent(
                            uuid7(),
                            tenant_id,
                            credential_id,
                            EventType.CREDENTIAL_DELETED.value,
                            {"credential_id": credential_id},
                            now,
                        )
                    ],
                )
            return bool(gone)

        return await self.db.write(_tx)

    async def resolve(self, tenant_id: str, name: str) -> tuple[str, dict[str, Any]]:
        """Open the tenant's credential ``name`` for a node: (type, secret data).

        Raises:
            CredentialError: No such credential for this tenant, or it does not open.
        """
        q = sa.select(ct.c.id, ct.c.type, ct.c.key_id, ct.c.ciphertext).where(
            ct.c.tenant_id == tenant_id, ct.c.name == name
        )
        row = await self.db.read(lambda c: c.execute(q).first())
        if row is None:
            raise CredentialError(f"no credential named {name!r}")
        plain = self._ring().open(row.key_id, bytes(row.ciphertext), _aad(tenant_id, str(row.id)))
        return row.type, jsonutil.loads(plain)

    async def rotate(self) -> int:
        """Re-seal every secret not under the active key. Returns how many changed."""
        ring = self._ring()
        q = sa.select(ct.c.id, ct.c.tenant_id, ct.c.key_id, ct.c.ciphertext).where(
            ct.c.key_id != ring.active
        )

        def _tx(conn: Connection) -> int:
            rows = conn.execute(q).all()
            for row in rows:
                aad = _aad(row.tenant_id, str(row.id))
                key_id, blob = ring.seal(ring.open(row.key_id, bytes(row.ciphertext), aad), aad)
                conn.execute(
                    ct.update().where(ct.c.id == row.id).values(key_id=key_id, ciphertext=blob)
                )
            return len(rows)

        return await self.db.write(_tx)
