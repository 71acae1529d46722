"""Tenants' quotas: token buckets, overrides, and the API answering 429 with Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flowmill.quotas import QuotaBook, Quotas, RateLimiter
from tests.api_support import THREE_NODES, Api, open_api

ADMIN = {"Authorization": "Bearer admin-secret-key"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_quotas_token_bucket_allows_a_minute_then_refills() -> None:
    clock = Clock()
    rates = RateLimiter(clock)
    assert [rates.take("a", "api", 3) for _ in range(3)] == [None, None, None]
    wait = rates.take("a", "api", 3)
    assert wait == pytest.approx(20.0)  # one token per 20 s at 3 per minute
    assert rates.take("b", "api", 3) is None  # another tenant has its own bucket
    clock.now += 20.0
    assert rates.take("a", "api", 3) is None
    assert rates.take("a", "api", 0) is None  # 0: unlimited


async def test_quotas_book_applies_overrides_and_reads_again_after_refresh() -> None:
    clock = Clock()
    stored = {"a": {"concurrent_steps": 2}}
    reads = 0

    async def load() -> dict[str, dict[str, int]]:
        nonlocal reads
        reads += 1
        return {t: dict(v) for t, v in stored.items()}

    book = QuotaBook(Quotas(starts_per_minute=60), load, refresh_s=5, clock=clock)
    assert (await book.get("a")).concurrent_steps == 2
    assert (await book.get("b")) == Quotas(starts_per_minute=60)
    stored["a"] = {"concurrent_steps": 7}
    assert (await book.get("a")).concurrent_steps == 2  # within refresh_s: cached
    clock.now += 6
    assert (await book.get("a")).concurrent_steps == 7
    assert reads == 2
    assert book.concurrency("a", "concurrent_steps") == 7


@pytest.fixture
async def api(sqlite_url: str) -> AsyncIterator[Api]:
    async with open_api(sqlite_url, worker=False, admin_key="admin-secret-key") as api:
        yield api


async def test_quotas_admin_api_is_hidden_without_a_key(sqlite_url: str) -> None:
    async with open_api(sqlite_url, worker=False) as plain:
        r = await plain.anon.get("/api/admin/tenants/tenant-a/quotas", headers=ADMIN)
        assert r.status_code == 404


async def test_quotas_admin_api_refuses_a_tenant_key_and_a_wrong_admin_key(api: Api) -> None:
    path = "/api/admin/tenants/tenant-a/quotas"
    assert (await api.a.get(path)).status_code == 401  # a tenant's own API key
    wrong = {"Authorization": "Bearer admin-secret-kez"}
    assert (await api.anon.get(path, headers=wrong)).status_code == 401
    assert (await api.anon.get(path, headers=ADMIN)).status_code == 200
    r = await api.anon.patch(path, headers=ADMIN, json={"concurrent_steps": -1})
    assert r.status_code == 422
    r = await api.anon.patch(path, headers=ADMIN, json={"concurrent_step": 1})
    assert r.status_code == 422
    missing = await api.anon.get("/api/admin/tenants/nobody/quotas", headers=ADMIN)
    assert missing.status_code == 404


async def test_quotas_api_requests_over_quota_get_429_with_retry_after(api: Api) -> None:
    r = await api.anon.patch(
        "/api/admin/tenants/tenant-a/quotas", headers=ADMIN, json={"api_requests_per_minute": 3}
    )
    assert r.status_code == 200, r.text
    assert r.json()["overrides"] == {"api_requests_per_minute": 3}
    codes = [(await api.a.get("/api/workflows")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = await api.a.get("/api/workflows")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"
    # The other tenant is not touched; clearing the override lifts the limit.
    assert all([(await api.b.get("/api/workflows")).status_code == 200 for _ in range(10)])
    cleared = await api.anon.patch(
        "/api/admin/tenants/tenant-a/quotas", headers=ADMIN, json={"api_requests_per_minute": None}
    )
    assert cleared.json()["overrides"] == {}
    assert (await api.a.get("/api/tenant/quotas")).json()["api_requests_per_minute"] == 0


async def test_quotas_starts_over_quota_are_refused_before_anything_is_written(api: Api) -> None:
    wf = await api.workflow(THREE_NODES)
    r = await api.anon.patch(
        "/api/admin/tenants/tenant-a/quotas", headers=ADMIN, json={"starts_per_minute": 2}
    )
    assert r.status_code == 200
    path = f"/api/workflows/{wf}/execute"
    codes = [(await api.a.post(path, json={"input": {}})).status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    listed = (await api.a.get("/api/executions")).json()["items"]
    assert len(listed) == 2


async def test_quotas_concurrent_executions_beyond_the_cap_answer_queued(api: Api) -> None:
    wf = await api.workflow(THREE_NODES)
    r = await api.anon.patch(
        "/api/admin/tenants/tenant-a/quotas", headers=ADMIN, json={"concurrent_executions": 1}
    )
    assert r.status_code == 200, r.text
    assert r.json()["effective"]["concurrent_executions"] == 1
    assert (await api.a.get("/api/tenant/quotas")).json()["concurrent_executions"] == 1
    path = f"/api/workflows/{wf}/execute"
    answers = [(await api.a.post(path, json={"input": {}})) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert [a.json()["status"] == "queued" for a in answers] == [False, True, True]
    # Tenant B's start is not held by A's cap.
    created = await api.b.post("/api/workflows", json=THREE_NODES)
    wf_b = created.json()["id"]
    assert (await api.b.post(f"/api/workflows/{wf_b}/publish")).status_code == 200
    theirs = await api.b.post(f"/api/workflows/{wf_b}/execute", json={"input": {}})
    assert theirs.status_code == 202 and theirs.json()["status"] != "queued"


async def test_quotas_webhook_deliveries_over_quota_get_429_and_are_not_recorded(
    api: Api,
) -> None:
    await api.workflow({**THREE_NODES, "status": "active"}, publish=False)
    r = await api.anon.patch(
        "/api/admin/tenants/tenant-a/quotas",
        headers=ADMIN,
        json={"webhook_requests_per_minute": 2},
    )
    assert r.status_code == 200
    url = "/webhooks/tenant-a/webhook/test"
    codes = [(await api.anon.post(url, json={"message": "m"})).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    events = (await api.a.get("/api/webhooks")).json()["items"]
    [hook] = events
    recorded = (await api.a.get(f"/api/webhooks/{hook['id']}/events")).json()["items"]
    assert len(recorded) == 2
