"""``transform``: reshape data, by a mapping of templates or by JavaScript code."""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from flowmill.nodes.base import NodeConfig, NodeContext, NodeType
from flowmill.nodes.code import run_code


class TransformConfig(NodeConfig):
    """``mapping``: an object whose values are templates. ``code``: JavaScript that
    returns the output (runs in the sandbox)."""

    mapping: dict[str, Any] | None = None
    code: str | None = None
    timeout_s: float | None = None
    memory_mb: int | None = None

    @model_validator(mode="after")
    def _one_of(self) -> TransformConfig:
        if (self.mapping is None) == (self.code is None):
            raise ValueError("give exactly one of mapping (templates) or code (JavaScript)")
        return self


class TransformNode(NodeType[TransformConfig]):
    """Outputs the rendered mapping, or what the code returns."""

    type_name = "transform"
    Config = TransformConfig
    code_fields = ("code",)
    default_timeout_s = 60.0

    def config_issues(self, config: TransformConfig, *, expressions_enabled: bool) -> list[str]:
        issues = super().config_issues(config, expressions_enabled=expressions_enabled)
        if config.code is not None and not expressions_enabled:
            issues.append("code needs the JavaScript sandbox, which is not available here")
        return issues

    async def execute(self, ctx: NodeContext, config: TransformConfig) -> Any:
        if config.mapping is not None:
            return await ctx.render(config.mapping)
        assert config.code is not None
        return await run_code(ctx, "javascript", config.code, config.timeout_s, config.memory_mb)
