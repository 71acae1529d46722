"""A validated workflow version, prepared once and shared by every step that runs it."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowmill.domain.graph import Graph
from flowmill.domain.workflow import NO_RETRY, Node, RetryPolicy, Workflow
from flowmill.nodes.base import NodeConfig, NodeType


@dataclass(frozen=True)
class CompiledNode:
    """A node with its type, parsed config and the earlier outputs it reads."""

    node: Node
    type: NodeType[Any]
    config: NodeConfig
    references: frozenset[str]
    retry: RetryPolicy
    timeout_s: float | None


@dataclass(frozen=True)
class CompiledWorkflow:
    """A workflow version ready to run: graph plus compiled nodes."""

    workflow: Workflow
    graph: Graph
    nodes: Mapping[str, CompiledNode]

    def node(self, node_id: str) -> CompiledNode:
        """The compiled node ``node_id``."""
        return self.nodes[node_id]

    @functools.cached_property
    def linear(self) -> bool:
        """Whether the graph is one path from one trigger (no fan-out, no joins).

        Then at most one step of an execution is live at a time, so a step that ends
        the path needs not ask the database whether anything else is still running.
        """
        g = self.graph
        return len(g.triggers) == 1 and all(
            len(g.successors[n]) <= 1 and len(g.predecessors[n]) <= 1 for n in g.nodes
        )

    def default_trigger(self, trigger_type: str | None = None) -> str:
        """The trigger node an execution starts from.

        The first trigger whose ``triggerType`` matches ``trigger_type``, else the first.
        """
        if trigger_type:
            for t in self.graph.triggers:
                cfg = self.graph.nodes[t].config
                if cfg.get("triggerType") == trigger_type:
                    return t
        return self.graph.triggers[0]


def node_retry(node: Node, workflow: Workflow) -> RetryPolicy:
    """The node's policy, else the workflow default, else a single attempt."""
    return node.retry or workflow.settings.retry or NO_RETRY
