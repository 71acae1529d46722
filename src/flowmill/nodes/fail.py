"""``fail``: stops the execution with an error of the workflow's choosing."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flowmill.domain.errors import NodeError
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType


class FailConfig(NodeConfig):
    """``message`` (template) and ``error_type`` of the failure."""

    message: str = "the workflow failed"
    error_type: str = Field("WorkflowFailed", min_length=1, max_length=100)
    details: Any = None


class FailNode(NodeType[FailConfig]):
    """Always fails, without retries."""

    type_name = "fail"
    Config = FailConfig
    default_timeout_s = 30.0

    async def execute(self, ctx: NodeContext, config: FailConfig) -> Any:
        details = await ctx.render(config.details) if config.details is not None else None
        raise NodeError(
            str(await ctx.render(config.message)),
            type=config.error_type,
            retriable=False,
            details={"details": details} if details is not None else {},
        )
