"""In-memory fakes of the engine's ports, for unit tests. One per port.

They keep the contracts of the real adapters (the SQL store, the worker registry, the
clock) closely enough for the engine to run on them; integration tests use the real
ones.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from flowmill.domain.errors import ExecutionNotFound, WorkflowNotFound
from flowmill.domain.events import DomainEvent
from flowmill.domain.execution import (
    ConversationTurn,
    Effects,
    ExecutionRecord,
    LogLine,
    NodeRun,
    NodeState,
    StaleStepError,
    StepKey,
)
from flowmill.domain.states import LIVE_NODE_STATUSES, ExecutionStatus, NodeRunStatus
from flowmill.engine.control import DETACHED, ChildRecord, ParkedRun, Signal
from flowmill.engine.effects import StateReader
from flowmill.engine.ports import (
    DuplicateExecutionError,
    LimitCounts,
    LoadedStep,
    NewExecution,
    WorkerInfo,
)
from flowmill.engine.services import CodeLimits, CodeResult, HttpResponse
from flowmill.testkit.dns import FakeResolver
from flowmill.testkit.servers import (
    RespStub,
    Route,
    Seen,
    StubHandler,
    StubServer,
    TcpListener,
    free_port,
    resp_stub,
    stub_api,
    tcp_listener,
)
from flowmill.testkit.waiting import NeverHappened, eventually, eventually_sync
from flowmill.testkit.webhooks import unverified_webhook

__all__ = [
    "FakeBlobContent",
    "FakeClock",
    "FakeCodeRunner",
    "FakeHttp",
    "FakeResolver",
    "InMemoryCredentials",
    "InMemoryDefinitions",
    "InMemoryExecutionStore",
    "InMemoryWorkerRegistry",
    "NeverHappened",
    "RespStub",
    "Route",
    "Seen",
    "StubHandler",
    "StubServer",
    "TcpListener",
    "eventually",
    "eventually_sync",
    "free_port",
    "resp_stub",
    "stub_api",
    "tcp_listener",
    "unverified_webhook",
]


class FakeClock:
    """A clock that only moves when told (``advance``) or when something sleeps."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)


class _Reader:
    def __init__(self, store: InMemoryExecutionStore, execution_id: str) -> None:
        self._store = store
        self._id = execution_id

    def _latest(self, node_ids: Collection[str]) -> dict[str, NodeRun]:
        latest: dict[str, NodeRun] = {}
        wanted = set(node_ids)
        for r in self._store.runs.get(self._id, []):
            if r.node_id in wanted and (
                r.node_id not in latest or r.attempt > latest[r.node_id].attempt
            ):
                latest[r.node_id] = r
        return latest

    def states(self, node_ids: Collection[str]) -> Mapping[str, NodeState]:
        return {
            k: NodeState(r.status, tuple(r.handles) if r.handles is not None else None)
            for k, r in self._latest(node_ids).items()
        }

    def outputs(self, node_ids: Collection[str]) -> Mapping[str, Any]:
        return {
            k: r.output
            for k, r in self._latest(node_ids).items()
            if r.status in (NodeRunStatus.SUCCEEDED, NodeRunStatus.FAILED)
        }

    def has_live_runs(self, exclude: Collection[str]) -> bool:
        return any(
            r.status in LIVE_NODE_STATUSES and r.id not in exclude
            for r in self._store.runs.get(self._id, [])
        )


