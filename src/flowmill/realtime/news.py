"""News that a tenant's feed has new events, between the processes of a deployment.

One event, many transports (DESIGN §11): the engine commits events once, to the event
store; whoever shows them live (Socket.IO rooms, SSE streams, the projector) reads them
from there by sequence number. What travels between processes is only the word that a
tenant has news, so a message lost costs a reader one poll interval, never an event,
and readers see every event in commit order whatever the order of the messages.

Embedded, :class:`LocalFeedNews` tells this process's listeners. Distributed,
:class:`RedisFeedNews` also publishes tenant ids on a Redis channel (those of
commits that end together in one message) and tells listeners of what others publish.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

import structlog

from flowmill.coalesce import Coalescer
from flowmill.domain.execution import Effects

log = structlog.get_logger("flowmill.realtime")
Listener = Callable[[str], None]


class FeedNews(Protocol):
    """Says which tenants have new events, in this process and (distributed) others."""

    def committed(self, fx: Effects) -> None:
        """Hub listener: ``fx`` committed (cheap; never blocks the caller)."""

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(tenant_id)`` on news from any process; returns an unsubscribe."""

    async def close(self) -> None:
        """Stop listening, release connections."""


class LocalFeedNews:
    """News within one process (the embedded deployment)."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def committed(self, fx: Effects) -> None:
        if fx.events:
            self.tell(fx.tenant_id)

    def tell(self, tenant_id: str) -> None:
        """Call every listener (a failing one is logged, not raised)."""
        for listener in list(self._listeners):
            try:
                listener(tenant_id)
            except Exception:
                log.exception("feed news listener failed")

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def _unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return _unsubscribe

    async def close(self) -> None:
        self._listeners.clear()


class RedisFeedNews(LocalFeedNews):
    """News over a Redis channel (``<prefix>:flowmill:feed``), fire and forget.

    Every commit with events is published (other processes may follow the tenant);
    the coalescer merges commits that end together, so a busy worker pays one PUBLISH
    per batch of commits, not one per step.

    Args:
        url: Redis URL.
        prefix: Key prefix of the deployment (its queues').
        reconnect_delay_s: Pause before listening again after an error.
    """

    def __init__(self, url: str, prefix: str, reconnect_delay_s: float = 0.5) -> None:
        super().__init__()
        from flowmill.extras import require

        # imported here: the embedded default installs no Redis client
        self._errors: tuple[type[BaseException], ...] = (
            require("redis.exceptions").RedisError,
            OSError,
        )
        from flowmill.queue.bullmq_redis import make_client

        self._client = make_client(url, retries=1)
        self.channel = f"{prefix}:flowmill:feed"
        self._reconnect_delay_s = reconnect_delay_s
        self._listener: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._publish: Coalescer[str, None] = Coalescer(self._send, max_batch=512)

    def committed(self, fx: Effects) -> None:
        if not fx.events:
            return
        self.tell(fx.tenant_id)
        task = asyncio.ensure_future(self._submit(fx.tenant_id))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _submit(self, tenant_id: str) -> None:
        with contextlib.suppress(*self._errors):
            await self._publish.submit(tenant_id)

    async def _send(self, tenant_ids: list[str]) -> list[None]:
        await self._client.publish(self.channel, " ".join(dict.fromkeys(tenant_ids)))
        return [None] * len(tenant_ids)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="feed-news")
        return super().subscribe(listener)

    async def _listen(self) -> None:
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, str):
                        for tenant_id in data.split():
                            self.tell(tenant_id)
            except self._errors as e:
                log.debug("feed news listener reconnecting", error=str(e))
            finally:
                with contextlib.suppress(*self._errors):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(self._reconnect_delay_s)

    async def close(self) -> None:
        await super().close()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        await self._client.aclose()
