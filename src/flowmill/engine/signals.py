"""Signals to executions and resume URLs: what ends a ``wait`` node from outside.

A signal is kept in the execution's signal box (a row) before anything is woken, so a
signal is never lost: a wait that is not there yet finds it when it gets there, a wake
lost in a crash is made up by the wait's poll. A resume URL delivers one signal of the
reserved name ``$resume`` whose id derives from the execution, so a second use collides
with the first and is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from flowmill.clock import Clock
from flowmill.engine.control import RESUME_SIGNAL, WAKE_SIGNAL, Control
from flowmill.engine.ports import ExecutionStore

ResumeOutcome = Literal["resumed", "used", "ended", "unknown"]


class SignalBox:
    """Sends signals and uses resume tokens for one engine.

    Args:
        control: The engine's control-flow service (signal box, resume tokens).
        store: Reads executions.
        wake: Wakes an execution's steps parked for a kind of event.
        clock: Time.
    """

    def __init__(
        self,
        *,
        control: Control,
        store: ExecutionStore,
        wake: Callable[[str, str], Awaitable[int]],
        clock: Clock,
    ) -> None:
        self._control = control
        self._store = store
        self._wake = wake
        self._clock = clock

    async def send(self, tenant_id: str, execution_id: str, name: str, payload: Any) -> bool:
        """Keep a signal for an execution and wake its waits. Returns False when the
        execution is not the tenant's or has ended (nothing kept)."""
        ex = await self._store.get_execution(execution_id)
        if ex is None or ex.tenant_id != tenant_id or ex.status.terminal:
            return False
        now = self._clock.now()
        await self._control.store.add_signal(tenant_id, execution_id, name, payload, now)
        await self._wake(execution_id, WAKE_SIGNAL)
        return True

    def execution_of(self, token: str) -> str | None:
        """The execution a resume URL's token names, if the token is genuine."""
        return self._control.execution_of_token(token)

    async def resume(self, token: str, payload: Any) -> tuple[str | None, ResumeOutcome]:
        """Use a resume URL's token: ``(execution id, outcome)``; ``used`` for a second
        use, ``ended`` when the execution is over, ``unknown`` for a forged token."""
        execution_id = self._control.execution_of_token(token)
        if execution_id is None:
            return None, "unknown"
        ex = await self._store.get_execution(execution_id)
        if ex is None:
            return None, "unknown"
        if ex.status.terminal:
            return execution_id, "ended"
        added = await self._control.store.add_signal(
            ex.tenant_id,
            execution_id,
            RESUME_SIGNAL,
            payload,
            self._clock.now(),
            signal_id=self._control.resume_signal_id(execution_id),
        )
        if not added:
            return execution_id, "used"
        await self._wake(execution_id, WAKE_SIGNAL)
        return execution_id, "resumed"
