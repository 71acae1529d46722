"""In-process fan-out of committed effects: progress displays, live streams, waiters."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from flowmill.domain.execution import Effects

Listener = Callable[[Effects], None]
log = structlog.get_logger("flowmill.hub")


class EventHub:
    """Calls every listener with each committed :class:`Effects`, in commit order."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns a function that removes it."""
        self._listeners.append(listener)

        def _unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return _unsubscribe

    @property
    def listening(self) -> int:
        """How many listeners are subscribed (for tests and diagnostics)."""
        return len(self._listeners)

    def publish(self, fx: Effects) -> None:
        """Tell every listener; a failing listener is logged, never propagated."""
        for listener in list(self._listeners):
            try:
                listener(fx)
            except Exception:
                log.exception("event listener failed")
