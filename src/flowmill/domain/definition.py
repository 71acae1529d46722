"""Reading and writing workflow definitions in the seed format.

The canonical shape is ``nodes`` + ``edges`` (a graph). Every other shape the seed
documents use (``steps`` lists with conditional branches and loop bodies, seed 002's
rate-limit and retry columns, BullMQ-style retry options...) is first read into it by
:mod:`flowmill.domain.seed_shapes`, with a note saying what each became. All load into
the same :class:`~flowmill.domain.workflow.Workflow`; :func:`dump_definition` always
writes the graph shape, so export → import → export is stable.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from flowmill.domain.errors import DefinitionError, Issue
from flowmill.domain.seed_shapes import SYNTHETIC_TRIGGER_ID, read_seed_shapes
from flowmill.domain.states import JoinMode, OnError
from flowmill.domain.workflow import (
    Edge,
    Node,
    RetryPolicy,
    Workflow,
    WorkflowSettings,
)

_WORKFLOW_KEYS = {
    "name",
    "description",
    "tenant_id",
    "status",
    "nodes",
    "edges",
    "steps",
    "trigger",
    "settings",
    "tags",
    "id",
    "version",
    "active",
}
_NODE_KEYS = {
    "id",
    "name",
    "type",
    "config",
    "retry",
    "timeout_s",
    "on_error",
    "join",
    "position",
    "notes",
    "description",
}
_EXTRA_NODE_KEYS = ("position", "notes", "description")
_EDGE_KEYS = {"source", "target", "sourceHandle", "source_handle", "targetHandle", "id", "label"}
_RETRY_KEYS = {"max_attempts", "backoff_ms", "strategy", "jitter", "max_backoff_ms"}
_SETTINGS_KEYS = {
    "retry",
    "timeout_s",
    "max_concurrent",
    "per_minute",
    "timezone",
    "error_workflow_id",
    "variables",
    "vars",
    "priority",
}
#: Priorities a workflow or a start may ask for (higher runs first).
PRIORITY_RANGE = (-100, 100)
__all__ = [
    "SYNTHETIC_TRIGGER_ID",
    "dump_definition",
    "load_definition",
    "load_partial",
    "load_with_notes",
    "unknown_field_message",
]
_E = TypeVar("_E", OnError, JoinMode)


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice ``word`` most likely misspells (difflib), or ``None``."""
    options = list(choices)  # read twice below: a generator would be empty the second time
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not matches:  # case slips (onError vs on_error) and run-together words
        folded = {c.lower().replace("_", ""): c for c in options}
        return folded.get(word.lower().replace("_", "").replace("-", ""))
    return matches[0]


def unknown_field_message(key: str, allowed: Iterable[str]) -> str:
    """``unknown field 'on_eror'; did you mean 'on_error'?`` (or the list of fields)."""
    allowed = sorted(allowed)
    guess = closest(key, allowed)
    if guess is not None:
        return f"unknown field {key!r}; did you mean {guess!r}?"
    return f"unknown field {key!r}; expected one of: {', '.join(allowed)}"


