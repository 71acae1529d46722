"""The contract every node type keeps: a config schema and an ``execute``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from flowmill.credentials.use import CredentialUse
from flowmill.domain.errors import SandboxUnavailable
from flowmill.domain.execution import ConversationTurn, LogLine
from flowmill.domain.workflow import Node
from flowmill.engine import templates
from flowmill.engine.templates import ExpressionEvaluator, Scope

if TYPE_CHECKING:
    from flowmill.engine.control import Control
    from flowmill.engine.services import NodeServices


class NodeConfig(BaseModel):
    """Base of node config schemas: unknown fields are errors, so typos are caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ConfigT = TypeVar("ConfigT", bound=NodeConfig)


@dataclass
class NodeResult:
    """What a node returns when it chooses outputs (branches) besides its output.

    Attributes:
        output: JSON-able value; the input of the next nodes.
        handles: Outputs taken (``["true"]``); ``None`` for the default output.
        turns: Conversation turns the step adds, written with its checkpoint (only if
            the step's success is recorded, and then once).
    """

    output: Any = None
    handles: list[str] | None = None
    turns: list[ConversationTurn] = field(default_factory=list)


@dataclass
class Suspend:
    """Park the node until ``until`` without holding a worker (durable waits).

    The node's ``execute`` runs again when the time comes, with ``ctx.resumed`` true and
    ``ctx.state`` set to ``state``.

    Attributes:
        wake_on: What else ends the wait early (``children``, ``signal``; see
            :mod:`flowmill.engine.control`): a wake makes the node run again at once.
        recheck: Called once the suspension is committed; True means what the node
            waits for arrived while it was deciding to wait, so it is woken at once
            (no wake is lost between the node's look and its suspension).
    """

    until: datetime
    state: dict[str, Any] = field(default_factory=dict)
    wake_on: str | None = None
    recheck: Callable[[], Awaitable[bool]] | None = None


class NodeLogger:
    """Collects a node's log lines; they are stored with the step's checkpoint."""

    def __init__(self, node_id: str, attempt: int, now: datetime) -> None:
        self.lines: list[LogLine] = []
        self._node_id = node_id
        self._attempt = attempt
        self._now = now

    def log(self, level: str, message: str, **metadata: Any) -> None:
        """Record a line at ``level`` (debug, info, warn, error)."""
        self.lines.append(
            LogLine(level, message[:10_000], self._node_id, self._attempt, metadata, self._now)
        )

    def info(self, message: str, **metadata: Any) -> None:
        """Record an info line."""
        self.log("info", message, **metadata)

    def warn(self, message: str, **metadata: Any) -> None:
        """Record a warning."""
        self.log("warn", message, **metadata)

    def error(self, message: str, **metadata: Any) -> None:
        """Record an error line."""
        self.log("error", message, **metadata)


@dataclass
class NodeContext:
    """Everything one attempt of a node may use.

    Attributes:
        input: The predecessor's output, or an object keyed by predecessor id.
        trigger: The execution's trigger output ``{"type", "data", ...}``.
        nodes: Outputs of the earlier nodes this node refers to, as
            ``{"<id>": {"output": ...}}``.
        variables: The workflow's ``settings.variables``.
        execution: ``{"id", "workflow_id", "version", "started_at"}``.
        idempotency_key: ``execution_id:node_id:attempt``; hand it to outside systems.
        resumed: True when a suspended node runs again.
        state: What the node saved when it suspended.
        services: HTTP client, sandbox and other shared services.
        predecessors: Ids of the nodes with edges into this one, in edge order.
        control: Child executions and signals (loop, sub_workflow, wait nodes).
    """

    node: Node
    execution_id: str
    workflow_id: str
    tenant_id: str
    attempt: int
    input: Any
    trigger: Mapping[str, Any]
    nodes: Mapping[str, Any]
    variables: Mapping[str, Any]
    execution: Mapping[str, Any]
    idempotency_key: str
    now: datetime
    services: NodeServices
    log: NodeLogger
    resumed: bool = False
    state: Mapping[str, Any] | None = None
    predecessors: tuple[str, ...] = ()
    extra_scope: Mapping[str, Any] = field(default_factory=dict)
    control: Control | None = None

    def scope(self) -> Scope:
        """The names templates and expressions see."""
        context = {
            "input": self.input,
            "trigger": self.trigger,
            "nodes": self.nodes,
            "vars": self.variables,
            "execution": self.execution,
            **self.extra_scope,
        }
        return Scope(self.input, context)

    def credential_use(self) -> CredentialUse:
        """This attempt as the user of a credential (recorded with each decryption)."""
        return CredentialUse(
            "node", execution_id=self.execution_id, node_id=self.node.id, attempt=self.attempt
        )

    @property
    def expressions(self) -> ExpressionEvaluator | None:
        """Evaluator of non-path ``{{ }}`` expressions (the JS sandbox), if configured."""
        return self.services.expressions

    async def render(self, value: Any) -> Any:
        """Render ``{{ }}`` templates inside ``value`` against this node's scope.

        Expressions (anything beyond a path) are evaluated in the sandbox, all of a
        value's expressions in one call.
        """
        return await templates.render_async(value, self.scope(), self.expressions)

    async def renderer(self, value: Any) -> Callable[[Any], Any]:
        """A synchronous renderer for the parts of ``value`` (expressions evaluated now).

        For code that renders pieces of a structure one by one, like conditions.
        """
        scope = self.scope()
        evaluated = await templates.evaluate(value, scope, self.expressions)
        return lambda part: templates.render(part, scope, evaluated)

    async def evaluate(self, expression: str) -> Any:
        """Evaluate one JavaScript expression in the sandbox."""
        evaluator = self.expressions
        if evaluator is None:
            raise SandboxUnavailable("JavaScript expressions need the sandbox")
        (value,) = await evaluator.evaluate_many([expression], self.scope().names())
        return value


