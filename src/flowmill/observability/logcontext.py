"""What every log line of a step carries: tenant, execution, workflow, node, attempt.

Bound in structlog's context variables around the node's call (node middleware), so
whatever logs inside it, the node, the HTTP client, the sandbox supervisor, says which
step it was working for. The engine binds the job's identity around the whole job
(:func:`job_context`), which covers its checkpoints too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import structlog

from flowmill.engine.middleware import Invocation, NodeCall
from flowmill.engine.ports import Job, StepJob


@contextlib.contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Bind ``values`` in structlog's context variables for the block, then put back
    what was there.

    structlog's own ``bound_contextvars`` first copies the whole context to learn what
    to restore; around every step (twice) that was a tenth of a 200-way fan-out's event
    loop. The tokens of the ``set`` restore the same values for the cost of a reset.
    """
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


async def context_middleware(inv: Invocation, nxt: NodeCall) -> Any:
    """Bind the step's identity for the node's call."""
    ctx = inv.ctx
    with bound(
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
