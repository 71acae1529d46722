"""``noop``: passes its input on unchanged (a junction or placeholder)."""

from __future__ import annotations

from typing import Any

from flowmill.nodes.base import NodeConfig, NodeContext, NodeType


class NoopConfig(NodeConfig):
    """No settings."""


class NoopNode(NodeType[NoopConfig]):
    """Outputs its input."""

    type_name = "noop"
    Config = NoopConfig
    default_timeout_s = None

    async def execute(self, ctx: NodeContext, config: NoopConfig) -> Any:
        return ctx.input
