"""Waiting for a state to arrive, in tests: one helper that fails loudly.

A fixed sleep is either too short on a loaded machine (the test flakes) or too long
everywhere (the suite crawls), and a polling loop that runs out silently turns "never
happened" into a confusing assertion later. :func:`eventually` polls until the
predicate holds and otherwise raises :class:`NeverHappened`, naming what was awaited
and the last thing seen.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["NeverHappened", "eventually", "eventually_sync"]

_FIRST_PAUSE_S = 0.005
_LONGEST_PAUSE_S = 0.1


class NeverHappened(AssertionError):
    """What a test waited for did not happen before its deadline."""


def _describe(what: str, timeout: float, last: object, error: BaseException | None) -> str:
    seen = f"last check raised {error!r}" if error is not None else f"last value {last!r}"
    return f"{what}: not within {timeout} s ({seen})"


async def eventually(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float,  # noqa: ASYNC109 - a deadline for polling, not for one await
    what: str,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Args:
        predicate: A function or coroutine function of no arguments. Raising
            :class:`AssertionError` counts as "not yet" (so it may assert); any other
            exception is a failure at once.
        timeout: Seconds before giving up; generous, since it costs nothing when the
            state arrives early.
        what: The state awaited, in words, for the failure message.

    Raises:
        NeverHappened: The deadline passed first.
    """
    deadline = time.monotonic() + timeout
    pause = _FIRST_PAUSE_S
    last: object = None
    error: AssertionError | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            last, error = value, None
        except AssertionError as e:
            error = e
        if time.monotonic() >= deadline:
            raise NeverHappened(_describe(what, timeout, last, error)) from error
        await asyncio.sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE_S)


def eventually_sync(predicate: Callable[[], T], timeout: float, what: str) -> T:
    """:func:`eventually` for code without an event loop (threads, subprocess checks)."""
    deadline = time.monotonic() + timeout
    pause = _FIRST_PAUSE_S
    last: object = None
    error: AssertionError | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last, error = value, None
        except AssertionError as e:
            error = e
        if time.monotonic() >= deadline:
            raise NeverHappened(_describe(what, timeout, last, error)) from error
        time.sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE_S)
