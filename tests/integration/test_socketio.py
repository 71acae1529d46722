"""Socket.IO at /api/socket with the real clients: python-socketio and Node's
socket.io-client (the seeds' frontend is JavaScript).

A workflow with a fan-out, a failure and a retry gives exactly the events the store
holds for it, in sequence order, with outputs, errors and timings; a late joiner
replays with no gap or repeat; another tenant's rooms and bad tokens are refused;
a worker in another process is relayed through Redis.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import socketio

from tests.api_support import THREE_NODES
from tests.integration.distributed_support import Deployment
from tests.integration.http_servers import LoopbackServer, Servers
from tests.node_support import start_node_script
from tests.socket_support import Recorder, connect, expected_messages, fan_out_fail_retry
from tests.webhook_support import Live, live_api

NODE_PACKAGES = ("socket.io-client@4.8.4",)
SETTINGS = {"sandbox_enabled": False, "http_allow_cidrs": ["127.0.0.1/32"]}


@pytest.fixture
def flaky() -> Iterator[LoopbackServer]:
    servers = Servers()
    yield servers.start("flaky")
    servers.stop()


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[Live]:
    async with live_api(database_url, **SETTINGS) as live:
        yield live


async def _workflow(live: Live, flaky: LoopbackServer, key: str = "k") -> str:
    api = live.as_tenant("tenant-a")
    r = await api.post("/api/workflows", json=fan_out_fail_retry(flaky.url(f"/flaky?key={key}")))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _execute(live: Live, wf: str) -> str:
    r = await live.as_tenant("tenant-a").post(f"/api/workflows/{wf}/execute", json={})
    assert r.status_code == 202, r.text
    return str(r.json()["execution_id"])


def _check_sequence(received: list[tuple[str, int]], expected: list[tuple[str, int]]) -> None:
    assert received == expected
    names = [n for n, _ in received]
    assert names[0] == "started" and names[-1] == "failed"
    assert names.count("step_started") == names.count("step_completed") + names.count("step_failed")
    assert names.count("step_failed") == 2  # right's first attempt, then boom
    assert names.count("step_retry_scheduled") == 1


async def test_socketio_python_client_gets_the_exact_sequence_and_replays(
    live: Live, flaky: LoopbackServer
) -> None:
    wf = await _workflow(live, flaky)
    watcher = await connect(live.url, live.keys["tenant-a"])
    try:
        assert await watcher.subscribe(f"workflow:{wf}") == {"ok": True, "room": f"workflow:{wf}"}
        execution = await _execute(live, wf)
        await watcher.wait_for("failed", execution)
        db = live.runtime.db
        expected = await expected_messages(db, execution)
        bodies = watcher.bodies(execution)
        names = watcher.names(execution)
        _check_sequence([(n, b["sequence"]) for n, b in zip(names, bodies, strict=True)], expected)
        by_step = {(b["type"], b.get("node_id"), b.get("attempt")): b for b in bodies}
        retried = by_step[("node.failed", "right", 1)]
        assert retried["will_retry"] is True and retried["error"]["type"] == "HttpError"
        assert retried["status"] == "failed" and retried["step_id"] == "right"
        done = by_step[("node.completed", "right", 2)]
        assert done["output"]["data"]["tries"] == 2  # the output is in the message
        assert done["started_at"] <= done["completed_at"] and done["duration_ms"] >= 0
        assert by_step[("node.completed", "left", 1)]["output"] == {"side": "left"}
        end = bodies[-1]
        assert end["error"]["message"] == "boom" and end["workflow_id"] == wf
        assert all(b["timestamp"] and b["workflow_id"] == wf for b in bodies)

        # A late joiner of the execution's room replays it: same events, same order.
        late = await connect(live.url, live.keys["tenant-a"], transports=["polling"])
        try:
            ack = await late.subscribe({"room": f"execution:{execution}", "after": 0})
            assert ack["ok"] is True
            await late.wait_for("failed", execution)
            assert [(n, b["sequence"]) for n, b, _ in late.received] == expected
            # Its pending long poll is answered when it leaves: without that, leaving
            # while a poll was pending took the client's 30 s request timeout, and the
            # server's shutdown 15 s more (a close between two polls was quick anyway).
            await asyncio.wait_for(late.close(), 10)
        finally:
            await late.close()
    finally:
        await watcher.close()


REFUSED = [
    ("execution:{execution}", "not_found"),
    ("workflow:{workflow}", "not_found"),
    ("tenant:tenant-a", "not_found"),
    ("execution:not-an-id", "not_found"),
    ("everything", "invalid_room"),
    ({"room": "tenant", "after": -1}, "invalid_room"),
    (42, "invalid_room"),
]


async def test_socketio_refuses_another_tenants_rooms(sqlite_url: str) -> None:
    # One server for every case (a server each took ~2 s of the suite per case); each
    # case has its own client, and all of them are watched over one execution of A's.
    async with live_api(sqlite_url, **SETTINGS) as live:
        api = live.as_tenant("tenant-a")
        wf = (await api.post("/api/workflows", json={**THREE_NODES, "status": "active"})).json()
        execution = (
            await api.post(f"/api/workflows/{wf['id']}/execute", params={"wait": 10}, json={})
        ).json()["id"]
        intruders: list[Recorder] = []
        try:
            for room, code in REFUSED:
                intruder = await connect(live.url, live.keys["tenant-b"])
                intruders.append(intruder)
                if isinstance(room, str):
                    room = room.format(execution=execution, workflow=wf["id"])
                ack = await intruder.subscribe(room)
                assert ack["ok"] is False and ack["error"]["code"] == code, (room, ack)
                # B's own tenant room works...
                assert (await intruder.subscribe("tenant"))["ok"] is True
            # ...and A's execution sends none of them anything, although it reaches A's
            # watcher of the workflow (the same delivery would have reached them).
            control = await connect(live.url, live.keys["tenant-a"])
            intruders.append(control)
            assert (await control.subscribe(f"workflow:{wf['id']}"))["ok"] is True
            second = await api.post(
                f"/api/workflows/{wf['id']}/execute", params={"wait": 10}, json={}
            )
            await control.wait_for("completed", second.json()["id"])
            await asyncio.sleep(0.3)  # not a wait: nothing may arrive in this window
            assert [i.received for i in intruders[:-1]] == [[] for _ in REFUSED]
        finally:
            for intruder in intruders:
                await intruder.close()


async def test_socketio_refuses_a_bad_token(sqlite_url: str) -> None:
    async with live_api(sqlite_url, **SETTINGS) as live:
        for token in ("fm_not_a_real_key", "", "eyJhbGciOiJIUzI1NiJ9.e30.x"):
            with pytest.raises(socketio.exceptions.ConnectionError):
                await connect(live.url, token)


NODE_CLIENT = """
import { io } from 'socket.io-client';

