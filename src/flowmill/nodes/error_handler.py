"""``error_handler``: receives a failed node's error (on its ``error`` edge)."""

from __future__ import annotations

from typing import Any, Literal

from flowmill.nodes.base import NodeConfig, NodeContext, NodeType


class ErrorHandlerConfig(NodeConfig):
    """``message`` (template) is written to the execution log at ``level``; ``output``
    (template) replaces the error as output when given."""

    message: str = "handled error from {{error.node_id}}: {{error.message}}"
    level: Literal["info", "warn", "error"] = "warn"
    output: Any = None


class ErrorHandlerNode(NodeType[ErrorHandlerConfig]):
    """Logs the error and outputs it (or ``output``), so the workflow can go on."""

    type_name = "error_handler"
    Config = ErrorHandlerConfig
    default_timeout_s = 30.0

    async def execute(self, ctx: NodeContext, config: ErrorHandlerConfig) -> Any:
        ctx.log.log(config.level, str(await ctx.render(config.message)))
        if config.output is not None:
            return await ctx.render(config.output)
        return ctx.input
