"""What changed between two workflow definitions (graph shape, as versions are stored).

Nodes are matched by id and edges by (source, target, handle), so moving a node in the
list is no change, and a changed node lists each changed field by its path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_IGNORED = frozenset({"nodes", "edges", "tenant_id", "status", "id", "version", "active"})
_MISSING = object()


@dataclass(frozen=True)
class FieldChange:
    """A value that differs; ``before``/``after`` are absent-as-``None``."""

    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class EdgeKey:
    """An edge's identity."""

    source: str
    target: str
    source_handle: str | None


@dataclass
class DefinitionDiff:
    """Every difference between two definitions."""

    fields: list[FieldChange] = field(default_factory=list)
    nodes_added: list[str] = field(default_factory=list)
    nodes_removed: list[str] = field(default_factory=list)
    nodes_changed: dict[str, list[FieldChange]] = field(default_factory=dict)
    edges_added: list[EdgeKey] = field(default_factory=list)
    edges_removed: list[EdgeKey] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """Whether nothing differs."""
        return not (
            self.fields
            or self.nodes_added
            or self.nodes_removed
            or self.nodes_changed
            or self.edges_added
            or self.edges_removed
        )


def _values(path: str, a: Any, b: Any, out: list[FieldChange]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            _values(
                f"{path}.{key}" if path else str(key),
                a.get(key, _MISSING),
                b.get(key, _MISSING),
                out,
            )
        return
    if a == b and type(a) is type(b):
        return
    out.append(FieldChange(path, None if a is _MISSING else a, None if b is _MISSING else b))


def _nodes(d: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(n.get("id")): n for n in d.get("nodes") or [] if isinstance(n, dict) and "id" in n}


def _edges(d: dict[str, Any]) -> list[EdgeKey]:
    keys = []
    for e in d.get("edges") or []:
        if isinstance(e, dict):
            handle = e.get("sourceHandle", e.get("source_handle"))
            keys.append(
                EdgeKey(
                    str(e.get("source")),
                    str(e.get("target")),
                    None if handle is None else str(handle),
                )
            )
    return keys


def diff_definitions(a: dict[str, Any], b: dict[str, Any]) -> DefinitionDiff:
    """The changes that turn definition ``a`` into ``b``."""
    out = DefinitionDiff()
    _values(
        "",
        {k: v for k, v in a.items() if k not in _IGNORED},
        {k: v for k, v in b.items() if k not in _IGNORED},
        out.fields,
    )
    na, nb = _nodes(a), _nodes(b)
    out.nodes_added = [n for n in nb if n not in na]
    out.nodes_removed = [n for n in na if n not in nb]
    for node_id in na.keys() & nb.keys():
        changes: list[FieldChange] = []
        _values("", na[node_id], nb[node_id], changes)
        if changes:
            out.nodes_changed[node_id] = changes
    out.nodes_changed = dict(sorted(out.nodes_changed.items()))
    ea, eb = _edges(a), _edges(b)
    out.edges_added = [e for e in eb if e not in ea]
    out.edges_removed = [e for e in ea if e not in eb]
    return out
