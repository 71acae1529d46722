"""Errors of the domain: invalid definitions and node failures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


class DefinitionError(ValueError):
    """A workflow definition cannot be loaded or does not validate."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))


@dataclass
class NodeError(Exception):
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
