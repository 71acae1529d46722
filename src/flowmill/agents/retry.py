"""Calling a model again after a 429, a 5xx or a timeout, as the provider asks.

Within one attempt of the node: up to ``max_retries`` more calls, each after the
response's ``Retry-After`` (or an exponential backoff when it says nothing). A wait
longer than ``max_retry_wait_s`` is not slept through: the attempt fails as retriable
with ``retry_after_s`` in its error, and the engine schedules the node's next attempt
no sooner (durably, holding no worker).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from flowmill.agents.ports import AgentSettings, ChatReply, ModelError
from flowmill.clock import Clock

BASE_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0


def backoff_s(retry: int) -> float:
    """Wait before retry number ``retry`` (1-based) when the server gave no hint."""
    return float(min(BASE_BACKOFF_S * 2 ** (retry - 1), MAX_BACKOFF_S))


async def with_retries(
    call: Callable[[], Awaitable[ChatReply]],
    settings: AgentSettings,
    clock: Clock,
    on_retry: Callable[[ModelError, float], None] | None = None,
) -> ChatReply:
    """``call()``, again after retriable model errors, as ``settings`` allow.

    Raises:
        ModelError: The last failure, or a retriable one asking for a longer wait than
            ``max_retry_wait_s`` (the node's retry policy takes over).
        NodeError: A failure of the HTTP layer that no retry fixes.
    """
    retry = 0
    while True:
        try:
            return await call()
        except ModelError as e:
            if not e.retriable or retry >= settings.max_retries:
                raise
            wait = e.retry_after_s if e.retry_after_s is not None else backoff_s(retry + 1)
            if wait > settings.max_retry_wait_s:
                raise
            retry += 1
            if on_retry is not None:
                on_retry(e, wait)
            await clock.sleep(wait)
