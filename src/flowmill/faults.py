"""Faults injected on purpose: a test mode in which store and queue calls fail or stall.

Temporal's persistence fault injection is the model: with ``FLOWMILL_FAULTS`` set, the
runtime wraps its execution store and job queue so that a share of their calls

- fail before doing anything (``fail``: as a refused connection would),
- fail *after* doing their work (``lost``: the commit happened, the answer was lost — the
  hardest case for "no step recorded as succeeded twice"),
- or stall for ``stall_s`` seconds first (``stall``: a slow disk, a lock, a GC pause).

The spec is ``"store=0.02,queue=0.02,stall_s=1,seed=7"``: ``store``/``queue`` is the
share of calls hit (split evenly between fail, lost and stall), ``stall_s`` how long a
stall lasts, ``seed`` makes a run repeatable. Never set it in production.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

STORE_CALLS = frozenset(
    {
        "start",
        "checkpoint",
        "load_step",
        "load_outputs",
        "get_execution",
        "node_runs",
        "live_runs",
        "set_owner",
        "overdue_executions",
        "queued_executions",
        "promote",
    }
)
"""The execution store's port (``engine.ports.ExecutionStore``)."""
QUEUE_CALLS = frozenset({"put", "present"})
"""The job queue's calls that reach Redis (consuming is not wrapped)."""


class InjectedFault(ConnectionError):
    """A failure made on purpose (``FLOWMILL_FAULTS``)."""


@dataclass(frozen=True)
class FaultPlan:
    """How often each wrapped part fails or stalls.

    Attributes:
        store: Share of execution-store calls hit.
        queue: Share of queue calls hit.
        stall_s: How long a stall lasts.
        seed: Seed of the random choices (``None``: a fresh one).
    """

    store: float = 0.0
    queue: float = 0.0
    stall_s: float = 1.0
    seed: int | None = None

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """Read ``"store=0.02,queue=0.02,stall_s=1,seed=7"``.

        Raises:
            ValueError: An unknown key or a value out of range.
        """
        values: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, raw = item.partition("=")
            if not sep or key not in ("store", "queue", "stall_s", "seed"):
                raise ValueError(f"FLOWMILL_FAULTS: {item!r}; keys: store, queue, stall_s, seed")
            values[key] = int(raw) if key == "seed" else float(raw)
        plan = cls(**values)
        if not (0 <= plan.store <= 1 and 0 <= plan.queue <= 1 and plan.stall_s >= 0):
            raise ValueError("FLOWMILL_FAULTS: shares are between 0 and 1, stall_s >= 0")
        return plan


class Faulty:
    """``target`` with faults injected into the calls named in ``calls``.

    Every other attribute passes through untouched.
    """

    def __init__(
        self, target: Any, calls: frozenset[str], share: float, plan: FaultPlan, rng: random.Random
    ) -> None:
        self._target = target
        self._calls = calls
        self._share = share
        self._plan = plan
        self._rng = rng
        self.injected = {"fail": 0, "lost": 0, "stall": 0}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name in self._calls and callable(attr):
            return functools.partial(self._call, name, attr)
        return attr

    async def _call(self, name: str, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        roll = self._rng.random()
        third = self._share / 3
        if roll < third:
            self.injected["fail"] += 1
            raise InjectedFault(f"injected fault: {name} failed before it ran")
        if roll < 2 * third:
            self.injected["stall"] += 1
            await asyncio.sleep(self._plan.stall_s)
            return await fn(*args, **kw)
        result = await fn(*args, **kw)
        if roll < self._share:
            self.injected["lost"] += 1
            raise InjectedFault(f"injected fault: {name} ran but its answer was lost")
        return result


def inject(target: T, calls: frozenset[str], share: float, plan: FaultPlan, seed: int) -> T:
    """``target`` wrapped in :class:`Faulty` (typed as ``target`` for the caller)."""
    if share <= 0:
        return target
    wrapped: T = Faulty(target, calls, share, plan, random.Random(seed))  # type: ignore[assignment]
    return wrapped
