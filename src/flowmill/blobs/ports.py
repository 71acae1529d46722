"""The content port: where a blob's bytes live, by key (``<tenant>/<blob id>``).

The index (which blob, whose, how big) is always a table of the execution database
(:mod:`flowmill.blobs.store`); a backend only keeps bytes. Writes go through a stream so
no backend needs the whole value in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Protocol


class BlobContent(Protocol):
    """Bytes of blobs, by key.

    ``put`` of a key that exists replaces its bytes; a reader never sees a half-written
    value under a key that was complete before (or the backend says it may, see its
    docstring). ``delete`` of a missing key is no error (purges repeat after a crash).
    """

    name: str

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        """Store the bytes of ``chunks`` under ``key``."""
        ...

    def get(self, key: str) -> AsyncIterator[bytes]:
        """The bytes under ``key``, in chunks.

        Raises:
            KeyError: Nothing is stored under ``key`` (raised on first iteration).
        """
        ...

    async def delete(self, keys: Sequence[str]) -> None:
        """Remove ``keys`` (missing ones are skipped)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
