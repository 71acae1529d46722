"""The read side's test helpers: a random workload over the API, the read models'
figures computed from scratch over the raw tables (the oracle), and table snapshots.

The workload mixes executions that succeed, fail, retry nodes (an HTTP stand-in that
answers 503 a few times), continue after an error, fan out, are cancelled and are
retried as new executions, with webhook calls of every outcome but ``failed`` (no
request can make a dispatch fail for good): processed, rejected, duplicate, no_match.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from flowmill.store.database import Database
from flowmill.store.tables import (
    node_executions,
    node_performance,
    webhook_analytics,
    webhook_events,
    workflow_activity,
    workflow_executions,
    workflow_summary,
    workflows,
)
from tests.api_support import FAILING, WAITING, Api
from tests.unit.webhook_support import stripe_header

STRIPE_SECRET = "whsec_test_0123456789abcdef"
READ_MODELS = (workflow_summary, node_performance, webhook_analytics, workflow_activity)


def flaky_workflow(url: str) -> dict[str, Any]:
    """Calls ``{{data.url}}``: each 503 is retried (3 attempts, no backoff)."""
    return {
        "name": "Flaky call",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {
                "id": "call",
                "type": "http_request",
                "config": {"method": "GET", "url": "{{data.url}}"},
                "retry": {"max_attempts": 3, "backoff_ms": 0},
            },
        ],
        "edges": [{"source": "t", "target": "call"}],
    }


FAN_OUT: dict[str, Any] = {
    "name": "Fan out, one branch fails and goes on",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "left", "type": "transform", "config": {"mapping": {"l": "{{data.x}}"}}},
        {"id": "bad", "type": "fail", "config": {"message": "nope"}, "on_error": "continue"},
        {"id": "join", "type": "transform", "config": {"mapping": {"done": "yes"}}},
    ],
    "edges": [
        {"source": "t", "target": "left"},
        {"source": "t", "target": "bad"},
        {"source": "left", "target": "join"},
        {"source": "bad", "target": "join"},
    ],
}


ACTIONS = ("ok", "fail", "flaky", "exhaust", "fan_out", "cancel", "retry")
ACTIONS += ("hook", "hook", "duplicate", "forged")


@dataclass
class Workload:
    """What was started, to wait for."""

    executions: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


async def _run(api: Api, wf: str, data: Any, wait: float = 0) -> str:
    r = await api.a.post(
        f"/api/workflows/{wf}/execute", params={"wait": wait}, json={"input": data}
    )
    assert r.status_code in (200, 202), r.text
    body = r.json()
    return str(body.get("execution_id") or body["id"])  # 202 accepted, or 200 detail


async def _hook(api: Api, wf: str) -> str:
    r = await api.a.post(
        "/api/webhooks",
        json={
            "name": "stripe",
            "workflow_id": wf,
            "node_id": "trigger-1",
            "provider": "stripe",
            "secret": STRIPE_SECRET,
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _call(api: Api, hook: str, event_id: str, *, forged: bool = False) -> str:
    body = json.dumps({"id": event_id, "type": "invoice.paid", "data": {"message": "m"}})
    secret = "whsec_wrong_key_0123456789" if forged else STRIPE_SECRET
    r = await api.anon.post(
        f"/webhooks/{hook}/stripe",
        content=body,
        headers={"Stripe-Signature": stripe_header(secret, int(time.time()), body)},
    )
    assert r.status_code in (200, 401), r.text
    return str(r.json().get("status", "rejected"))


async def prepare_no_match(api: Api) -> None:
    """Before the engine runs: calls to a webhook deleted before they are dispatched."""
    wf = await api.workflow()
    hook = await _hook(api, wf)
    for _ in range(2):
        assert await _call(api, hook, f"evt_{uuid.uuid4().hex}") == "received"
    assert (await api.a.delete(f"/api/webhooks/{hook}")).status_code == 204


async def run_workload(api: Api, rng: random.Random, flaky_base: str, steps: int) -> Workload:
    """``steps`` random actions as tenant A (the engine must be running)."""
    ok, failing = await api.workflow(), await api.workflow(FAILING)
    flaky, fan_out = await api.workflow(flaky_workflow(flaky_base)), await api.workflow(FAN_OUT)
    waiting = await api.workflow(WAITING)
    hook = await _hook(api, ok)
    out = Workload(hooks=[hook])
    sent: list[str] = []
    chosen = [rng.choice(ACTIONS) for _ in range(steps)]
    # ...and each kind at least once, whatever the draw: a retry needs a failure and a
    # duplicate a call before it, so those go last
    chosen += ["fail", "hook", *ACTIONS]
    done: set[str] = set()
    for i, action in enumerate(chosen):
        if i >= steps and action in done:
            continue
        if (action == "retry" and not out.failed) or (action == "duplicate" and not sent):
            continue
        done.add(action)
        if action == "ok":
            out.executions.append(await _run(api, ok, {"message": "hi"}))
        elif action == "fail":
            out.failed.append(await _run(api, failing, {"x": 1}, wait=10))
        elif action in ("flaky", "exhaust"):
            fails = rng.randint(0, 2) if action == "flaky" else 9
            url = f"{flaky_base}/flaky?key={uuid.uuid4().hex}&fails={fails}"
            out.executions.append(await _run(api, flaky, {"url": url}))
        elif action == "fan_out":
            out.executions.append(await _run(api, fan_out, {"x": rng.randint(0, 9)}))
        elif action == "cancel":
            execution = await _run(api, waiting, {})
            await wait_status(api, execution, ("waiting",))
            r = await api.a.post(f"/api/executions/{execution}/cancel")
            assert r.status_code == 200, r.text
            out.executions.append(execution)
        elif action == "retry":
            r = await api.a.post(f"/api/executions/{rng.choice(out.failed)}/retry")
            assert r.status_code in (200, 201, 202), r.text
            out.executions.append(str(r.json()["execution_id"]))
        elif action == "hook":
            sent.append(f"evt_{uuid.uuid4().hex}")
            assert await _call(api, hook, sent[-1]) == "received"
        elif action == "duplicate":
            assert await _call(api, hook, rng.choice(sent)) == "duplicate"
        elif action == "forged":
            assert await _call(api, hook, f"evt_{uuid.uuid4().hex}", forged=True) == "rejected"
    out.executions.extend(out.failed)
    return out


async def wait_status(
    api: Api, execution_id: str, statuses: tuple[str, ...], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = (await api.a.get(f"/api/executions/{execution_id}")).json()
        if body["status"] in statuses or time.monotonic() > deadline:
            assert body["status"] in statuses, body
            return body
        await asyncio.sleep(0.02)  # not a wait: a poll that fails at its deadline


async def settle(api: Api, workload: Workload, timeout: float = 60) -> None:
    """Wait until every execution ended and every webhook call was dispatched."""
    for execution in workload.executions:
        await wait_status(api, execution, ("succeeded", "failed", "cancelled"), timeout)
    deadline = time.monotonic() + timeout
    while True:
        pending = await api.runtime.db.read(
            lambda c: c.execute(
                sa.select(sa.func.count()).where(webhook_events.c.status == "received")
            ).scalar_one()
        )
        if pending == 0:
            break
        assert time.monotonic() < deadline, f"{pending} webhook calls not dispatched"
        await asyncio.sleep(0.05)  # not a wait: a poll that fails at its deadline
    # executions started by webhooks
    deadline = time.monotonic() + timeout
    while True:
        live = await api.runtime.db.read(
            lambda c: c.execute(
                sa.select(sa.func.count()).where(
                    workflow_executions.c.status.in_(("pending", "queued", "running", "waiting"))
                )
            ).scalar_one()
        )
        if live == 0:
            return
        assert time.monotonic() < deadline, f"{live} executions still live"
        await asyncio.sleep(0.05)  # not a wait: a poll that fails at its deadline


# --- the oracle -------------------------------------------------------------------------


def ms(start: datetime, end: datetime) -> int:
    """A duration as the engine writes it in its events."""
    return max(0, int((end - start).total_seconds() * 1000))


def exact_p95(durations: list[int]) -> float | None:
    if not durations:
        return None
    ordered = sorted(durations)
    return float(ordered[max(1, math.ceil(0.95 * len(ordered))) - 1])


@dataclass
class Figures:
    """One read-model row as the oracle computes it: counters, durations, times."""

    counters: dict[str, int]
    durations: list[int] = field(default_factory=list)
    last: datetime | None = None


def _figures(table: dict[Any, Figures], key: Any, **counters: int) -> Figures:
    if key not in table:
        table[key] = Figures(dict.fromkeys(counters, 0))
    f = table[key]
    for name, n in counters.items():
        f.counters[name] += n
    return f


async def oracle(db: Database, tenant: str) -> dict[str, dict[Any, Figures]]:
    """Every read model's figures for ``tenant``, from workflow_executions,
    node_executions and webhook_events alone."""
    we, ne, wh = workflow_executions, node_executions, webhook_events

    def _read(conn: sa.Connection) -> dict[str, dict[Any, Figures]]:
        summary: dict[Any, Figures] = {}
        activity: dict[Any, Figures] = {}
        names = sa.select(workflows.c.id).where(workflows.c.tenant_id == tenant)
        for (wf,) in conn.execute(names):
            _figures(summary, str(wf), executions=0, succeeded=0, failed=0, cancelled=0)
        counts = sa.select(
            we.c.workflow_id,
            sa.func.count(we.c.started_at),
            *(sa.func.sum(sa.case((we.c.status == s, 1), else_=0)) for s in _ENDS),
            sa.func.max(we.c.started_at),
        ).where(we.c.tenant_id == tenant)
        for wf, started, ok, bad, cancelled, last in conn.execute(
            counts.group_by(we.c.workflow_id)
        ):
            f = summary[str(wf)]
            f.counters.update(executions=started, succeeded=ok, failed=bad, cancelled=cancelled)
            f.last = last
        rows = sa.select(we.c.workflow_id, we.c.status, we.c.started_at, we.c.completed_at)
        for wf, status, started, completed in conn.execute(rows.where(we.c.tenant_id == tenant)):
            if started is not None:
                f = _figures(activity, (str(wf), _hour(started)), **_zero_activity())
                f.counters["started"] += 1
            if status in _ENDS:
                f = _figures(activity, (str(wf), _hour(completed)), **_zero_activity())
                f.counters[_ENDS[status]] += 1
                if status in ("succeeded", "failed"):
                    f.durations.append(ms(started, completed))
                    summary[str(wf)].durations.append(ms(started, completed))
        nodes: dict[Any, Figures] = {}
        copied = sa.func.coalesce(_copied_from(conn), "") == ""  # outputs copied by a retry
        runs = (
            sa.select(
                we.c.workflow_id, ne.c.node_id, ne.c.status, ne.c.attempt, ne.c.started_at,
                ne.c.completed_at,
            )
            .select_from(ne.join(we, we.c.id == ne.c.execution_id))
            .where(ne.c.tenant_id == tenant, copied)
        )  # fmt: skip
        for wf, node, status, attempt, started, completed in conn.execute(runs):
            if status not in ("succeeded", "failed") and attempt == 1:
                continue  # skipped, cancelled: no attempt ended, none was retried
            f = _figures(nodes, (str(wf), node), runs=0, failures=0, retries=0)
            f.counters["retries"] += attempt > 1
            if status in ("succeeded", "failed"):
                f.counters["runs"] += 1
                f.counters["failures"] += status == "failed"
                f.durations.append(ms(started, completed))
                f.last = completed if f.last is None else max(f.last, completed)
        hooks: dict[Any, Figures] = {}
        calls = sa.select(wh.c.trigger_id, wh.c.targets, wh.c.route, wh.c.status, wh.c.received_at)
        for trigger, targets, route, status, received in conn.execute(
            calls.where(wh.c.tenant_id == tenant)
        ):
            keys = list(dict.fromkeys(targets or [])) or (
                [str(trigger)] if trigger else [f"route:{route}"]
            )
            for key in keys:
                f = _figures(hooks, key, **dict.fromkeys(_HOOK_COLUMNS.values(), 0), total=1)
                f.counters[_HOOK_COLUMNS[status]] += 1
                f.last = received if f.last is None else max(f.last, received)
        return {
            "workflow_summary": summary,
            "workflow_activity": activity,
            "node_performance": nodes,
            "webhook_analytics": hooks,
        }

    return await db.read(_read)


_ENDS = {"succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled"}
_HOOK_COLUMNS = {
    "processed": "succeeded",
    "rejected": "rejected",
    "duplicate": "duplicates",
    "no_match": "no_match",
    "failed": "failed",
}


def _zero_activity() -> dict[str, int]:
    return {"started": 0, "succeeded": 0, "failed": 0, "cancelled": 0}


def _hour(at: datetime) -> int:
    return int(at.timestamp()) // 3600


def _copied_from(conn: sa.Connection) -> Any:
    ne = node_executions
    if conn.dialect.name == "postgresql":
        return sa.cast(ne.c.state, sa.dialects.postgresql.JSONB)["copied_from"].astext
    return sa.func.json_extract(ne.c.state, "$.copied_from")


_KEYS = {
    "workflow_summary": ("workflow_id",),
    "workflow_activity": ("workflow_id", "hour"),
    "node_performance": ("workflow_id", "node_id"),
    "webhook_analytics": ("webhook_id",),
}
_LAST = {
    "workflow_summary": "last_executed_at",
    "node_performance": "last_run_at",
    "webhook_analytics": "last_called_at",
}


async def snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every row of every read model, in key order."""

    def _read(conn: sa.Connection) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for table in READ_MODELS:
            order = list(table.primary_key.columns)
            out[table.name] = [
                dict(r._mapping) for r in conn.execute(sa.select(table).order_by(*order))
            ]
        return out

    return await db.read(_read)


