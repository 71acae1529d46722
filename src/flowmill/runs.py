"""Running a workflow definition to completion in this process (``flowmill run``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowmill.constants import DEFAULT_TENANT
from flowmill.domain.definition import dump_definition, load_definition
from flowmill.domain.execution import ExecutionRecord, NodeRun
from flowmill.runtime import Runtime


@dataclass
class RunReport:
    """How a local run ended."""

    execution: ExecutionRecord
    runs: list[NodeRun]
    logs: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` document: execution id, status, output, every node, and the
        nodes' log lines (``console.log`` / ``print`` output among them)."""
        nodes: dict[str, dict[str, Any]] = {}
        for r in self.runs:  # oldest first, so the latest attempt wins
            entry = nodes.setdefault(r.node_id, {"attempts": 0})
            entry.update(status=r.status.value, output=r.output, error=r.error)
            entry["attempts"] = max(entry["attempts"], r.attempt)
        return {
            "execution_id": self.execution.id,
            "status": self.execution.status.value,
            "output": self.execution.output,
            "error": self.execution.error,
            "nodes": nodes,
            "logs": self.logs,
        }


async def register(
    rt: Runtime, document: dict[str, Any], tenant_id: str | None
) -> tuple[str, int, str]:
    """Store ``document`` as a workflow (a new version when it changed).

    Returns:
        (workflow id, version to run, tenant id).
    """
    from flowmill.validation import check_document

    # every problem at once, against this engine's node types, before anything is stored
    check_document(
        document, rt.engine.registry, expressions_enabled=rt.engine.services.sandbox_available
    ).raise_for_issues()
    workflow = load_definition(document)
    tenant = tenant_id or workflow.tenant_id or DEFAULT_TENANT
    await rt.workflows.ensure_tenant(tenant)
    canonical = dump_definition(workflow)
    publish = workflow.status == "active"
    existing = await rt.workflows.find_by_name(tenant, workflow.name)
    if existing is None:
        record = await rt.workflows.create(tenant, canonical, publish=publish)
    else:
        record, _ = await rt.workflows.add_version(tenant, existing.id, canonical, publish=publish)
    return record.id, record.latest_version, tenant


async def run_document(
    rt: Runtime,
    document: dict[str, Any],
    data: Any,
    *,
    tenant_id: str | None = None,
    timeout_s: float | None = None,
) -> RunReport:
    """Register ``document``, execute it with ``data`` and wait for the end.

    The engine's worker must be running (``rt.engine.running()``).
    """
    workflow_id, version, tenant = await register(rt, document, tenant_id)
    execution_id = await rt.engine.start_execution(
        tenant_id=tenant,
        workflow_id=workflow_id,
        version=version,
        data=data,
        trigger_type="manual",
    )
    execution = await rt.engine.wait(execution_id, timeout=timeout_s)
    return RunReport(
        execution,
        await rt.executions.node_runs(execution_id),
        await execution_logs(rt, tenant, execution_id),
    )


async def execution_logs(rt: Runtime, tenant_id: str, execution_id: str) -> list[dict[str, Any]]:
    """The log lines of an execution, oldest first, as ``{node_id, level, message}``."""
    from flowmill.store.queries import ExecutionQueries

    lines, _ = await ExecutionQueries(rt.db).logs(tenant_id, execution_id, None, 10_000)
    return [{"node_id": x.node_id, "level": x.level, "message": x.message} for x in lines]
