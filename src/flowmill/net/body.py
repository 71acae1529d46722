"""Reading a response body under a size limit, decompressing as it arrives.

The limit counts decompressed bytes, and decompression never produces more than the
limit allows, so a small gzip "bomb" cannot balloon in memory. Raw bytes are capped
too, so junk after a compressed stream cannot grow without bound.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from flowmill.net.errors import InvalidResponse, ResponseTooLarge

#: What we ask servers for; other codings are returned as sent (we never ask for them).
ACCEPT_ENCODING = "gzip, deflate"


class _Limit:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0

    @property
    def room(self) -> int:
        return self.limit - self.total

    def take(self, n: int) -> None:
        self.total += n
        if self.total > self.limit:
            raise ResponseTooLarge(
                f"the response body is larger than {self.limit} bytes", limit=self.limit
            )


class _Inflater:
    """gzip or deflate, producing at most ``room + 1`` bytes per call."""

    def __init__(self, coding: str) -> None:
        gzip = coding in ("gzip", "x-gzip")
        self._wbits = 16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS
        self._raw_fallback = not gzip  # some servers send raw deflate, without zlib header
        self._z = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes, out: _Limit) -> bytes:
        parts: list[bytes] = []
        while data and not self._z.eof:
            try:
                chunk = self._z.decompress(data, out.room + 1)
            except zlib.error as e:
                if self._raw_fallback and not self._started:
                    self._raw_fallback = False
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise InvalidResponse(f"the response body is not valid compressed data: {e}") from e
            self._started = True
            out.take(len(chunk))
            parts.append(chunk)
            data = self._z.unconsumed_tail
        return b"".join(parts)

    def finish(self, out: _Limit) -> bytes:
        rest = self._z.flush()
        out.take(len(rest))
        return rest


async def read_limited(
    chunks: AsyncIterable[bytes],
    *,
    content_encoding: str | None,
    content_length: str | None,
    limit: int,
) -> bytes:
    """The whole body, decompressed when gzip or deflate.

    Raises:
        ResponseTooLarge: More than ``limit`` bytes (decompressed, or raw).
        InvalidResponse: The compressed data is corrupt.
    """
    body, _ = await read_or_spill(
        chunks, content_encoding=content_encoding, content_length=content_length, limit=limit
    )
    return body


Spill = Callable[[AsyncIterator[bytes]], Awaitable[Any]]
"""Takes a body's (decoded) bytes as a stream; returns what stands for them (a blob)."""


async def read_or_spill(
    chunks: AsyncIterable[bytes],
    *,
    content_encoding: str | None,
    content_length: str | None,
    limit: int,
    spill: Spill | None = None,
    spill_after: int = 0,
) -> tuple[bytes, Any]:
    """The body, or, once it passes ``spill_after`` bytes, what ``spill`` made of it.

    A body that passes ``spill_after`` is handed to ``spill`` as a stream (the part
    read so far, then the rest as it arrives), so it is never whole in memory. Limits
    and decompression apply the same either way.

    Returns:
        ``(body, None)``, or ``(b"", spill's result)``.

    Raises:
        ResponseTooLarge: More than ``limit`` bytes (decompressed, or raw).
        InvalidResponse: The compressed data is corrupt.
    """
    coding = (content_encoding or "").strip().lower()
    inflater = _Inflater(coding) if coding in ("gzip", "x-gzip", "deflate") else None
    raw = _Limit(limit)
    out = _Limit(limit)
    if inflater is None and content_length is not None and content_length.strip().isdigit():
        # Refuse early: no point downloading what will be refused.
        raw.take(int(content_length))
        raw.total = 0
    decoded = _decoded(chunks, inflater, raw, out)
    body = bytearray()
    async for piece in decoded:
        body += piece
        if spill is not None and len(body) > spill_after:
            head = bytes(body)
            body.clear()

            async def stream(head: bytes = head) -> AsyncIterator[bytes]:
                yield head
                async for rest in decoded:
                    yield rest

            return b"", await spill(stream())
    return bytes(body), None


async def _decoded(
    chunks: AsyncIterable[bytes], inflater: _Inflater | None, raw: _Limit, out: _Limit
) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        raw.take(len(chunk))
        if inflater is None:
            out.take(len(chunk))
            yield chunk
        else:
            piece = inflater.feed(chunk, out)
            if piece:
                yield piece
    if inflater is not None:
        rest = inflater.finish(out)
        if rest:
            yield rest
