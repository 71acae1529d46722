"""One validation of a workflow definition, for ``flowmill validate``, the API and ``run``.

:func:`check_document` reports every problem at once: shape errors (a misspelt field),
graph errors (dangling edges, cycles, no trigger, unreachable nodes), unknown node types
and bad node configs. A misspelt shape does not hide the graph's problems: the graph
rules run on the nodes and edges that could be read. Each issue names the node by its
id (``nodes[process-1].on_eror``, not a list position) and, for a misspelt field or
node type, the closest valid one (``did you mean 'on_error'?``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowmill.domain.definition import closest, load_partial
from flowmill.domain.errors import DefinitionError, Issue
from flowmill.engine.compiled import CompiledWorkflow
from flowmill.engine.validation import compile_workflow
from flowmill.nodes.registry import NodeRegistry


@dataclass
class Report:
    """What :func:`check_document` found.

    Attributes:
        issues: Every problem, in document order of kind (shapes, then graph and nodes).
        notes: How seed shapes were read (``steps[2] ... read as node ...``).
        compiled: The workflow ready to run, when there is no issue.
    """

    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    compiled: CompiledWorkflow | None = None

    def raise_for_issues(self) -> CompiledWorkflow:
        """The compiled workflow, or :class:`DefinitionError` with every issue."""
        if self.issues or self.compiled is None:
            raise DefinitionError(self.issues)
        return self.compiled


def check_document(
    document: Any,
    registry: NodeRegistry | None = None,
    *,
    expressions_enabled: bool = False,
) -> Report:
    """Validate a parsed definition completely.

    Args:
        document: The parsed JSON / YAML.
        registry: Node types (default: the installed ones, by entry point).
        expressions_enabled: Whether a JS sandbox can run code and expressions here.
    """
    registry = registry or NodeRegistry.from_entry_points()
    workflow, notes, issues = load_partial(document)
    report = Report(list(issues), notes)
    if workflow is None:
        return report
    try:
        report.compiled = compile_workflow(
            workflow, registry, expressions_enabled=expressions_enabled
        )
    except DefinitionError as e:
        seen = {(i.path, i.message) for i in report.issues}
        report.issues += [i for i in e.issues if (i.path, i.message) not in seen]
    if report.issues:
        report.compiled = None
        report.issues = [_with_suggestion(i, document, registry) for i in report.issues]
    return report


def _with_suggestion(issue: Issue, document: Any, registry: NodeRegistry) -> Issue:
    """Add "did you mean" to an unknown node type or an unknown config field."""
    if issue.code == "unknown_node_type":
        typed = _node_field(document, issue.path, "type")
        guess = closest(str(typed), list(registry)) if typed is not None else None
        if guess is not None:
            return Issue(
                issue.path, f"unknown node type {typed!r}; did you mean {guess!r}?", issue.code
            )
        return issue
    if issue.code == "dangling_edge":
        return _dangling(issue, document)
    if issue.code == "invalid_config" and issue.message == "Extra inputs are not permitted":
        node_path, _, rest = issue.path.partition(".config.")
        node_type = _node_field(document, f"{node_path}.type", "type")
        if not rest or node_type is None or str(node_type) not in registry:
            return issue
        key = rest.split(".", 1)[0]
        fields = _config_fields(registry, str(node_type))
        guess = closest(key, fields)
        hint = f"did you mean {guess!r}?" if guess else f"its fields: {', '.join(sorted(fields))}"
        return Issue(
            issue.path, f"unknown field {key!r} for a {node_type} node; {hint}", "unknown_field"
        )
    return issue


def _dangling(issue: Issue, document: Any) -> Issue:
    """``no node with id 'proces-1'; did you mean 'process-1'?``"""
    if not isinstance(document, dict) or not issue.path.startswith("edges["):
        return issue
    index, _, end = issue.path[len("edges[") :].partition("].")
    edges, nodes = document.get("edges"), document.get("nodes")
    if not (index.isdigit() and isinstance(edges, list) and isinstance(nodes, list)):
        return issue
    if int(index) >= len(edges) or not isinstance(edges[int(index)], dict):
        return issue
    value = edges[int(index)].get(end)
    ids = [str(n.get("id")) for n in nodes if isinstance(n, dict) and n.get("id") is not None]
    guess = closest(str(value), ids)
    if guess is None:
        return issue
    return Issue(issue.path, f"{issue.message}; did you mean {guess!r}?", issue.code)


def _config_fields(registry: NodeRegistry, node_type: str) -> list[str]:
    model = registry.get(node_type).Config
    names = []
    for name, info in model.model_fields.items():
        names.append(name)
        if isinstance(info.alias, str):
            names.append(info.alias)
    return names


def _node_field(document: Any, path: str, key: str) -> Any:
    """The ``key`` of the node that ``path`` (``nodes[<id>].…``) names, if any."""
    if not isinstance(document, dict) or not path.startswith(("nodes[", "steps[")):
        return None
    where, _, rest = path.partition("[")
    node_id = rest.split("]", 1)[0]
    for node in document.get(where) or []:
        if isinstance(node, dict) and str(node.get("id")) == node_id:
            return node.get(key)
    return None
