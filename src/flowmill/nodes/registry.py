"""The registry of node types: explicit, refuses duplicates, fed by entry points."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any

from flowmill.nodes.base import NodeType

ENTRY_POINT_GROUP = "flowmill.nodes"


class DuplicateNodeTypeError(ValueError):
    """Two node types claimed the same name."""


class NodeRegistry:
    """Maps node type names to node type instances."""

    def __init__(self, types: Iterable[type[NodeType[Any]]] = ()) -> None:
        self._types: dict[str, NodeType[Any]] = {}
        for t in types:
            self.register(t)

    def register(self, node_type: type[NodeType[Any]]) -> None:
        """Add a node type.

        Raises:
            DuplicateNodeTypeError: Its ``type_name`` is taken.
        """
        name = node_type.type_name
        if name in self._types:
            existing = type(self._types[name])
            raise DuplicateNodeTypeError(
                f"node type {name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        self._types[name] = node_type()

    def get(self, name: str) -> NodeType[Any]:
        """The node type called ``name``.

        Raises:
            KeyError: Unknown type.
        """
        return self._types[name]

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._types))

    def is_trigger(self, name: str) -> bool:
        """Whether nodes of this type start executions."""
        t = self._types.get(name)
        return bool(t and t.is_trigger)

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP) -> NodeRegistry:
        """Build a registry of every node type installed under the entry-point group."""
        registry = cls()
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            node_type = ep.load()
            if not (isinstance(node_type, type) and issubclass(node_type, NodeType)):
                raise TypeError(f"entry point {ep.name!r} does not name a NodeType subclass")
            if node_type.type_name != ep.name:
                raise ValueError(
                    f"entry point {ep.name!r} loads node type {node_type.type_name!r}; "
                    "the names must match"
                )
            registry.register(node_type)
        return registry