const [url, token, room] = process.argv.slice(2);
const socket = io(url, { path: '/api/socket', auth: { token }, transports: ['websocket'] });
const names = ['started', 'step_started', 'step_completed', 'step_failed', 'completed',
  'failed', 'cancelled', 'queued', 'waiting', 'step_waiting', 'step_skipped',
  'step_retry_scheduled'];
for (const name of names) {
  socket.on(name, (body) => {
    console.log(JSON.stringify([name, body]));
    if (name === 'failed' || name === 'completed') { socket.close(); process.exit(0); }
  });
}
socket.on('connect_error', (err) => {
  console.log(JSON.stringify(['connect_error', err.message]));
  process.exit(3);
});
socket.on('connect', () => {
  socket.emit('subscribe', room, (ack) => {
    console.log(JSON.stringify(['ack', ack]));
  });
});
setTimeout(() => { console.log(JSON.stringify(['timeout'])); process.exit(2); }, 30000);
"""


async def _node_client(
    url: str, token: str, room: str
) -> tuple[asyncio.subprocess.Process, object]:
    proc, script = await start_node_script(NODE_CLIENT, "socketio", NODE_PACKAGES, url, token, room)
    assert proc.stdout is not None
    first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
    assert first[0] == "ack", first
    return proc, (script, first[1])


async def test_socketio_node_client_gets_the_exact_sequence(
    live: Live, flaky: LoopbackServer
) -> None:
    wf = await _workflow(live, flaky, key="node")
    proc, (script, ack) = await _node_client(live.url, live.keys["tenant-a"], f"workflow:{wf}")
    try:
        assert ack == {"ok": True, "room": f"workflow:{wf}"}
        execution = await _execute(live, wf)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, (out + err).decode()
        messages = [json.loads(line) for line in out.decode().splitlines() if line]
        received = [(name, body["sequence"]) for name, body in messages]
        _check_sequence(received, await expected_messages(live.runtime.db, execution))
        assert all(body["execution_id"] == execution for _, body in messages)
        done = next(b for n, b in messages if n == "step_completed" and b["node_id"] == "right")
        assert done["attempt"] == 2 and done["output"]["status"] == 200
    finally:
        script.unlink()  # type: ignore[attr-defined]
        if proc.returncode is None:
            proc.kill()


@pytest.mark.redis
async def test_socketio_relays_a_worker_in_another_process(
    postgres_url: str, redis_url: str, redis_prefix: str, flaky: LoopbackServer, tmp_path: Path
) -> None:
    deployment = Deployment(postgres_url, redis_url, redis_prefix, tmp_path)
    settings = {**SETTINGS, "redis_url": redis_url, "queue_prefix": redis_prefix}
    try:
        await deployment.start_worker(FLOWMILL_HTTP_ALLOW_CIDRS="127.0.0.1/32")
        async with live_api(postgres_url, worker=False, **settings) as live:
            gateway = live.app.state.realtime
            gateway.follower.poll_s = 60  # only news through Redis can bring the events
            wf = await _workflow(live, flaky, key="relay")
            watcher: Recorder = await connect(live.url, live.keys["tenant-a"])
            try:
                assert (await watcher.subscribe(f"workflow:{wf}"))["ok"] is True
                execution = await _execute(live, wf)
                await watcher.wait_for("failed", execution, timeout=60)
                received = [(n, b["sequence"]) for n, b, _ in watcher.received]
                _check_sequence(received, await expected_messages(live.runtime.db, execution))
            finally:
                await watcher.close()
    finally:
        deployment.stop_all()
