"""Child executions and signals: what ``loop``, ``sub_workflow`` and ``wait`` nodes use.

Suspension is one mechanism (DESIGN §11): a node that waits returns
:class:`~flowmill.nodes.base.Suspend` with ``wake_on`` set; its run is parked
(``waiting``, with ``not_before`` as its time-out or a slow poll). Whatever it waits for
wakes it through :meth:`Engine.wake <flowmill.engine.engine.Engine.wake>`: the parked
run's ``not_before`` becomes now and its step is dispatched again; the node runs again
with ``ctx.resumed`` and decides from the database (children's states, stored signals),
never from the wake itself. So a lost wake costs latency (the poll finds it), never
correctness, and a repeated one is harmless.

A wake that lands while the node is running is not lost either: after the node's
suspension commits, the runner calls the suspension's ``recheck`` and wakes the run
itself if something arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from flowmill.domain.errors import FlowmillError, RecordBusy
from flowmill.domain.states import ExecutionStatus

if TYPE_CHECKING:
    from flowmill.domain.workflow import Node

#: Name of the signal a resume URL delivers (not a name users can send: ``$`` is refused).
RESUME_SIGNAL = "$resume"
#: Kinds of wake a parked run waits for (``Suspend.wake_on``).
WAKE_CHILDREN = "children"
WAKE_SIGNAL = "signal"
#: ``trigger_type`` of a fire-and-forget call's child: it outlives its parent (it is
#: not cancelled when the parent ends), unlike loop iterations and waited calls.
DETACHED = "sub_workflow.detached"
#: Key of a parked run's state naming what wakes it.
WAKE_KEY = "$wake"
#: Key of a loop iteration's trigger output marking it as one (its data holds the item).
LOOP_MARK = "loop"

#: Tasks handed over with no engine to keep them (a strong reference until they end).
_KEPT: set[asyncio.Task[Any]] = set()

_RESUME_NS = uuid.UUID("8f1d4c0e-2b7a-4e55-9a51-7f3f1c9e0b64")
_ONCE_NS = uuid.UUID("3c5e2a71-0d44-4f1b-8e2b-6a9d7c1f4e20")
_ONCE_LOOKS = 50
_URLS_KEPT = 4096  # resume URLs remembered (one per execution with steps running)


class ControlError(FlowmillError):
    """A child could not be started (unknown workflow, depth limit)."""


@dataclass(frozen=True)
class ChildRecord:
    """What a parent reads of one child."""

    id: str
    iteration: int | None
    status: ExecutionStatus
    output: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class ParkedRun:
    """A run of an execution parked in ``waiting``."""

    run_id: str
    node_id: str
    attempt: int
    state: dict[str, Any]
    not_before: datetime | None = None


@dataclass(frozen=True)
class Signal:
    """A signal sent to an execution, kept until a wait takes it."""

    id: str
    name: str
    payload: Any
    received_at: datetime


class ControlStore(Protocol):
    """Reads of children and the signal box (SQL in ``store.control``, fake in testing)."""

    async def children(
        self, parent_id: str, node_id: str, start: int, stop: int
    ) -> list[ChildRecord]:
        """The node's children with ``start <= iteration < stop``, in iteration order."""
        ...

    async def child_states(
        self, parent_id: str, node_id: str, start: int, stop: int
    ) -> list[tuple[int, ExecutionStatus]]:
        """``(iteration, status)`` of the node's children with ``start <= iteration <
        stop`` (no payloads: cheap to read every time a loop wakes)."""
        ...

    async def live_children(self, parent_id: str, limit: int = 500) -> list[str]:
        """Ids of the execution's children that have not ended (fire-and-forget calls,
        which outlive their parent, left out)."""
        ...

    async def parked(self, execution_id: str) -> list[ParkedRun]:
        """The execution's runs in ``waiting`` (their state says what wakes them)."""
        ...

    async def child(self, child_id: str) -> ChildRecord | None:
        """One child, by id."""
        ...

    async def add_signal(
        self,
        tenant_id: str,
        execution_id: str,
        name: str,
        payload: Any,
        now: datetime,
        signal_id: str | None = None,
    ) -> bool:
        """Keep a signal. Returns False if ``signal_id`` was used before (nothing kept)."""
        ...

    async def take_signal(
        self, execution_id: str, names: tuple[str, ...], consumer: str, now: datetime
    ) -> Signal | None:
        """The signal ``consumer`` took before, else take the oldest free one of ``names``
        (atomically: two waits never take the same signal)."""
        ...

    async def has_signal(self, execution_id: str, names: tuple[str, ...], consumer: str) -> bool:
        """Whether a signal of ``names`` is free or already ``consumer``'s."""
        ...


