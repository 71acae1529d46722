"""Cross-cutting concerns around node execution, as middleware (not in node code).

A middleware takes the call context and the next callable. The chain ends in
:func:`call_node`, which runs the node type's ``execute``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from flowmill import jsonutil
from flowmill.domain.errors import InvalidOutput, NodeError, NodeTimeout, OutputTooLarge
from flowmill.engine.compiled import CompiledNode
from flowmill.nodes.base import NodeContext, Suspend

NodeCall = Callable[["Invocation"], Awaitable[Any]]
Middleware = Callable[["Invocation", NodeCall], Awaitable[Any]]
log = structlog.get_logger("flowmill.node")


@dataclass
class Invocation:
    """One call of a node: what runs, with what, under which limit."""

    node: CompiledNode
    ctx: NodeContext
    timeout_s: float | None


async def call_node(inv: Invocation) -> Any:
    """The end of the chain: the node type's own code."""
    return await inv.node.type.execute(inv.ctx, inv.node.config)


def chain(middlewares: Sequence[Middleware]) -> NodeCall:
    """Compose middleware around :func:`call_node` (first listed is outermost)."""
    call: NodeCall = call_node
    for mw in reversed(middlewares):
        call = _bind(mw, call)
    return call


def _bind(mw: Middleware, nxt: NodeCall) -> NodeCall:
    async def _call(inv: Invocation) -> Any:
        return await mw(inv, nxt)

    return _call


async def timeout_middleware(inv: Invocation, nxt: NodeCall) -> Any:
    """Fail the attempt with ``NodeTimeout`` when it runs past its limit."""
    if inv.timeout_s is None:
        return await nxt(inv)
    try:
        async with asyncio.timeout(inv.timeout_s):
            return await nxt(inv)
    except TimeoutError as e:
        raise NodeTimeout(
            f"node {inv.node.node.id!r} did not finish within {inv.timeout_s:g} s"
        ) from e


def output_limit_middleware(max_bytes: int) -> Middleware:
    """Reject outputs that are not JSON or exceed ``max_bytes`` once encoded."""

    async def _mw(inv: Invocation, nxt: NodeCall) -> Any:
        result = await nxt(inv)
        # A suspension's state is stored as JSON; its recheck (a function) is not.
        value = result.state if isinstance(result, Suspend) else getattr(result, "output", result)
        try:
            size = len(jsonutil.dumpb(value))
        except TypeError as e:
            raise InvalidOutput(f"output is not JSON: {e}") from e
        if size > max_bytes:
            raise OutputTooLarge(f"output is {size} bytes, over the {max_bytes}-byte limit")
        return result

    return _mw


async def logging_middleware(inv: Invocation, nxt: NodeCall) -> Any:
    """Log failures with the execution's context bound (slow path only)."""
    started = time.perf_counter()
    try:
        return await nxt(inv)
    except NodeError as e:
        log.info(
            "node attempt failed",
            execution_id=inv.ctx.execution_id,
            node_id=inv.ctx.node.id,
            attempt=inv.ctx.attempt,
            error=str(e),
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        raise
