"""Validation of a whole workflow against the node types registered here."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from flowmill.domain.definition import load_definition
from flowmill.domain.errors import DefinitionError, Issue
from flowmill.domain.graph import Graph, structural_issues
from flowmill.domain.states import OnError
from flowmill.domain.workflow import ERROR_HANDLE, Workflow
from flowmill.engine.compiled import CompiledNode, CompiledWorkflow, body_definition, node_retry
from flowmill.engine.templates import MAX_TAGS_PER_DEFINITION, count_tags
from flowmill.nodes.base import NodeConfig
from flowmill.nodes.registry import NodeRegistry


def compile_workflow(
    workflow: Workflow, registry: NodeRegistry, *, expressions_enabled: bool = False
) -> CompiledWorkflow:
    """Validate ``workflow`` and prepare it to run.

    Args:
        workflow: A loaded definition.
        registry: Node types available.
        expressions_enabled: Whether a JS sandbox can evaluate code and expressions.

    Raises:
        DefinitionError: Every problem found, each naming the node or edge.
    """
    issues = structural_issues(workflow, lambda n: registry.is_trigger(n.type))
    tags = sum(count_tags(node.config) for node in workflow.nodes)
    if tags > MAX_TAGS_PER_DEFINITION:
        # Checked before any node's templates are parsed: the cap bounds that work.
        raise DefinitionError(
            [
                Issue(
                    "nodes",
                    f"{tags} {{{{ }}}} templates; a workflow may hold at most "
                    f"{MAX_TAGS_PER_DEFINITION}",
                    "too_many_templates",
                )
            ]
        )
    configs: dict[str, NodeConfig] = {}
    for node in workflow.nodes:
        where = f"nodes[{node.id}]"
        if node.type not in registry:
            issues.append(
                Issue(
                    f"{where}.type",
                    f"unknown node type {node.type!r}; known types: {', '.join(registry)}",
                    "unknown_node_type",
                )
            )
            continue
        node_type = registry.get(node.type)
        try:
            config = node_type.parse_config(node.config)
        except ValidationError as e:
            issues.extend(_config_issues(where, e))
            continue
        configs[node.id] = config
        for problem in node_type.config_issues(config, expressions_enabled=expressions_enabled):
            issues.append(Issue(f"{where}.config", problem, "invalid_config"))
    issues.extend(_handle_issues(workflow, registry, configs))
    if issues:
        raise DefinitionError(issues)

    graph = Graph.of(workflow, lambda n: registry.is_trigger(n.type))
    compiled = {}
    for node in workflow.nodes:
        node_type = registry.get(node.type)
        config = configs[node.id]
        compiled[node.id] = CompiledNode(
            node=node,
            type=node_type,
            config=config,
            references=frozenset(node_type.referenced_nodes(config) & set(graph.nodes)),
            retry=node_retry(node, workflow),
            timeout_s=node.timeout_s if node.timeout_s is not None else node_type.default_timeout_s,
        )
    result = CompiledWorkflow(workflow=workflow, graph=graph, nodes=compiled)
    body_issues = _body_issues(result, registry, expressions_enabled)
    if body_issues:
        raise DefinitionError(body_issues)
    return result


def _body_issues(
    wf: CompiledWorkflow, registry: NodeRegistry, expressions_enabled: bool
) -> list[Issue]:
    """Problems of loop nodes' inline bodies, checked now rather than when they run."""
    issues: list[Issue] = []
    for node_id, node in wf.nodes.items():
        if node.node.type != "loop" or not isinstance(node.node.config.get("body"), dict):
            continue
        where = f"nodes[{node_id}].config.body"
        try:
            load_and_compile(
                body_definition(wf, node_id), registry, expressions_enabled=expressions_enabled
            )
        except DefinitionError as e:
            issues.extend(Issue(f"{where}.{i.path}", i.message, i.code) for i in e.issues)
    return issues


def load_and_compile(
    data: Any, registry: NodeRegistry, *, expressions_enabled: bool = False
) -> CompiledWorkflow:
    """Load a parsed document and validate it (both kinds of problem in one error)."""
    return compile_workflow(
        load_definition(data), registry, expressions_enabled=expressions_enabled
    )


def _config_issues(where: str, error: ValidationError) -> list[Issue]:
    out = []
    for err in error.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        path = f"{where}.config" + (f".{loc}" if loc else "")
        out.append(Issue(path, err["msg"], "invalid_config"))
    return out


def _handle_issues(
    workflow: Workflow, registry: NodeRegistry, configs: dict[str, NodeConfig]
) -> list[Issue]:
    issues: list[Issue] = []
    by_id = {n.id: n for n in workflow.nodes}
    error_sources = set()
    for i, edge in enumerate(workflow.edges):
        source = by_id.get(edge.source)
        handle = edge.source_handle
        if source is None or handle is None or source.id not in configs:
            continue
        where = f"edges[{i}].sourceHandle"
        if handle == ERROR_HANDLE:
            error_sources.add(source.id)
            if source.on_error is not OnError.ROUTE:
                issues.append(
                    Issue(
                        where,
                        f"an error edge needs on_error: route on node {source.id!r}",
                        "error_edge",
                    )
                )
            continue
        handles = registry.get(source.type).output_handles(configs[source.id])
        if handles is None:
            issues.append(
                Issue(
                    where,
                    f"node {source.id!r} ({source.type}) has a single output; "
                    "remove sourceHandle or use 'error'",
                    "unknown_handle",
                )
            )
        elif handle not in handles:
            issues.append(
                Issue(
                    where,
                    f"node {source.id!r} has no output {handle!r}; its outputs are: "
                    f"{', '.join(sorted(handles))}",
                    "unknown_handle",
                )
            )
    for node in workflow.nodes:
        if node.on_error is OnError.ROUTE and node.id not in error_sources:
            issues.append(
                Issue(
                    f"nodes[{node.id}].on_error",
                    "on_error is route but no edge leaves this node with sourceHandle 'error'",
                    "error_edge",
                )
            )
    return issues
