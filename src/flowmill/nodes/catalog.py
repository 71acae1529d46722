"""The node catalogue: what an editor needs to offer each registered node type.

Every type in a registry, built-in or plugin, is described the same way: its label,
description, category, icon hint, handles and the JSON Schema of its config, generated
from the type's pydantic ``Config``. An editor draws its palette and config forms from
this alone, so a plugin's node gets a form without any UI code.

A type names its own ``label``, ``category`` and ``icon`` (class attributes); the
built-in types take theirs from :data:`_BUILT_IN` so their modules stay about running.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from pydantic.errors import PydanticUserError

from flowmill.nodes.base import NodeType
from flowmill.nodes.registry import NodeRegistry

PLUGIN_CATEGORY = "plugins"
"""The category of a plugin type that names none."""

_BUILT_IN: dict[str, tuple[str, str, str]] = {
    # type: (label, category, icon)
    "trigger": ("Trigger", "triggers", "bolt"),
    "noop": ("No-op", "flow", "circle"),
    "response": ("Response", "flow", "reply"),
    "transform": ("Transform", "data", "shuffle"),
    "conditional": ("If", "flow", "branch"),
    "switch": ("Switch", "flow", "switch"),
    "merge": ("Merge", "flow", "merge"),
    "delay": ("Delay", "flow", "clock"),
    "loop": ("Loop", "flow", "repeat"),
    "sub_workflow": ("Sub-workflow", "flow", "workflow"),
    "wait": ("Wait for a signal", "flow", "pause"),
    "error_handler": ("Error handler", "errors", "shield"),
    "fallback": ("Fallback", "errors", "life-ring"),
    "fail": ("Fail", "errors", "x"),
    "http_request": ("HTTP request", "integrations", "globe"),
    "function": ("Function", "code", "code"),
    "custom_code": ("Custom code", "code", "code"),
    "agent": ("AI agent", "ai", "sparkles"),
    "instagram_send": ("Instagram message", "integrations", "message"),
    "slack_message": ("Slack message", "integrations", "message"),
    "gmail_send": ("Gmail", "integrations", "mail"),
    "email_send": ("Email", "integrations", "mail"),
    "database_query": ("Database query", "integrations", "database"),
    "sms_send": ("SMS", "integrations", "message"),
}


@dataclass(frozen=True)
class Handles:
    """Where edges attach to a node of a type.

    Attributes:
        input: Whether edges may enter (not for triggers).
        outputs: Named outputs known without a config; empty: one default output.
        outputs_from: Config path naming more outputs (``cases[].handle``), or ``None``.
        error: Whether an ``error`` output exists when the node routes its errors
            (``on_error: route``); true for every type but triggers.
    """

    input: bool
    outputs: tuple[str, ...]
    outputs_from: str | None
    error: bool


@dataclass(frozen=True)
class NodeTypeInfo:
    """One entry of the catalogue."""

    type: str
    label: str
    description: str
    category: str
    icon: str
    is_trigger: bool
    plugin: bool
    handles: Handles
    code_fields: tuple[str, ...]
    config_schema: dict[str, Any]


def describe(registry: NodeRegistry) -> list[NodeTypeInfo]:
    """Every type of ``registry``, sorted by name."""
    return [describe_type(registry.get(name)) for name in registry]


def describe_type(node_type: NodeType[Any]) -> NodeTypeInfo:
    """The catalogue entry of one node type."""
    name = node_type.type_name
    built_in = _BUILT_IN.get(name) if type(node_type).__module__.startswith("flowmill.") else None
    label, category, icon = built_in or (
        name.replace("_", " ").capitalize(),
        "triggers" if node_type.is_trigger else PLUGIN_CATEGORY,
        "puzzle",
    )
    return NodeTypeInfo(
        type=name,
        label=node_type.label or label,
        description=node_type.description or _first_line(type(node_type)),
        category=node_type.category or category,
        icon=node_type.icon or icon,
        is_trigger=node_type.is_trigger,
        plugin=built_in is None,
        handles=Handles(
            input=not node_type.is_trigger,
            outputs=tuple(node_type.outputs),
            outputs_from=node_type.outputs_from,
            error=not node_type.is_trigger,
        ),
        code_fields=tuple(node_type.code_fields),
        config_schema=config_schema(node_type),
    )


def config_schema(node_type: NodeType[Any]) -> dict[str, Any]:
    """The JSON Schema of the type's config, by the names definitions use (aliases).

    A config whose model cannot be expressed in JSON Schema (a field of an arbitrary
    Python type) gets an open object schema rather than failing the whole catalogue.
    """
    try:
        return node_type.Config.model_json_schema(by_alias=True)
    except PydanticUserError:
        return {"type": "object", "title": node_type.Config.__name__}


def _first_line(cls: type[Any]) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
