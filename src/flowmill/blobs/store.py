"""The blob store: an index table in the execution database, bytes in a backend.

A write commits its index row (``writing``, with its owner) *before* any byte is stored,
streams the bytes, then marks the row ``ready`` with size and digest. So whatever a crash
interrupts is owned by an execution or a webhook event and goes when its owner goes
(retention), and a ``writing`` row older than :data:`STALE_WRITE_S` is purged: no byte
is ever stored without a row that leads to it.

A step that runs twice (a crash after the write, before the checkpoint; or a duplicate
job) writes twice under the same ``step_key``: both copies stay until their execution is
deleted (the checkpoint that wins may hold either reference, so neither can go early),
and :meth:`BlobStore.usage` counts each step key once.

Every query filters on the tenant: a blob id of another tenant is not found.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowmill import jsonutil
from flowmill.blobs.ports import BlobContent
from flowmill.blobs.ref import BlobRef, Kind, kind_of
from flowmill.clock import Clock, SystemClock
from flowmill.domain.errors import NotFound
from flowmill.ids import uuid7
from flowmill.store.database import Database
from flowmill.store.tables import blobs, webhook_events

# A webhook body is stored before its event row commits; a crash in between (or an
# event refused as a duplicate whose cleanup was cut short) leaves a body with no event.
_event_never_recorded = sa.and_(
    blobs.c.webhook_event_id.is_not(None),
    ~sa.select(webhook_events.c.id).where(webhook_events.c.id == blobs.c.webhook_event_id).exists(),
)

#: A write still ``writing`` this long after it began was cut short by a crash.
STALE_WRITE_S = 3600.0
WRITING, READY, DOOMED = "writing", "ready", "doomed"


class BlobNotFound(NotFound):
    """No ready blob with this id in this tenant."""


@dataclass(frozen=True)
class Owner:
    """What a blob is deleted with: an execution, or a webhook event.

    Attributes:
        execution_id: The execution whose step wrote it.
        webhook_event_id: The webhook event whose body it is.
        step_key: ``execution:node:attempt:path`` of a step's write (see module doc).
    """

    execution_id: str | None = None
    webhook_event_id: str | None = None
    step_key: str | None = None


class BlobStore:
    """Large values, stored once and read by reference.

    Args:
        db: The execution database (the index lives there).
        content: Where the bytes go.
        threshold: Values larger than this many bytes (JSON-encoded) are stored here.
        clock: Time.
    """

    def __init__(
        self,
        db: Database,
        content: BlobContent,
        *,
        threshold: int = 256 * 1024,
        clock: Clock | None = None,
    ) -> None:
        self.db = db
        self.content = content
        self.threshold = threshold
        self.clock = clock or SystemClock()

    @staticmethod
    def key(tenant_id: str, blob_id: str) -> str:
        """The backend key of a blob."""
        return f"{tenant_id}/{blob_id}"

    async def write(
        self,
        tenant_id: str,
        owner: Owner,
        chunks: AsyncIterable[bytes],
        *,
        media_type: str,
        kind: Kind | None = None,
    ) -> BlobRef:
        """Stream ``chunks`` into a new blob and return its reference.

        Raises:
            Exception: Whatever the source or the backend raised; the row stays
                ``writing`` and is purged with its owner (or when stale).
        """
        blob_id = uuid7()
        kind = kind or kind_of(media_type)
        row = {
            "id": blob_id,
            "tenant_id": tenant_id,
            "execution_id": owner.execution_id,
            "webhook_event_id": owner.webhook_event_id,
            "step_key": owner.step_key[:600] if owner.step_key else None,
            "status": WRITING,
            "size": 0,
            "media_type": media_type[:200],
            "kind": kind,
            "backend": self.content.name,
            "created_at": self.clock.now(),
        }
        await self.db.write(lambda c: c.execute(blobs.insert(), row))
        digest = hashlib.sha256()
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                if chunk:
                    size += len(chunk)
                    digest.update(chunk)
                    yield chunk

        await self.content.put(self.key(tenant_id, blob_id), counted())
        done = (
            blobs.update()
            .where(blobs.c.tenant_id == tenant_id, blobs.c.id == blob_id)
            .values(status=READY, size=size, sha256=digest.hexdigest())
        )
        await self.db.write(lambda c: c.execute(done))
        return BlobRef(blob_id, size, media_type[:200], kind)

    async def write_bytes(
        self,
        tenant_id: str,
        owner: Owner,
        data: bytes,
        *,
        media_type: str,
        kind: Kind | None = None,
    ) -> BlobRef:
        """Store bytes already in memory (a megabyte per backend write)."""

        async def parts() -> AsyncIterator[bytes]:
            view = memoryview(data)
            for i in range(0, len(data), 1024 * 1024):
                yield bytes(view[i : i + 1024 * 1024])

        return await self.write(tenant_id, owner, parts(), media_type=media_type, kind=kind)

    async def write_value(self, tenant_id: str, owner: Owner, value: Any) -> BlobRef:
        """Store a JSON value (a node output part above the threshold)."""
        return await self.write_bytes(
            tenant_id, owner, jsonutil.dumpb(value), media_type="application/json", kind="json"
        )

    async def stat(self, tenant_id: str, blob_id: str) -> BlobRef:
        """The reference of a ready blob of the tenant.

        Raises:
            BlobNotFound: None with this id in this tenant (or not ready).
        """
        q = sa.select(blobs.c.size, blobs.c.media_type, blobs.c.kind).where(
            blobs.c.tenant_id == tenant_id, blobs.c.id == blob_id, blobs.c.status == READY
        )
        row = (await self.db.read(lambda c: c.execute(q).first())) if _is_id(blob_id) else None
        if row is None:
            raise BlobNotFound(blob_id)
        return BlobRef(blob_id, int(row.size), row.media_type, row.kind)

    async def open(self, tenant_id: str, blob_id: str) -> tuple[BlobRef, AsyncIterator[bytes]]:
        """A ready blob's reference and its bytes, streamed.

        Raises:
            BlobNotFound: None with this id in this tenant.
        """
        ref = await self.stat(tenant_id, blob_id)
        return ref, self.content.get(self.key(tenant_id, blob_id))

    async def read(self, tenant_id: str, blob_id: str) -> bytes:
        """A ready blob's bytes, whole.

        Raises:
            BlobNotFound: None with this id in this tenant.
        """
        ref, chunks = await self.open(tenant_id, blob_id)
        out = bytearray()
        try:
            async for chunk in chunks:
                out += chunk
        except KeyError:
            raise BlobNotFound(blob_id) from None
        if len(out) != ref.size:
            raise BlobNotFound(blob_id)  # bytes gone or replaced under the index
        return bytes(out)

    async def load(self, tenant_id: str, ref: BlobRef) -> Any:
        """The value a reference stands for, decoded by its kind (what templates see).

        Raises:
            BlobNotFound: The blob is not this tenant's, or was deleted.
        """
        data = await self.read(tenant_id, ref.id)
        if ref.kind == "json":
            return jsonutil.loads(data)
        if ref.kind == "text":
            return data.decode("utf-8", "replace")
        import base64

        return base64.b64encode(data).decode("ascii")

    async def usage(self, tenant_id: str, execution_id: str) -> tuple[int, int]:
        """Blobs and bytes an execution holds, each step key counted once (its last
        write): a step that ran twice is not counted twice."""
        b = blobs
        latest = (
            sa.select(b.c.size, b.c.step_key, b.c.id)
            .where(b.c.tenant_id == tenant_id, b.c.execution_id == execution_id)
            .where(b.c.status == READY)
        )

        def _read(c: Connection) -> tuple[int, int]:
            seen: dict[str, int] = {}
            for row in c.execute(latest.order_by(b.c.id)):
                seen[row.step_key or str(row.id)] = int(row.size)
            return len(seen), sum(seen.values())

        return await self.db.read(_read)

    # --- deleting (retention) ---------------------------------------------------------

    @staticmethod
    def doom(
        conn: Connection,
        tenant_id: str,
        *,
        execution_ids: Sequence[str] = (),
        webhook_event_ids: Sequence[str] = (),
        unadopted: bool = False,
    ) -> int:
        """Mark the blobs of owners being deleted, inside the transaction deleting them.

        Their bytes go in :meth:`purge`, after the commit; a crash in between leaves
        ``doomed`` rows that the next purge finishes. ``unadopted``: of the webhook
        events' blobs, only those no execution adopted (see :meth:`adopt`).
        """
        n = 0
        for column, ids in (
            (blobs.c.execution_id, execution_ids),
            (blobs.c.webhook_event_id, webhook_event_ids),
        ):
            if ids:
                q = (
                    blobs.update()
                    .where(blobs.c.tenant_id == tenant_id, column.in_(list(ids)))
                    .values(status=DOOMED)
                )
                if unadopted:
                    q = q.where(blobs.c.execution_id.is_(None))
                n += conn.execute(q).rowcount
        return n

    async def adopt(self, tenant_id: str, blob_id: str, execution_id: str) -> None:
        """Let the execution started from a webhook body keep it: the body blob then
        goes with the execution, not with the (usually shorter-lived) webhook body. One
        execution adopts it; others started from the same event share it."""
        q = (
            blobs.update()
            .where(
                blobs.c.tenant_id == tenant_id,
                blobs.c.id == blob_id,
                blobs.c.execution_id.is_(None),
            )
            .values(execution_id=execution_id)
        )
        await self.db.write(lambda c: c.execute(q))

    async def purge(self, tenant_id: str, batch: int = 200) -> int:
        """Delete the bytes, then the rows, of doomed blobs and of what a crash left:
        writes still ``writing`` after :data:`STALE_WRITE_S`, webhook bodies whose event
        was never recorded. Returns how many."""
        stale = self.clock.now() - timedelta(seconds=STALE_WRITE_S)
        gone = 0
        condemned = sa.and_(
            blobs.c.tenant_id == tenant_id,
            sa.or_(
                blobs.c.status == DOOMED,
                sa.and_(blobs.c.status == WRITING, blobs.c.created_at < stale),
                sa.and_(blobs.c.created_at < stale, _event_never_recorded),
            ),
        )
        pick = sa.select(blobs.c.id).where(condemned).order_by(blobs.c.id).limit(batch)

        def _pick(c: Connection) -> list[str]:
            return [str(i) for i in c.execute(pick).scalars().all()]

        while True:
            ids = await self.db.read(_pick)
            if not ids:
                return gone
            await self.content.delete([self.key(tenant_id, i) for i in ids])

            def _delete(c: Connection, ids: list[str] = ids) -> int:
                q = blobs.delete().where(blobs.c.tenant_id == tenant_id, blobs.c.id.in_(ids))
                return int(c.execute(q).rowcount)

            gone += await self.db.write(_delete)
            if len(ids) < batch:
                return gone

    async def discard(self, tenant_id: str, webhook_event_id: str) -> None:
        """Delete at once the body blob of a webhook event that was not recorded (a
        duplicate delivery)."""
        await self.db.write(lambda c: self.doom(c, tenant_id, webhook_event_ids=[webhook_event_id]))
        await self.purge(tenant_id)

    async def close(self) -> None:
        """Release the backend's connections."""
        await self.content.close()


def _is_id(text: str) -> bool:
    import uuid

    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
