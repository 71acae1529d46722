"""Group commit for the ingress: requests that arrive together share one transaction.

Each caller awaits its own item's result; a flush starts as soon as items wait and
fewer than ``max_inflight`` flushes run, so a lone request is written at once (no
timer) and a burst is written in a few large transactions instead of many small ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Batches ``submit`` calls into calls of ``flush``.

    Args:
        flush: Writes a batch; returns one result per item, in order. If it raises,
            every caller of the batch gets the exception.
        max_batch: Largest batch.
        max_inflight: Flushes running at once.
    """

    def __init__(
        self,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 256,
        max_inflight: int = 2,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """Add ``item`` to the next batch and wait until that batch is written."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._kick()
        return await future

    def _kick(self) -> None:
        while self._waiting and self._inflight < self._max_inflight:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            self._inflight += 1
            task = asyncio.ensure_future(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
        except BaseException as e:
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
            if not isinstance(e, Exception):
                raise
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._inflight -= 1
            self._kick()

    async def drain(self) -> None:
        """Wait for every flush under way."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
