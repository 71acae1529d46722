"""``merge``: joins branches into one output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from flowmill.nodes.base import NodeConfig, NodeContext, NodeType


class MergeConfig(NodeConfig):
    """``object``: outputs keyed by predecessor id; ``array``: outputs in edge order;
    ``deep``: objects merged key by key, later predecessors winning."""

    mode: Literal["object", "array", "deep"] = "object"


class MergeNode(NodeType[MergeConfig]):
    """Combines the outputs of the branches that reached it."""

    type_name = "merge"
    Config = MergeConfig
    default_timeout_s = None

    async def execute(self, ctx: NodeContext, config: MergeConfig) -> Any:
        preds = ctx.predecessors
        value = ctx.input
        if len(preds) <= 1:
            keyed = {preds[0]: value} if preds else {}
        else:
            keyed = dict(value) if isinstance(value, Mapping) else {}
        if config.mode == "object":
            return keyed
        if config.mode == "array":
            return list(keyed.values())
        merged: dict[str, Any] = {}
        for v in keyed.values():
            if isinstance(v, Mapping):
                merged = _deep_merge(merged, v)
        return merged


def _deep_merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out