def compare(
    projected: dict[str, list[dict[str, Any]]], expected: dict[str, dict[Any, Figures]], tenant: str
) -> None:
    """Assert the read models of ``tenant`` hold exactly the oracle's figures (the p95
    within the sketch's 1 %)."""
    for name, figures in expected.items():
        rows = {
            tuple(r[k] for k in _KEYS[name]) if len(_KEYS[name]) > 1 else r[_KEYS[name][0]]: r
            for r in projected[name]
            if r["tenant_id"] == tenant
        }
        assert set(rows) == set(figures), (name, set(rows) ^ set(figures))
        for key, f in figures.items():
            row = rows[key]
            for counter, value in f.counters.items():
                assert row[counter] == value, (name, key, counter, row[counter], value)
            if name in _LAST and f.last is not None:
                assert row[_LAST[name]] == f.last, (name, key, row[_LAST[name]], f.last)
            if "duration_count" in row:
                assert row["duration_count"] == len(f.durations), (name, key)
                assert row["duration_sum_ms"] == sum(f.durations), (name, key)
                p95 = exact_p95(f.durations)
                if p95 is None:
                    assert row["p95_duration_ms"] is None
                else:
                    assert abs(row["p95_duration_ms"] - p95) <= 0.01 * p95 + 0.001, (
                        name, key, row["p95_duration_ms"], p95,
                    )  # fmt: skip


async def workflow_names(db: Database, tenant: str) -> dict[str, str]:
    q = sa.select(workflows.c.id, workflows.c.name).where(workflows.c.tenant_id == tenant)
    return {str(i): n for i, n in await db.read(lambda c: c.execute(q).all())}
