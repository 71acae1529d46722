"""Socket.IO at ``/api/socket`` (seed 002): rooms per execution, workflow and tenant.

A client authenticates in the handshake (``auth: {token: "<API key or JWT>"}``, or an
``Authorization: Bearer`` header where it can send one) and then joins rooms:

* ``execution:<id>``: one execution's events (the seeds' room);
* ``workflow:<id>``: the events of every execution of a workflow;
* ``tenant`` (or ``tenant:<own id>``): every execution event of its tenant.

``socket.emit('subscribe', 'execution:<id>', ack)`` (or ``join``; ``{room, after}``
replays the execution's events after sequence ``after`` first, with no gap or
repeat); ``unsubscribe``/``leave`` undo it. The ack is ``{ok: true, room}`` or
``{ok: false, error: {code, message}}``: another tenant's execution, workflow or
tenant room is refused as ``not_found``, as the REST API answers 404.

Events come from the event store through :class:`FeedFollower`, so a step run by a
worker in another process reaches the rooms of every API process, in sequence order.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import engineio
import socketio
import structlog
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from flowmill.api.auth import Authenticator
from flowmill.api.errors import ApiError
from flowmill.domain.errors import FlowmillError
from flowmill.realtime.follower import FeedFollower
from flowmill.realtime.messages import StepDetails, rooms_of, socket_message
from flowmill.realtime.news import FeedNews
from flowmill.store.database import Database
from flowmill.store.event_feed import FeedEvent

log = structlog.get_logger("flowmill.realtime")
PATH = "api/socket"
_ROOM = re.compile(r"^(execution|workflow):(.+)$")

Exists = Callable[[str, str], Awaitable[bool]]


@dataclass(frozen=True)
class Owners:
    """Ownership checks: whether a tenant has an execution / a workflow."""

    execution: Exists
    workflow: Exists


class RoomRefused(FlowmillError):
    """A room the client may not join; ``code`` and message go back in the ack."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SocketGateway:
    """The Socket.IO server and the follower feeding its rooms.

    Args:
        db: The event store's database.
        news: News of commits (this process's and, distributed, others').
        auth: Checks the handshake's token.
        owners: Checks that a room's execution or workflow is the caller's.
        cors_origins: Origins allowed to connect from a browser (``["*"]``: any;
            empty: same origin only).
    """

    def __init__(
        self,
        *,
        db: Database,
        news: FeedNews,
        auth: Authenticator,
        owners: Owners,
        cors_origins: list[str],
    ) -> None:
        origins: str | list[str] | None = None
        if "*" in cors_origins:
            origins = "*"
        elif cors_origins:
            origins = list(cors_origins)
        self.sio = socketio.AsyncServer(
            async_mode="asgi", cors_allowed_origins=origins, logger=False, engineio_logger=False
        )
        self.auth = auth
        self.owners = owners
        self.follower = FeedFollower(db, news, self._deliver)
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        for name in ("subscribe", "join"):
            self.sio.on(name, self._subscribe)
        for name in ("unsubscribe", "leave"):
            self.sio.on(name, self._unsubscribe)

    def asgi(self, app: Any) -> socketio.ASGIApp:
        """``app`` with Socket.IO answering under ``/api/socket``."""
        return socketio.ASGIApp(self.sio, other_asgi_app=app, socketio_path=PATH)

    async def close(self) -> None:
        """Stop following the feed and drop the connections."""
        await self.follower.close()
        for sid in list(self.sio.manager.get_participants("/", None)):
            await self.sio.disconnect(sid[0] if isinstance(sid, tuple) else sid)

    # --- delivery ----------------------------------------------------------------------

    async def _deliver(self, event: FeedEvent, details: StepDetails | None) -> None:
        # Not sio.emit: it makes a task per recipient and waits for all of them, so each
        # event cost a round of the loop and a hundred tasks (bench/read_side.py). The
        # frame is encoded once and put on each recipient's send queue in turn; nothing
        # here waits, so a batch of events is queued before any writer wakes, and each
        # connection's writer sends the batch in one go, in sequence order.
        message = socket_message(event, details)
        if message is None:
            return
        frames = self._frames(*message)
        send = self.sio.eio.send_packet
        for _, eio_sid in self.sio.manager.get_participants("/", rooms_of(event)):
            for frame in frames:
                await send(eio_sid, frame)

    def _frames(self, name: str, body: dict[str, Any]) -> list[eio_packet.Packet]:
        """The Engine.IO packets of one Socket.IO event, the same for every recipient."""
        encoded = self.sio.packet_class(sio_packet.EVENT, namespace="/", data=[name, body]).encode()
        parts = encoded if isinstance(encoded, list) else [encoded]
        return [eio_packet.Packet(eio_packet.MESSAGE, p) for p in parts]

    # --- handlers ----------------------------------------------------------------------

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = _token(environ, auth)
        try:
            principal = await self.auth.authenticate(token)
        except ApiError as e:
            raise socketio.exceptions.ConnectionRefusedError(
                {"code": e.code, "message": e.message}
            ) from None
        await self.sio.save_session(sid, {"tenant_id": principal.tenant_id})
        await self.follower.watch(principal.tenant_id)

    async def _disconnect(self, sid: str, *_: Any) -> None:
        session = await self.sio.get_session(sid)
        if "tenant_id" in session:
            self.follower.unwatch(session["tenant_id"])
        await self._answer_pending_poll(sid)

    async def _answer_pending_poll(self, sid: str) -> None:
        # python-engineio leaves a long-polling client's pending GET parked when the
        # client closes, until ping interval + timeout (45 s): the client's disconnect
        # waited for its own request timeout (30 s), and the server's shutdown for the
        # parked request. A no-op packet answers it now (Node's engine.io answers it on
        # close too); a WebSocket client has no such request.
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is None:
            return
        with contextlib.suppress(KeyError, engineio.exceptions.EngineIOError):
            if self.sio.eio.transport(eio_sid) == "polling":
                await self.sio.eio.send_packet(eio_sid, eio_packet.Packet(eio_packet.NOOP))

    async def _subscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        tenant_id: str = (await self.sio.get_session(sid))["tenant_id"]
        try:
            room, after = _parse(data, tenant_id)
            await self._check(room, tenant_id)
        except RoomRefused as e:
            return {"ok": False, "error": {"code": e.code, "message": str(e)}}
        state = self.follower.tenants.get(tenant_id) or await self.follower.watch(tenant_id)
        async with state.lock:
            # Nothing is delivered while the lock is held: what the replay reads (up to
            # the cursor) went out before, what follows goes to the room after.
            if after is not None and room.startswith("execution:"):
                stream = room.split(":", 1)[1]
                for event, details in await self.follower.stream_events(
                    tenant_id, stream, after, state.cursor
                ):
                    message = socket_message(event, details)
                    if message is not None:
                        await self.sio.emit(message[0], message[1], to=sid)
            await self.sio.enter_room(sid, room)
        return {"ok": True, "room": room}

    async def _unsubscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        tenant_id: str = (await self.sio.get_session(sid))["tenant_id"]
        try:
            room, _ = _parse(data, tenant_id)
        except RoomRefused as e:
            return {"ok": False, "error": {"code": e.code, "message": str(e)}}
        await self.sio.leave_room(sid, room)
        return {"ok": True, "room": room}

    async def _check(self, room: str, tenant_id: str) -> None:
        kind, _, ident = room.partition(":")
        if kind == "tenant":
            return
        exists = self.owners.execution if kind == "execution" else self.owners.workflow
        if not await exists(tenant_id, ident):
            raise RoomRefused("not_found", f"{kind} {ident} not found")


