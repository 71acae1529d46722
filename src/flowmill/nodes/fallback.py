"""``fallback``: a stand-in value when the node before it failed."""

from __future__ import annotations

from typing import Any

from flowmill.nodes.base import NodeConfig, NodeContext, NodeType


class FallbackConfig(NodeConfig):
    """``value``: any JSON, templates inside it rendered."""

    value: Any = None


class FallbackNode(NodeType[FallbackConfig]):
    """Outputs ``value``."""

    type_name = "fallback"
    Config = FallbackConfig
    default_timeout_s = 30.0

    async def execute(self, ctx: NodeContext, config: FallbackConfig) -> Any:
        return await ctx.render(config.value)
