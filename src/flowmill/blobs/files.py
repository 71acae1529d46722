"""Blob bytes as files under one directory: the embedded default (``<home>/blobs``).

A write goes to a temporary file beside its target and is renamed into place when
complete, so a crash mid-write leaves only a ``.part`` file (removed by the next write
or purge of the same key), never a truncated blob. File I/O runs in a thread: a 50 MB
write must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path

READ_CHUNK = 1024 * 1024


class FileBlobContent:
    """Blob bytes in ``root/<tenant>/<blob id>``.

    Args:
        root: The directory (made on first write).
    """

    name = "files"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        tenant, _, blob_id = key.partition("/")
        if not tenant or not blob_id or "/" in blob_id or ".." in key:
            raise KeyError(key)  # keys come from the index; refuse anything path-like
        return self.root / tenant / blob_id

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        """Write to ``<key>.<random>.part``, then rename over ``key``."""
        path = self._path(key)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}.{secrets.token_hex(4)}.part")
        f = await asyncio.to_thread(open, part, "wb")
        try:
            async for chunk in chunks:
                await asyncio.to_thread(f.write, chunk)
            await asyncio.to_thread(f.flush)
        except BaseException:
            f.close()
            part.unlink(missing_ok=True)
            raise
        f.close()
        await asyncio.to_thread(os.replace, part, path)

    async def get(self, key: str) -> AsyncIterator[bytes]:
        """The file's bytes, a megabyte at a time."""
        path = self._path(key)
        try:
            f = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise KeyError(key) from None
        try:
            while chunk := await asyncio.to_thread(f.read, READ_CHUNK):
                yield chunk
        finally:
            f.close()

    async def delete(self, keys: Sequence[str]) -> None:
        """Unlink each file (and any ``.part`` left of it by a crash)."""

        def _unlink() -> None:
            for key in keys:
                path = self._path(key)
                path.unlink(missing_ok=True)
                for part in path.parent.glob(f"{path.name}.*.part"):
                    part.unlink(missing_ok=True)

        await asyncio.to_thread(_unlink)

    async def close(self) -> None:
        """Nothing to release."""
