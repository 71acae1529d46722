"""Per-tenant quotas: what one tenant may use, so a flood delays only itself.

Defaults come from settings (``FLOWMILL_TENANT_*``; 0 means unlimited) and a tenant's
overrides from the ``tenant_quotas`` table (set with ``flowmill quotas set`` or the
admin API). Rates are token buckets refilled per minute, kept in each process (an API
process refuses with 429 and ``Retry-After`` what its own bucket cannot take, so with N
API processes behind a balancer a tenant gets at most N times its rate); concurrency
caps are read by the engine's start path (executions), the queues (steps) and the
sandbox pools.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Literal

Rate = Literal["api_requests_per_minute", "webhook_requests_per_minute", "starts_per_minute"]
Cap = Literal["concurrent_executions", "concurrent_steps", "sandbox_concurrency"]


@dataclass(frozen=True)
class Quotas:
    """One tenant's quotas; 0 means unlimited.

    Attributes:
        api_requests_per_minute: Authenticated API requests (429 beyond).
        webhook_requests_per_minute: Webhook deliveries to the tenant's URLs (429 beyond,
            so the sender retries later; nothing is recorded).
        starts_per_minute: Executions started through the API.
        concurrent_executions: The tenant's executions live at once (children of an
            execution not counted); further starts wait in ``queued`` and start as
            others end, across every process of the deployment.
        concurrent_steps: Steps of the tenant running at once in one worker process.
        sandbox_concurrency: Code evaluations of the tenant running at once in one
            process's sandbox pools.
    """

    api_requests_per_minute: int = 0
    webhook_requests_per_minute: int = 0
    starts_per_minute: int = 0
    concurrent_executions: int = 0
    concurrent_steps: int = 0
    sandbox_concurrency: int = 0

    def with_overrides(self, overrides: Mapping[str, int]) -> Quotas:
        """These quotas with the tenant's overrides applied (unknown keys ignored)."""
        known = {k: int(v) for k, v in overrides.items() if k in QUOTA_FIELDS}
        return replace(self, **known) if known else self


QUOTA_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Quotas))


class RateLimiter:
    """Token buckets keyed by ``(tenant, rate)``, each holding a minute's worth.

    Args:
        clock: Monotonic seconds.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # tokens, at

    def take(self, tenant: str, rate: str, per_minute: int) -> float | None:
        """Take one token. Returns ``None`` when allowed, else the seconds to wait."""
        if per_minute <= 0:
            return None
        now = self._clock()
        key = (tenant, rate)
        tokens, at = self._buckets.get(key, (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - at) * per_minute / 60.0)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) * 60.0 / per_minute


Loader = Callable[[], Awaitable[dict[str, dict[str, int]]]]


class QuotaBook:
    """Effective quotas of every tenant: defaults plus the stored overrides.

    The overrides of all tenants are read at once and kept for ``refresh_s`` (the table
    holds one small row per tenant that has any); a change shows within that time.

    Args:
        defaults: Quotas of a tenant without overrides.
        load: Reads ``{tenant_id: {field: value}}`` from the store.
        refresh_s: How long a read is used.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        defaults: Quotas,
        load: Loader | None = None,
        *,
        refresh_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.defaults = defaults
        self._load = load
        self._refresh_s = refresh_s
        self._clock = clock
        self._overrides: dict[str, dict[str, int]] = {}
        self._loaded_at: float | None = None
        self._loading: asyncio.Future[None] | None = None
        self.rates = RateLimiter(clock)

    def cached(self, tenant: str) -> Quotas:
        """The tenant's quotas as last read (defaults before the first read)."""
        overrides = self._overrides.get(tenant)
        return self.defaults.with_overrides(overrides) if overrides else self.defaults

    async def get(self, tenant: str) -> Quotas:
        """The tenant's quotas, read again when the last read is older than refresh_s."""
        at = self._loaded_at
        if self._load is not None and (at is None or self._clock() - at > self._refresh_s):
            await self.refresh()
        return self.cached(tenant)

    async def refresh(self) -> None:
        """Read the overrides again (concurrent callers share one read)."""
        if self._load is None:
            return
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._read())
        loading = self._loading
        try:
            await asyncio.shield(loading)
        finally:
            if loading.done() and self._loading is loading:
                self._loading = None

    async def _read(self) -> None:
        assert self._load is not None
        self._overrides = await self._load()
        self._loaded_at = self._clock()

    def forget(self) -> None:
        """Read again on the next :meth:`get` (after a change made in this process)."""
        self._loaded_at = None

    async def throttled(self, tenant: str, rate: Rate) -> float | None:
        """Take one unit of ``rate`` for ``tenant``: ``None`` if within its quota, else
        the seconds until it may try again."""
        quotas = await self.get(tenant)
        return self.rates.take(tenant, rate, int(getattr(quotas, rate)))

    def concurrency(self, tenant: str, cap: Cap) -> int:
        """A concurrency cap of ``tenant`` (0: none), without waiting for a read."""
        return int(getattr(self.cached(tenant), cap))

    async def execution_cap(self, tenant: str) -> int:
        """The tenant's ``concurrent_executions`` (0: none), read again when stale."""
        return (await self.get(tenant)).concurrent_executions
