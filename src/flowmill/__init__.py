"""Flowmill: a durable workflow engine for low-code automation.

The public Python API is small; everything not listed in ``__all__`` is private to
its package and may change.
"""

from flowmill.domain.errors import DefinitionError, Issue, NodeError
from flowmill.domain.states import ExecutionStatus, NodeRunStatus
from flowmill.engine.engine import Engine, EngineOptions
from flowmill.nodes.base import (
    NodeConfig,
    NodeContext,
    NodeResult,
    NodeType,
    Suspend,
    TriggerNodeType,
)
from flowmill.nodes.fields import credential_field
from flowmill.nodes.registry import NodeRegistry

__all__ = [
    "DefinitionError",
    "Engine",
    "EngineOptions",
    "ExecutionStatus",
    "Issue",
    "NodeConfig",
    "NodeContext",
    "NodeError",
    "NodeRegistry",
    "NodeResult",
    "NodeRunStatus",
    "NodeType",
    "Suspend",
    "TriggerNodeType",
    "credential_field",
]
__version__ = "0.1.0"
