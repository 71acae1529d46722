"""``loop``: runs a body once per item, each iteration a durable child execution.

The body is the node's inline ``body: {nodes, edges}`` (its trigger gets ``{item, index,
items, input}``; templates also see ``item`` and ``index``) or another workflow
(``workflow_id``). The node never holds a worker while iterations run: each time it
runs it reads its children's counts, starts the iterations the window allows (one at a
time in ``sequential`` mode, ``concurrency`` in ``parallel``), and parks until a child
ends. Everything it decides from is in the database, so a crash at any moment resumes
where the loop was: an iteration is started once (the start is deduplicated by parent,
node and index) and its result is the child's row, recorded once.

Outputs are collected in item order, a page of children at a time, when the last one
ends; memory stays flat in the number of items while they run.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Literal

from pydantic import Field, model_validator

from flowmill.domain.errors import ChildFailed, NodeError, NodeFailure
from flowmill.domain.states import ExecutionStatus
from flowmill.engine import templates
from flowmill.engine.conditions import Condition
from flowmill.engine.control import LOOP_MARK, WAKE_CHILDREN, Control, ControlError
from flowmill.nodes._children import child_failed, control_of, poll_delay, start_failed
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType, Suspend
from flowmill.nodes.conditional import truth


class InvalidLoop(NodeFailure):
    """The loop's count or items, as rendered for this run, cannot be iterated."""


class MaxIterationsExceeded(NodeFailure):
    """More iterations than the loop's ``max_iterations``."""


#: Items passed whole to each iteration's trigger up to this many (beyond, each
#: iteration would store the whole list again: n² storage).
ITEMS_IN_TRIGGER = 100
_PAGE = 500