class InMemoryExecutionStore:
    """The :class:`~flowmill.engine.ports.ExecutionStore` port in dictionaries.

    Transactions are emulated: effects are applied to copies and swapped in only when
    every run update found its expected status, like a rollback on
    :class:`StaleStepError`.
    """

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.executions: dict[str, ExecutionRecord] = {}
        self.runs: dict[str, list[NodeRun]] = {}
        self.events: list[DomainEvent] = []
        self.logs: list[LogLine] = []
        self.turns: list[tuple[str, StepKey, ConversationTurn]] = []  # (tenant, step, turn)
        self.dedupe: dict[tuple[str, str], str] = {}
        self._lock = asyncio.Lock()
        self.fail_next_checkpoint: Exception | None = None

    def _apply(self, fx: Effects, dedupe_key: str | None = None) -> None:
        runs = {k: [copy.copy(r) for r in v] for k, v in self.runs.items()}
        by_id = {r.id: r for rs in runs.values() for r in rs}
        for u in fx.run_updates:
            r = by_id.get(u.run_id)
            if r is None or r.status not in u.expect:
                raise StaleStepError(u.run_id)
            r.status, r.output, r.error, r.handles = u.status, u.output, u.error, u.handles
            r.state, r.completed_at = u.state, u.completed_at
            r.not_before = u.not_before or r.not_before
            r.started_at = u.started_at or r.started_at
            r.owner = u.owner or r.owner
        if fx.new_execution is not None:
            self.executions[fx.new_execution.id] = copy.copy(fx.new_execution)
            if dedupe_key is not None:
                self.dedupe[(fx.tenant_id, dedupe_key)] = fx.new_execution.id
        if fx.cancel_live_runs:
            for r in runs.get(fx.execution_id, []):
                if r.status in LIVE_NODE_STATUSES:
                    r.status = NodeRunStatus.CANCELLED
                    r.completed_at = self.clock.now()
        for r in fx.new_runs:
            if any(
                x.node_id == r.node_id and x.attempt == r.attempt
                for x in runs.get(r.execution_id, [])
            ):
                raise RuntimeError(f"unique violation: {r.node_id} attempt {r.attempt}")
            runs.setdefault(r.execution_id, []).append(copy.copy(r))
        if fx.execution_update is not None:
            ex = self.executions[fx.execution_id]
            x = fx.execution_update
            ex.status, ex.output, ex.error = x.status, x.output, x.error
            ex.started_at = x.started_at or ex.started_at
            ex.completed_at = x.completed_at
        if fx.turns:
            assert fx.turns_of is not None
            step = fx.turns_of
            seen = {(k.execution_id, k.node_id, t.seq) for _, k, t in self.turns}
            for t in fx.turns:
                if (step.execution_id, step.node_id, t.seq) in seen:
                    raise RuntimeError(f"unique violation: turn {t.seq} of {step.node_id}")
        self.runs = runs
        self.events.extend(fx.events)
        # A line without a time is stamped with the commit's, as the SQL writers do.
        now = self.clock.now()
        self.logs.extend(
            line if line.timestamp else dataclasses.replace(line, timestamp=now) for line in fx.logs
        )
        self.turns.extend((fx.tenant_id, fx.turns_of, t) for t in fx.turns if fx.turns_of)
        follow = fx.follow
        if follow is not None:  # a start carried by the checkpoint, as the writer does
            key, tenant = follow.dedupe_key, follow.effects.tenant_id
            holder = self.dedupe.get((tenant, key)) if key is not None else None
            if holder is not None:
                follow.taken_by = holder
            else:
                self._apply(follow.effects, key)

    async def start(
        self,
        execution: ExecutionRecord,
        build: Callable[[LimitCounts], Effects],
        *,
        dedupe_key: str | None = None,
        limited: bool = False,
    ) -> Effects:
        async with self._lock:
            if dedupe_key is not None and (execution.tenant_id, dedupe_key) in self.dedupe:
                raise DuplicateExecutionError(self.dedupe[(execution.tenant_id, dedupe_key)])
            counts = self._counts(execution.workflow_id, execution.tenant_id)
            fx = build(counts if limited else LimitCounts())
            self._apply(fx, dedupe_key)
            return fx

    async def start_many(
        self, starts: Sequence[NewExecution]
    ) -> list[Effects | DuplicateExecutionError]:
        out: list[Effects | DuplicateExecutionError] = []
        async with self._lock:
            for new in starts:
                key, tenant = new.dedupe_key, new.execution.tenant_id
                if key is not None and (tenant, key) in self.dedupe:
                    out.append(DuplicateExecutionError(self.dedupe[(tenant, key)]))
                    continue
                fx = new.build(LimitCounts())
                self._apply(fx, key)
                out.append(fx)
        return out

    def _counts(self, workflow_id: str, tenant_id: str) -> LimitCounts:
        mine = [e for e in self.executions.values() if e.workflow_id == workflow_id]
        tops = [
            e
            for e in self.executions.values()
            if e.tenant_id == tenant_id and e.parent_execution_id is None
        ]
        live = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.WAITING)
        minute_ago = self.clock.now() - timedelta(minutes=1)
        return LimitCounts(
            tenant_running=sum(e.status in live for e in tops),
            tenant_queued=sum(e.status is ExecutionStatus.QUEUED for e in tops),
            running=sum(e.status in live for e in mine),
            queued=sum(e.status is ExecutionStatus.QUEUED for e in mine),
            started_last_minute=sum(
                e.started_at is not None and e.started_at >= minute_ago for e in mine
            ),
        )

    async def checkpoint(
        self,
        execution_id: str,
        build: Callable[[ExecutionRecord, StateReader], Effects],
        *,
        assumed: ExecutionRecord | None = None,
    ) -> Effects:
        async with self._lock:
            if self.fail_next_checkpoint is not None:
                error, self.fail_next_checkpoint = self.fail_next_checkpoint, None
                raise error
            ex = self.executions.get(execution_id)
            if ex is None:
                raise ExecutionNotFound(execution_id)
            fx = build(copy.copy(ex), _Reader(self, execution_id))
            self._apply(fx)
            return fx

    async def load_step(self, key: StepKey, references: Collection[str]) -> LoadedStep | None:
        for r in self.runs.get(key.execution_id, []):
            if r.node_id == key.node_id and r.attempt == key.attempt:
                ex = self.executions[key.execution_id]
                outs = dict(_Reader(self, key.execution_id).outputs(references))
                return LoadedStep(copy.copy(ex), copy.copy(r), outs)
        return None

    async def load_outputs(self, execution_id: str, node_ids: Collection[str]) -> dict[str, Any]:
        return dict(_Reader(self, execution_id).outputs(node_ids))

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        ex = self.executions.get(execution_id)
        return copy.copy(ex) if ex is not None else None

    async def node_runs(self, execution_id: str) -> list[NodeRun]:
        return sorted((copy.copy(r) for r in self.runs.get(execution_id, [])), key=lambda r: r.id)

    async def live_runs(
        self,
        *,
        alive_owners: Collection[str],
        unowned_older_than: datetime | None = None,
        owner: str | None = None,
        created_before: datetime | None = None,
        limit: int = 1000,
    ) -> list[NodeRun]:
        out = []
        for rs in self.runs.values():
            for r in rs:
                if r.status not in LIVE_NODE_STATUSES:
                    continue
                created = r.created_at or self.clock.now()
                if owner is not None:
                    hit = r.owner == owner and (created_before is None or created < created_before)
                else:
                    hit = (r.owner is not None and r.owner not in alive_owners) or (
                        r.owner is None
                        and unowned_older_than is not None
                        and created < unowned_older_than
                    )
                if hit:
                    out.append(copy.copy(r))
        return sorted(out, key=lambda r: r.id)[:limit]

    async def set_owner(self, run_ids: Collection[str], owner: str | None) -> None:
        for rs in self.runs.values():
            for r in rs:
                if r.id in run_ids and r.status in LIVE_NODE_STATUSES:
                    r.owner = owner

    async def overdue_executions(self, now: datetime, limit: int = 100) -> list[str]:
        live = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.WAITING)
        return [
            e.id
            for e in self.executions.values()
            if e.status in live and e.deadline_at is not None and e.deadline_at < now
        ][:limit]

    async def queued_executions(
        self, workflow_id: str | None = None, limit: int = 100, *, tenant_id: str | None = None
    ) -> list[ExecutionRecord]:
        out = [
            copy.copy(e)
            for e in sorted(self.executions.values(), key=lambda e: e.id)
            if e.status is ExecutionStatus.QUEUED
            and (workflow_id is None or e.workflow_id == workflow_id)
            and (tenant_id is None or e.tenant_id == tenant_id)
        ]
        return out[:limit]

    async def promote(
        self,
        execution_id: str,
        build: Callable[[ExecutionRecord, LimitCounts], Effects | None],
    ) -> Effects | None:
        async with self._lock:
            ex = self.executions[execution_id]
            if ex.status is not ExecutionStatus.QUEUED:
                return None
            fx = build(copy.copy(ex), self._counts(ex.workflow_id, ex.tenant_id))
            if fx is not None:
                self._apply(fx)
            return fx


