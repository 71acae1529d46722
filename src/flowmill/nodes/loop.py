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
import heapq
import time
from collections.abc import Iterable
from typing import Any, Literal, cast

from pydantic import Field, model_validator

from flowmill.domain.errors import ChildFailed, NodeError, NodeFailure
from flowmill.domain.states import ExecutionStatus
from flowmill.engine import templates
from flowmill.engine.conditions import Condition
from flowmill.engine.control import (
    LOOP_MARK,
    WAKE_CHILDREN,
    ChildDrive,
    Control,
    ControlError,
    Driven,
    Then,
)
from flowmill.nodes._children import child_failed, control_of, poll_delay, start_failed
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType, Suspend
from flowmill.nodes.conditional import string_condition_issues, truth


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
    structured condition, or a JavaScript expression run in the sandbox, seeing
    ``index``, ``last`` and ``input``); one of ``body`` or ``workflow_id``."""

    items: Any = None
    count: int | str | None = None
    while_: Condition | str | None = Field(None, alias="while", union_mode="left_to_right")
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
            if isinstance(value, str) and key == "while":
                # A string ``while`` is JavaScript (as a conditional's condition is).
                issues.extend(string_condition_issues(value, expressions_enabled))
                continue
            issues.extend(
                templates.expression_issues(value, expressions_enabled=expressions_enabled)
            )
        return issues

    def referenced_nodes(self, config: LoopConfig) -> set[str]:
        found: set[str] = set()
        for value in (config.items, config.count):
            found |= templates.referenced_nodes(value)
        if isinstance(config.while_, str):
            found |= templates.nodes_in_code(config.while_)
        elif config.while_ is not None:
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
        window = 1 if config.mode == "sequential" else config.concurrency
        # An inline body's iterations are driven here (started and run in this step,
        # no queue round trip and no wake per iteration) for up to ``drive_s``; then the
        # node parks as below and goes on when it runs again. A body that parks (a
        # wait, a delay) or takes the queue is simply waited for like any child.
        drive = control.can_drive and config.body is not None and control.settings.drive_s > 0
        deadline = time.monotonic() + control.settings.drive_s
        # The iterations the last run of this step here left going when it parked.
        lanes = control.pick_up(ctx.execution_id, ctx.node.id) if drive else None
        if isinstance(lanes, _Lanes):
            await lanes.adopt()
            lanes.idx.next = max(lanes.idx.next, issued)
        else:
            lanes = _Lanes(_Indexes(issued))
        idx, driving = lanes.idx, lanes.driving
        lanes.until = max(lanes.until, deadline)
        known = await self._window(ctx, control, low, idx.next)
        for i in driving.values():
            known[i] = ExecutionStatus.RUNNING  # (until its drive says how it ended)
        then = None
        if items is not None:
            # An iteration driven here starts another, in its place, with the commit
            # that ends it (one commit per iteration instead of two).
            n = len(items)
            then = Then(
                claim=lambda: lanes.claim(n),
                back=idx.back,
                data=lambda i: _data(ctx, config, i, items),
                on=_GO_ON[config.on_item_error],
            )
        began = handed_over = False
        ended = asyncio.Event()
        if drive:
            control.driving(ctx.execution_id, True)
            ended = control.ended_event(ctx.execution_id)
        try:
            while True:
                if config.on_item_error == "fail" and any(s in _BAD for s in known.values()):
                    await _cancel_all(driving)
                    await self._fail_fast(ctx, control)
                while known.get(low) is not None and known[low].terminal:
                    del known[low]  # memory stays flat: only the open window is kept
                    low += 1
                ended_n = low + sum(1 for s in known.values() if s.terminal)
                total = len(items) if items is not None else None
                if total is None:  # while: decide whether to go on when nothing runs
                    if idx.next == ended_n:
                        if not await self._go_on(ctx, config, control, idx.next):
                            return await self._collect(ctx, config, control, idx.next)
                        if idx.next >= cap:
                            raise _too_many(cap)
                        total = idx.next + 1
                    else:
                        total = idx.next
                elif ended_n >= total:
                    return await self._collect(ctx, config, control, total)
                stop = min(total, ended_n + window)
                if not drive:
                    # From where the last committed suspension said it had started: a
                    # batch cut by a crash is started again whole (the starts it had
                    # made are found, not repeated), so no index is left out whatever
                    # order the batch's starts committed in.
                    await asyncio.gather(
                        *(self._start(ctx, config, control, i, items) for i in range(issued, stop))
                    )
                    idx.next = max(issued, stop)
                    break
                if time.monotonic() < deadline or not began:
                    # (each run starts at least one window, so a spent budget still goes
                    # on; a start repeated after a crash finds its child: it comes back
                    # with nothing to drive, and its end is learnt as another's is)
                    running = sum(1 for s in known.values() if not s.terminal)
                    indexes = idx.take(window - running, total)
                    if indexes:
                        # The free places of the window in one write (one commit on
                        # SQLite), then each child's steps in a task of its own.
                        began = True
                        drives = await self._run_children(
                            ctx, config, control, indexes, items, then
                        )
                        for i, steps in zip(indexes, drives, strict=True):
                            known.setdefault(i, ExecutionStatus.RUNNING)
                            if steps is not None:
                                driving[asyncio.ensure_future(steps)] = i
                            else:
                                ended.set()  # found started (after a crash): read its state
                # Children of the window not driven by this run (handed over by an
                # earlier run, found started, or queued): their ends set ``ended``.
                others = _others(known, driving)
                if not driving and not others:
                    break  # out of time: park
                left = deadline - time.monotonic()
                if left <= 0:
                    # Out of time: the children still running go on without this step
                    # (a slow body must not hold it past its own time-out), handed to
                    # its next run here; their ends wake it if it runs elsewhere.
                    if driving:
                        lanes.relay(control, ctx.execution_id, ctx.node.id)
                        handed_over = True
                        driving = {}
                    break
                if others and ended.is_set():
                    ended.clear()  # before the read: an end during it sets it again
                    now = await self._window(ctx, control, min(others), max(others) + 1)
                    known.update((i, now[i]) for i in others if i in now)
                    continue
                waits: set[asyncio.Future[Any]] = set(driving)
                watch = asyncio.ensure_future(ended.wait()) if others else None
                if watch is not None:
                    waits.add(watch)
                try:
                    done, _ = await asyncio.wait(
                        waits, timeout=left, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    if watch is not None:
                        watch.cancel()
                for fut in done:
                    if fut is watch:
                        continue  # another's end: read again at the top of the loop
                    i = driving.pop(cast("asyncio.Task[Driven]", fut))
                    result: Driven = fut.result()
                    status = result.status
                    known[i] = status if status is not None else ExecutionStatus.WAITING
                    if result.next is not None:  # its end started another in its place
                        j, _child, steps = result.next
                        idx.carried(j)
                        known.setdefault(j, ExecutionStatus.RUNNING)
                        if steps is not None:
                            driving[asyncio.ensure_future(steps)] = j
                        else:
                            ended.set()  # found started: read its state
        finally:
            await _cancel_all(driving)
            if drive:
                control.driving(ctx.execution_id, False)
        seen = sum(1 for s in known.values() if s.terminal)
        all_ended = not any(not s.terminal for s in known.values())
        go_on = drive and (all_ended or handed_over)

        async def _more_ended() -> bool:
            now = await self._window(ctx, control, low, idx.next)
            return sum(1 for s in now.values() if s.terminal) > seen

        return Suspend(
            # Out of time with everything started ended, or with drives relayed: go on
            # at once (the worker is free for other jobs between the two runs).
            until=ctx.now if go_on else ctx.now + poll_delay(control),
            state={"low": low, "issued": idx.issued},
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
        items: list[Any] | None,
    ) -> str:
        try:
            return await control.start_child(
                ctx,
                data=_data(ctx, config, index, items),
                iteration=index,
                **_child_args(ctx, config),
            )
        except ControlError as e:
            raise start_failed(e) from e

    async def _run_children(
        self,
        ctx: NodeContext,
        config: LoopConfig,
        control: Control,
        indexes: list[int],
        items: list[Any] | None,
        then: Then | None,
    ) -> list[ChildDrive | None]:
        try:
            started = await control.run_children(
                ctx,
                [(i, _data(ctx, config, i, items)) for i in indexes],
                then=then,
                **_child_args(ctx, config),
            )
        except ControlError as e:
            raise start_failed(e) from e
        return [steps for _child, steps in started]

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
#: The ends of an iteration that start another, by ``on_item_error``.
_GO_ON = {
    "fail": frozenset({ExecutionStatus.SUCCEEDED}),
    "continue": frozenset({ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED}),
}


def _data(ctx: NodeContext, config: LoopConfig, index: int, items: list[Any] | None) -> Any:
    """The trigger data of iteration ``index``."""
    whole = items is not None and config.count is None and len(items) <= ITEMS_IN_TRIGGER
    return {
        "item": items[index] if items is not None else None,
        "index": index,
        "items": items if whole else None,
        "input": ctx.input,
    }


def _child_args(ctx: NodeContext, config: LoopConfig) -> dict[str, Any]:
    """What every child of this loop is started with, whether one or a window at once."""
    return {
        "workflow_id": config.workflow_id,
        "version": config.version,
        "body": ctx.node.id if config.body is not None else None,
        "trigger_type": "loop",
        "mark": {LOOP_MARK: True},
    }


class _Indexes:
    """The iterations a run of the loop's step starts, in order: those given back
    first (claimed for a start that an iteration's end did not carry), then new ones.

    Attributes:
        next: Every iteration below it was started, claimed or given back.
        free: Given back, not started.
        claimed: Claimed for a start that a checkpoint in flight may carry.
    """

    def __init__(self, issued: int) -> None:
        self.next = issued
        self.free: list[int] = []
        self.claimed: set[int] = set()

    def take(self, n: int, total: int) -> list[int]:
        """Up to ``n`` iterations below ``total`` to start now."""
        out: list[int] = []
        while len(out) < n and self.free:
            out.append(heapq.heappop(self.free))
        while len(out) < n and self.next < total:
            out.append(self.next)
            self.next += 1
        return out

    def claim(self, total: int) -> int | None:
        """An iteration for an ending one to start in its place (see ``Then``)."""
        taken = self.take(1, total)
        if not taken:
            return None
        self.claimed.add(taken[0])
        return taken[0]

    def back(self, index: int) -> None:
        """A claimed iteration the checkpoint did not start: the next to start."""
        self.claimed.discard(index)
        heapq.heappush(self.free, index)

    def carried(self, index: int) -> None:
        """A claimed iteration the checkpoint started."""
        self.claimed.discard(index)

    @property
    def issued(self) -> int:
        """What a suspension saves: every iteration below it was started (one claimed
        or given back may not have been: the next run starts it, or finds it)."""
        return min([self.next, *self.free, *self.claimed])


def _others(known: dict[int, ExecutionStatus], driving: dict[Any, int]) -> list[int]:
    """Iterations of the open window still running without this run driving them."""
    if len(known) == len(driving):
        return []
    mine = set(driving.values())
    return [i for i, s in known.items() if not s.terminal and i not in mine]


async def _cancel_all(tasks: dict[asyncio.Task[Driven], int]) -> None:
    """Stop driving: the children keep their rows (cancelled with the parent, or taken
    over by the sweeper); only this step's hold on them ends."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is None:
            nxt = task.result().next
            if nxt is not None and nxt[2] is not None:
                nxt[2].close()  # an iteration started as this one ended: the sweeper's
    tasks.clear()


class _Lanes:
    """The iterations a loop's step drives in this process, and the indexes it hands
    out to them.

    A run whose budget is spent while iterations run leaves them to the step's next run
    here (:meth:`relay`). For up to ``relay_s`` (a control setting) an ending one still
    starts another, so the window stays full while the step parks and comes back
    instead of emptying; the next run picks them up (:meth:`adopt`) with the indexes as
    they are. If it runs in another process instead, they are driven to their ends
    here, as the step's own drives are, and that run finds them as it finds any child.

    Attributes:
        idx: The indexes handed out.
        until: Claims are refused from then on (``time.monotonic()``).
        driving: Each drive in flight, by the index it runs.
    """

    def __init__(self, idx: _Indexes) -> None:
        self.idx = idx
        self.until = 0.0
        self.driving: dict[asyncio.Task[Driven], int] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._adopting = False

    def claim(self, total: int) -> int | None:
        """An iteration for an ending one to start in its place, while time is left."""
        return self.idx.claim(total) if time.monotonic() < self.until else None

    def relay(self, control: Control, execution_id: str, node_id: str) -> None:
        """Leave the drives in flight to the step's next run here."""
        self.until = time.monotonic() + control.settings.relay_s
        control.leave(execution_id, node_id, self)
        self._keeper = asyncio.ensure_future(self._keep_driving(control, execution_id, node_id))
        control.keep(self._keeper)

    async def adopt(self) -> None:
        """Stop driving in the background: the caller waits for :attr:`driving` now
        (only drives still in flight: those that ended are settled here).

        Raises:
            Exception: A drive failed while relayed (as it would have failed the run
                that drove it).
        """
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            self._adopting = True
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            self._adopting = False
        failure = self._settle([t for t in self.driving if t.done()])
        if failure is None and keeper is not None and not keeper.cancelled():
            failure = keeper.exception()
        if failure is not None:
            raise failure

    def _settle(self, done: Iterable[asyncio.Task[Driven]]) -> BaseException | None:
        """Take ended drives out, each one's carried iteration in (driven in its turn);
        the first failure among them, if any."""
        failure = None
        for task in done:
            del self.driving[task]
            if task.cancelled():
                continue
            failure = failure or task.exception()
            nxt = None if task.exception() is not None else task.result().next
            if nxt is not None:  # its end started another in its place
                j, _child, steps = nxt
                self.idx.carried(j)
                if steps is not None:
                    self.driving[asyncio.ensure_future(steps)] = j
        return failure

    async def _keep_driving(self, control: Control, execution_id: str, node_id: str) -> None:
        failure: BaseException | None = None
        try:
            while self.driving:
                done, _ = await asyncio.wait(self.driving, return_when=asyncio.FIRST_COMPLETED)
                failed = self._settle(done)
                failure = failure or failed
        except asyncio.CancelledError:
            if not self._adopting:  # shut down: stop driving, as the step would
                await _cancel_all(self.driving)
            raise
        control.forget(execution_id, node_id, self)
        if failure is not None:
            raise failure


def _saved(ctx: NodeContext, key: str, default: int) -> int:
    """A count the node saved with its last suspension (``default`` before any)."""
    value = (ctx.state or {}).get(key) if ctx.resumed else None
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _too_many(cap: int, n: int | None = None) -> NodeError:
    said = f"{n} items" if n is not None else "the while condition still holds"
    return MaxIterationsExceeded(f"{said}: over max_iterations ({cap})")
