"""``sub_workflow``: runs another workflow of the tenant as a child execution.

With ``wait`` the node parks (no worker held) until the child ends: the child's output
becomes the node's output, its failure the node's failure (then ``on_error`` decides).
Without ``wait`` it returns ``{"execution_id"}`` at once, and the child outlives its
parent (it is not cancelled when the parent ends). The child is started once per node
run, whatever crashes happen (see :meth:`Control.start_child`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flowmill.domain.states import ExecutionStatus
from flowmill.engine.control import DETACHED, WAKE_CHILDREN, ControlError
from flowmill.nodes._children import child_failed, control_of, poll_delay, start_failed
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType, Suspend


class SubWorkflowConfig(NodeConfig):
    """``workflow_id`` of the tenant's workflow (its active version, or ``version``),
    ``input`` (rendered; default: this node's input) and ``wait``."""

    workflow_id: str = Field(min_length=1, max_length=200)
    version: int | None = Field(None, ge=1)
    input: Any = "{{input}}"
    wait: bool = True


class SubWorkflowNode(NodeType[SubWorkflowConfig]):
    """Calls another workflow; waits for it or fires and forgets."""

    type_name = "sub_workflow"
    Config = SubWorkflowConfig
    default_timeout_s = 60.0
    description = "Run another workflow of the tenant, waiting for its output or not."

    async def execute(self, ctx: NodeContext, config: SubWorkflowConfig) -> Any:
        control = control_of(ctx)
        child_id = (ctx.state or {}).get("child") if ctx.resumed else None
        if not isinstance(child_id, str):
            data = await ctx.render(config.input)
            workflow_id = str(await ctx.render(config.workflow_id))
            try:
                child_id = await control.start_child(
                    ctx,
                    data=data,
                    workflow_id=workflow_id,
                    version=config.version,
                    trigger_type="sub_workflow" if config.wait else DETACHED,
                )
            except ControlError as e:
                raise start_failed(e) from e
            if not config.wait:
                return {"execution_id": child_id}
        child = await control.store.child(child_id)
        if child is not None and child.status.terminal:
            if child.status is ExecutionStatus.SUCCEEDED:
                return child.output
            raise child_failed("sub-workflow", child_id, child.status, child.error)
        known = child_id

        async def _ended() -> bool:
            now = await control.store.child(known)
            return now is not None and now.status.terminal

        return Suspend(
            until=ctx.now + poll_delay(control),
            state={"child": child_id},
            wake_on=WAKE_CHILDREN,
            recheck=_ended,
        )
