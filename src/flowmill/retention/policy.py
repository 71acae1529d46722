"""Retention policies: how long each kind of finished record is kept.

One policy for every tenant (the ``FLOWMILL_RETENTION_*`` settings), with per-tenant
overrides of any of its fields (``FLOWMILL_RETENTION_TENANTS``, JSON). An age of ``0``
keeps that kind of record for ever. Only finished records are ever candidates: an
execution still pending, queued, running or waiting, and a webhook event not yet
dispatched, are kept whatever their age (see :mod:`flowmill.retention.pruner`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any

DAY_S = 86_400.0


@dataclass(frozen=True)
class RetentionPolicy:
    """Ages after which finished records are deleted, in days (``0``: never).

    Attributes:
        executions_days: Finished executions (succeeded, cancelled) with their node
            runs and logs, counted from when they ended.
        failed_executions_days: Failed executions; ``None`` means as
            ``executions_days`` (keep failures longer to debug them).
        webhook_events_days: Dispatched (or refused) webhook events, whole rows.
        webhook_bodies_days: The raw bodies of dispatched webhook events (the row, its
            status and headers stay until ``webhook_events_days``); usually shorter:
            bodies are the bulk, and the execution holds the parsed payload.
        store_events_days: The event store (audit log, feed), and only below every
            feed consumer's cursor (see the pruner).
    """

    executions_days: float = 30.0
    failed_executions_days: float | None = None
    webhook_events_days: float = 30.0
    webhook_bodies_days: float = 7.0
    store_events_days: float = 90.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value < 0:
                raise ValueError(f"{f.name} must be 0 (keep for ever) or more, not {value}")

    def cutoff(self, kind: str, now: datetime) -> datetime | None:
        """Records of ``kind`` (a field name without ``_days``) ended before this are
        deleted; ``None``: kept for ever."""
        days = getattr(self, f"{kind}_days")
        if kind == "failed_executions" and days is None:
            days = self.executions_days
        if not days:
            return None
        return now - timedelta(seconds=days * DAY_S)


@dataclass(frozen=True)
class RetentionPolicies:
    """The default policy and tenants' overrides of it.

    Args:
        default: Every tenant's policy unless overridden.
        tenants: Per tenant, the fields that differ (field name → days).
    """

    default: RetentionPolicy = field(default_factory=RetentionPolicy)
    tenants: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for tenant in self.tenants:
            self.of(tenant)  # refuses unknown fields and negative ages now, not at 3 a.m.

    def of(self, tenant_id: str) -> RetentionPolicy:
        """The policy of ``tenant_id``.

        Raises:
            ValueError: an override names no policy field, or gives a negative age.
        """
        changes: dict[str, Any] = dict(self.tenants.get(tenant_id) or {})
        known = {f.name for f in fields(RetentionPolicy)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(
                f"retention of tenant {tenant_id!r}: unknown {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})"
            )
        return replace(self.default, **changes) if changes else self.default