def _token(environ: dict[str, Any], auth: Any) -> str | None:
    if isinstance(auth, dict):
        for key in ("token", "apiKey", "api_key"):
            value = auth.get(key)
            if isinstance(value, str) and value:
                return value.removeprefix("Bearer ").strip()
    header = environ.get("HTTP_AUTHORIZATION", "")
    if isinstance(header, str) and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def _parse(data: Any, tenant_id: str) -> tuple[str, int | None]:
    """The room a subscribe message names, and the replay point if any.

    Raises:
        RoomRefused: Malformed, or another tenant's room.
    """
    after: Any = None
    if isinstance(data, dict):
        after = data.get("after")
        if "room" in data:
            data = data["room"]
        elif "execution_id" in data or "executionId" in data:
            data = f"execution:{data.get('execution_id') or data.get('executionId')}"
        elif "workflow_id" in data or "workflowId" in data:
            data = f"workflow:{data.get('workflow_id') or data.get('workflowId')}"
    if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 0):
        raise RoomRefused("invalid_room", "after must be a sequence number (an integer >= 0)")
    if not isinstance(data, str) or not data or len(data) > 200:
        raise RoomRefused("invalid_room", "name a room: execution:<id>, workflow:<id> or tenant")
    if data == "tenant" or data == f"tenant:{tenant_id}":
        return f"tenant:{tenant_id}", None
    if data.startswith("tenant:"):
        raise RoomRefused("not_found", f"tenant {data[7:]} not found")
    match = _ROOM.match(data)
    if match is None:
        raise RoomRefused("invalid_room", f"unknown room {data!r}")
    try:
        ident = str(uuid.UUID(match.group(2)))
    except ValueError:
        raise RoomRefused("not_found", f"{match.group(1)} {match.group(2)} not found") from None
    return f"{match.group(1)}:{ident}", after


class SocketMount:
    """ASGI middleware: ``/api/socket`` to Socket.IO, everything else to the app."""

    def __init__(self, app: Any, gateway: SocketGateway) -> None:
        self._app = gateway.asgi(app)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)
