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

from flowmill.coalesce import Coalescer
from flowmill.queue.bullmq_redis import make_client
from flowmill.tasks import spawn

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
        # Executions that end together are told in one message (space-separated ids).
        self._ended: Coalescer[str, None] = Coalescer(self._publish, max_batch=256)

    async def publish_ended(self, execution_id: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._ended.submit(execution_id)

    async def _publish(self, execution_ids: list[str]) -> list[None]:
        await self._client.publish(self.channel, " ".join(execution_ids))
        return [None] * len(execution_ids)

    def listen(self, on_ended: Callable[[str], None]) -> None:
        if self._listener is None:
            self._listener = spawn(self._listen(on_ended), name=f"news-listener:{self.channel}")

    async def _listen(self, on_ended: Callable[[str], None]) -> None:
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, str):
                        for execution_id in data.split():
                            on_ended(execution_id)
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