class _Reader:
    """Collects every issue instead of stopping at the first one."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, path: str, message: str, code: str) -> None:
        self.issues.append(Issue(path, message, code))

    def unknown_keys(self, path: str, data: Mapping[str, Any], allowed: set[str]) -> None:
        for key in data:
            if key not in allowed:
                self.add(
                    f"{path}.{key}" if path else key,
                    unknown_field_message(key, allowed),
                    "unknown_field",
                )

    def string(self, path: str, value: Any, *, required: bool = True) -> str | None:
        if value is None:
            if required:
                self.add(path, "is required", "missing")
            return None
        if isinstance(value, bool):
            self.add(
                path,
                "must be a string, not a boolean (YAML reads yes/no/on/off/true/"
                "false as booleans: put it in quotes)",
                "type",
            )
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            self.add(path, "must be a non-empty string", "type")
            return None
        return value

    def number(
        self, path: str, value: Any, *, minimum: float = 0, integer: bool = False
    ) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(path, "must be a number", "type")
            return None
        if integer and not float(value).is_integer():
            self.add(path, "must be a whole number", "type")
            return None
        if value < minimum:
            self.add(path, f"must be at least {minimum:g}", "range")
            return None
        return value


def load_definition(data: Any) -> Workflow:
    """Build a :class:`Workflow` from a parsed JSON/YAML document.

    This checks shapes and types only; graph rules and node configs are checked by
    :func:`flowmill.engine.validation.compile_workflow`.

    Raises:
        DefinitionError: Listing every problem found, each naming its place.
    """
    return load_with_notes(data)[0]


def load_with_notes(data: Any) -> tuple[Workflow, list[str]]:
    """:func:`load_definition`, and a note for each seed shape read into the canonical
    form (``steps[2] (conditional with trueSteps/falseSteps) read as node ...``).

    Raises:
        DefinitionError: Listing every problem found, each naming its place.
    """
    workflow, notes, issues = load_partial(data)
    if issues or workflow is None:
        raise DefinitionError(issues)
    return workflow, notes


def load_partial(data: Any) -> tuple[Workflow | None, list[str], list[Issue]]:
    """Read as much of ``data`` as is readable: the workflow made of the nodes and edges
    that loaded, the notes, and every shape problem (``None`` when ``data`` is not an
    object at all).

    The graph rules can then run on the partial workflow, so that one report lists a
    misspelt field together with a dangling edge, a cycle and an unknown type
    (:func:`flowmill.validation.check_document`).
    """
    r = _Reader()
    if not isinstance(data, Mapping):
        return None, [], [Issue("", "a workflow definition must be a JSON object", "type")]
    shaped = read_seed_shapes(data)
    r.issues.extend(shaped.issues)
    data = shaped.document
    r.unknown_keys("", data, _WORKFLOW_KEYS)
    name = r.string("name", data.get("name")) or ""
    description = data.get("description") or ""
    if not isinstance(description, str):
        r.add("description", "must be a string", "type")
        description = ""
    tags_raw = data.get("tags") or []
    if not isinstance(tags_raw, list) or not all(isinstance(t, str) for t in tags_raw):
        r.add("tags", "must be a list of strings", "type")
        tags_raw = []
    tenant_id = data.get("tenant_id")
    if tenant_id is not None and not isinstance(tenant_id, str):
        r.add("tenant_id", "must be a string", "type")
        tenant_id = None
    status = data.get("status")
    if status is not None and not isinstance(status, str):
        r.add("status", "must be a string", "type")
        status = None
    settings = _settings(r, data.get("settings"))

    has_nodes, has_steps = "nodes" in data, "steps" in data
    nodes: list[Node] = []
    edges: list[Edge] = []
    if has_nodes and has_steps:
        r.add("steps", "give either nodes+edges or steps, not both", "conflict")
    elif shaped.from_steps:
        # Made from the step list: name problems as the user wrote them, steps[...].
        nodes = _nodes(r, data.get("nodes"), "steps")
        edges = _edges(r, data.get("edges", []))
    elif has_nodes:
        if "trigger" in data:
            r.add("trigger", "a top-level trigger goes with steps; add a trigger node", "conflict")
        nodes = _nodes(r, data.get("nodes"), "nodes")
        edges = _edges(r, data.get("edges", []))
    else:
        r.add("nodes", "is required (or give an ordered list of steps)", "missing")

    workflow = Workflow(
        name=name,
        description=description,
        nodes=tuple(nodes),
        edges=tuple(edges),
        settings=settings,
        tags=tuple(tags_raw),
        tenant_id=tenant_id,
        status=status,
    )
    return workflow, list(shaped.notes), r.issues


def _nodes(r: _Reader, raw: Any, where: str) -> list[Node]:
    if not isinstance(raw, list):
        r.add(where, "must be a list of nodes", "type")
        return []
    nodes: list[Node] = []
    for i, item in enumerate(raw):
        node = _node(r, item, f"{where}[{i}]")
        if node is not None:
            nodes.append(node)
    return nodes


def _node(r: _Reader, item: Any, path: str) -> Node | None:
    if not isinstance(item, Mapping):
        r.add(path, "must be an object", "type")
        return None
    node_id = r.string(f"{path}.id", item.get("id"))
    if node_id is not None:
        path = f"{path.split('[')[0]}[{node_id}]"
    r.unknown_keys(path, item, _NODE_KEYS)
    node_type = r.string(f"{path}.type", item.get("type"))
    name = item.get("name") or node_id or ""
    if not isinstance(name, str):
        r.add(f"{path}.name", "must be a string", "type")
        name = node_id or ""
    config = item.get("config", {})
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        r.add(f"{path}.config", "must be an object", "type")
        config = {}
    retry = _retry(r, item.get("retry"), f"{path}.retry")
    timeout_s = r.number(f"{path}.timeout_s", item.get("timeout_s"), minimum=0.001)
    on_error = _enum(r, OnError, item.get("on_error", "fail"), f"{path}.on_error")
    join = _enum(r, JoinMode, item.get("join", "all"), f"{path}.join")
    extra = {k: item[k] for k in _EXTRA_NODE_KEYS if k in item}
    if node_id is None or node_type is None:
        return None
    return Node(
        id=node_id,
        type=node_type,
        name=name,
        config=dict(config),
        retry=retry,
        timeout_s=timeout_s,
        on_error=on_error or OnError.FAIL,
        join=join or JoinMode.ALL,
        extra=extra,
    )


def _enum(r: _Reader, enum: type[_E], value: Any, path: str) -> _E | None:
    try:
        return enum(value)
    except ValueError:
        r.add(path, f"must be one of: {', '.join(m.value for m in enum)}", "enum")
        return None


def _edges(r: _Reader, raw: Any) -> list[Edge]:
    if not isinstance(raw, list):
        r.add("edges", "must be a list of edges", "type")
        return []
    edges: list[Edge] = []
    for i, item in enumerate(raw):
        path = f"edges[{i}]"
        if not isinstance(item, Mapping):
            r.add(path, "must be an object with source and target", "type")
            continue
        r.unknown_keys(path, item, _EDGE_KEYS)
        source = r.string(f"{path}.source", item.get("source"))
        target = r.string(f"{path}.target", item.get("target"))
        handle = item.get("sourceHandle", item.get("source_handle"))
        if handle is not None and not isinstance(handle, str | bool):
            r.add(f"{path}.sourceHandle", "must be a string", "type")
            handle = None
        if isinstance(handle, bool):  # YAML turns a bare true/false into a boolean
            handle = "true" if handle else "false"
        if source is not None and target is not None:
            edges.append(Edge(source=source, target=target, source_handle=handle or None))
    return edges


def _retry(r: _Reader, raw: Any, path: str) -> RetryPolicy | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        r.add(path, 'must be an object like {"max_attempts": 3, "backoff_ms": 500}', "type")
        return None
    r.unknown_keys(path, raw, _RETRY_KEYS)
    defaults = RetryPolicy()
    attempts = r.number(f"{path}.max_attempts", raw.get("max_attempts"), minimum=1, integer=True)
    backoff = r.number(f"{path}.backoff_ms", raw.get("backoff_ms"), integer=True)
    cap = r.number(f"{path}.max_backoff_ms", raw.get("max_backoff_ms"), integer=True)
    strategy = raw.get("strategy", defaults.strategy)
    if strategy not in ("fixed", "exponential"):
        r.add(f"{path}.strategy", "must be fixed or exponential", "enum")
        strategy = defaults.strategy
    jitter_raw = raw.get("jitter", 0.0)
    if isinstance(jitter_raw, bool):
        jitter = 0.25 if jitter_raw else 0.0
    else:
        jitter = r.number(f"{path}.jitter", jitter_raw) or 0.0
        if jitter > 1:
            r.add(f"{path}.jitter", "must be between 0 and 1 (a fraction of the delay)", "range")
            jitter = 0.0
    return RetryPolicy(
        max_attempts=int(attempts) if attempts is not None else defaults.max_attempts,
        backoff_ms=int(backoff) if backoff is not None else defaults.backoff_ms,
        strategy=strategy,
        jitter=float(jitter),
        max_backoff_ms=int(cap) if cap is not None else defaults.max_backoff_ms,
    )


def _settings(r: _Reader, raw: Any) -> WorkflowSettings:
    if raw is None:
        return WorkflowSettings()
    if not isinstance(raw, Mapping):
        r.add("settings", "must be an object", "type")
        return WorkflowSettings()
    r.unknown_keys("settings", raw, _SETTINGS_KEYS)
    variables = raw.get("variables", raw.get("vars", {})) or {}
    if not isinstance(variables, Mapping):
        r.add("settings.variables", "must be an object", "type")
        variables = {}
    timezone = raw.get("timezone", "UTC")
    if not isinstance(timezone, str):
        r.add("settings.timezone", "must be an IANA zone name like Europe/Paris", "type")
        timezone = "UTC"
    else:
        timezone = _check_zone(r, timezone)
    error_wf = raw.get("error_workflow_id")
    if error_wf is not None and not isinstance(error_wf, str):
        r.add("settings.error_workflow_id", "must be a workflow id", "type")
        error_wf = None
    max_conc = r.number(
        "settings.max_concurrent", raw.get("max_concurrent"), minimum=1, integer=True
    )
    per_minute = r.number("settings.per_minute", raw.get("per_minute"), minimum=1, integer=True)
    priority = r.number(
        "settings.priority", raw.get("priority"), minimum=PRIORITY_RANGE[0], integer=True
    )
    if priority is not None and priority > PRIORITY_RANGE[1]:
        r.add("settings.priority", f"must be at most {PRIORITY_RANGE[1]}", "range")
        priority = None
    return WorkflowSettings(
        retry=_retry(r, raw.get("retry"), "settings.retry"),
        timeout_s=r.number("settings.timeout_s", raw.get("timeout_s"), minimum=0.001),
        max_concurrent=int(max_conc) if max_conc is not None else None,
        per_minute=int(per_minute) if per_minute is not None else None,
        timezone=timezone,
        error_workflow_id=error_wf,
        variables=dict(variables),
        priority=int(priority) if priority is not None else 0,
    )


def _check_zone(r: _Reader, name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        r.add("settings.timezone", f"unknown time zone {name!r}; use an IANA name", "enum")
        return "UTC"
    return name


def dump_definition(wf: Workflow) -> dict[str, Any]:
    """Write a workflow back in the graph shape of the seed format (the export format)."""
    out: dict[str, Any] = {"name": wf.name}
    if wf.description:
        out["description"] = wf.description
    if wf.tenant_id is not None:
        out["tenant_id"] = wf.tenant_id
    if wf.status is not None:
        out["status"] = wf.status
    out["nodes"] = [_dump_node(n) for n in wf.nodes]
    out["edges"] = [_dump_edge(e) for e in wf.edges]
    settings = _dump_settings(wf.settings)
    if settings:
        out["settings"] = settings
    if wf.tags:
        out["tags"] = list(wf.tags)
    return out


def _dump_node(n: Node) -> dict[str, Any]:
    out: dict[str, Any] = {"id": n.id, "type": n.type}
    if n.name and n.name != n.id:
        out["name"] = n.name
    out["config"] = dict(n.config)
    if n.retry is not None:
        out["retry"] = _dump_retry(n.retry)
    if n.timeout_s is not None:
        out["timeout_s"] = n.timeout_s
    if n.on_error is not OnError.FAIL:
        out["on_error"] = n.on_error.value
    if n.join is not JoinMode.ALL:
        out["join"] = n.join.value
    out.update(n.extra)
    return out


def _dump_edge(e: Edge) -> dict[str, Any]:
    out = {"source": e.source, "target": e.target}
    if e.source_handle is not None:
        out["sourceHandle"] = e.source_handle
    return out


def _dump_retry(p: RetryPolicy) -> dict[str, Any]:
    return {
        "max_attempts": p.max_attempts,
        "backoff_ms": p.backoff_ms,
        "strategy": p.strategy,
        "jitter": p.jitter,
        "max_backoff_ms": p.max_backoff_ms,
    }


def _dump_settings(s: WorkflowSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if s.retry is not None:
        out["retry"] = _dump_retry(s.retry)
    for key in ("timeout_s", "max_concurrent", "per_minute", "error_workflow_id"):
        value = getattr(s, key)
        if value is not None:
            out[key] = value
    if s.timezone != "UTC":
        out["timezone"] = s.timezone
    if s.variables:
        out["variables"] = dict(s.variables)
    if s.priority:
        out["priority"] = s.priority
    return out
