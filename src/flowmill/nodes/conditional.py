"""``conditional``: sends its input down the ``true`` or the ``false`` edge."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flowmill.engine import conditions
from flowmill.engine.conditions import Condition
from flowmill.nodes.base import NodeConfig, NodeContext, NodeResult, NodeType

BRANCHES = frozenset({"true", "false"})


class ConditionalConfig(NodeConfig):
    """``condition``: a structured condition, or a JavaScript expression (sandbox)."""

    condition: Condition | str = Field(union_mode="left_to_right")


async def truth(ctx: NodeContext, condition: Any) -> bool:
    """Evaluate a structured condition or a JavaScript expression (in the sandbox)."""
    if isinstance(condition, str):
        expr = condition.strip()
        if expr.startswith("{{") and expr.endswith("}}"):
            expr = expr[2:-2]
        return bool(await ctx.evaluate(expr))
    render = await ctx.renderer(condition.model_dump(by_alias=True))
    return conditions.evaluate(condition, render)


def string_condition_issues(condition: Any, expressions_enabled: bool) -> list[str]:
    """A string condition is JavaScript: it needs the sandbox."""
    if isinstance(condition, str) and not expressions_enabled:
        return [
            f"condition {condition!r} is JavaScript and needs the sandbox; use a "
            'structured condition like {"left": "{{input.x}}", "op": ">", "right": 1}'
        ]
    return []


class ConditionalNode(NodeType[ConditionalConfig]):
    """Outputs its input on ``true`` or ``false``."""

    type_name = "conditional"
    Config = ConditionalConfig
    outputs = ("true", "false")
    code_fields = ("condition",)
    default_timeout_s = 30.0

    def output_handles(self, config: ConditionalConfig) -> frozenset[str]:
        return BRANCHES

    def config_issues(self, config: ConditionalConfig, *, expressions_enabled: bool) -> list[str]:
        if isinstance(config.condition, str):
            return string_condition_issues(config.condition, expressions_enabled)
        return _template_issues(config.condition, expressions_enabled)

    def referenced_nodes(self, config: ConditionalConfig) -> set[str]:
        from flowmill.engine.templates import nodes_in_code, referenced_nodes

        if isinstance(config.condition, str):
            return nodes_in_code(config.condition)
        return referenced_nodes(config.condition.model_dump(by_alias=True))

    async def execute(self, ctx: NodeContext, config: ConditionalConfig) -> NodeResult:
        branch = "true" if await truth(ctx, config.condition) else "false"
        return NodeResult(output=ctx.input, handles=[branch])


def _template_issues(condition: Any, expressions_enabled: bool) -> list[str]:
    from flowmill.engine.templates import expression_issues

    return expression_issues(
        condition.model_dump(by_alias=True), expressions_enabled=expressions_enabled
    )
