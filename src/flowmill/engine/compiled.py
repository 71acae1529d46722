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


#: Id of the trigger node a loop body is given when it has none.
BODY_TRIGGER = "$item"


def body_definition(wf: CompiledWorkflow, node_id: str) -> dict[str, Any]:
    """The definition of loop ``node_id``'s inline body as a workflow of its own: its
    nodes and edges, behind a trigger (``$item``) leading to every node that has no
    predecessor, unless the body has a trigger of its own. Workflow variables carry over.

    Raises:
        KeyError: No such node, or it has no inline body.
    """
    body = wf.node(node_id).node.config.get("body")
    if not isinstance(body, dict):
        raise KeyError(f"node {node_id} has no inline body")
    nodes = [dict(n) for n in body.get("nodes", []) if isinstance(n, dict)]
    edges = [dict(e) for e in body.get("edges", []) if isinstance(e, dict)]
    if not any(n.get("type") == "trigger" for n in nodes):
        targets = {e.get("target") for e in edges}
        starts = [n["id"] for n in nodes if n.get("id") not in targets]
        nodes.insert(0, {"id": BODY_TRIGGER, "type": "trigger", "config": {"triggerType": "loop"}})
        edges = [{"source": BODY_TRIGGER, "target": s} for s in starts] + edges
    return {
        "name": f"{wf.workflow.name} / {node_id}",
        "nodes": nodes,
        "edges": edges,
        "settings": {"variables": dict(wf.workflow.settings.variables)},
    }
