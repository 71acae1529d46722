"""``response``: renders the execution's answer (and a webhook's reply)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from flowmill.nodes.base import NodeConfig, NodeContext, NodeType


class ResponseConfig(NodeConfig):
    """Either a text ``template`` or a structured ``body`` (templates inside).

    ``status_code`` and ``headers`` shape the HTTP reply when a webhook waits for it.
    """

    template: str | None = None
    body: Any = None
    status_code: int = Field(200, ge=100, le=599)
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_of(self) -> ResponseConfig:
        if self.template is not None and self.body is not None:
            raise ValueError("give either template or body, not both")
        return self


class ResponseNode(NodeType[ResponseConfig]):
    """Outputs the rendered template (a string) or body (any JSON)."""

    type_name = "response"
    Config = ResponseConfig
    default_timeout_s = 30.0

    async def execute(self, ctx: NodeContext, config: ResponseConfig) -> Any:
        if config.template is not None:
            return await ctx.render(config.template)
        if config.body is not None:
            return await ctx.render(config.body)
        return ctx.input
