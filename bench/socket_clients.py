"""Lean Socket.IO clients for bench/read_side.py: raw Engine.IO v4 over websockets.

The python-socketio client decodes every message in Python on the way in, so 100 of
them in one process measure mostly themselves. These only stamp each frame's arrival
time and keep its text; the JSON is parsed after the run. One process runs ``n``
clients: it prints ``ready`` once all are subscribed, then, when its standard input
closes, one JSON line ``[[arrival, timestamp], ...]`` and exits.

    python bench/socket_clients.py URL TOKEN ROOM N
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime

import aiohttp


async def client(
    session: aiohttp.ClientSession, url: str, token: str, room: str, frames: list[tuple[float, str]]
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(
        url.replace("http", "ws", 1) + "/api/socket/?EIO=4&transport=websocket"
    )
    opened = await ws.receive_str()
    assert opened.startswith("0"), opened
    await ws.send_str("40" + json.dumps({"token": token}))
    assert (await ws.receive_str()).startswith("40")
    await ws.send_str("420" + json.dumps(["subscribe", room]))
    ack = await ws.receive_str()
    assert ack.startswith("430"), ack
    assert '"ok":true' in ack.replace(" ", ""), ack

    async def pump() -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                return
            if msg.data == "2":
                await ws.send_str("3")
            elif msg.data.startswith("42"):
                frames.append((time.time(), msg.data))

    asyncio.get_running_loop().create_task(pump())
    return ws


async def main(url: str, token: str, room: str, n: int) -> None:
    frames: list[tuple[float, str]] = []
    async with aiohttp.ClientSession() as session:
        sockets = [await client(session, url, token, room, frames) for _ in range(n)]
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for ws in sockets:
            await ws.close()
    out = []
    for arrived, text in frames:
        body = json.loads(text[2:])[1]
        out.append([arrived, datetime.fromisoformat(body["timestamp"]).timestamp()])
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
