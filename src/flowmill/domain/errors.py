"""Flowmill's errors: one root, named subclasses, node failures as classes.

Every error Flowmill raises on purpose is a :class:`FlowmillError`, so a caller can tell
ours from a bug with one ``except``. A class that stands for a builtin category also
inherits that builtin (:class:`NotFound` is a ``LookupError``, :class:`Invalid` a
``ValueError``), so code written against the builtin keeps working; new code catches
the named class, never ``ValueError`` or ``LookupError`` wholesale around business
logic (a ``KeyError`` from a bug is a ``LookupError`` too).

A node failure is a :class:`NodeError`; the kinds users see are subclasses of
:class:`NodeFailure` whose ``type`` is the class's name (``InvalidDelay``...), so a
failure kind is written once, as a class, and raised by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


class FlowmillError(Exception):
    """Root of the errors Flowmill raises on purpose."""


class NotFound(FlowmillError, LookupError):
    """The thing asked for does not exist (or is not the caller's to see)."""


class Invalid(FlowmillError, ValueError):
    """A value given to Flowmill is not acceptable."""


class WorkflowNotFound(NotFound):
    """No such workflow, or no such version of it."""


class ExecutionNotFound(NotFound):
    """No such execution."""


class TenantNotFound(NotFound):
    """No such tenant."""


class UnstorableJson(Invalid):
    """A JSON value the database or the encoder would refuse (NUL, lone surrogates,
    integers beyond 64 bits, NaN, nesting too deep)."""


class NotATrigger(Invalid):
    """An execution was asked to start at a node that is not one of the workflow's
    triggers."""


@dataclass(frozen=True)
class Issue:
    """One problem found in a workflow definition.

    Attributes:
        path: Where the problem is, e.g. ``nodes[process-1].config.code`` or ``edges[2]``.
        message: What is wrong, in words a user can act on.
        code: A stable machine-readable code, e.g. ``unknown_node_type``.
    """

    path: str
    message: str
    code: str = "invalid"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class DefinitionError(Invalid):
    """A workflow definition cannot be loaded or does not validate."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))


@dataclass
class NodeError(FlowmillError):
    """A node failed. Raised by node code; recorded on the node run.

    Attributes:
        message: What happened.
        type: Short error class name shown to users (``HttpError``, ``SandboxTimeout``...).
        retriable: Whether another attempt could succeed.
        details: Extra JSON-able facts (status code, response body excerpt...).
    """

    message: str
    type: str = "NodeError"
    retriable: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"

    def to_dict(self, attempt: int | None = None) -> dict[str, Any]:
        """The error as stored on the node run and sent in events."""
        out: dict[str, Any] = {
            "type": self.type,
            "message": self.message,
            "retriable": self.retriable,
        }
        if attempt is not None:
            out["attempt"] = attempt
        if self.details:
            out["details"] = self.details
        return out


class NodeFailure(NodeError):
    """A kind of node failure, raised by its class: ``type`` is the class's name.

    Subclasses set ``retriable_by_default`` (most failures of a node's input or
    configuration are permanent) and, where the name users see is not a valid or free
    class name (``ConnectionError`` is a builtin), ``error_type``.
    """

    retriable_by_default: ClassVar[bool] = False
    error_type: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        retriable: bool | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Create the failure.

        Args:
            message: What happened, for people.
            retriable: Overrides the class's default.
            details: JSON-able facts stored with the error.
        """
        super().__init__(
            message,
            type=self.error_type or type(self).__name__,
            retriable=self.retriable_by_default if retriable is None else retriable,
            details=details or {},
        )


class InvalidConfig(NodeFailure):
    """A node's configuration, as rendered for this run, cannot be used."""


class CredentialFailure(NodeFailure):
    """The credential a node names is missing, unreadable or refused."""

    error_type = "CredentialError"


class Timeout(NodeFailure):
    """An outside service did not answer in time."""

    retriable_by_default = True


class NodeTimeout(NodeFailure):
    """The node ran past its ``timeout_s``."""

    retriable_by_default = True


class InvalidOutput(NodeFailure):
    """The node's output is not JSON."""


class OutputTooLarge(NodeFailure):
    """The node's output is larger than allowed."""


class SandboxUnavailable(NodeFailure):
    """No sandbox is configured to run code."""


class ControlUnavailable(NodeFailure):
    """A node that starts or waits for executions runs where no control port is wired."""


class ChildFailed(NodeFailure):
    """A child execution (loop iteration, sub-workflow) did not succeed."""


class RecordBusy(NodeFailure):
    """Another step holds the record this step needs; a later attempt may get it."""

    retriable_by_default = True
