"""Compact graph notation for planner and transition tests.

``"t>a, a:true>b, a:false>c, b>j, c>j"``: ``t`` is the trigger; ``x:h>y`` is an edge
from ``x`` to ``y`` on handle ``h``. Node ids ending in ``*`` join on ``any``.
"""

from __future__ import annotations

from flowmill.domain.graph import Graph
from flowmill.domain.states import JoinMode
from flowmill.domain.workflow import Edge, Node, Workflow


def graph(spec: str, triggers: tuple[str, ...] = ("t",)) -> Graph:
    edges: list[Edge] = []
    ids: dict[str, JoinMode] = {}
    for part in spec.split(","):
        left, target = part.strip().split(">")
        source, _, handle = left.partition(":")
        for raw in (source, target):
            name = raw.rstrip("*")
            mode = JoinMode.ANY if raw.endswith("*") else JoinMode.ALL
            if ids.get(name) is not JoinMode.ANY:
                ids[name] = mode
        edges.append(Edge(source.rstrip("*"), target.rstrip("*"), handle or None))
    nodes = tuple(
        Node(id=n, type="trigger" if n in triggers else "noop", join=mode)
        for n, mode in ids.items()
    )
    return Graph.of(Workflow(name="g", nodes=nodes, edges=tuple(edges)))
