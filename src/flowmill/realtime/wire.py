"""One socket write per WebSocket connection and turn of the event loop.

Engine.IO's writer sends the frames queued for a connection one at a time, and the ASGI
server writes each to the socket at once: a system call and a TCP segment per frame,
which over loopback also pays the receiving side's work. The gateway queues a batch of
events on every recipient before any writer runs, so a writer wakes with several frames
and writes them within one turn of the loop; :class:`BatchingTransport` gathers what is
written in a turn and hands it to the socket in one write at the end of it. Nothing is
reordered or held longer than that turn.

It wraps the transport of uvicorn's WebSocket protocols (``send`` is the protocol's
bound method, the protocol writes through its ``transport`` attribute). Under another
server, or if that changes, :func:`batch_writes` leaves the connection alone: frames
then go one write each, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


class BatchingTransport:
    """A transport whose writes within one turn of the event loop go out as one.

    Everything but writing and closing is the wrapped transport's.

    Args:
        transport: The connection's transport.
    """

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self.transport = transport
        self._chunks: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Keep ``data`` for the write at the end of this turn of the loop."""
        if not self._chunks:
            self._loop.call_soon(self.flush)
        self._chunks.append(bytes(data))

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        """Keep each of ``lines`` (as :meth:`write`)."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Write what was kept, in one write."""
        if not self._chunks:
            return
        chunks, self._chunks = self._chunks, []
        if not self.transport.is_closing():
            self.transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def get_write_buffer_size(self) -> int:
        """Bytes not yet handed to the socket, kept ones included."""
        return self.transport.get_write_buffer_size() + sum(len(c) for c in self._chunks)

    def write_eof(self) -> None:
        """Write what was kept, then half-close."""
        self.flush()
        self.transport.write_eof()

    def close(self) -> None:
        """Write what was kept, then close (the last frames, a close frame, go first)."""
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        """Drop what was kept and close at once."""
        self._chunks.clear()
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def batch_writes(send: Any) -> bool:
    """Make the WebSocket connection behind the ASGI ``send`` write through a
    :class:`BatchingTransport`; whether it could (uvicorn's protocols)."""
    protocol: Any = getattr(send, "__self__", None)
    transport = getattr(protocol, "transport", None)
    if isinstance(transport, BatchingTransport):
        return True
    if not isinstance(transport, asyncio.WriteTransport):
        return False
    protocol.transport = BatchingTransport(transport)
    return True
