"""``delay``: waits durably — the step is parked in the database, no worker sleeps."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import model_validator

from flowmill.domain.errors import NodeFailure
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType, Suspend


class InvalidDelay(NodeFailure):
    """The delay or time to wait for, as rendered for this run, is not usable."""


MAX_DELAY = timedelta(days=366)


class DelayConfig(NodeConfig):
    """One of ``ms``, ``seconds`` (numbers or templates) or ``until`` (an ISO 8601 time,
    usually a template)."""

    ms: float | str | None = None
    seconds: float | str | None = None
    until: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> DelayConfig:
        given = [k for k in ("ms", "seconds", "until") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of ms, seconds or until")
        return self


class DelayNode(NodeType[DelayConfig]):
    """Outputs its input after the delay."""

    type_name = "delay"
    Config = DelayConfig
    default_timeout_s = 30.0

    async def execute(self, ctx: NodeContext, config: DelayConfig) -> Any:
        if ctx.resumed:
            return ctx.input
        until = await self._until(ctx, config)
        if until <= ctx.now:
            return ctx.input
        return Suspend(until=until, state={"until": until.isoformat()})

    async def _until(self, ctx: NodeContext, config: DelayConfig) -> datetime:
        if config.until is not None:
            raw = await ctx.render(config.until)
            try:
                when = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
            except ValueError as e:
                raise InvalidDelay(f"until is not an ISO 8601 time: {raw!r}") from e
            if when.tzinfo is None:
                raise InvalidDelay(f"until has no time zone: {raw!r}; add Z or an offset")
            return min(when, ctx.now + MAX_DELAY)
        raw_amount = await ctx.render(config.ms if config.ms is not None else config.seconds)
        try:
            amount = float(raw_amount)
        except (TypeError, ValueError) as e:
            raise InvalidDelay(f"delay is not a number: {raw_amount!r}") from e
        if amount < 0:
            raise InvalidDelay("delay is negative")
        delta = (
            timedelta(milliseconds=amount) if config.ms is not None else timedelta(seconds=amount)
        )
        return ctx.now + min(delta, MAX_DELAY)
