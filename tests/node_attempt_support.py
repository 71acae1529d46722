"""One node attempt outside the engine: a :class:`NodeContext` over given services."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flowmill.domain.workflow import Node
from flowmill.engine.services import NodeServices
from flowmill.nodes.base import NodeContext, NodeLogger, NodeType


def node_context(
    services: NodeServices,
    *,
    node_type: str,
    node_id: str = "n",
    tenant_id: str = "acme",
    attempt: int = 1,
    input: Any = None,
    trigger: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> NodeContext:
    """The context of attempt ``attempt`` of node ``node_id`` in execution ``ex1``."""
    now = now or datetime.now(UTC)
    return NodeContext(
        node=Node(id=node_id, type=node_type),
        execution_id="ex1",
        workflow_id="wf1",
        tenant_id=tenant_id,
        attempt=attempt,
        input=input,
        trigger=trigger or {},
        nodes={},
        variables={},
        execution={"id": "ex1", "workflow_id": "wf1"},
        idempotency_key=f"ex1:{node_id}:{attempt}",
        now=now,
        services=services,
        log=NodeLogger(node_id, attempt, now),
    )


async def run_node(
    node: NodeType[Any], config: dict[str, Any], services: NodeServices, **ctx: Any
) -> Any:
    """Parse ``config`` and run one attempt of ``node``."""
    context = node_context(services, node_type=node.type_name, **ctx)
    return await node.execute(context, node.parse_config(config))
