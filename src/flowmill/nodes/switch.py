"""``switch``: routes its input to named cases."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowmill.engine.conditions import Condition, compare
from flowmill.engine.templates import expression_issues, nodes_in_code, referenced_nodes
from flowmill.nodes.base import NodeConfig, NodeContext, NodeResult, NodeType
from flowmill.nodes.conditional import string_condition_issues, truth

DEFAULT_HANDLE = "default"


class SwitchCase(BaseModel):
    """A case: its output ``handle`` and either a ``condition`` or a value to ``equal``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    handle: str = Field(min_length=1)
    condition: Condition | str | None = Field(None, union_mode="left_to_right")
    equals: Any = None


class SwitchConfig(NodeConfig):
    """``value`` (a template) is compared with each case's ``equals``; or each case has
    its own ``condition``. ``mode: first`` takes the first match, ``all`` every match.
    Nothing matched goes to ``default``."""

    value: Any = None
    cases: list[SwitchCase] = Field(min_length=1)
    mode: Literal["first", "all"] = "first"

    @model_validator(mode="after")
    def _cases_are_consistent(self) -> SwitchConfig:
        handles = [c.handle for c in self.cases]
        if len(set(handles)) != len(handles):
            raise ValueError("case handles must be unique")
        if DEFAULT_HANDLE in handles:
            raise ValueError(f"{DEFAULT_HANDLE!r} is the handle for no match; rename the case")
        for c in self.cases:
            if c.condition is None and self.value is None:
                raise ValueError(f"case {c.handle!r} needs a condition, or set value and equals")
        return self


class SwitchNode(NodeType[SwitchConfig]):
    """Outputs its input on the matching case handle(s), else on ``default``."""

    type_name = "switch"
    Config = SwitchConfig
    outputs = (DEFAULT_HANDLE,)
    outputs_from = "cases[].handle"
    default_timeout_s = 30.0

    def output_handles(self, config: SwitchConfig) -> frozenset[str]:
        return frozenset([c.handle for c in config.cases] + [DEFAULT_HANDLE])

    def config_issues(self, config: SwitchConfig, *, expressions_enabled: bool) -> list[str]:
        issues = expression_issues(config.value, expressions_enabled=expressions_enabled)
        for c in config.cases:
            if isinstance(c.condition, str):
                issues += string_condition_issues(c.condition, expressions_enabled)
            elif c.condition is not None:
                issues += expression_issues(
                    c.condition.model_dump(by_alias=True), expressions_enabled=expressions_enabled
                )
            issues += expression_issues(c.equals, expressions_enabled=expressions_enabled)
        return issues

    def referenced_nodes(self, config: SwitchConfig) -> set[str]:
        found = referenced_nodes(config.value)
        for c in config.cases:
            if isinstance(c.condition, str):
                found |= nodes_in_code(c.condition)
            elif c.condition is not None:
                found |= referenced_nodes(c.condition.model_dump(by_alias=True))
            found |= referenced_nodes(c.equals)
        return found

    async def execute(self, ctx: NodeContext, config: SwitchConfig) -> NodeResult:
        value = await ctx.render(config.value) if config.value is not None else None
        matched: list[str] = []
        for case in config.cases:
            if case.condition is not None:
                hit = await truth(ctx, case.condition)
            else:
                hit = compare(value, "==", await ctx.render(case.equals))
            if hit:
                matched.append(case.handle)
                if config.mode == "first":
                    break
        return NodeResult(output=ctx.input, handles=matched or [DEFAULT_HANDLE])
