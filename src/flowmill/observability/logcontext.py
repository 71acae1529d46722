"""What every log line of a step carries: tenant, execution, workflow, node, attempt.

Bound in structlog's context variables around the node's call (node middleware), so
whatever logs inside it, the node, the HTTP client, the sandbox supervisor, says which
step it was working for. The engine binds the job's identity around the whole job
(:func:`job_context`), which covers its checkpoints too.
"""

from __future__ import annotations

from typing import Any

import structlog

from flowmill.engine.middleware import Invocation, NodeCall
from flowmill.engine.ports import Job, StepJob


async def context_middleware(inv: Invocation, nxt: NodeCall) -> Any:
    """Bind the step's identity for the node's call."""
    ctx = inv.ctx
    with structlog.contextvars.bound_contextvars(
        tenant_id=ctx.tenant_id,
        workflow_id=ctx.workflow_id,
        execution_id=ctx.execution_id,
        node_id=ctx.node.id,
        attempt=ctx.attempt,
    ):
        return await nxt(inv)


def job_context(job: Job) -> dict[str, Any]:
    """The identity of a queue job, for the log lines written while it is handled."""
    if isinstance(job, StepJob):
        return {
            "tenant_id": job.tenant_id,
            "execution_id": job.execution_id,
            "node_id": job.node_id,
            "attempt": job.attempt,
        }
    return {"tenant_id": job.tenant_id, "workflow_id": job.workflow_id or None}