StartChild = Callable[..., Awaitable[str]]
DriveChild = Callable[..., Awaitable[tuple[str, ExecutionStatus | None]]]


@dataclass(frozen=True)
class Driven:
    """What came of driving a child's first steps (:meth:`Control.run_children`).

    Attributes:
        status: Its final status if it ended meanwhile (``None``: it runs on or parked).
        next: The iteration the commit that ended this one started (see :class:`Then`):
            its index, its id and the drive of its first steps (``None`` if it existed
            already).
    """

    status: ExecutionStatus | None
    next: tuple[int, str, ChildDrive | None] | None = None


#: A child's first steps, to run in the caller's task.
ChildDrive = Coroutine[Any, Any, Driven]


@dataclass(frozen=True)
class Then:
    """How a loop's iterations follow each other when driven here: the commit that
    ends one as ``on`` says also starts another, in the ended one's place.

    Attributes:
        claim: Before a checkpoint that may end an iteration: the index of the one its
            end would start (``None``: none is wanted: no more items, or the loop's
            drive budget is spent).
        back: Gives back a claimed index that the checkpoint did not start.
        data: The trigger data of iteration ``i``.
        on: The ends of an iteration that start another.
    """

    claim: Callable[[], int | None]
    back: Callable[[int], None]
    data: Callable[[int], Any]
    on: frozenset[ExecutionStatus]


@dataclass(frozen=True)
class Successor:
    """A loop's :class:`Then` as the engine takes it, with ``args(i)``: iteration
    ``i``'s start arguments (no awaits: it is called in the checkpoint's transaction)."""

    then: Then
    args: Callable[[int], dict[str, Any]]


DriveChildren = Callable[
    [Sequence[dict[str, Any]], Successor | None], Awaitable[list[tuple[str, ChildDrive | None]]]
]


def child_key(parent_id: str, node_id: str, slot: str) -> str:
    """The dedupe key of a node's child in ``slot`` (an iteration's index)."""
    return f"child:{parent_id}:{node_id}:{slot}"


def loop_scope(trigger: dict[str, Any]) -> dict[str, Any]:
    """``item``, ``index`` and ``items`` for the templates of a loop iteration's nodes."""
    if trigger.get(LOOP_MARK) is not True:
        return {}
    data = trigger.get("data")
    if not isinstance(data, dict):
        return {}
    return {k: data.get(k) for k in ("item", "index", "items")}


