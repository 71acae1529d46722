"""``wait``: parks the execution until a signal, a resume URL's use, or a time-out.

A signal (``POST /api/executions/{id}/signals/{name}``) is kept in the execution's
signal box until a wait takes it, so one sent before the execution reaches the wait is
delivered when it gets there. The execution's resume URL (``{{execution.resume_url}}``)
delivers one signal, once. The payload becomes the node's output. The wait holds no
worker; it survives restarts (its run is parked in the database, and the signal too).
A signal taken is the node's for good: a wait run again after a crash finds the one it
had taken, never a second one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from flowmill.domain.errors import NodeFailure
from flowmill.engine.control import RESUME_SIGNAL, WAKE_SIGNAL
from flowmill.nodes._children import control_of, poll_delay
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType, Suspend


class WaitTimeout(NodeFailure):
    """No signal came before the wait's timeout (with ``on_timeout: fail``)."""


SIGNAL_NAME = r"^[A-Za-z0-9_.:-]{1,200}$"


class WaitConfig(NodeConfig):
    """``signal``: the name it waits for (a resume URL's use also ends the wait);
    ``timeout`` in seconds (none: wait for ever); ``on_timeout``: ``fail`` or
    ``continue`` with ``default`` as output."""

    signal: str = Field("resume", pattern=SIGNAL_NAME)
    timeout: float | None = Field(None, gt=0, le=366 * 24 * 3600)
    on_timeout: Literal["fail", "continue"] = "fail"
    default: Any = None


class WaitNode(NodeType[WaitConfig]):
    """Outputs the payload of the signal that ended the wait."""

    type_name = "wait"
    Config = WaitConfig
    default_timeout_s = 30.0
    description = "Wait for a signal, an approval link's use, or a time-out."

    async def execute(self, ctx: NodeContext, config: WaitConfig) -> Any:
        control = control_of(ctx)
        names = (config.signal, RESUME_SIGNAL)
        me = ctx.node.id
        taken = await control.store.take_signal(ctx.execution_id, names, me, ctx.now)
        if taken is not None:
            return taken.payload
        deadline = _deadline(ctx, config)
        if deadline is not None and ctx.now >= deadline:
            if config.on_timeout == "fail":
                raise WaitTimeout(f"no signal {config.signal!r} within {config.timeout:g} s")
            return await ctx.render(config.default)
        until = ctx.now + poll_delay(control)
        if deadline is not None:
            until = min(until, deadline)
        execution_id = ctx.execution_id

        async def _arrived() -> bool:
            return await control.store.has_signal(execution_id, names, me)

        return Suspend(
            until=until,
            state={"deadline": deadline.isoformat() if deadline else None},
            wake_on=WAKE_SIGNAL,
            recheck=_arrived,
        )


def _deadline(ctx: NodeContext, config: WaitConfig) -> datetime | None:
    """When the wait times out: fixed at its first run, kept across resumptions."""
    if config.timeout is None:
        return None
    saved = (ctx.state or {}).get("deadline") if ctx.resumed else None
    if isinstance(saved, str):
        return datetime.fromisoformat(saved)
    return ctx.now + timedelta(seconds=config.timeout)
