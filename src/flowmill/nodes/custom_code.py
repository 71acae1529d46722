"""``custom_code``: user code in JavaScript or Python, run in the sandbox.

JavaScript: the body of an async function, as in the ``function`` node.

Python: the body of a function ``main(input, trigger, nodes, vars, execution, ...)``
(every scope name that is a Python identifier is a parameter) whose return value is the
node's output; without a ``return`` the output is ``null``. The value must be JSON
(dicts, lists, strings, numbers, booleans, ``None``). ``print`` goes to the execution's
logs. For example::

    total = sum(line["amount"] for line in input["data"]["lines"])
    print("lines:", len(input["data"]["lines"]))
    return {"total": total}

Python code runs in a fresh process in a bubblewrap jail (no network, no host files,
standard library only, no ``ctypes``); where bubblewrap is missing it is refused unless
the sandbox settings allow rlimit-only isolation.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flowmill.nodes.base import NodeConfig, NodeContext, NodeType
from flowmill.nodes.code import run_code


class CustomCodeConfig(NodeConfig):
    """``language``: ``javascript`` or ``python``. ``code``: a function body.
    ``timeout_s``/``memory_mb``: limits of one run (capped by the sandbox settings)."""

    language: Literal["javascript", "python"] = "javascript"
    code: str = Field(min_length=1)
    timeout_s: float | None = Field(default=None, gt=0)
    memory_mb: int | None = Field(default=None, gt=0)


class CustomCodeNode(NodeType[CustomCodeConfig]):
    """Outputs what the code returns."""

    type_name = "custom_code"
    Config = CustomCodeConfig
    code_fields = ("code",)
    default_timeout_s = 90.0
    description = "Run JavaScript or Python and output what it returns."

    def config_issues(self, config: CustomCodeConfig, *, expressions_enabled: bool) -> list[str]:
        issues = super().config_issues(config, expressions_enabled=expressions_enabled)
        if not expressions_enabled:
            issues.append(f"{config.language} code needs the sandbox, which is not available here")
        return issues

    async def execute(self, ctx: NodeContext, config: CustomCodeConfig) -> Any:
        return await run_code(ctx, config.language, config.code, config.timeout_s, config.memory_mb)
