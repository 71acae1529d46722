"""Config of the function and custom_code node types (no sandbox needed)."""

from __future__ import annotations

import pydantic
import pytest

from flowmill.nodes.custom_code import CustomCodeNode
from flowmill.nodes.function import FunctionNode
from flowmill.nodes.registry import NodeRegistry


def test_sandbox_nodes_config_function_config_accepts_the_seed() -> None:
    node = FunctionNode()
    config = node.parse_config({"code": 'return { result: input.data.message + " processed" };'})
    assert config.timeout_s is None
    assert node.config_issues(config, expressions_enabled=True) == []


def test_sandbox_nodes_config_function_config_reports_a_missing_sandbox() -> None:
    node = FunctionNode()
    config = node.parse_config({"code": "return 1"})
    issues = node.config_issues(config, expressions_enabled=False)
    assert issues == ["code needs the JavaScript sandbox, which is not available here"]


def test_sandbox_nodes_config_function_code_is_not_checked_as_a_template() -> None:
    node = FunctionNode()
    config = node.parse_config({"code": "return `{{ ${1 + 1} }}` + '{{'"})
    assert node.config_issues(config, expressions_enabled=True) == []


def test_sandbox_nodes_config_function_config_rejects_bad_limits_and_unknown_fields() -> None:
    node = FunctionNode()
    with pytest.raises(pydantic.ValidationError):
        node.parse_config({"code": "return 1", "timeout_s": 0})
    with pytest.raises(pydantic.ValidationError):
        node.parse_config({"code": "return 1", "language": "python"})
    with pytest.raises(pydantic.ValidationError):
        node.parse_config({"code": ""})


def test_sandbox_nodes_config_custom_code_config_takes_both_languages() -> None:
    node = CustomCodeNode()
    assert node.parse_config({"code": "return 1"}).language == "javascript"
    config = node.parse_config({"language": "python", "code": "return 1", "memory_mb": 64})
    assert config.language == "python"
    assert node.config_issues(config, expressions_enabled=False) == [
        "python code needs the sandbox, which is not available here"
    ]
    with pytest.raises(pydantic.ValidationError):
        node.parse_config({"language": "ruby", "code": "1"})


def test_sandbox_nodes_config_code_nodes_refer_to_the_nodes_their_code_reads() -> None:
    node = CustomCodeNode()
    config = node.parse_config({"code": "return nodes.fetch.output.x + nodes['other'].output"})
    assert node.referenced_nodes(config) == {"fetch", "other"}


def test_sandbox_nodes_config_code_nodes_register_by_type_name() -> None:
    registry = NodeRegistry([FunctionNode, CustomCodeNode])
    assert "function" in registry
    assert "custom_code" in registry
