"""The graph of a workflow, indexed for the planner, and its structural rules."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flowmill.domain.errors import Issue
from flowmill.domain.workflow import Edge, Node, Workflow


def _is_trigger_type(node: Node) -> bool:
    return node.type == "trigger"


@dataclass(frozen=True)
class Graph:
    """A workflow's nodes and edges with adjacency precomputed.

    Build it once per workflow version (:meth:`of`) and share it: it is immutable.
    """

    nodes: Mapping[str, Node]
    incoming: Mapping[str, tuple[Edge, ...]]
    predecessors: Mapping[str, tuple[str, ...]]
    successors: Mapping[str, tuple[str, ...]]
    triggers: tuple[str, ...]
    sinks: tuple[str, ...]

    @classmethod
    def of(cls, workflow: Workflow, is_trigger: Callable[[Node], bool] = _is_trigger_type) -> Graph:
        """Index ``workflow``. Assumes :func:`structural_issues` found nothing."""
        out: dict[str, list[Edge]] = defaultdict(list)
        inc: dict[str, list[Edge]] = defaultdict(list)
        for e in workflow.edges:
            out[e.source].append(e)
            inc[e.target].append(e)
        nodes = {n.id: n for n in workflow.nodes}
        return cls(
            nodes=nodes,
            incoming={n: tuple(inc.get(n, ())) for n in nodes},
            predecessors={n: _unique(e.source for e in inc.get(n, ())) for n in nodes},
            successors={n: _unique(e.target for e in out.get(n, ())) for n in nodes},
            triggers=tuple(n.id for n in workflow.nodes if is_trigger(n)),
            sinks=tuple(n for n in nodes if not out.get(n)),
        )


def _unique(items: object) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for i in items:  # type: ignore[attr-defined]
        seen.setdefault(i, None)
    return tuple(seen)


def structural_issues(
    workflow: Workflow, is_trigger: Callable[[Node], bool] = _is_trigger_type
) -> list[Issue]:
    """Check the rules every graph must keep, whatever its node types.

    Duplicate ids, dangling edges, self-loops and cycles, triggers with incoming edges,
    a missing trigger, and nodes no trigger reaches.
    """
    issues: list[Issue] = []
    counts = Counter(n.id for n in workflow.nodes)
    for node_id, count in counts.items():
        if count > 1:
            issues.append(
                Issue(f"nodes[{node_id}]", f"node id is used {count} times", "duplicate_id")
            )
    ids = set(counts)
    good_edges: list[Edge] = []
    for i, e in enumerate(workflow.edges):
        bad = False
        for end, value in (("source", e.source), ("target", e.target)):
            if value not in ids:
                issues.append(
                    Issue(f"edges[{i}].{end}", f"no node with id {value!r}", "dangling_edge")
                )
                bad = True
        if not bad and e.source == e.target:
            issues.append(Issue(f"edges[{i}]", f"node {e.source!r} points at itself", "cycle"))
            bad = True
        if not bad:
            good_edges.append(e)

    triggers = [n.id for n in workflow.nodes if is_trigger(n)]
    if not triggers:
        issues.append(
            Issue(
                "nodes", "the workflow has no trigger node; add one of type 'trigger'", "no_trigger"
            )
        )
    for e in good_edges:
        if e.target in triggers:
            issues.append(
                Issue(
                    f"nodes[{e.target}]",
                    "a trigger node cannot have incoming edges",
                    "trigger_input",
                )
            )

    cyclic = _nodes_on_cycles(ids, good_edges)
    if cyclic:
        issues.append(
            Issue(
                "edges",
                f"the graph has a cycle through: {', '.join(sorted(cyclic))}; "
                "use a loop node to repeat work",
                "cycle",
            )
        )
    if triggers:
        reached = _reachable(triggers, good_edges)
        for n in workflow.nodes:
            if n.id not in reached:
                issues.append(
                    Issue(
                        f"nodes[{n.id}]",
                        "no trigger reaches this node; connect it or remove it",
                        "unreachable",
                    )
                )
    return issues


def _nodes_on_cycles(ids: set[str], edges: list[Edge]) -> set[str]:
    indegree = dict.fromkeys(ids, 0)
    succ: dict[str, list[str]] = defaultdict(list)
    for e in edges:
        indegree[e.target] += 1
        succ[e.source].append(e.target)
    ready = [n for n, d in indegree.items() if d == 0]
    while ready:
        n = ready.pop()
        for m in succ[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                ready.append(m)
    return {n for n, d in indegree.items() if d > 0}


def _reachable(starts: list[str], edges: list[Edge]) -> set[str]:
    succ: dict[str, list[str]] = defaultdict(list)
    for e in edges:
        succ[e.source].append(e.target)
    seen = set(starts)
    stack = list(starts)
    while stack:
        for m in succ[stack.pop()]:
            if m not in seen:
                seen.add(m)
                stack.append(m)
    return seen