class InMemoryControlStore:
    """The :class:`~flowmill.engine.control.ControlStore` port over an
    :class:`InMemoryExecutionStore`'s executions, with a signal box in a list."""

    def __init__(self, executions: InMemoryExecutionStore) -> None:
        self._executions = executions
        self.signals: list[tuple[str, str, Signal, str | None]] = []  # (tenant, exec, s, by)

    def _of(self, parent_id: str, node_id: str | None = None) -> list[ExecutionRecord]:
        return [
            e
            for e in self._executions.executions.values()
            if e.parent_execution_id == parent_id
            and (node_id is None or e.parent_node_id == node_id)
        ]

    async def children(
        self, parent_id: str, node_id: str, start: int, stop: int
    ) -> list[ChildRecord]:
        found = [
            e
            for e in self._of(parent_id, node_id)
            if e.iteration is not None and start <= e.iteration < stop
        ]
        found.sort(key=lambda e: e.iteration or 0)
        return [ChildRecord(e.id, e.iteration, e.status, e.output, e.error) for e in found]

    async def child(self, child_id: str) -> ChildRecord | None:
        e = self._executions.executions.get(child_id)
        return None if e is None else ChildRecord(e.id, e.iteration, e.status, e.output, e.error)

    async def child_states(
        self, parent_id: str, node_id: str, start: int, stop: int
    ) -> list[tuple[int, ExecutionStatus]]:
        return [
            (e.iteration, e.status)
            for e in self._of(parent_id, node_id)
            if e.iteration is not None and start <= e.iteration < stop
        ]

    async def live_children(self, parent_id: str, limit: int = 500) -> list[str]:
        return [
            e.id
            for e in self._of(parent_id)
            if not e.status.terminal and e.trigger_type != DETACHED
        ][:limit]

    async def parked(self, execution_id: str) -> list[ParkedRun]:
        return [
            ParkedRun(r.id, r.node_id, r.attempt, dict(r.state or {}), r.not_before)
            for r in self._executions.runs.get(execution_id, [])
            if r.status is NodeRunStatus.WAITING
        ]

    async def add_signal(
        self,
        tenant_id: str,
        execution_id: str,
        name: str,
        payload: Any,
        now: datetime,
        signal_id: str | None = None,
    ) -> bool:
        sid = signal_id or f"signal-{len(self.signals)}"
        if any(s.id == sid for _, _, s, _ in self.signals):
            return False
        self.signals.append((tenant_id, execution_id, Signal(sid, name, payload, now), None))
        return True

    async def take_signal(
        self, execution_id: str, names: tuple[str, ...], consumer: str, now: datetime
    ) -> Signal | None:
        for _, ex, s, by in self.signals:
            if ex == execution_id and by == consumer:
                return s
        for i, (tenant, ex, s, by) in enumerate(self.signals):
            if ex == execution_id and by is None and s.name in names:
                self.signals[i] = (tenant, ex, s, consumer)
                return s
        return None

    async def has_signal(self, execution_id: str, names: tuple[str, ...], consumer: str) -> bool:
        return any(
            ex == execution_id and (by == consumer or (by is None and s.name in names))
            for _, ex, s, by in self.signals
        )


