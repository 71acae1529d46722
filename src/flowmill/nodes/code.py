"""Running user code from nodes: scope, limits and logs (shared by code-bearing nodes)."""

from __future__ import annotations

from typing import Any

from flowmill.domain.errors import NodeError, SandboxUnavailable
from flowmill.engine.services import CodeLimits
from flowmill.nodes.base import NodeContext


def limits_for(ctx: NodeContext, timeout_s: float | None, memory_mb: int | None) -> CodeLimits:
    """The node's limits, defaulted and capped by the settings."""
    default = ctx.services.code_limits
    cap = ctx.services.max_code_limits
    return CodeLimits(
        timeout_s=min(timeout_s or default.timeout_s, cap.timeout_s),
        memory_mb=min(memory_mb or default.memory_mb, cap.memory_mb),
        max_output_bytes=min(default.max_output_bytes, cap.max_output_bytes),
    )


async def run_code(
    ctx: NodeContext, language: str, code: str, timeout_s: float | None, memory_mb: int | None
) -> Any:
    """Run ``code`` in the sandbox with the node's scope; its console goes to the log.

    The console lines of a failed run are logged too (the sandbox hands them over in
    the error's ``details["logs"]``), so users can see what happened before it failed.
    """
    runner = ctx.services.code
    if runner is None:
        raise SandboxUnavailable("no sandbox is configured to run code")
    try:
        result = await runner.run(
            language, code, ctx.scope().names(), limits_for(ctx, timeout_s, memory_mb)
        )
    except NodeError as e:
        for line in e.details.pop("logs", None) or ():
            ctx.log.info(str(line), source="console")
        raise
    for line in result.logs:
        ctx.log.info(line, source="console")
    return result.value
