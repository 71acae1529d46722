"""The seed workflow end to end through the engine (SQLite, local queue, real sandbox)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flowmill.domain.states import ExecutionStatus
from flowmill.engine.engine import Engine
from flowmill.engine.services import NodeServices
from flowmill.nodes.conditional import ConditionalNode
from flowmill.nodes.custom_code import CustomCodeNode
from flowmill.nodes.function import FunctionNode
from flowmill.nodes.registry import NodeRegistry
from flowmill.nodes.response import ResponseNode
from flowmill.nodes.transform import TransformNode
from flowmill.nodes.trigger import TriggerNode
from flowmill.queue.local import LocalQueue
from flowmill.sandbox import Sandbox, SandboxSettings
from flowmill.store import migrate
from flowmill.store.database import connect
from flowmill.store.execution_store import SqliteExecutionStore, SqlWorkerRegistry
from flowmill.store.workflows import WorkflowRepository

SEED = Path(__file__).resolve().parents[2] / ".." / "shared" / "examples" / "seed-webhook-test.json"
SEED_INLINE: dict[str, Any] = {
    "name": "Test Workflow",
    "tenant_id": "test-client",
    "status": "active",
    "nodes": [
        {"id": "trigger-1", "type": "trigger",
         "config": {"triggerType": "webhook", "actionType": "test"}},
        {"id": "process-1", "type": "function",
         "config": {"code": 'return { result: input.data.message + " processed" };'}},
        {"id": "response-1", "type": "response",
         "config": {"template": "The processed result is: {{result}}"}},
    ],
    "edges": [
        {"source": "trigger-1", "target": "process-1"},
        {"source": "process-1", "target": "response-1"},
    ],
}  # fmt: skip


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[Engine, WorkflowRepository]]:
    db = connect(f"sqlite+aiosqlite:///{tmp_path / 'flowmill.db'}")
    await migrate.upgrade(db)
    sandbox = Sandbox(SandboxSettings(js_workers=1))
    services = NodeServices(
        code=sandbox,
        expressions=sandbox,
        code_limits=sandbox.settings.default_limits,
        max_code_limits=sandbox.settings.max_limits,
    )
    registry = NodeRegistry(
        [TriggerNode, FunctionNode, CustomCodeNode, ResponseNode, TransformNode, ConditionalNode]
    )
    repo = WorkflowRepository(db)
    eng = Engine(
        store=SqliteExecutionStore(db),
        definitions=repo,
        queue=LocalQueue(),
        registry=registry,
        services=services,
        workers=SqlWorkerRegistry(db),
        kind="embedded",
    )
    try:
        async with eng.running():
            yield eng, repo
    finally:
        await sandbox.close()
        await db.close()


async def run(
    engine: Engine, repo: WorkflowRepository, definition: dict[str, Any], data: Any
) -> Any:
    await repo.ensure_tenant("test-client")
    wf = await repo.create("test-client", definition, publish=True)
    execution_id = await engine.start_execution(
        tenant_id="test-client",
        workflow_id=wf.id,
        version=wf.latest_version,
        data=data,
        trigger_type="webhook",
    )
    return await engine.wait(execution_id, timeout=30)


async def test_seed_workflow_runs_the_function_node_in_the_sandbox(
    engine: tuple[Engine, WorkflowRepository],
) -> None:
    definition = json.loads(SEED.read_text()) if SEED.exists() else SEED_INLINE
    record = await run(*engine, definition, {"message": "hello"})
    assert record.status is ExecutionStatus.SUCCEEDED, record.error
    assert record.output == "The processed result is: hello processed"


async def test_sandbox_errors_follow_the_nodes_on_error_rule(
    engine: tuple[Engine, WorkflowRepository],
) -> None:
    definition = json.loads(json.dumps(SEED_INLINE))
    definition["nodes"][1]["config"] = {"code": "while (true) {}", "timeout_s": 0.3}
    definition["nodes"][1]["on_error"] = "continue"
    definition["nodes"][2]["config"] = {"body": "{{input}}"}
    record = await run(*engine, definition, {"message": "hello"})
    assert record.status is ExecutionStatus.SUCCEEDED, record.error
    assert "SandboxTimeout" in json.dumps(record.output)
    runs = await engine[0].store.node_runs(record.id)
    failed = [r for r in runs if r.node_id == "process-1"]
    assert failed[0].error is not None
    assert failed[0].error["type"] == "SandboxTimeout"


async def test_sandbox_seed_workflow_string_conditions_and_expressions_run_in_the_sandbox(
    engine: tuple[Engine, WorkflowRepository],
) -> None:
    definition = {
        "name": "Branch",
        "tenant_id": "test-client",
        "nodes": [
            {"id": "in", "type": "trigger", "config": {"triggerType": "webhook"}},
            {"id": "big", "type": "conditional", "config": {"condition": "input.data.total > 100"}},
            {"id": "yes", "type": "response",
             "config": {"template": "big order of {{ data.total * 2 }}"}},
            {"id": "no", "type": "response", "config": {"template": "small"}},
        ],
        "edges": [
            {"source": "in", "target": "big"},
            {"source": "big", "target": "yes", "sourceHandle": "true"},
            {"source": "big", "target": "no", "sourceHandle": "false"},
        ],
    }  # fmt: skip
    record = await run(*engine, definition, {"total": 150})
    assert record.status is ExecutionStatus.SUCCEEDED, record.error
    assert record.output == "big order of 300"
