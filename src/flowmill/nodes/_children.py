"""What the nodes that start or wait on other executions share."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flowmill.domain.errors import ChildFailed, ControlUnavailable, NodeError
from flowmill.domain.states import ExecutionStatus
from flowmill.engine.control import Control, ControlError
from flowmill.nodes.base import NodeContext


def control_of(ctx: NodeContext) -> Control:
    """The engine's control-flow service, or a clear error when this engine has none."""
    if ctx.control is None:
        raise ControlUnavailable(
            f"{ctx.node.type} nodes need an engine with child executions and signals"
        )
    return ctx.control


def start_failed(e: ControlError) -> NodeError:
    """A child that cannot start fails the node for good (retrying will not help)."""
    kind = "ChildDepthExceeded" if "nest" in str(e) else "SubWorkflowNotFound"
    return NodeError(str(e), type=kind, retriable=False)


def child_failed(what: str, child_id: str, status: ExecutionStatus, error: Any) -> NodeError:
    """The error of a node whose child ended badly; the child's error is in ``details``."""
    message = error.get("message") if isinstance(error, dict) else None
    return ChildFailed(
        f"{what} execution {child_id} {status.value}" + (f": {message}" if message else ""),
        details={"execution_id": child_id, "status": status.value, "error": error},
    )


def poll_delay(control: Control) -> timedelta:
    """How long a parked parent sleeps without a wake."""
    return timedelta(seconds=control.settings.poll_s)
