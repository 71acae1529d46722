"""The credential vault: tenant-scoped, sealed at rest, opened only for a node.

Every method takes the tenant and filters on it: another tenant's credential is not
found. What may be shown (the non-secret fields and a hint) is kept beside the sealed
secret, so listing never decrypts. Every decryption appends a ``credential.used``
event in the same transaction as the read: who opened it, for which node of which
execution (:class:`CredentialUse`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowmill import jsonutil
from flowmill.clock import Clock, SystemClock
from flowmill.credentials import kinds
from flowmill.credentials.crypto import CredentialError, Keyring
from flowmill.credentials.use import CredentialUse
from flowmill.domain.errors import Invalid, NotFound
from flowmill.domain.events import DomainEvent, EventType
from flowmill.ids import uuid7
from flowmill.store.database import Database
from flowmill.store.executions import append_events
from flowmill.store.tables import credentials

__all__ = ["CredentialInfo", "CredentialUse", "CredentialVault", "OpenedCredential"]

ct = credentials


@dataclass(frozen=True)
class CredentialInfo:
    """What may be shown of a credential: never its secret.

    Attributes:
        details: The kind's non-secret fields (a token URL, a user name...).
        hint: ``"…wxyz"``, the end of a long secret, or ``"…"``.
    """

    id: str
    tenant_id: str
    name: str
    type: str
    key_id: str
    created_at: datetime
    updated_at: datetime
    details: dict[str, Any] = field(default_factory=dict)
    hint: str | None = None


@dataclass(frozen=True)
class OpenedCredential:
    """A credential decrypted for one use."""

    id: str
    name: str
    type: str
    data: dict[str, Any]


class DuplicateCredentialError(Invalid):
    """The tenant already has a credential with that name."""


class CredentialNotFound(CredentialError, NotFound):
    """No credential with this id or name in the tenant."""


def _aad(tenant_id: str, credential_id: str) -> bytes:
    # Binds the ciphertext to its tenant and row: copied elsewhere it will not open.
    return f"flowmill-credential\x00{tenant_id}\x00{credential_id}".encode()


def _info(row: Any) -> CredentialInfo:
    return CredentialInfo(
        str(row.id),
        row.tenant_id,
        row.name,
        row.type,
        row.key_id,
        row.created_at,
        row.updated_at,
        dict(row.details or {}),
        row.hint,
    )


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def by_ref(query: sa.Select[Any], tenant_id: str, ref: str) -> sa.Select[Any]:
    """``query`` narrowed to the tenant's credential with id ``ref`` or else named
    ``ref`` (an id wins over a name that looks like one)."""
    if _is_uuid(ref):
        return query.where(
            ct.c.tenant_id == tenant_id, sa.or_(ct.c.id == ref, ct.c.name == ref)
        ).order_by(sa.case((ct.c.id == ref, 0), else_=1))
    return query.where(ct.c.tenant_id == tenant_id, ct.c.name == ref)


class CredentialVault:
    """Stores, lists, opens, updates and rotates credentials. Every method is
    tenant-scoped.

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

    def _event(
        self, tenant_id: str, credential_id: str, kind: EventType, **payload: Any
    ) -> DomainEvent:
        payload["credential_id"] = credential_id
        return DomainEvent(uuid7(), tenant_id, credential_id, kind.value, payload, self.clock.now())

    def _sealed(self, tenant_id: str, cid: str, kind: str, clean: dict[str, Any]) -> dict[str, Any]:
        """The columns holding a credential's data: sealed secret, shown details, hint."""
        key_id, blob = self._ring().seal(jsonutil.dumpb(clean), _aad(tenant_id, cid))
        return {
            "key_id": key_id,
            "ciphertext": blob,
            "details": kinds.public_view(kind, clean),
            "hint": kinds.hint(kind, clean),
        }

    async def create(
        self, tenant_id: str, name: str, kind: str, data: dict[str, Any]
    ) -> CredentialInfo:
        """Seal and store a new credential.

        Raises:
            ValueError: Bad type or data (the message names fields, never values).
            DuplicateCredentialError: The name is taken in this tenant.
        """
        clean = kinds.validate(kind, data)
        cid = uuid7()
        sealed = self._sealed(tenant_id, cid, kind, clean)
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
                    created_at=now,
                    updated_at=now,
                    **sealed,
                )
            )
            event = self._event(tenant_id, cid, EventType.CREDENTIAL_CREATED, name=name, type=kind)
            append_events(conn, tenant_id, [event])
            return _info(conn.execute(sa.select(ct).where(ct.c.id == cid)).one())

        return await self.db.write(_tx)

    async def get(self, tenant_id: str, ref: str) -> CredentialInfo | None:
        """A credential's description (no secret) by id or name; ``None`` if not this
        tenant's."""
        q = by_ref(sa.select(ct), tenant_id, ref)
        row = await self.db.read(lambda c: c.execute(q).first())
        return _info(row) if row is not None else None

    async def list(self, tenant_id: str) -> list[CredentialInfo]:
        """The tenant's credentials, by name (no secrets)."""
        q = sa.select(ct).where(ct.c.tenant_id == tenant_id).order_by(ct.c.name)
        return await self.db.read(lambda c: [_info(r) for r in c.execute(q)])

    async def replace(
        self, tenant_id: str, credential_id: str, data: dict[str, Any]
    ) -> CredentialInfo | None:
        """Replace a credential's secret (same type). ``None`` if not this tenant's."""
        return await self.rotate_one(tenant_id, credential_id, data)

    async def update(
        self,
        tenant_id: str,
        credential_id: str,
        *,
        name: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> CredentialInfo | None:
        """Rename a credential and/or change fields of its data (the fields given
        replace theirs, the others are kept, so a scope changes without re-sending the
        secret). ``None`` if not this tenant's.

        Raises:
            ValueError: The merged data does not fit the type.
            DuplicateCredentialError: The new name is taken.
        """
        now = self.clock.now()
        ring = self._ring() if data is not None else None

        def _tx(conn: Connection) -> CredentialInfo | None:
            row = conn.execute(
                sa.select(ct).where(ct.c.id == credential_id, ct.c.tenant_id == tenant_id)
            ).first()
            if row is None:
                return None
            values: dict[str, Any] = {"updated_at": now}
            changed: list[str] = []
            if name is not None and name != row.name:
                taken = conn.execute(
                    sa.select(ct.c.id).where(ct.c.tenant_id == tenant_id, ct.c.name == name)
                ).scalar()
                if taken is not None:
                    raise DuplicateCredentialError(f"a credential named {name!r} exists")
                values["name"] = name
                changed.append("name")
            if data is not None:
                assert ring is not None
                aad = _aad(tenant_id, credential_id)
                current = jsonutil.loads(ring.open(row.key_id, bytes(row.ciphertext), aad))
                merged = {**current, **{k: v for k, v in data.items() if v is not None}}
                for k, v in data.items():
                    if v is None:
                        merged.pop(k, None)
                clean = kinds.validate(row.type, merged)
                values.update(self._sealed(tenant_id, credential_id, row.type, clean))
                changed.extend(sorted(data))
            conn.execute(ct.update().where(ct.c.id == credential_id).values(**values))
            event = self._event(
                tenant_id, credential_id, EventType.CREDENTIAL_UPDATED, fields=changed
            )
            append_events(conn, tenant_id, [event])
            return _info(conn.execute(sa.select(ct).where(ct.c.id == credential_id)).one())

        return await self.db.write(_tx)

    async def rotate_one(
        self, tenant_id: str, credential_id: str, data: dict[str, Any] | None = None
    ) -> CredentialInfo | None:
        """Give a credential a new secret (``data``, the whole of it), or re-seal the
        one it has under the active key. ``None`` if not this tenant's.

        Raises:
            ValueError: ``data`` does not fit the type.
        """
        ring = self._ring()
        now = self.clock.now()

        def _tx(conn: Connection) -> CredentialInfo | None:
            row = conn.execute(
                sa.select(ct).where(ct.c.id == credential_id, ct.c.tenant_id == tenant_id)
            ).first()
            if row is None:
                return None
            aad = _aad(tenant_id, credential_id)
            if data is None:
                clean = jsonutil.loads(ring.open(row.key_id, bytes(row.ciphertext), aad))
            else:
                clean = kinds.validate(row.type, data)
            sealed = self._sealed(tenant_id, credential_id, row.type, clean)
            conn.execute(
                ct.update()
                .where(ct.c.id == credential_id)
                .values(updated_at=now, refresh_lease_until=None, **sealed)
            )
            event = self._event(
                tenant_id,
                credential_id,
                EventType.CREDENTIAL_ROTATED,
                new_secret=data is not None,
                key_id=sealed["key_id"],
            )
            append_events(conn, tenant_id, [event])
            return _info(conn.execute(sa.select(ct).where(ct.c.id == credential_id)).one())

        return await self.db.write(_tx)

    async def delete(self, tenant_id: str, credential_id: str) -> bool:
        """Delete a credential. Returns whether it existed (for this tenant)."""

        def _tx(conn: Connection) -> bool:
            gone = conn.execute(
                ct.delete().where(ct.c.id == credential_id, ct.c.tenant_id == tenant_id)
            ).rowcount
            if gone:
                event = self._event(tenant_id, credential_id, EventType.CREDENTIAL_DELETED)
                append_events(conn, tenant_id, [event])
            return bool(gone)

        return await self.db.write(_tx)

    async def open(
        self, tenant_id: str, ref: str, use: CredentialUse | None = None
    ) -> OpenedCredential:
        """Decrypt the tenant's credential ``ref`` (id or name) for one use, recording
        the use (``credential.used``) in the same transaction as the read.

        Raises:
            CredentialNotFound: No such credential for this tenant.
            CredentialError: It does not open (wrong key, altered).
        """
        ring = self._ring()
        use = use or CredentialUse("unknown")
        q = by_ref(
            sa.select(ct.c.id, ct.c.name, ct.c.type, ct.c.key_id, ct.c.ciphertext), tenant_id, ref
        )

        def _tx(conn: Connection) -> Any:
            row = conn.execute(q).first()
            if row is None:
                return None
            event = self._event(
                tenant_id,
                str(row.id),
                EventType.CREDENTIAL_USED,
                name=row.name,
                type=row.type,
                **use.payload(),
            )
            append_events(conn, tenant_id, [event])
            return row

        row = await self.db.write(_tx)
        if row is None:
            raise CredentialNotFound(f"no credential named {ref!r} (or with that id)")
        plain = ring.open(row.key_id, bytes(row.ciphertext), _aad(tenant_id, str(row.id)))
        return OpenedCredential(str(row.id), row.name, row.type, jsonutil.loads(plain))

    async def resolve(
        self, tenant_id: str, ref: str, use: CredentialUse | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Open the tenant's credential ``ref`` for a node: (type, secret data).

        Raises:
            CredentialError: No such credential for this tenant, or it does not open.
        """
        opened = await self.open(tenant_id, ref, use)
        return opened.type, opened.data

    # --- OAuth2 refresh support -------------------------------------------------------

    async def take_refresh_lease(self, tenant_id: str, credential_id: str, until: datetime) -> bool:
        """Claim the right to refresh a credential's token until ``until``: False when
        another process holds an unexpired claim (it is refreshing now)."""
        now = self.clock.now()
        stmt = (
            ct.update()
            .where(
                ct.c.id == credential_id,
                ct.c.tenant_id == tenant_id,
                sa.or_(ct.c.refresh_lease_until.is_(None), ct.c.refresh_lease_until < now),
            )
            .values(refresh_lease_until=until)
        )
        return bool(await self.db.write(lambda c: c.execute(stmt).rowcount))

    async def store_refreshed(
        self, tenant_id: str, credential_id: str, data: dict[str, Any], *, released: bool = True
    ) -> None:
        """Seal refreshed token data back (and release the refresh claim)."""
        info = await self.get(tenant_id, credential_id)
        if info is None:
            raise CredentialNotFound(f"no credential {credential_id!r}")
        clean = kinds.validate(info.type, data)
        sealed = self._sealed(tenant_id, credential_id, info.type, clean)
        now = self.clock.now()

        def _tx(conn: Connection) -> None:
            values: dict[str, Any] = {"updated_at": now, **sealed}
            if released:
                values["refresh_lease_until"] = None
            conn.execute(
                ct.update()
                .where(ct.c.id == credential_id, ct.c.tenant_id == tenant_id)
                .values(**values)
            )
            event = self._event(
                tenant_id,
                credential_id,
                EventType.CREDENTIAL_REFRESHED,
                expires_at=clean.get("expires_at"),
            )
            append_events(conn, tenant_id, [event])

        await self.db.write(_tx)

    async def release_refresh_lease(self, tenant_id: str, credential_id: str) -> None:
        """Give up a refresh claim (the refresh failed)."""
        stmt = (
            ct.update()
            .where(ct.c.id == credential_id, ct.c.tenant_id == tenant_id)
            .values(refresh_lease_until=None)
        )
        await self.db.write(lambda c: c.execute(stmt))

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