class InMemoryWorkerRegistry:
    """The :class:`~flowmill.engine.ports.WorkerRegistry` port in a dictionary."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.workers: dict[str, WorkerInfo] = {}

    async def register(self, worker_id: str, kind: str, hostname: str, pid: int) -> None:
        now = self.clock.now()
        self.workers[worker_id] = WorkerInfo(worker_id, kind, hostname, pid, now, now)

    async def heartbeat(self, worker_id: str) -> bool:
        if worker_id not in self.workers:
            return False
        self.workers[worker_id] = replace(self.workers[worker_id], heartbeat_at=self.clock.now())
        return True

    async def unregister(self, worker_id: str) -> None:
        self.workers.pop(worker_id, None)

    async def list_workers(self) -> list[WorkerInfo]:
        return list(self.workers.values())


class InMemoryDefinitions:
    """The :class:`~flowmill.engine.ports.DefinitionSource` port: versions in a dict."""

    def __init__(self) -> None:
        self.versions: dict[tuple[str, int], dict[str, Any]] = {}
        self.active: dict[str, int] = {}
        self.owners: dict[str, str] = {}

    def add(
        self,
        workflow_id: str,
        definition: dict[str, Any],
        version: int = 1,
        *,
        active: bool = True,
        tenant_id: str | None = None,
    ) -> None:
        """Store a version (and make it the active one); with ``tenant_id``, only that
        tenant resolves it (without, any tenant does, as most unit tests want)."""
        self.versions[(workflow_id, version)] = definition
        if active:
            self.active[workflow_id] = version
        if tenant_id is not None:
            self.owners[workflow_id] = tenant_id

    def _owned(self, tenant_id: str, workflow_id: str) -> bool:
        return self.owners.get(workflow_id, tenant_id) == tenant_id

    async def get_definition(self, workflow_id: str, version: int) -> dict[str, Any]:
        try:
            return self.versions[(workflow_id, version)]
        except KeyError:
            raise WorkflowNotFound(f"{workflow_id} v{version}") from None

    async def active_version(self, tenant_id: str, workflow_id: str) -> int | None:
        return self.active.get(workflow_id) if self._owned(tenant_id, workflow_id) else None

    async def resolve_version(
        self, tenant_id: str, workflow_id: str, version: int | None
    ) -> int | None:
        if not self._owned(tenant_id, workflow_id):
            return None
        if version is None:
            return self.active.get(workflow_id)
        return version if (workflow_id, version) in self.versions else None


@dataclass
class InMemoryCredentials:
    """The :class:`~flowmill.engine.services.CredentialResolver` port, in plain text.

    ``secrets`` maps ``(tenant_id, name)`` to ``(type, data)``.
    """

    secrets: dict[tuple[str, str], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    uses: list[tuple[str, str, Any]] = field(default_factory=list)

    async def resolve(
        self, tenant_id: str, ref: str, use: Any = None
    ) -> tuple[str, dict[str, Any]]:
        from flowmill.credentials.crypto import CredentialError

        try:
            kind, data = self.secrets[(tenant_id, ref)]
        except KeyError:
            raise CredentialError(f"no credential named {ref!r}") from None
        self.uses.append((tenant_id, ref, use))
        return kind, dict(data)

    async def access_token(
        self, tenant_id: str, ref: str, use: Any = None, *, rejected: str | None = None
    ) -> str:
        """The ``access_token`` of an oauth2 entry (no refresh: the fake holds one)."""
        from flowmill.credentials.crypto import CredentialError

        kind, data = await self.resolve(tenant_id, ref, use)
        if kind != "oauth2" or data.get("access_token") in (None, rejected):
            raise CredentialError(f"credential {ref!r} has no usable access token")
        return str(data["access_token"])


class FakeBlobContent:
    """In-memory blob bytes (the :class:`flowmill.blobs.ports.BlobContent` port), checked
    against the real backends by ``tests/integration/test_blobs.py``."""

    name = "memory"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        """Store the bytes (replacing the key's)."""
        self.objects[key] = b"".join([c async for c in chunks])

    async def get(self, key: str) -> AsyncIterator[bytes]:
        """The bytes, a megabyte at a time (as the real backends stream).

        Raises:
            KeyError: Nothing under ``key``.
        """
        if key not in self.objects:
            raise KeyError(key)
        data = self.objects[key]
        for at in range(0, len(data), 1024 * 1024):
            yield data[at : at + 1024 * 1024]

    async def delete(self, keys: Sequence[str]) -> None:
        """Forget ``keys``."""
        for key in keys:
            self.objects.pop(key, None)

    async def close(self) -> None:
        """Nothing to release."""


@dataclass
class FakeHttp:
    """The :class:`~flowmill.engine.services.HttpClient` port answering from a script.

    ``routes`` maps ``"METHOD url"`` to a response or an exception to raise; a request
    with no route raises :class:`LookupError`. Every request is recorded in
    ``requests``.
    """

    routes: dict[str, HttpResponse | Exception] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        self.requests.append({"method": method, "url": url, **kwargs})
        answer = self.routes.get(f"{method} {url}")
        if answer is None:
            # Loudly: a made-up 404 would let a test pass on a request it never meant.
            raise LookupError(f"FakeHttp has no route for {method} {url}: {sorted(self.routes)}")
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class FakeCodeRunner:
    """The :class:`~flowmill.engine.services.CodeRunner` and expression ports, scripted.

    Runs nothing: ``results`` maps code (or an expression) to the value it "returns",
    or to a callable of the scope. Calls are recorded.
    """

    results: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def _answer(self, code: str, scope: Mapping[str, Any]) -> Any:
        value = self.results[code]
        if isinstance(value, Exception):
            raise value
        return value(scope) if callable(value) else value

    async def run(
        self, language: str, code: str, scope: Mapping[str, Any], limits: CodeLimits
    ) -> CodeResult:
        self.calls.append((language, code))
        return CodeResult(self._answer(code, scope))

    async def evaluate_many(
        self, expressions: Sequence[str], scope: Mapping[str, Any]
    ) -> list[Any]:
        self.calls.extend(("expression", e) for e in expressions)
        return [self._answer(e, scope) for e in expressions]


class InMemoryNewsChannel:
    """:class:`~flowmill.engine.news.NewsChannel` between engines of one test: every
    engine given the same instance hears the others' news (as over Redis)."""

    def __init__(self) -> None:
        self.published: list[str] = []
        self._listeners: list[Callable[[str], None]] = []

    async def publish_ended(self, execution_id: str) -> None:
        self.published.append(execution_id)
        for listener in list(self._listeners):
            listener(execution_id)

    def listen(self, on_ended: Callable[[str], None]) -> None:
        if on_ended not in self._listeners:
            self._listeners.append(on_ended)

    async def close(self) -> None:
        self._listeners.clear()


@dataclass
class ScriptedChatModel:
    """The :class:`~flowmill.agents.ports.ChatModel` port answering from a script: each
    call takes the next item (a reply text, a ``ChatReply`` or an exception to raise);
    the last one repeats. Requests are recorded."""

    script: list[Any] = field(default_factory=lambda: ["ok"])
    requests: list[Any] = field(default_factory=list)

    async def complete(self, request: Any) -> Any:
        from flowmill.agents.ports import ChatReply, Usage

        self.requests.append(request)
        item = self.script[min(len(self.requests) - 1, len(self.script) - 1)]
        if isinstance(item, Exception):
            raise item
        if isinstance(item, str):
            return ChatReply(item, request.model, Usage(10, 2), "stop")
        return item


@dataclass
class InMemoryAgents:
    """The :class:`~flowmill.agents.ports.AgentBackend` port in lists: ``agents`` by
    ``(tenant, name or id)``, ``history`` turns, one scripted model for every provider."""

    agents: dict[tuple[str, str], Any] = field(default_factory=dict)
    history_turns: list[tuple[str, Any]] = field(default_factory=list)  # (tenant, Turn)
    chat: ScriptedChatModel = field(default_factory=ScriptedChatModel)
    models: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    def add(self, tenant_id: str, agent: Any) -> None:
        self.agents[(tenant_id, agent.name)] = agent
        self.agents[(tenant_id, agent.id)] = agent

    async def agent(self, tenant_id: str, ref: str) -> Any:
        return self.agents.get((tenant_id, ref))

    async def history(
        self, tenant_id: str, conversation_id: str, client_id: str, limit: int
    ) -> list[Any]:
        turns = [
            t
            for tenant, t in self.history_turns
            if tenant == tenant_id
            and t.conversation_id == conversation_id
            and t.client_id == client_id
        ]
        return turns[-limit:] if limit else []

    def model(self, provider: str, *, api_key: str | None, base_url: str | None, http: Any) -> Any:
        self.models.append((provider, api_key, base_url))
        return self.chat
