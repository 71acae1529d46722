"""Records → response bodies, and request bodies → stored definitions."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from flowmill.api.schemas import (
    ExecutionDetail,
    ExecutionSummaryOut,
    NodeRunOut,
    PublishWarning,
    Version,
    VersionDefinitionIn,
    VersionSummary,
    Workflow,
    WorkflowDefinitionIn,
    WorkflowSummary,
)
from flowmill.domain.definition import dump_definition, load_definition
from flowmill.domain.execution import ExecutionRecord, NodeRun
from flowmill.domain.seed_shapes import SEED_SETTINGS
from flowmill.engine.engine import Engine
from flowmill.ids import version_id
from flowmill.store.queries import ExecutionSummary
from flowmill.store.workflow_queries import VersionRecord
from flowmill.store.workflows import WorkflowRecord

# What ``{"name": "..."}`` alone creates: a workflow that can be started by hand and
# grown version by version (as in the seeds' "create, then add a version" flow).
STARTER_NODES = [{"id": "trigger", "type": "trigger", "config": {"triggerType": "manual"}}]
_NOT_STORED = ("id", "version", "active", "status", "tenant_id", "tenantId", "enabled")
_GRAPH = ("nodes", "edges", "steps", "actions", "trigger")


def duration_ms(start: datetime | None, end: datetime | None) -> float | None:
    """Milliseconds from ``start`` to ``end`` (``None`` until both are known)."""
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000, 3)


def document_of(
    body: WorkflowDefinitionIn | VersionDefinitionIn, latest: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The seed-format document a request carried, without the fields the API owns.

    For an existing workflow (``latest``: its latest definition), a body without a name
    keeps the workflow's name and one without a graph keeps its graph; a new workflow
    without a graph starts with one manual trigger.
    """
    doc = body.model_dump(exclude_none=True)
    for key in _NOT_STORED:
        doc.pop(key, None)
    if latest is not None and "name" not in doc:
        doc = {"name": latest.get("name"), **doc}
    if not {"nodes", "steps", "actions"} & set(doc):
        if latest is not None:
            doc.update({k: latest[k] for k in _GRAPH if k in latest})
        else:
            doc["nodes"] = [dict(n) for n in STARTER_NODES]
    return doc


