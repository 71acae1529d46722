"""Wakes whoever waits for an execution to end, whichever process ended it.

In one process the engine tells :class:`EndedNews` directly. Across processes (an API
process waiting on ``?wait=`` while workers run the steps) a :class:`NewsChannel`
carries the word; without one, waiters fall back to polling the database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol


class NewsChannel(Protocol):
    """Cross-process news of ended executions (Redis pub/sub in distributed mode)."""

    async def publish_ended(self, execution_id: str) -> None:
        """Tell every process that ``execution_id`` ended."""

    def listen(self, on_ended: Callable[[str], None]) -> None:
        """Start calling ``on_ended`` with each id published anywhere (idempotent)."""

    async def close(self) -> None:
        """Stop listening and release connections."""


class EndedNews:
    """Events set when an execution ends.

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
        """An event set when ``execution_id`` ends, while the block runs.

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
        """Wake this process's waiters of ``execution_id``."""
        for event in self._waiters.get(execution_id, ()):
            event.set()
