"""The function and custom_code node types running on the real sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from flowmill.domain.errors import NodeError
from flowmill.domain.workflow import Node
from flowmill.engine.services import NodeServices
from flowmill.nodes.base import NodeContext, NodeLogger
from flowmill.nodes.custom_code import CustomCodeNode
from flowmill.nodes.function import FunctionNode
from flowmill.nodes.response import ResponseNode
from flowmill.sandbox import Jail, Sandbox, SandboxSettings
from tests.conftest import unavailable

NOW = datetime(2026, 1, 1, tzinfo=UTC)
JAIL = Jail.detect()


@pytest.fixture
async def services() -> AsyncIterator[NodeServices]:
    async with Sandbox(SandboxSettings(js_workers=1, python_spare_processes=0), JAIL) as sb:
        yield NodeServices(
            code=sb,
            expressions=sb,
            code_limits=sb.settings.default_limits,
            max_code_limits=sb.settings.max_limits,
        )


def context(services: NodeServices, node_type: str, input: Any) -> NodeContext:
    return NodeContext(
        node=Node(id="n1", type=node_type),
        execution_id="e1",
        workflow_id="w1",
        tenant_id="t1",
        attempt=1,
        input=input,
        trigger={"type": "webhook.test", "data": input.get("data") if input else None},
        nodes={},
        variables={"greeting": "hi"},
        execution={"id": "e1"},
        idempotency_key="e1:n1:1",
        now=NOW,
        services=services,
        log=NodeLogger("n1", 1, NOW),
    )


async def test_sandbox_nodes_function_node_runs_the_seed_and_response_renders_it(
    services: NodeServices,
) -> None:
    trigger_output = {"type": "webhook.test", "data": {"message": "hello"}}
    node = FunctionNode()
    config = node.parse_config({"code": 'return { result: input.data.message + " processed" };'})
    output = await node.execute(context(services, "function", trigger_output), config)
    assert output == {"result": "hello processed"}
    response = ResponseNode()
    rconfig = response.parse_config({"template": "The processed result is: {{result}}"})
    rendered = await response.execute(context(services, "response", output), rconfig)
    assert rendered == "The processed result is: hello processed"


async def test_sandbox_nodes_function_node_logs_console_lines_even_when_it_fails(
    services: NodeServices,
) -> None:
    node = FunctionNode()
    ctx = context(services, "function", {"data": {}})
    config = node.parse_config(
        {"code": "console.log('step 1', vars.greeting)\nthrow new Error('no')"}
    )
    with pytest.raises(NodeError) as info:
        await node.execute(ctx, config)
    assert info.value.message == "Error: no (line 2: throw new Error('no'))"
    assert [(line.message, line.metadata) for line in ctx.log.lines] == [
        ("step 1 hi", {"source": "console"})
    ]


async def test_sandbox_nodes_function_node_limits_are_capped_by_the_settings(
    services: NodeServices,
) -> None:
    node = FunctionNode()
    config = node.parse_config({"code": "while (true) {}", "timeout_s": 0.3})
    with pytest.raises(NodeError) as info:
        await node.execute(context(services, "function", {}), config)
    assert info.value.type == "SandboxTimeout"
    assert info.value.details["timeout_s"] == 0.3


async def test_sandbox_nodes_custom_code_node_runs_javascript(services: NodeServices) -> None:
    node = CustomCodeNode()
    config = node.parse_config({"code": "return data.items.map((x) => x * 2)"})
    ctx = context(services, "custom_code", {"data": {"items": [1, 2]}})
    assert await node.execute(ctx, config) == [2, 4]


async def test_sandbox_nodes_custom_code_node_runs_python_and_logs_prints(
    services: NodeServices,
) -> None:
    if not JAIL.available:
        unavailable("no bubblewrap")
    node = CustomCodeNode()
    code = "print('adding')\nreturn {'sum': sum(input['data']['items']), 'hi': vars['greeting']}"
    config = node.parse_config({"language": "python", "code": code, "memory_mb": 64})
    ctx = context(services, "custom_code", {"data": {"items": [1, 2, 3]}})
    assert await node.execute(ctx, config) == {"sum": 6, "hi": "hi"}
    assert [line.message for line in ctx.log.lines] == ["adding"]


async def test_sandbox_nodes_code_nodes_without_a_sandbox_fail_as_unavailable() -> None:
    node = FunctionNode()
    config = node.parse_config({"code": "return 1"})
    with pytest.raises(NodeError) as info:
        await node.execute(context(NodeServices(), "function", {}), config)
    assert info.value.type == "SandboxUnavailable"
