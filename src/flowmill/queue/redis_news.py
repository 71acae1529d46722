"""News of ended executions over Redis pub/sub, between the processes of a deployment.

Fire and forget: a message lost (Redis restarting, a listener reconnecting) costs a
waiter one database poll interval, never a wrong answer, since waiters read the
execution from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog
from redis.exceptions import RedisError

from flowmill.queue.bullmq_redis import make_client

log = structlog.get_logger("flowmill.news")


class RedisNews:
    """:class:`~flowmill.engine.news.NewsChannel` on a Redis channel.

    Args:
        url: Redis URL.
        prefix: Key prefix of the deployment (its queues'), so deployments sharing a
            Redis do not hear each other.
        reconnect_delay_s: Pause before listening again after an error.
    """

    def __init__(self, url: str, prefix: str, reconnect_delay_s: float = 0.5) -> None:
        self._client = make_client(url, retries=1)
        self.channel = f"{prefix}:flowmill:ended"
        self._reconnect_delay_s = reconnect_delay_s
        self._listener: asyncio.Task[None] | None = None

    async def publish_ended(self, execution_id: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._client.publish(self.channel, execution_id)

    def listen(self, on_ended: Callable[[str], None]) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(on_ended))

    async def _listen(self, on_ended: Callable[[str], None]) -> None:
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, str):
                        on_ended(data)
            except (RedisError, OSError) as e:
                log.debug("news listener reconnecting", error=str(e))
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(self._reconnect_delay_s)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._client.aclose()
