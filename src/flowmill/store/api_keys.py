"""API keys: random secrets stored only as hashes, shown once, revocable.

A key reads ``fm_<8 hex>_<48 hex>``. The first part (``fm_<8 hex>``) is its *prefix*:
stored in clear and shown in listings so people can tell keys apart. The whole key is
stored as its SHA-256: the secret has 192 random bits, so a fast hash is enough (slow
password hashes exist for low-entropy secrets), and lookups stay one index probe.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowmill.clock import Clock, SystemClock
from flowmill.domain.errors import TenantNotFound
from flowmill.ids import uuid7
from flowmill.store.database import Database
from flowmill.store.tables import api_keys, tenants

KEY_PREFIX = "fm_"
# last_used_at is informative; writing it on every request would make each read a write.
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key as stored (never the secret)."""

    id: str
    tenant_id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewApiKey:
    """A freshly created key: the only time its secret exists outside the caller."""

    record: ApiKeyRecord
    secret: str


def hash_key(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def generate_key() -> tuple[str, str]:
    """A new (prefix, full key) pair."""
    prefix = f"{KEY_PREFIX}{secrets.token_hex(4)}"
    return prefix, f"{prefix}_{secrets.token_hex(24)}"


def looks_like_key(token: str) -> bool:
    """Whether a bearer token is meant as an API key (rather than a JWT)."""
    return token.startswith(KEY_PREFIX)


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a UUID (ids of other shapes cannot exist, and PostgreSQL
    refuses to compare them with a ``uuid`` column)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _record(row: Any) -> ApiKeyRecord:
    m = row._mapping
    return ApiKeyRecord(
        id=str(m["id"]),
        tenant_id=m["tenant_id"],
        name=m["name"],
        prefix=m["prefix"],
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
        revoked_at=m["revoked_at"],
    )


class ApiKeyStore:
    """Creating, checking, listing and revoking API keys."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or SystemClock()
        self._touched: dict[str, datetime] = {}

    async def create(self, tenant_id: str, name: str = "") -> NewApiKey:
        """Create a key for a tenant.

        Raises:
            TenantNotFound: No such tenant.
        """
        now = self.clock.now()
        prefix, secret = generate_key()
        key_id = uuid7()

        def _tx(conn: Connection) -> ApiKeyRecord:
            exists = conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant_id)).scalar()
            if exists is None:
                raise TenantNotFound(tenant_id)
            conn.execute(
                api_keys.insert().values(
                    id=key_id,
                    tenant_id=tenant_id,
                    name=name,
                    prefix=prefix,
                    key_hash=hash_key(secret),
                    created_at=now,
                )
            )
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one()
            return _record(row)

        return NewApiKey(await self.db.write(_tx), secret)

    async def authenticate(self, secret: str) -> ApiKeyRecord | None:
        """The live key matching ``secret``, or ``None`` (unknown or revoked)."""
        digest = hash_key(secret)
        q = sa.select(api_keys).where(api_keys.c.key_hash == digest)
        row = await self.db.read(lambda c: c.execute(q).first())
        if row is None or row.revoked_at is not None:
            return None
        # The lookup matched on the digest already; compare again in constant time so
        # that no path depends on how much of a guess was right.
        if not hmac.compare_digest(row.key_hash, digest):
            return None
        record = _record(row)
        await self._touch(record)
        return record

    async def _touch(self, record: ApiKeyRecord) -> None:
        now = self.clock.now()
        last = self._touched.get(record.id) or record.last_used_at
        if last is not None and now - last < _TOUCH_EVERY:
            return
        self._touched[record.id] = now
        stmt = api_keys.update().where(api_keys.c.id == record.id).values(last_used_at=now)
        await self.db.write(lambda c: c.execute(stmt))

    async def for_tenant(self, tenant_id: str) -> list[ApiKeyRecord]:
        """A tenant's keys, newest first, revoked ones included."""
        q = (
            sa.select(api_keys)
            .where(api_keys.c.tenant_id == tenant_id)
            .order_by(api_keys.c.id.desc())
        )
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [_record(r) for r in rows]

    async def get(self, tenant_id: str, key_id: str) -> ApiKeyRecord | None:
        """One of a tenant's keys."""
        q = sa.select(api_keys).where(api_keys.c.tenant_id == tenant_id, api_keys.c.id == key_id)
        row = await self.db.read(lambda c: c.execute(q).first())
        return _record(row) if row is not None else None

    async def revoke(self, key_id: str, *, tenant_id: str | None = None) -> ApiKeyRecord | None:
        """Revoke a key (idempotent). ``tenant_id`` scopes the lookup; the CLI, run by
        the operator, may leave it out and name a key by id or prefix.

        Returns:
            The key as it is now, or ``None`` when there is no such key.
        """
        now = self.clock.now()
        if not looks_like_key(key_id) and not is_uuid(key_id):
            return None
        by = api_keys.c.prefix == key_id if looks_like_key(key_id) else api_keys.c.id == key_id

        def _tx(conn: Connection) -> ApiKeyRecord | None:
            q = sa.select(api_keys).where(by)
            if tenant_id is not None:
                q = q.where(api_keys.c.tenant_id == tenant_id)
            rows = conn.execute(q).all()
            if len(rows) != 1:
                return None
            row = rows[0]
            if row.revoked_at is None:
                conn.execute(
                    api_keys.update().where(api_keys.c.id == row.id).values(revoked_at=now)
                )
            return _record(conn.execute(sa.select(api_keys).where(api_keys.c.id == row.id)).one())

        return await self.db.write(_tx)

    async def count(self) -> int:
        """How many keys exist at all (for the first-start bootstrap)."""
        q = sa.select(sa.func.count()).select_from(api_keys)
        result: int = await self.db.read(lambda c: c.execute(q).scalar_one())
        return result