def patched_document(latest: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``latest`` with the top-level fields of ``changes`` (a request body, ``None``s left
    out) replacing its own; the fields the API owns are not taken from either."""
    changes = {k: v for k, v in changes.items() if k not in _NOT_STORED}
    doc = {k: v for k, v in latest.items() if k not in _NOT_STORED}
    if "steps" in changes or "actions" in changes:
        doc.pop("nodes", None)
        doc.pop("edges", None)
    if "nodes" in changes or "edges" in changes:
        doc.pop("steps", None)
        doc.pop("trigger", None)
    # A seed 002 field replaces its one setting (the seed shapes refuse the two together).
    seeded = [name for name in SEED_SETTINGS if name in changes]
    if "settings" in changes or seeded:
        given = changes.pop("settings") if "settings" in changes else doc.get("settings")
        settings = dict(given or {})
        for name in seeded:
            *parents, key = SEED_SETTINGS[name]
            target = settings
            for parent in parents:
                inner = dict(target.get(parent) or {})
                target[parent] = inner
                target = inner
            target.pop(key, None)
        doc["settings"] = settings
    doc.update(changes)
    return doc


async def canonical(engine: Engine, document: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    """Validate ``document`` against this engine's node types and return the stored
    form: graph shape (``steps`` expanded), the caller's tenant.

    Validation runs in a worker thread: a large definition costs milliseconds of CPU,
    and on the event loop that time would stall every other request of every tenant.

    Raises:
        DefinitionError: It does not load or validate; each issue names its place.
    """
    return await asyncio.to_thread(_canonical, engine, document, tenant_id)


def _canonical(engine: Engine, document: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    from flowmill.validation import check_document

    # the one validation `flowmill validate` runs: every problem, by node id
    check_document(
        document, engine.registry, expressions_enabled=engine.services.sandbox_available
    ).raise_for_issues()
    workflow = load_definition(document)
    out = dump_definition(workflow)
    out.pop("status", None)
    out["tenant_id"] = tenant_id
    return out


def workflow_summary(r: WorkflowRecord) -> WorkflowSummary:
    """A workflow for lists."""
    return WorkflowSummary(
        id=r.id,
        name=r.name,
        description=r.description,
        status=r.status.value,
        tags=r.tags,
        latest_version=r.latest_version,
        active_version=r.active_version,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def workflow_out(r: WorkflowRecord) -> Workflow:
    """A workflow with its latest definition (and what its publish opened, if any)."""
    return Workflow(
        **workflow_summary(r).model_dump(),
        definition=r.definition,
        warnings=[_unverified(r.tenant_id, w) for w in r.unverified_webhooks],
    )


def _unverified(tenant_id: str, route: dict[str, str]) -> PublishWarning:
    path = f"/webhooks/{tenant_id}/{route['route']}"
    return PublishWarning(
        code="unverified_webhook",
        node_id=route["node_id"],
        path=path,
        message=(
            f"anyone who knows {path} can start this workflow: trigger node "
            f"{route['node_id']!r} names no provider; name one (with a secret) or register "
            "a webhook for the node with POST /api/webhooks"
        ),
    )


def version_summary(v: VersionRecord) -> VersionSummary:
    """A version for lists."""
    return VersionSummary(
        id=version_id(v.workflow_id, v.version),
        workflow_id=v.workflow_id,
        version=v.version,
        definition_hash=v.definition_hash,
        note=v.note,
        created_at=v.created_at,
        published_at=v.published_at,
        active=v.active,
        latest=v.latest,
    )


def version_out(v: VersionRecord) -> Version:
    """A version with its definition."""
    return Version(**version_summary(v).model_dump(), definition=v.definition or {})


def execution_summary(s: ExecutionSummary) -> ExecutionSummaryOut:
    """An execution for lists."""
    return ExecutionSummaryOut(
        id=s.id,
        workflow_id=s.workflow_id,
        version=s.version,
        status=s.status,
        trigger_type=s.trigger_type,
        created_at=s.created_at,
        started_at=s.started_at,
        completed_at=s.completed_at,
        duration_ms=duration_ms(s.started_at, s.completed_at),
        retry_of=s.retry_of,
        parent_execution_id=s.parent_execution_id,
        parent_node_id=s.parent_node_id,
        iteration=s.iteration,
        metadata=s.metadata,
    )


def node_run_out(r: NodeRun) -> NodeRunOut:
    """One attempt of one node."""
    return NodeRunOut(
        node_id=r.node_id,
        status=r.status.value,
        attempt=r.attempt,
        input=r.input,
        output=r.output,
        error=r.error,
        started_at=r.started_at,
        completed_at=r.completed_at,
        duration_ms=duration_ms(r.started_at, r.completed_at),
    )


def execution_detail(ex: ExecutionRecord, runs: list[NodeRun]) -> ExecutionDetail:
    """An execution with its node runs."""
    return ExecutionDetail(
        id=ex.id,
        workflow_id=ex.workflow_id,
        version=ex.version,
        status=ex.status.value,
        trigger_type=ex.trigger_type,
        input=ex.trigger.get("data"),
        output=ex.output,
        error=ex.error,
        created_at=ex.created_at,
        started_at=ex.started_at,
        completed_at=ex.completed_at,
        duration_ms=duration_ms(ex.started_at, ex.completed_at),
        retry_of=ex.retry_of,
        parent_execution_id=ex.parent_execution_id,
        parent_node_id=ex.parent_node_id,
        iteration=ex.iteration,
        metadata=ex.metadata,
        nodes=[node_run_out(r) for r in runs],
    )
