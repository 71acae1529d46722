"""The registry of node types (entry-point group ``flowmill.nodes``)."""

from __future__ import annotations

from typing import Any

from flowmill.nodes.base import NodeType
from flowmill.plugins import DuplicatePluginError, PluginRegistry

ENTRY_POINT_GROUP = "flowmill.nodes"


class DuplicateNodeTypeError(DuplicatePluginError):
    """Two node types claimed the same name."""


class NodeRegistry(PluginRegistry[NodeType[Any]]):
    """Maps node type names to node type instances."""

    base = NodeType
    name_attribute = "type_name"
    group = ENTRY_POINT_GROUP
    kind = "node type"
    duplicate_error = DuplicateNodeTypeError

    def is_trigger(self, name: str) -> bool:
        """Whether nodes of this type start executions."""
        return name in self and self.get(name).is_trigger
