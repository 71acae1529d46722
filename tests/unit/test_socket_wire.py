"""WebSocket writes gathered per turn of the event loop: one socket write, in order."""

from __future__ import annotations

import asyncio
from typing import Any

from flowmill.realtime.wire import BatchingTransport, batch_writes


class FakeTransport(asyncio.WriteTransport):
    """Records what reaches the socket."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Any] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close",))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


class FakeProtocol:
    def __init__(self) -> None:
        self.transport: Any = FakeTransport()

    async def send(self, message: Any) -> None:
        self.transport.write(message["bytes"])


async def test_socket_wire_writes_of_one_turn_leave_in_one_write() -> None:
    inner = FakeTransport()
    wire = BatchingTransport(inner)
    wire.write(b"a")
    wire.write(bytearray(b"b"))
    wire.writelines([b"c"])
    assert inner.calls == [] and wire.get_write_buffer_size() == 3
    await asyncio.sleep(0)  # not a wait: the end of this turn of the loop
    assert inner.calls == [("write", b"abc")]
    wire.write(b"d")
    await asyncio.sleep(0)  # not a wait: the next turn
    assert inner.calls == [("write", b"abc"), ("write", b"d")]


async def test_socket_wire_close_sends_what_was_written_first() -> None:
    inner = FakeTransport()
    wire = BatchingTransport(inner)
    wire.write(b"last frame")
    wire.close()
    await asyncio.sleep(0)  # not a wait: a flush left scheduled finds nothing
    assert inner.calls == [("write", b"last frame"), ("close",)]


async def test_socket_wire_wraps_uvicorns_protocol_only() -> None:
    protocol = FakeProtocol()
    assert batch_writes(protocol.send) is True
    assert isinstance(protocol.transport, BatchingTransport)
    assert batch_writes(protocol.send) is True  # once
    assert isinstance(protocol.transport.transport, FakeTransport)

    async def plain_send(message: Any) -> None:
        del message

    assert batch_writes(plain_send) is False