class LoopConfig(NodeConfig):
    """One of ``items`` (a template giving an array), ``count`` or ``while`` (a
    structured condition seeing ``index``, ``last`` and ``input``); one of ``body`` or
    ``workflow_id``."""

    items: Any = None
    count: int | str | None = None
    while_: Condition | None = Field(None, alias="while")
    max_iterations: int = Field(1000, ge=1)
    body: dict[str, Any] | None = None
    workflow_id: str | None = None
    version: int | None = Field(None, ge=1)
    mode: Literal["sequential", "parallel"] = "sequential"
    concurrency: int = Field(10, ge=1, le=1000)
    on_item_error: Literal["fail", "continue"] = "fail"

    @model_validator(mode="after")
    def _one_of_each(self) -> LoopConfig:
        given = [k for k in ("items", "count", "while_") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of items, count or while")
        if (self.body is None) == (self.workflow_id is None):
            raise ValueError("give exactly one of body or workflow_id")
        if self.while_ is not None and self.mode == "parallel":
            raise ValueError("a while loop is sequential: each test sees the last output")
        return self


class LoopNode(NodeType[LoopConfig]):
    """Repeats a body over items; outputs the iterations' outputs in item order."""

    type_name = "loop"
    Config = LoopConfig
    code_fields = ("body",)
    default_timeout_s = 120.0
    description = "Run a body (inline or another workflow) for each item, in order or in parallel."

    def config_issues(self, config: LoopConfig, *, expressions_enabled: bool) -> list[str]:
        # The body's templates belong to the body's own graph, checked when it runs.
        issues = []
        for key in ("items", "count", "while"):
            value = config.model_dump(by_alias=True).get(key)
            issues.extend(
                templates.expression_issues(value, expressions_enabled=expressions_enabled)
            )
        return issues

    def referenced_nodes(self, config: LoopConfig) -> set[str]:
        found: set[str] = set()
        for value in (config.items, config.count):
            found |= templates.referenced_nodes(value)
        if config.while_ is not None:
            found |= templates.referenced_nodes(config.while_.model_dump(by_alias=True))
        return found

    async def execute(self, ctx: NodeContext, config: LoopConfig) -> Any:
        control = control_of(ctx)
        cap = min(config.max_iterations, control.settings.max_iterations)
        items = await self._items(ctx, config, cap)
        # What the last committed suspension knew: iterations below ``low`` ended, those
        # below ``issued`` were started. Only the iterations between are read, so a step
        # costs the same at item 10 and item 100,000.
        low, issued = _saved(ctx, "low", 0), _saved(ctx, "issued", 0)
        states = await self._window(ctx, control, low, issued)
        if config.on_item_error == "fail" and any(s in _BAD for s in states.values()):
            await self._fail_fast(ctx, control)
        while states.get(low) is not None and states[low].terminal:
            low += 1
        ended_above = sum(1 for i, s in states.items() if i >= low and s.terminal)
        ended, started = low + ended_above, issued
        window = 1 if config.mode == "sequential" else config.concurrency
        total = len(items) if items is not None else None
        if total is None:  # while: decide whether to go on when nothing is running
            if started == ended:
                if await self._go_on(ctx, config, control, started):
                    if started >= cap:
                        raise _too_many(cap)
                    total = started + 1
                else:
                    return await self._collect(ctx, config, control, started)
            else:
                total = started
        stop = min(total, ended + window)
        # From where the last committed suspension said it had started: a batch cut by a
        # crash is started again whole (the starts it had made are found, not repeated),
        # so no index is left out whatever order the batch's starts committed in.
        await asyncio.gather(
            *(
                self._start(ctx, config, control, i, items[i] if items is not None else None, items)
                for i in range(issued, stop)
            )
        )
        started = max(issued, stop)
        if items is not None and ended >= total:
            return await self._collect(ctx, config, control, total)

        async def _more_ended() -> bool:
            now = await self._window(ctx, control, low, started)
            return sum(1 for s in now.values() if s.terminal) > ended_above

        return Suspend(
            until=ctx.now + poll_delay(control),
            state={"low": low, "issued": started},
            wake_on=WAKE_CHILDREN,
            recheck=_more_ended,
        )

    @staticmethod
    async def _window(
        ctx: NodeContext, control: Control, start: int, stop: int
    ) -> dict[int, ExecutionStatus]:
        if stop <= start:
            return {}
        return dict(await control.store.child_states(ctx.execution_id, ctx.node.id, start, stop))

    async def _items(self, ctx: NodeContext, config: LoopConfig, cap: int) -> list[Any] | None:
        if config.while_ is not None:
            return None
        if config.count is not None:
            raw = await ctx.render(config.count)
            try:
                n = int(raw)
            except (TypeError, ValueError) as e:
                raise InvalidLoop(f"count is not a whole number: {raw!r}") from e
            if n < 0:
                raise InvalidLoop("count is negative")
            if n > cap:
                raise _too_many(cap, n)
            return list(range(n))
        value = await ctx.render(config.items)
        if value is None:
            value = []
        if not isinstance(value, list):
            raise InvalidLoop(
                f"items is not an array but {type(value).__name__}: check the template "
                f"{config.items!r}"
            )
        if len(value) > cap:
            raise _too_many(cap, len(value))
        return value

    async def _start(
        self,
        ctx: NodeContext,
        config: LoopConfig,
        control: Control,
        index: int,
        item: Any,
        items: list[Any] | None,
    ) -> None:
        data = {
            "item": item,
            "index": index,
            "items": items
            if items is not None and config.count is None and len(items) <= ITEMS_IN_TRIGGER
            else None,
            "input": ctx.input,
        }
        try:
            await control.start_child(
                ctx,
                data=data,
                iteration=index,
                workflow_id=config.workflow_id,
                version=config.version,
                body=ctx.node.id if config.body is not None else None,
                trigger_type="loop",
                mark={LOOP_MARK: True},
            )
        except ControlError as e:
            raise start_failed(e) from e

    async def _go_on(
        self, ctx: NodeContext, config: LoopConfig, control: Control, index: int
    ) -> bool:
        assert config.while_ is not None
        last = None
        if index > 0:
            prev = await control.store.children(ctx.execution_id, ctx.node.id, index - 1, index)
            last = prev[0].output if prev else None
        scope = {**ctx.extra_scope, "index": index, "last": last}
        return await truth(dataclasses.replace(ctx, extra_scope=scope), config.while_)

    async def _fail_fast(self, ctx: NodeContext, control: Control) -> None:
        """An iteration failed with ``on_item_error: fail``: stop the others, fail."""
        first = None
        start = 0
        while first is None:
            page = await control.store.children(ctx.execution_id, ctx.node.id, start, start + _PAGE)
            if not page:
                break
            first = next((c for c in page if c.status in _BAD), None)
            start += _PAGE
        for child_id in await control.store.live_children(ctx.execution_id):
            await control.cancel(child_id, "another iteration of its loop failed")
        if first is None:  # pragma: no cover - counts said one failed
            raise ChildFailed("an iteration failed")
        err = child_failed(f"iteration {first.iteration}:", first.id, first.status, first.error)
        raise err

    async def _collect(
        self, ctx: NodeContext, config: LoopConfig, control: Control, total: int
    ) -> Any:
        results: list[Any] = []
        errors: list[dict[str, Any]] = []
        for start in range(0, total, _PAGE):
            page = await control.store.children(
                ctx.execution_id, ctx.node.id, start, min(total, start + _PAGE)
            )
            for child in page:
                if child.status is ExecutionStatus.SUCCEEDED:
                    results.append(child.output)
                    continue
                if config.on_item_error == "fail":
                    raise child_failed(
                        f"iteration {child.iteration}:", child.id, child.status, child.error
                    )
                results.append(None)
                errors.append(
                    {"index": child.iteration, "execution_id": child.id, "error": child.error}
                )
        if config.on_item_error == "continue":
            return {"results": results, "errors": errors}
        return results


_BAD = (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)


def _saved(ctx: NodeContext, key: str, default: int) -> int:
    """A count the node saved with its last suspension (``default`` before any)."""
    value = (ctx.state or {}).get(key) if ctx.resumed else None
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _too_many(cap: int, n: int | None = None) -> NodeError:
    said = f"{n} items" if n is not None else "the while condition still holds"
    return MaxIterationsExceeded(f"{said}: over max_iterations ({cap})")
