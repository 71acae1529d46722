"""The definition shapes of the seed documents, read into the canonical graph form.

The loader (:mod:`flowmill.domain.definition`) reads ``nodes`` + ``edges``. This module
turns every other shape the customer's documents use into that form first, and says
what it made of each one in a note (``flowmill validate`` prints them):

- ``steps`` (seed 002), or ``actions`` (seed 003's name for them): an ordered list,
  a chain behind a trigger node. The trigger is the first step when it is one, else
  a node ``trigger`` made from the top-level ``trigger`` (default ``{"type":
  "manual"}``; seed 003's ``{"type", "config": {...}}`` has its config flattened).
- A ``conditional`` step with ``trueSteps`` / ``falseSteps`` (also inside ``config``):
  a ``conditional`` node whose ``true`` / ``false`` handles lead to the two nested
  chains, both joining the step after it. The branch not taken is skipped and skipping
  propagates, so the default join ``all`` starts that step once.
- A ``loop`` step with nested ``steps`` (also ``config.steps``): a ``loop`` node whose
  ``config.body`` is the nested chain as ``{"nodes", "edges"}``, without a trigger
  (the loop node gives its body one).
- The workflow fields ``rateLimitMaxConcurrent``, ``rateLimitPerMinute``,
  ``retryMaxAttempts``, ``retryBackoffMs`` (seed 002's Prisma model): ``settings``.
- A node's retry in BullMQ's job-option form ``{"attempts": 3, "backoff": {"type":
  "exponential", "delay": 2000}}`` (seeds 003/004; a bare number for ``backoff`` is
  BullMQ's fixed delay), under ``retry`` or on the node itself: ``retry {max_attempts,
  backoff_ms, strategy}``. BullMQ counts ``attempts`` as Flowmill does (the first try
  included) and doubles an exponential delay per retry (2 s, 4 s, 8 s), as Flowmill does.
- ``enabled`` (seed 003): ``status`` ``active`` / ``inactive``; ``tenantId`` (seed
  004): ``tenant_id``.

Steps without an ``id`` get one: ``step-{i}`` in a list, ``{parent}.true.{i}`` /
``{parent}.false.{i}`` in a branch. Pure: the input is never changed, nothing is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowmill.domain.errors import Issue

SYNTHETIC_TRIGGER_ID = "trigger"

# Seed 002's workflow columns and the settings they are (key path under ``settings``).
SEED_SETTINGS: dict[str, tuple[str, ...]] = {
    "rateLimitMaxConcurrent": ("max_concurrent",),
    "rateLimitPerMinute": ("per_minute",),
    "retryMaxAttempts": ("retry", "max_attempts"),
    "retryBackoffMs": ("retry", "backoff_ms"),
}
_BRANCHES = ("trueSteps", "falseSteps")
_BACKOFF_KEYS = {"type", "delay"}
_STRATEGIES = ("fixed", "exponential")


@dataclass(frozen=True)
class ShapedDocument:
    """A definition in the canonical shape, and how it got there.

    Attributes:
        document: The document with every seed shape replaced by its canonical form (a
            new object; unchanged when there was nothing to do). Anything malformed is
            left for the loader to report, except what this module reports itself.
        notes: One line per seed shape read, saying what it became.
        issues: Problems only the seed shapes have (a branch that is not a list...).
        from_steps: ``nodes``/``edges`` were made from a step list (the loader names
            their problems ``steps[...]``, as the user wrote them).
    """

    document: Any
    notes: tuple[str, ...] = ()
    issues: tuple[Issue, ...] = ()
    from_steps: bool = False


@dataclass
class _Chain:
    """Nodes and edges made from a step list.

    ``exits`` are the (node id, handle) pairs that lead into whatever follows the list.
    """

    nodes: list[Any] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    entry: str | None = None
    exits: list[tuple[str, str | None]] = field(default_factory=list)


def read_seed_shapes(data: Any) -> ShapedDocument:
    """Read the seed shapes of a parsed definition into the canonical graph shape."""
    if not isinstance(data, Mapping):
        return ShapedDocument(data)
    return _Shaper().document(data)


class _Shaper:
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.issues: list[Issue] = []

    def issue(self, path: str, message: str, code: str = "invalid") -> None:
        self.issues.append(Issue(path, message, code))

    # --- the workflow -----------------------------------------------------------------

    def document(self, data: Mapping[str, Any]) -> ShapedDocument:
        doc = dict(data)
        if "tenantId" in doc:
            tenant = doc.pop("tenantId")
            if doc.get("tenant_id", tenant) != tenant:
                self.issue("tenantId", "disagrees with tenant_id", "conflict")
            else:
                doc["tenant_id"] = tenant
                self.note("tenantId", "read as tenant_id")
        self._settings(doc)
        self._enabled(doc)
        if "actions" in doc:
            actions = doc.pop("actions")
            if "steps" in doc:
                self.issue("actions", "give steps or actions (one list), not both", "conflict")
            else:
                doc["steps"] = actions
                self.note("actions", "read as steps")
        from_steps = "steps" in doc and "nodes" not in doc
        if from_steps:
            self._steps(doc)
        elif isinstance(doc.get("nodes"), list):
            doc["nodes"] = [
                self._retry(n, f"nodes[{_label(n, i)}]") if isinstance(n, Mapping) else n
                for i, n in enumerate(doc["nodes"])
            ]
        return ShapedDocument(doc, tuple(self.notes), tuple(self.issues), from_steps)

    def note(self, path: str, text: str) -> None:
        self.notes.append(f"{path}: {text}")

    def _settings(self, doc: dict[str, Any]) -> None:
        given = {k: doc.pop(k) for k in SEED_SETTINGS if k in doc}
        given = {k: v for k, v in given.items() if v is not None}  # Prisma's nullable columns
        if not given:
            return
        raw = doc.get("settings")
        if raw is not None and not isinstance(raw, Mapping):
            return  # the loader says settings must be an object
        settings = dict(raw or {})
        for name, value in given.items():
            if isinstance(value, bool) or not isinstance(value, int):
                self.issue(name, "must be a whole number", "type")
                continue
            *parents, key = SEED_SETTINGS[name]
            target: dict[str, Any] | None = settings
            for parent in parents:
                assert target is not None
                inner = target.get(parent)
                if inner is not None and not isinstance(inner, Mapping):
                    target = None  # not read: the loader reports settings.retry
                    break
                copied = dict(inner or {})
                target[parent] = copied
                target = copied
            if target is None:
                continue
            if key in target and target[key] != value:
                where = ".".join(("settings", *SEED_SETTINGS[name]))
                self.issue(name, f"disagrees with {where} ({target[key]!r})", "conflict")
                continue
            target[key] = value
            self.note(name, f"read as settings.{'.'.join(SEED_SETTINGS[name])} = {value}")
        doc["settings"] = settings

    def _enabled(self, doc: dict[str, Any]) -> None:
        if "enabled" not in doc:
            return
        enabled = doc.pop("enabled")
        if not isinstance(enabled, bool):
            self.issue("enabled", "must be true or false", "type")
            return
        status = "active" if enabled else "inactive"
        if doc.get("status") not in (None, status):
            self.issue("enabled", f"disagrees with status {doc['status']!r}", "conflict")
            return
        doc["status"] = status
        self.note("enabled", f"read as status {status}")

    def _steps(self, doc: dict[str, Any]) -> None:
        raw = doc.pop("steps")
        trigger = doc.pop("trigger", None)
        doc["nodes"], doc["edges"] = [], []
        if not isinstance(raw, list):
            self.issue("steps", "must be a list of nodes", "type")
            return
        if not raw:
            self.issue("steps", "must hold at least one step", "empty")
        chain = self._chain(raw, "steps", None)
        first = raw[0] if raw else None
        if trigger is not None or not isinstance(first, Mapping) or first.get("type") != "trigger":
            node = self._trigger(trigger)
            chain.nodes.insert(0, node)
            if chain.entry is not None:
                chain.edges.insert(0, {"source": SYNTHETIC_TRIGGER_ID, "target": chain.entry})
        doc["nodes"], doc["edges"] = chain.nodes, chain.edges

    def _trigger(self, trigger: Any) -> dict[str, Any]:
        config: dict[str, Any] = {"triggerType": "manual"}
        if trigger is not None:
            if not isinstance(trigger, Mapping) or not isinstance(trigger.get("type"), str):
                self.issue("trigger", 'must be an object with a type, e.g. {"type": "manual"}')
            else:
                rest = {k: v for k, v in trigger.items() if k != "type"}
                nested = rest.get("config")
                if isinstance(nested, Mapping):
                    # Seed 003's {"type": "webhook", "config": {...}}: one flat config.
                    rest.pop("config")
                    rest = {**nested, **rest}
                    self.note("trigger.config", "read as the trigger node's config")
                config = {"triggerType": trigger["type"], **rest}
        return {"id": SYNTHETIC_TRIGGER_ID, "type": "trigger", "name": "Trigger", "config": config}

    # --- step lists -------------------------------------------------------------------

    def _chain(self, steps: Sequence[Any], path: str, prefix: str | None) -> _Chain:
        chain = _Chain()
        exits: list[tuple[str, str | None]] = []
        for i, raw in enumerate(steps):
            if not isinstance(raw, Mapping):
                chain.nodes.append(raw)  # the loader says it must be an object
                continue
            here = f"{path}[{i}]"
            step = dict(raw)
            if step.get("id") is None:
                made_id = f"{prefix}.{i}" if prefix else f"step-{i}"
                step = {"id": made_id, **{k: v for k, v in step.items() if k != "id"}}
                self.note(here, f"has no id; read as node {made_id}")
            step_id = step["id"]
            if not isinstance(step_id, str):
                chain.nodes.append(step)  # the loader names the bad id
                continue
            step = self._retry(step, f"{path.split('[')[0]}[{step_id}]")
            made = self._step(step, here)
            for source, handle in exits:
                chain.edges.append(_edge(source, step_id, handle))  # a step is entered at itself
            chain.nodes.extend(made.nodes)
            chain.edges.extend(made.edges)
            if chain.entry is None:
                chain.entry = made.entry
            exits = made.exits
        chain.exits = exits
        return chain

    def _step(self, step: dict[str, Any], here: str) -> _Chain:
        """One step: itself, or a conditional with its branches, or a loop with its body."""
        step_id: str = step["id"]
        config = step.get("config")
        config = dict(config) if isinstance(config, Mapping) else config
        branches = {k: self._nested(step, config, k, here) for k in _BRANCHES}
        body = self._nested(step, config, "steps", here)
        if config is not None:
            step["config"] = config
        kind = step.get("type")
        given = [k for k, v in branches.items() if v is not None]
        if given and kind != "conditional":
            self.issue(f"{here}.{given[0]}", "only conditional steps have trueSteps/falseSteps")
        if body is not None and kind != "loop":
            self.issue(f"{here}.steps", "only loop steps have nested steps")
        if kind == "conditional" and given:
            return self._conditional(step, here, branches)
        if kind == "loop" and body is not None:
            self._loop(step, here, body)
        return _Chain([step], [], step_id, [(step_id, None)])

    def _nested(self, step: dict[str, Any], config: Any, key: str, here: str) -> list[Any] | None:
        """A nested step list given on the step or inside its config (popped from both)."""
        outer = step.pop(key, None)
        inner = config.pop(key, None) if isinstance(config, dict) else None
        if outer is not None and inner is not None:
            self.issue(f"{here}.{key}", f"give {key} on the step or in its config, not both")
        value = outer if outer is not None else inner
        where = f"{here}.{key}" if outer is not None else f"{here}.config.{key}"
        if value is not None and not isinstance(value, list):
            self.issue(where, "must be a list of steps", "type")
            return None
        return value

    def _conditional(
        self, step: dict[str, Any], here: str, branches: dict[str, list[Any] | None]
    ) -> _Chain:
        cond: str = step["id"]
        out = _Chain([step], [], cond, [])
        said = []
        for key, handle in (("trueSteps", "true"), ("falseSteps", "false")):
            branch = self._chain(branches[key] or [], f"{here}.{key}", f"{cond}.{handle}")
            out.nodes.extend(branch.nodes)
            if branch.entry is None:
                out.exits.append((cond, handle))
                said.append(f"{handle} → the next step")
                continue
            out.edges.append(_edge(cond, branch.entry, handle))
            out.edges.extend(branch.edges)
            out.exits.extend(branch.exits)
            ids = [n["id"] for n in branch.nodes if isinstance(n, Mapping) and "id" in n]
            said.append(f"{handle} → {', '.join(map(str, ids))}")
        if out.exits == [(cond, "true"), (cond, "false")]:
            out.exits = [(cond, None)]  # no branch has steps: both ways lead on
        self.note(
            here,
            f"(conditional with trueSteps/falseSteps) read as node {cond} "
            f"({'; '.join(said)}), both branches joining the next step",
        )
        return out

    def _loop(self, step: dict[str, Any], here: str, body_steps: list[Any]) -> None:
        config = step.get("config")
        if config is None:
            config = step["config"] = {}
        if not isinstance(config, dict):
            return  # the loader says config must be an object
        if "body" in config or "workflow_id" in config:
            self.issue(f"{here}.steps", "give nested steps or config.body/workflow_id, not both")
            return
        body = self._chain(body_steps, f"{here}.steps", None)
        config["body"] = {"nodes": body.nodes, "edges": body.edges}
        ids = [n["id"] for n in body.nodes if isinstance(n, Mapping) and "id" in n]
        self.note(
            here,
            f"(loop with nested steps) read as node {step['id']} whose config.body is "
            f"the chain {' → '.join(map(str, ids)) or '(empty)'}",
        )

    # --- retry ------------------------------------------------------------------------

    def _retry(self, node: Mapping[str, Any], where: str) -> dict[str, Any]:
        """A node with its BullMQ-style retry (if any) in Flowmill's form."""
        out = dict(node)
        flat = {k: out.pop(k) for k in ("attempts", "backoff") if k in out}
        if flat:
            if out.get("retry") is not None:
                self.issue(f"{where}.attempts", "give retry or attempts/backoff, not both")
                return out
            out["retry"] = flat
        retry = out.get("retry")
        if not isinstance(retry, Mapping) or not ({"attempts", "backoff"} & set(retry)):
            return out
        policy = {k: v for k, v in retry.items() if k not in ("attempts", "backoff")}
        path = f"{where}.retry" if not flat else where
        if "attempts" in retry:
            if policy.get("max_attempts", retry["attempts"]) != retry["attempts"]:
                self.issue(f"{path}.attempts", "disagrees with max_attempts", "conflict")
            policy["max_attempts"] = retry["attempts"]
        backoff = retry.get("backoff")
        if isinstance(backoff, Mapping):
            unknown = sorted(set(backoff) - _BACKOFF_KEYS)
            if unknown:
                self.issue(
                    f"{path}.backoff.{unknown[0]}",
                    "unknown field; expected one of: delay, type",
                    "unknown_field",
                )
            kind = backoff.get("type", "fixed")
            if kind not in _STRATEGIES:
                self.issue(f"{path}.backoff.type", "must be fixed or exponential", "enum")
            else:
                policy["strategy"] = kind
            if "delay" in backoff:
                policy["backoff_ms"] = backoff["delay"]
        elif isinstance(backoff, int | float) and not isinstance(backoff, bool):
            policy.update(backoff_ms=backoff, strategy="fixed")  # BullMQ: a number is fixed
        elif backoff is not None:
            self.issue(
                f"{path}.backoff",
                'must be a delay in ms or {"type": "exponential", "delay": 2000}',
                "type",
            )
        out["retry"] = policy
        shown = ", ".join(f"{k}: {v}" for k, v in policy.items())
        source = "attempts/backoff" if flat else "retry {attempts, backoff}"
        self.note(where, f"{source} (BullMQ job options) read as retry {{{shown}}}")
        return out


def _edge(source: str, target: str, handle: str | None) -> dict[str, Any]:
    edge: dict[str, Any] = {"source": source, "target": target}
    if handle is not None:
        edge["sourceHandle"] = handle
    return edge


def _label(node: Mapping[str, Any], index: int) -> str:
    node_id = node.get("id")
    return node_id if isinstance(node_id, str) else str(index)