class NodeType(ABC, Generic[ConfigT]):
    """Base class of node types. Subclass, set ``type_name`` and ``Config``, register.

    Attributes:
        type_name: The ``type`` of nodes in definitions; unique within a registry.
        Config: Pydantic schema of the node's ``config``.
        is_trigger: Whether nodes of this type start executions.
        default_timeout_s: Attempt timeout when the node sets none (``None``: no limit).
        code_fields: Config fields holding code, not templates (not template-checked).
        description: One sentence for the editor's palette (else the docstring's first line).
    """

    type_name: ClassVar[str]
    Config: ClassVar[type[NodeConfig]]
    is_trigger: ClassVar[bool] = False
    default_timeout_s: ClassVar[float | None] = 300.0
    code_fields: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    # How the editor shows the type (see nodes/catalog.py); empty: derived from the name.
    label: ClassVar[str] = ""
    category: ClassVar[str] = ""
    icon: ClassVar[str] = ""
    outputs: ClassVar[tuple[str, ...]] = ()
    """Named outputs known without a config (``("true", "false")``); empty: one output."""
    outputs_from: ClassVar[str | None] = None
    """Config path naming more outputs (``cases[].handle``), for types whose outputs
    depend on their config."""

    def parse_config(self, raw: Mapping[str, Any]) -> ConfigT:
        """Validate a raw config into the schema. Raises ``pydantic.ValidationError``."""
        return self.Config.model_validate(raw)  # type: ignore[return-value]

    def output_handles(self, config: ConfigT) -> frozenset[str] | None:
        """Named outputs edges may listen to; ``None`` for a single default output."""
        return None

    def config_issues(self, config: ConfigT, *, expressions_enabled: bool) -> list[str]:
        """Problems beyond the schema (template syntax, code that cannot run here)."""
        issues: list[str] = []
        for key, value in config.model_dump(by_alias=True).items():
            if key not in self.code_fields:
                issues.extend(
                    templates.expression_issues(value, expressions_enabled=expressions_enabled)
                )
        return issues

    def referenced_nodes(self, config: ConfigT) -> set[str]:
        """Ids of earlier nodes whose outputs this node reads (loaded for it)."""
        found: set[str] = set()
        for key, value in config.model_dump(by_alias=True).items():
            if key in self.code_fields and isinstance(value, str):
                found |= templates.nodes_in_code(value)
            else:
                found |= templates.referenced_nodes(value)
        return found

    @abstractmethod
    async def execute(self, ctx: NodeContext, config: ConfigT) -> Any:
        """Run one attempt.

        Returns:
            The output (any JSON value), a :class:`NodeResult` to choose outputs, or a
            :class:`Suspend` to wait durably.

        Raises:
            NodeError: The attempt failed; ``retriable`` decides whether retries apply.
        """


class TriggerNodeType(NodeType[ConfigT]):
    """Base class of node types that start executions.

    The trigger's output is built when the execution is created (it becomes
    ``trigger`` in every template), so ``execute`` only runs if something asks it to.
    """

    is_trigger: ClassVar[bool] = True

    def event_type(self, config: ConfigT, trigger_type: str) -> str:
        """The ``type`` of the trigger output, e.g. ``webhook.test``."""
        return trigger_type

    def build_output(
        self,
        config: ConfigT,
        *,
        trigger_type: str,
        data: Any,
        metadata: Mapping[str, Any],
        received_at: datetime,
    ) -> dict[str, Any]:
        """The trigger output ``{"type", "data", ...}`` for an incoming event."""
        out: dict[str, Any] = {
            "type": self.event_type(config, trigger_type),
            "data": data,
            "source": trigger_type,
            "received_at": received_at.isoformat(),
        }
        for key, value in metadata.items():
            out.setdefault(key, value)
        return out

    async def execute(self, ctx: NodeContext, config: ConfigT) -> Any:
        return ctx.trigger
