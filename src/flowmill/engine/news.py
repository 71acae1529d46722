"""Wakes whoever waits for something to be done, whichever process did it.

Two things are waited on by a request someone is holding open: an execution ending
(``?wait=``, late webhook answers) and a webhook event being dispatched (a late webhook
answer needs its execution's id first). Both are told here by their id; ids are UUIDv7,
so an execution's and an event's never meet.

In one process the engine tells :class:`EndedNews` directly. Across processes (an API
process waiting while workers run the steps) a :class:`NewsChannel` carries the word.
Waiters still read the database every ``WAIT_FALLBACK_S`` when news can reach them (a
message lost costs that pause, never a wrong answer), and every ``BLIND_POLL_S`` when
nothing can tell them (an API process without a worker and without Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol

WAIT_FALLBACK_S = 2.0
"""Database reads of a waiter that news can wake: the catch for news lost on the way."""
BLIND_POLL_S = 0.05
"""Database reads of a waiter that no news can reach."""


class NewsChannel(Protocol):
    """Cross-process news of ended executions and dispatched webhook events (Redis
    pub/sub in distributed mode)."""

    async def publish_ended(self, execution_id: str) -> None:
        """Tell every process that ``execution_id`` (or a webhook event's id) is done."""

    def listen(self, on_ended: Callable[[str], None]) -> None:
        """Start calling ``on_ended`` with each id published anywhere (idempotent).

        News published before the subscription is in place is missed: waiters read the
        database after they start watching, and again every fallback interval.
        """

    async def close(self) -> None:
        """Stop listening and release connections."""


class EndedNews:
    """Events set when an execution ends or a webhook event is dispatched.

    Args:
        channel: Carries the news to and from other processes; ``None`` in embedded mode.
    """

    def __init__(self, channel: NewsChannel | None = None) -> None:
        self.channel = channel
        self._waiters: dict[str, set[asyncio.Event]] = {}

    @property
    def crosses_processes(self) -> bool:
        """Whether executions ended by other processes are heard of."""
        return self.channel is not None

    @contextlib.contextmanager
    def watch(self, execution_id: str) -> Iterator[asyncio.Event]:
        """An event set when ``execution_id`` (or a webhook event's id) is done, while
        the block runs.

        The caller still checks the database after entering: the execution may have
        ended before the watch began.
        """
        if self.channel is not None:
            self.channel.listen(self.ended)
        event = asyncio.Event()
        self._waiters.setdefault(execution_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(execution_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[execution_id]

    def ended(self, execution_id: str) -> None:
        """Wake this process's waiters of ``execution_id`` (or a webhook event's id)."""
        for event in self._waiters.get(execution_id, ()):
            event.set()
