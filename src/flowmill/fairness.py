"""Fair shares between tenants: who goes next when capacity is short.

One tenant flooding the engine (thousands of executions, code nodes that spin until
their timeout) must delay only itself. Three pieces, used by the queues and the
sandbox pools:

- :data:`current_tenant`: the tenant whose step is running, set by the step runner
  around a node call, so a pool deep below (the JavaScript sandbox) knows whom a
  request is for without every call passing it.
- :class:`FairShare`: a per-tenant demand that decays over time. A job's queue
  priority is lowered by its tenant's recent demand, so a quiet tenant's job goes
  ahead of a flood already queued, in the in-process queue and in BullMQ (whose
  priorities are the same ordering), without any coordination between processes.
- :class:`FairSlots`: a semaphore that hands each freed slot to the waiting tenants in
  turn (round robin), plus a small reserve that only a tenant holding no slot may use,
  so a newcomer never waits behind a pool that one tenant keeps full.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar

current_tenant: ContextVar[str] = ContextVar("flowmill_current_tenant", default="")
"""The tenant of the step running in this task ("" outside steps)."""


@contextlib.contextmanager
def tenant_scope(tenant_id: str) -> Iterator[None]:
    """Name ``tenant_id`` as :data:`current_tenant` inside the block."""
    token = current_tenant.set(tenant_id)
    try:
        yield
    finally:
        current_tenant.reset(token)


PRIORITY_SCALE = 4096
"""A unit of user priority outweighs the largest fairness penalty (``PRIORITY_SCALE - 1``),
so fairness orders jobs within one priority, never across priorities."""


class FairShare:
    """Recent demand per tenant, decaying with a half-life.

    Args:
        half_life_s: After this long without new jobs, a tenant's demand halves.
        clock: Monotonic seconds (a fake clock in tests).
    """

    def __init__(
        self, half_life_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._decay = math.log(2) / half_life_s
        self._clock = clock
        self._demand: dict[str, tuple[float, float]] = {}  # tenant -> (value, at)

    def demand(self, tenant: str) -> float:
        """The tenant's decayed demand now."""
        value, at = self._demand.get(tenant, (0.0, 0.0))
        return value * math.exp(-self._decay * (self._clock() - at)) if value else 0.0

    def charge(self, tenant: str, jobs: int = 1) -> int:
        """Record ``jobs`` new jobs of ``tenant``; the penalty their priority gets.

        The penalty is the tenant's demand before these jobs, capped below
        :data:`PRIORITY_SCALE`.
        """
        before = self.demand(tenant)
        self._demand[tenant] = (before + jobs, self._clock())
        if len(self._demand) > 100_000:  # forget the quiet ones, keep memory bounded
            self._demand = {t: v for t, v in self._demand.items() if v[0] > 1.0}
        return min(PRIORITY_SCALE - 1, int(before))

    def priority(self, tenant: str, user_priority: int) -> int:
        """A job's queue priority (higher runs first): the user's priority class, then
        the tenant's fair share within it."""
        return user_priority * PRIORITY_SCALE - self.charge(tenant)


class FairSlots:
    """``capacity`` slots handed out fairly between tenants, plus a reserve.

    A freed slot goes to the next tenant in turn that is waiting, not to whoever asked
    first. The ``reserve`` slots are only for tenants holding no slot at all: a tenant
    that arrives while another fills every regular slot starts at once.

    Args:
        capacity: Regular slots.
        reserve: Extra slots for tenants that hold none.
        cap: Most slots one tenant may hold at once (0: no cap), per tenant; a tenant
            at its cap waits even when slots are free.
    """

    def __init__(
        self, capacity: int, reserve: int = 0, cap: Callable[[str], int] | None = None
    ) -> None:
        self.capacity = capacity
        self.reserve = reserve
        self._cap = cap
        self._used = 0
        self._reserve_used = 0
        self._held: Counter[str] = Counter()
        self._waiters: dict[str, deque[asyncio.Future[bool]]] = {}
        self._turns: deque[str] = deque()

    def held(self, tenant: str) -> int:
        """Slots ``tenant`` holds now."""
        return self._held[tenant]

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        return sum(len(q) for q in self._waiters.values())

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        """Hold one slot for ``tenant`` inside the block."""
        reserved = await self._acquire(tenant)
        try:
            yield
        finally:
            self._release(tenant, reserved)

    def _may_hold_more(self, tenant: str) -> bool:
        limit = self._cap(tenant) if self._cap is not None else 0
        return not limit or self._held[tenant] < limit

    async def _acquire(self, tenant: str) -> bool:
        if (
            self._used < self.capacity
            and self._may_hold_more(tenant)
            and not any(self._may_hold_more(t) for t in self._turns)
        ):
            self._take(tenant, reserved=False)
            return False
        if self._reserve_used < self.reserve and self._held[tenant] == 0:
            self._take(tenant, reserved=True)
            return True
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        queue = self._waiters.get(tenant)
        if queue is None:
            queue = self._waiters[tenant] = deque()
            self._turns.append(tenant)
        queue.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release(tenant, fut.result())  # granted as we were cancelled
            else:
                self._forget(tenant, fut)
            raise

    def _take(self, tenant: str, *, reserved: bool) -> None:
        if reserved:
            self._reserve_used += 1
        else:
            self._used += 1
        self._held[tenant] += 1

    def _release(self, tenant: str, reserved: bool) -> None:
        if reserved:
            self._reserve_used -= 1
        else:
            self._used -= 1
        self._held[tenant] -= 1
        if not self._held[tenant]:
            del self._held[tenant]
        self._grant()

    def _grant(self) -> None:
        """Give free slots to waiting tenants, one per tenant in turn."""
        while self._turns:
            if self._used < self.capacity:
                # The next tenant in turn that is below its cap.
                chosen = next((t for t in self._turns if self._may_hold_more(t)), None)
                reserved = False
            elif self._reserve_used < self.reserve:
                # A reserve slot only for a waiting tenant that holds nothing.
                chosen = next((t for t in self._turns if not self._held[t]), None)
                reserved = True
            else:
                return
            if chosen is None:
                return
            if chosen != self._turns[0]:
                self._turns.remove(chosen)
                self._turns.appendleft(chosen)
            tenant = self._turns.popleft()
            queue = self._waiters[tenant]
            fut = queue.popleft()
            if queue:
                self._turns.append(tenant)
            else:
                del self._waiters[tenant]
            if fut.done():  # cancelled while waiting
                continue
            self._take(tenant, reserved=reserved)
            fut.set_result(reserved)

    def _forget(self, tenant: str, fut: asyncio.Future[bool]) -> None:
        queue = self._waiters.get(tenant)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(fut)
        if not queue:
            del self._waiters[tenant]
            with contextlib.suppress(ValueError):
                self._turns.remove(tenant)
