"""``function``: JavaScript that returns the node's output (runs in the sandbox).

The code is the body of an async function; it sees ``input``, ``trigger``, ``nodes``,
``vars``, ``execution`` (and ``item``/``index`` inside loops, and ``input``'s own keys)
and returns the output, e.g. ``return { result: input.data.message + " processed" };``.
``console.log`` lines go to the execution's logs.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flowmill.nodes.base import NodeConfig, NodeContext, NodeType
from flowmill.nodes.code import run_code


class FunctionConfig(NodeConfig):
    """``code``: JavaScript function body. ``timeout_s``/``memory_mb``: limits of one run
    (defaults and maxima come from the sandbox settings)."""

    code: str = Field(min_length=1)
    timeout_s: float | None = Field(default=None, gt=0)
    memory_mb: int | None = Field(default=None, gt=0)


class FunctionNode(NodeType[FunctionConfig]):
    """Outputs what the JavaScript code returns."""

    type_name = "function"
    Config = FunctionConfig
    code_fields = ("code",)
    default_timeout_s = 90.0
    description = "Run JavaScript and output what it returns."

    def config_issues(self, config: FunctionConfig, *, expressions_enabled: bool) -> list[str]:
        issues = super().config_issues(config, expressions_enabled=expressions_enabled)
        if not expressions_enabled:
            issues.append("code needs the JavaScript sandbox, which is not available here")
        return issues

    async def execute(self, ctx: NodeContext, config: FunctionConfig) -> Any:
        return await run_code(ctx, "javascript", config.code, config.timeout_s, config.memory_mb)
