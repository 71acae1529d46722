"""The blob store a deployment's settings ask for."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flowmill.blobs.ports import BlobContent
from flowmill.blobs.store import BlobStore
from flowmill.clock import Clock
from flowmill.store.database import Database

if TYPE_CHECKING:
    from flowmill.config import Settings


def blob_dir(settings: Settings) -> Path:
    """``blob_dir``, else ``blobs/`` beside the SQLite file (``<home>/blobs`` by
    default): a database copied or moved with its directory keeps its blobs."""
    if settings.blob_dir is not None:
        return settings.blob_dir.resolve()
    url = settings.database
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url.removeprefix("sqlite:///")).resolve().parent / "blobs"
    return (settings.home / "blobs").resolve()


def build_blob_store(settings: Settings, db: Database, clock: Clock) -> BlobStore | None:
    """``files`` under ``<home>/blobs`` for SQLite, the database for PostgreSQL (every
    process of the distributed layout reaches it), S3 when configured, or none (off).

    Raises:
        ValueError: ``s3`` without an endpoint and a bucket.
    """
    kind = settings.blob_store
    if kind == "off":
        return None
    if kind == "auto":
        kind = "database" if db.is_postgres else "files"
    content: BlobContent
    if kind == "files":
        from flowmill.blobs.files import FileBlobContent

        content = FileBlobContent(blob_dir(settings))
    elif kind == "database":
        from flowmill.blobs.database import DatabaseBlobContent

        content = DatabaseBlobContent(db)
    else:
        from flowmill.blobs.s3 import S3BlobContent, S3Settings

        if not (settings.blob_s3_endpoint and settings.blob_s3_bucket):
            raise ValueError("FLOWMILL_BLOB_STORE=s3 needs FLOWMILL_BLOB_S3_ENDPOINT and _BUCKET")
        content = S3BlobContent(
            S3Settings(
                endpoint=settings.blob_s3_endpoint,
                bucket=settings.blob_s3_bucket,
                access_key=settings.blob_s3_access_key,
                secret_key=settings.blob_s3_secret_key,
                region=settings.blob_s3_region,
                prefix=settings.blob_s3_prefix,
            )
        )
    return BlobStore(db, content, threshold=settings.blob_threshold_bytes, clock=clock)