class StepContext(Protocol):
    """What :class:`Control` reads of a step: the node's context
    (:class:`flowmill.nodes.base.NodeContext`), described here so that the engine does
    not import the node layer (which imports this module for ``ctx.control``)."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def execution_id(self) -> str: ...
    @property
    def workflow_id(self) -> str: ...
    @property
    def execution(self) -> Mapping[str, Any]: ...
    @property
    def trigger(self) -> Mapping[str, Any]: ...
    @property
    def node(self) -> Node: ...
    @property
    def now(self) -> datetime: ...


@dataclass(frozen=True)
class ControlSettings:
    """Limits of control-flow nodes (FLOWMILL_* settings).

    Attributes:
        max_depth: Nesting of child executions allowed (a recursion bomb stops here).
        max_iterations: Cap on a loop's ``max_iterations``.
        poll_s: A parked parent looks at its children this often even without a wake
            (covers a wake lost in a crash between a child's end and the wake).
        drive_s: How long a loop's step runs inline-body iterations itself (started
            and run in its own task, no queue round trip) before it parks to let other
            jobs have the worker; 0 sends every iteration through the queue.
        relay_s: How long the iterations a loop's step leaves running when it parks
            (out of time) still start others in their place, for its next run here to
            take over: about the time a re-run takes to come back through a queue that
            is not busy. Longer lets a loop outrun its budget.
        public_url: Base URL of the API, for resume URLs.
    """

    max_depth: int = 16
    max_iterations: int = 100_000
    poll_s: float = 60.0
    drive_s: float = 0.5
    relay_s: float = 0.1
    public_url: str = "http://127.0.0.1:8000"


class Control:
    """The engine's side of control flow, handed to nodes as ``ctx.control``.

    Args:
        store: Children and signals.
        start_child: Starts an execution (the engine's ``start_execution``).
        cancel: Cancels an execution (with a reason); True if it was live.
        resolve_version: ``(tenant, workflow_id, version | None)`` → the version to run
            (``None``: not the tenant's, or nothing published).
        resume_key: Key of the resume URLs' HMAC.
        settings: Limits.
        drive_child: Starts an execution and runs its first steps in the caller's task
            (the engine's ``drive_child``); without it, :meth:`run_child` only starts.
        keep: Takes over a task a node stops waiting for (a child still being driven
            when a loop's drive budget is spent); the engine keeps it with its
            background work.
        drive_children: Starts several children in one write and hands back their
            first steps to run (the engine's ``drive_children``); without it,
            :meth:`run_children` starts them one by one.
    """

    def __init__(
        self,
        *,
        store: ControlStore,
        start_child: StartChild,
        resolve_version: Callable[[str, str, int | None], Awaitable[int | None]],
        cancel: Callable[[str, str], Awaitable[bool]],
        resume_key: bytes,
        settings: ControlSettings | None = None,
        drive_child: DriveChild | None = None,
        keep: Callable[[asyncio.Task[Any]], None] | None = None,
        drive_children: DriveChildren | None = None,
    ) -> None:
        self.store = store
        self.cancel = cancel
        self._start = start_child
        self._drive = drive_child
        self._drive_many = drive_children
        self._driving: Counter[str] = Counter()
        self._ended: dict[str, asyncio.Event] = {}
        self._relays: dict[tuple[str, str], object] = {}  # opaque here: the node's own
        self._keep = keep
        self._resolve = resolve_version
        self._key = resume_key
        self.settings = settings or ControlSettings()
        # Every step's context offers its execution's resume URL: an HMAC per step was
        # 3 % of a 200-way fan-out's event loop, for a value that never changes.
        self._urls: dict[str, str] = {}

    @staticmethod
    def depth(ctx: StepContext) -> int:
        """How deep the node's execution is nested (0: not a child)."""
        raw = ctx.trigger.get("depth", 0)
        return raw if isinstance(raw, int) and not isinstance(raw, bool) else 0

    async def start_child(
        self,
        ctx: StepContext,
        *,
        data: Any,
        iteration: int | None = None,
        workflow_id: str | None = None,
        version: int | None = None,
        body: str | None = None,
        trigger_type: str = "sub_workflow",
        mark: dict[str, Any] | None = None,
        slot: str | None = None,
    ) -> str:
        """Start (once: a repeated call returns the same child) a child of the node.

        Either ``workflow_id`` (another workflow of the tenant) or ``body`` (the inline
        body of a loop node of this execution's workflow, as a ``/``-joined node path).
        ``mark`` adds keys to the child's trigger output. ``slot`` names the child among
        the node's children when it is not an iteration (an agent's tool call:
        ``tool:<round>:<index>:<call id>``); a start with the same slot finds the same
        child.

        Raises:
            ControlError: Unknown workflow or version, or the depth limit is reached.
        """
        result: str = await self._start(
            **await self._child_args(
                ctx, data, iteration, workflow_id, version, body, trigger_type, mark, slot
            )
        )
        return result

    def driving(self, execution_id: str, on: bool) -> None:
        """Mark (``on``) or unmark a step of the execution as driving its children in
        this process: while it does, their ends need not wake it (it learns them from
        :meth:`run_child`, and from its re-check once it parks)."""
        self._driving[execution_id] += 1 if on else -1
        if self._driving[execution_id] <= 0:
            del self._driving[execution_id]
            self._ended.pop(execution_id, None)

    def child_ended(self, parent_id: str) -> None:
        """A child of a parent driving here ended (called after its commit): the
        driving step learns it without a wake (see :meth:`ended_event`)."""
        event = self._ended.get(parent_id)
        if event is not None:
            event.set()

    def ended_event(self, execution_id: str) -> asyncio.Event:
        """Set when a child of the execution ends while a step of it drives here:
        the step's own drives tell it theirs, this tells it the others' (children it
        handed over when an earlier run's budget was spent, or that took the queue),
        so their places in its window are taken again at once, not at its next run."""
        event = self._ended.get(execution_id)
        if event is None:
            event = self._ended[execution_id] = asyncio.Event()
        return event

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hand over a task the caller stops waiting for (it must not be lost)."""
        if self._keep is not None:
            self._keep(task)
        else:
            _KEPT.add(task)
            task.add_done_callback(_KEPT.discard)

    def leave(self, execution_id: str, node_id: str, relay: object) -> None:
        """Leave what a step drives here for its next run in this process to pick up
        (a loop whose budget is spent keeps its iterations going while it parks)."""
        self._relays[(execution_id, node_id)] = relay

    def pick_up(self, execution_id: str, node_id: str) -> object:
        """What the step's last run here left (and no longer), or ``None``; the node
        checks its type (the engine does not know the node's classes)."""
        return self._relays.pop((execution_id, node_id), None)

    def forget(self, execution_id: str, node_id: str, relay: object) -> None:
        """Drop ``relay`` unless a later run left another in its place."""
        if self._relays.get((execution_id, node_id)) is relay:
            del self._relays[(execution_id, node_id)]

    def is_driving(self, execution_id: str) -> bool:
        """Whether a step of the execution drives its children here now."""
        return execution_id in self._driving

    @property
    def can_drive(self) -> bool:
        """Whether :meth:`run_child` runs children here (else it only starts them)."""
        return self._drive is not None

    async def run_child(
        self,
        ctx: StepContext,
        *,
        data: Any,
        iteration: int | None = None,
        workflow_id: str | None = None,
        version: int | None = None,
        body: str | None = None,
        trigger_type: str = "sub_workflow",
        mark: dict[str, Any] | None = None,
        slot: str | None = None,
    ) -> tuple[str, ExecutionStatus | None]:
        """:meth:`start_child`, then run the child's first steps in the caller's task
        (no queue round trip, no wake of the parent). Returns the child's id and its
        final status if it ended meanwhile (``None``: it runs on, or parked, or had been
        started before).

        Raises:
            ControlError: As :meth:`start_child`.
        """
        args = await self._child_args(
            ctx, data, iteration, workflow_id, version, body, trigger_type, mark, slot
        )
        if self._drive is None:
            started: str = await self._start(**args)
            return started, None
        return await self._drive(**args)

    async def run_children(
        self,
        ctx: StepContext,
        iterations: Sequence[tuple[int, Any]],
        *,
        workflow_id: str | None = None,
        version: int | None = None,
        body: str | None = None,
        trigger_type: str = "sub_workflow",
        mark: dict[str, Any] | None = None,
        then: Then | None = None,
    ) -> list[tuple[str, ChildDrive | None]]:
        """:meth:`run_child` for several iterations ``(index, data)`` at once: their rows
        are written together, then each child's first steps are handed back to run
        (await each, or close it). A child started before (a start repeated after a
        crash) comes back without steps to run.

        With ``then`` the end of each iteration driven here may start another in its
        own commit (see :class:`Then`).

        Raises:
            ControlError: As :meth:`start_child`.
        """
        many = [
            await self._child_args(
                ctx, data, index, workflow_id, version, body, trigger_type, mark, None
            )
            for index, data in iterations
        ]
        if self._drive_many is None:
            return [(await self._start(**a), None) for a in many]
        successor = None
        if then is not None and many:
            # Every iteration's arguments are the first's but for its index and data.
            first = many[0]

            def args(index: int) -> dict[str, Any]:
                key = child_key(ctx.execution_id, ctx.node.id, str(index))
                return {**first, "data": then.data(index), "iteration": index, "dedupe_key": key}

            successor = Successor(then, args)
        return await self._drive_many(many, successor)

    async def _child_args(
        self,
        ctx: StepContext,
        data: Any,
        iteration: int | None,
        workflow_id: str | None,
        version: int | None,
        body: str | None,
        trigger_type: str,
        mark: dict[str, Any] | None,
        slot: str | None,
    ) -> dict[str, Any]:
        depth = self.depth(ctx) + 1
        if depth > self.settings.max_depth:
            raise ControlError(
                f"child executions nest {depth} deep, over the limit of "
                f"{self.settings.max_depth} (FLOWMILL_MAX_CHILD_DEPTH): a workflow calls "
                "itself without end?"
            )
        extra: dict[str, Any] = {"depth": depth, **(mark or {})}
        if body is not None:
            wf_id = ctx.workflow_id
            run_version = int(ctx.execution.get("version") or 0)
            own = ctx.trigger.get("body")
            extra["body"] = f"{own}/{body}" if isinstance(own, str) and own else body
        else:
            assert workflow_id is not None
            wf_id = workflow_id
            resolved = await self._resolve(ctx.tenant_id, workflow_id, version)
            if resolved is None:
                what = f"version {version}" if version is not None else "a published version"
                raise ControlError(f"workflow {workflow_id} of this tenant has no {what}")
            run_version = resolved
        # One child per (parent, node, iteration): the dedupe key makes a start repeated
        # after a crash find the child it had started.
        inherited = ctx.trigger.get("priority")
        if slot is None:
            slot = str(iteration) if iteration is not None else "call"
        key = child_key(ctx.execution_id, ctx.node.id, slot)
        return {
            "tenant_id": ctx.tenant_id,
            "workflow_id": wf_id,
            "version": run_version,
            "data": data,
            "trigger_type": trigger_type,
            "dedupe_key": key,
            "metadata": extra,
            "parent_execution_id": ctx.execution_id,
            "parent_node_id": ctx.node.id,
            "iteration": iteration,
            # a child runs at its parent's priority, when the parent has one
            "priority": inherited if isinstance(inherited, int) and inherited else None,
        }

    async def record_once(self, ctx: StepContext, key: str, value: Any) -> Any:
        """The value recorded first under ``key`` for the node in its execution: ``value``
        if this call records it, else what an earlier (or concurrent) run of the node
        recorded. Every run of the node then acts on the same value: an agent's answer
        calling tools is recorded before any tool starts, so a run repeated after a
        crash, or racing another after two wakes, starts the tools of one answer.

        Kept in the execution's signal box under a ``$``-name no user signal can have,
        taken at once by a consumer of the same name (no wait ever sees it).
        """
        name = f"$once:{ctx.node.id}:{key}"[:200]
        signal_id = str(uuid.uuid5(_ONCE_NS, f"{ctx.execution_id}:{name}"))
        await self.store.add_signal(
            ctx.tenant_id, ctx.execution_id, name, value, ctx.now, signal_id=signal_id
        )
        for _ in range(_ONCE_LOOKS):
            taken = await self.store.take_signal(ctx.execution_id, (name,), name, ctx.now)
            if taken is not None:
                return taken.payload
            # A concurrent take holds the row (PostgreSQL skips locked rows) until its
            # transaction ends; then the row is this consumer's and the next look finds it.
            await asyncio.sleep(0.02)  # not a wait: a short pause between looks
        # Never act on a value that was not the one recorded: fail the attempt instead.
        raise RecordBusy(f"the record {name!r} stayed locked; trying the step again")

    def resume_token(self, execution_id: str) -> str:
        """The unguessable token of an execution's resume URL."""
        mac = hmac.new(self._key, execution_id.encode(), hashlib.sha256).hexdigest()[:40]
        return f"{execution_id}.{mac}"

    def resume_url(self, execution_id: str) -> str:
        """The execution's single-use resume URL (``{{execution.resume_url}}``)."""
        url = self._urls.get(execution_id)
        if url is None:
            if len(self._urls) >= _URLS_KEPT:
                self._urls.clear()  # (executions come and go: no need for an LRU)
            token = self.resume_token(execution_id)
            url = f"{self.settings.public_url.rstrip('/')}/api/resume/{token}"
            self._urls[execution_id] = url
        return url

    def execution_of_token(self, token: str) -> str | None:
        """The execution a resume token names, if the token is genuine."""
        execution_id, _, _mac = token.partition(".")
        if not execution_id or not hmac.compare_digest(self.resume_token(execution_id), token):
            return None
        return execution_id

    @staticmethod
    def resume_signal_id(execution_id: str) -> str:
        """The id of the signal a resume URL delivers: one per execution, so a second
        use of the URL collides with the first and is refused."""
        return str(uuid.uuid5(_RESUME_NS, execution_id))
