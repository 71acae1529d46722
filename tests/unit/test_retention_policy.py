"""Retention policies: cutoffs per kind, 0 keeps for ever, failed executions default to
the executions' age, per-tenant overrides, and misspelled or negative ages refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flowmill.config import Settings
from flowmill.retention.policy import RetentionPolicies, RetentionPolicy

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("policy", "kind", "days"),
    [
        (RetentionPolicy(), "executions", 30),
        (RetentionPolicy(), "failed_executions", 30),
        (RetentionPolicy(executions_days=3), "failed_executions", 3),
        (RetentionPolicy(failed_executions_days=90), "failed_executions", 90),
        (RetentionPolicy(), "webhook_bodies", 7),
        (RetentionPolicy(), "store_events", 90),
        (RetentionPolicy(executions_days=0), "executions", None),
        (RetentionPolicy(executions_days=0), "failed_executions", None),
        (RetentionPolicy(webhook_events_days=0.5), "webhook_events", 0.5),
    ],
)
def test_retention_policy_cutoff(policy: RetentionPolicy, kind: str, days: float | None) -> None:
    expected = None if days is None else NOW - timedelta(days=days)
    assert policy.cutoff(kind, NOW) == expected


def test_retention_policy_tenant_overrides_one_field() -> None:
    policies = RetentionPolicies(RetentionPolicy(), {"acme": {"executions_days": 90}})
    assert policies.of("acme") == RetentionPolicy(executions_days=90)
    assert policies.of("other") == RetentionPolicy()


@pytest.mark.parametrize(
    "tenants",
    [{"acme": {"execution_days": 90}}, {"acme": {"executions_days": -1}}],
)
def test_retention_policy_refuses_unknown_fields_and_negative_ages(
    tenants: dict[str, dict[str, float | None]],
) -> None:
    with pytest.raises(ValueError, match=r"acme|executions_days"):
        RetentionPolicies(RetentionPolicy(), tenants)
    with pytest.raises(ValueError, match="retention"):
        Settings(retention_tenants=tenants)


def test_retention_policy_from_settings() -> None:
    s = Settings(retention_executions_days=2, retention_tenants={"a": {"webhook_bodies_days": 0}})
    assert s.retention().of("b") == RetentionPolicy(executions_days=2)
    assert s.retention().of("a").cutoff("webhook_bodies", NOW) is None
