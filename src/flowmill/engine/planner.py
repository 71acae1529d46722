"""The planner: which nodes become ready or skipped when others finish. Pure.

Given the graph and the states of nodes, it decides what follows from a node being
resolved (finished with chosen outputs, failed and continued/routed, or skipped):

* an edge is *taken* when its source resolved with an output the edge listens to;
* a node with ``join: all`` starts once every predecessor is resolved and at least one
  edge into it was taken; with ``join: any`` it starts on the first taken edge;
* a node whose predecessors all resolved with no edge taken is *skipped*, and the skip
  propagates to its successors (dead-path elimination).

States of other nodes are read through ``lookup``, which is asked only for what a
decision needs, so a step costs the same at node 10 and node 1,000 of a chain. A
``join: all`` node with many predecessors is probed first: a few of its unknown
predecessors, the last in the graph's order (branches started in order end in order
too), and one still unresolved settles "not yet" without reading the others. Without
the probe each of the 200 branches of a fan-out read the states of all 200 when it
ended (40,000 rows for one execution); with it a branch reads ``PROBE`` of them, and
only the last few read them all.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from flowmill.domain.execution import NodeState
from flowmill.domain.graph import Graph
from flowmill.domain.states import JoinMode, NodeRunStatus
from flowmill.domain.workflow import ERROR_HANDLE, Edge

StateLookup = Callable[[Collection[str]], Mapping[str, NodeState]]


@dataclass(frozen=True)
class ReadyNode:
    """A node that may start, with the predecessors whose edges reached it."""

    node_id: str
    sources: tuple[str, ...]


@dataclass
class Plan:
    """What follows from some nodes resolving."""

    ready: list[ReadyNode] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def edge_taken(edge: Edge, source: NodeState) -> bool:
    """Whether ``edge`` carries control, given its source's final state."""
    if not source.resolved or source.status in (NodeRunStatus.SKIPPED, NodeRunStatus.CANCELLED):
        return False
    handles = source.handles
    if handles is None:
        return edge.source_handle is None
    if ERROR_HANDLE in handles:
        return edge.source_handle == ERROR_HANDLE
    return edge.source_handle is None or edge.source_handle in handles


def plan(graph: Graph, resolved: Mapping[str, NodeState], lookup: StateLookup) -> Plan:
    """Decide the consequences of the nodes in ``resolved`` having just resolved.

    Args:
        graph: The workflow graph.
        resolved: The nodes that just resolved, with their new states.
        lookup: Returns the latest known state of the given nodes (absent: no run yet).

    Returns:
        Nodes now ready (with the predecessors that reached them) and nodes skipped.
    """
    known: dict[str, NodeState] = dict(resolved)
    out = Plan()
    decided: set[str] = set()
    frontier: deque[str] = deque(resolved)
    while frontier:
        source = frontier.popleft()
        # Unique (Graph.of), so none of them is decided while this loop runs.
        successors = [s for s in graph.successors[source] if s not in decided]
        _fetch(known, lookup, _needed(graph, successors, known, lookup))
        for target in successors:
            if graph.nodes[target].join is JoinMode.ANY and target in known:
                decided.add(target)  # a join-any node that already started
                continue
            verdict = _decide(graph, target, known)
            if verdict is None:
                continue
            decided.add(target)
            if verdict:
                out.ready.append(ReadyNode(target, verdict))
            else:
                out.skipped.append(target)
                known[target] = NodeState(NodeRunStatus.SKIPPED)
                frontier.append(target)
    return out


PROBE = 4
"""Unknown predecessors of a ``join: all`` node read first, before all the others."""


def _needed(
    graph: Graph, targets: Iterable[str], known: dict[str, NodeState], lookup: StateLookup
) -> set[str]:
    """The states to read to decide ``targets``; a ``join: all`` target found unable to
    start by its probe needs nothing more (``_decide`` answers "not yet" for it)."""
    need: set[str] = set()
    for t in targets:
        missing = [p for p in graph.predecessors[t] if p not in known]
        if graph.nodes[t].join is JoinMode.ALL and len(missing) > PROBE:
            probe = missing[-PROBE:]
            _fetch(known, lookup, set(probe))
            if any(p not in known or not known[p].resolved for p in probe):
                continue
            missing = missing[:-PROBE]
        need.update(missing)
        if graph.nodes[t].join is JoinMode.ANY and t not in known:
            need.add(t)
    return need


def _fetch(known: dict[str, NodeState], lookup: StateLookup, need: set[str]) -> None:
    if need:
        found = lookup(need)
        for node_id in need:
            if node_id in found:
                known[node_id] = found[node_id]


def _decide(graph: Graph, target: str, known: Mapping[str, NodeState]) -> tuple[str, ...] | None:
    """``None``: not yet; empty tuple: skip; otherwise the sources that reached it."""
    incoming = graph.incoming[target]
    if graph.nodes[target].join is JoinMode.ALL:
        # The last edges first (branches started in order end in order, as for the
        # probe): a wide join's "not yet" is found at once, not after reading every
        # edge, at each of its 200 branches' ends.
        for edge in reversed(incoming):
            state = known.get(edge.source)
            if state is None or not state.resolved:
                return None
        # dict: the sources in edge order, each once
        return tuple({e.source: None for e in incoming if edge_taken(e, known[e.source])})
    taken: dict[str, None] = {}
    all_resolved = True
    for edge in incoming:
        state = known.get(edge.source)
        if state is None or not state.resolved:
            all_resolved = False
            continue
        if edge_taken(edge, state):
            taken[edge.source] = None
    if taken:
        return tuple(taken)
    if not all_resolved:
        return None
    return ()


def start_plan(graph: Graph, fired_trigger: str, lookup: StateLookup) -> Plan:
    """Plan a new execution: the fired trigger succeeded, every other trigger is skipped."""
    resolved = {fired_trigger: NodeState(NodeRunStatus.SUCCEEDED)}
    others = [t for t in graph.triggers if t != fired_trigger]
    for t in others:
        resolved[t] = NodeState(NodeRunStatus.SKIPPED)
    result = plan(graph, resolved, lookup)
    result.skipped[:0] = others
    return result
