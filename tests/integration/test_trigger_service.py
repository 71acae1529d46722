"""The trigger service on a real database with a fake clock: schedules across DST,
two replicas over an hour of simulated time, and missed fires after downtime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from flowmill.config import Settings
from flowmill.domain.errors import WorkflowNotFound
from flowmill.runtime import Runtime, open_runtime
from flowmill.store.tables import workflow_executions
from flowmill.testing import FakeClock, eventually
from flowmill.triggers.service import TriggerService

TENANT = "sched"


def schedule_workflow(**trigger: Any) -> dict[str, Any]:
    return {
        "name": "scheduled",
        "tenant_id": TENANT,
        "nodes": [
            {"id": "tick", "type": "trigger", "config": {"triggerType": "schedule", **trigger}},
            {"id": "noop", "type": "noop"},
        ],
        "edges": [{"source": "tick", "target": "noop"}],
    }


@contextlib.asynccontextmanager
async def runtime(url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    settings = Settings(database_url=url, sandbox_enabled=False, scheduler_lease_s=15)
    async with open_runtime(settings, clock=clock) as rt:
        yield rt


async def publish(rt: Runtime, doc: dict[str, Any]) -> str:
    await rt.workflows.ensure_tenant(TENANT)
    record = await rt.workflows.create(TENANT, doc, publish=True)
    return record.id


async def fire_times(rt: Runtime) -> list[str]:
    we = workflow_executions
    q = sa.select(we.c.trigger, we.c.dedupe_key).where(we.c.trigger_type == "schedule")
    rows = await rt.db.read(lambda c: c.execute(q).all())
    return sorted(r[0]["data"]["fire_at"] for r in rows)


async def run_for(svc: TriggerService, clock: FakeClock, seconds: int, step: int) -> None:
    for _ in range(seconds // step):
        clock.advance(step)
        await svc.round()


async def test_trigger_service_fires_0230_new_york_once_across_both_dst_changes(
    sqlite_url: str,
) -> None:
    clock = FakeClock(datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    async with runtime(sqlite_url, clock) as rt:
        svc = rt.triggers.service
        await publish(rt, schedule_workflow(cron="30 2 * * *", timezone="America/New_York"))
        await run_for(svc, clock, 3 * 86400, 600)  # 7 March noon → 10 March noon
        spring = await fire_times(rt)
        clock.advance((datetime(2026, 10, 31, 12, tzinfo=UTC) - clock.now()).total_seconds())
        [trigger] = (await rt.triggers.triggers.due_schedules(clock.now(), 10)) or [None]
        assert trigger is not None
        # Re-enable so the months in between are not "missed" (disabled meanwhile).
        await rt.triggers.triggers.set_enabled(TENANT, trigger.id, False)
        await rt.triggers.triggers.set_enabled(TENANT, trigger.id, True)
        await run_for(svc, clock, 3 * 86400, 600)
        autumn = (await fire_times(rt))[len(spring) :]
    assert spring == [
        "2026-03-08T07:00:00+00:00",  # 02:30 does not exist: 03:00 EDT, once
        "2026-03-09T06:30:00+00:00",  # 02:30 EDT
        "2026-03-10T06:30:00+00:00",
    ]
    assert autumn == [
        "2026-11-01T07:30:00+00:00",  # 02:30 EST (after the repeated 01:xx hour), once
        "2026-11-02T07:30:00+00:00",
        "2026-11-03T07:30:00+00:00",
    ]


def both_read_before_either_fires(replicas: list[TriggerService]) -> None:
    """Make a split brain deterministic: each replica's read of the due schedules waits
    until every replica has read them, so all of them see the same firing due (as two
    leaders do when one of them was paused between its read and its start)."""
    barrier = asyncio.Barrier(len(replicas))
    for replica in replicas:
        read = replica.triggers.due_schedules

        async def read_then_wait(now: datetime, limit: int = 100, read: Any = read) -> Any:
            due = await read(now, limit)
            await asyncio.wait_for(barrier.wait(), 10)
            return due

        replica.triggers.due_schedules = read_then_wait  # type: ignore[method-assign]


async def test_trigger_service_two_replicas_over_an_hour_start_each_firing_once(
    postgres_url: str,
) -> None:
    start = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
    clock = FakeClock(start)
    async with runtime(postgres_url, clock) as a, runtime(postgres_url, clock) as b:
        await publish(a, schedule_workflow(cron="* * * * *"))
        replicas = [a.triggers.service, b.triggers.service]
        leaders: list[str] = []
        split_brain = 0
        for i in range(3600 // 15):
            clock.advance(15)
            if i == 99:
                # 09:25:00, a due instant: both believe they lead (a paused leader, a
                # partition) and both read 09:25 as due before either starts it.
                assert clock.now() == start + timedelta(minutes=25)
                both_read_before_either_fires(replicas)
                fired = await asyncio.gather(*(r.fire_schedules(clock.now()) for r in replicas))
                split_brain = sum(fired)
                for r in replicas:
                    del r.triggers.due_schedules  # back to the class's method
            if i == 120:
                # The leader dies without a word: the survivor takes over once the
                # lease has expired.
                replicas = [r for r in replicas if r.holder != leaders[-1]]
            done = await asyncio.gather(*(r.round() for r in replicas))
            led = [r.holder for r, d in zip(replicas, done, strict=True) if d.leader]
            assert len(led) <= 1  # never two leaders in one round
            leaders.extend(led)
        times = await fire_times(a)
    assert split_brain == 2  # both replicas started 09:25 (one of them found it started)
    assert len(times) == 60
    assert times == [
        (start + timedelta(minutes=m)).isoformat() for m in range(1, 61)
    ]  # each minute once, 09:25 included
    assert len(set(leaders)) == 2  # the lease moved when the leader died
    # ... after at most the lease's 15 s (one round of 15 s without a leader)
    assert len(leaders) >= 3600 // 15 - 2


async def test_trigger_service_missed_fires_skip_or_run_once_after_downtime(
    sqlite_url: str,
) -> None:
    clock = FakeClock(datetime(2026, 6, 1, 0, 0, 30, tzinfo=UTC))
    async with runtime(sqlite_url, clock) as rt:
        svc = rt.triggers.service
        await publish(rt, schedule_workflow(every="10m"))
        doc = schedule_workflow(every="10m", missed_fire_policy="run_once")
        await publish(rt, {**doc, "name": "catch up"})
        clock.advance(600)
        await svc.round()  # 00:10 fires for both
        clock.advance(3600)  # down for an hour: 00:20 … 01:10 pass unseen
        await svc.round()
        times = await fire_times(rt)
    # skip: only the on-time 01:10; run_once: one catch-up (01:00) plus 01:10.
    assert times == sorted(
        ["2026-06-01T00:10:00+00:00"] * 2
        + ["2026-06-01T01:00:00+00:00"]
        + ["2026-06-01T01:10:00+00:00"] * 2
    )


class LateClock(FakeClock):
    """A fake clock whose sleeps overshoot, as on a loaded machine, and that stops the
    service once it passes ``until``: the service's own loop (``run``: round, pause
    until the next due time or the tick, again) over simulated days, in a moment."""

    def __init__(self, start: datetime, *, late_s: float, until: datetime) -> None:
        super().__init__(start)
        self.late_s, self.until = late_s, until
        self.service: TriggerService | None = None
        self.sleeps = 0

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.advance(seconds + self.late_s)
        if self.now() > self.until and self.service is not None:
            self.service.stop()
        await asyncio.sleep(0)


async def run_loop(url: str, clock: LateClock, doc: dict[str, Any], tick_s: float) -> list[str]:
    """Publish ``doc``, run the trigger service's loop until the clock's end, and
    return the fire times it started."""
    settings = Settings(database_url=url, sandbox_enabled=False, scheduler_tick_s=tick_s)
    async with open_runtime(settings, clock=clock) as rt:
        await publish(rt, doc)
        clock.service = rt.triggers.service
        await asyncio.wait_for(rt.triggers.service.run(), 120)
        return await fire_times(rt)


async def test_trigger_service_loop_waking_late_starts_each_fire_time_exactly_once(
    sqlite_url: str,
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = LateClock(start, late_s=1.3, until=start + timedelta(minutes=10))
    times = await run_loop(sqlite_url, clock, schedule_workflow(every="7s"), tick_s=3)
    assert times == [(start + timedelta(seconds=7 * k)).isoformat() for k in range(1, 86)]
    assert clock.sleeps > 85  # woke between firings too, not once per firing


async def test_trigger_service_loop_across_dst_with_a_slow_tick(sqlite_url: str) -> None:
    """The pause ends at the next due time, not at the tick: with an hour's tick and
    every wake 37 s late, 02:30 New York still fires once a day, on time."""
    clock = LateClock(
        datetime(2026, 3, 7, 12, tzinfo=UTC), late_s=37, until=datetime(2026, 3, 11, tzinfo=UTC)
    )
    doc = schedule_workflow(cron="30 2 * * *", timezone="America/New_York")
    times = await run_loop(sqlite_url, clock, doc, tick_s=3600)
    assert times == [
        "2026-03-08T07:00:00+00:00",  # 02:30 does not exist: 03:00 EDT
        "2026-03-09T06:30:00+00:00",
        "2026-03-10T06:30:00+00:00",
    ]


async def test_trigger_service_outlives_a_database_error_between_rounds(
    sqlite_url: str, monkeypatch: Any
) -> None:
    """The leader's pause reads the next due time; that read failing (the database away)
    must not end the loop while the process carries on looking alive."""
    settings = Settings(database_url=sqlite_url, sandbox_enabled=False, scheduler_tick_s=0.01)
    async with open_runtime(settings) as rt:
        svc = rt.triggers.service
        rounds = 0
        real_round, real_next_due = svc.round, svc.triggers.next_due_at
        failures = iter([OSError("connection refused")] * 3)

        async def counting_round() -> None:
            nonlocal rounds
            rounds += 1
            await real_round()

        async def flaky_next_due() -> Any:
            error = next(failures, None)
            if error is not None:
                raise error
            return await real_next_due()

        monkeypatch.setattr(svc, "round", counting_round)
        monkeypatch.setattr(svc.triggers, "next_due_at", flaky_next_due)
        task = asyncio.create_task(svc.run())
        try:
            await eventually(lambda: rounds >= 6, 10, "six rounds, past the three failures")
            assert svc.leading
            assert not task.done(), task
            assert rounds >= 6  # went on after the three failures
        finally:
            svc.stop()
            await asyncio.wait_for(task, 5)


async def test_trigger_service_skips_a_start_that_cannot_be_made_but_not_a_bug(
    sqlite_url: str, monkeypatch: Any
) -> None:
    """A firing whose workflow is gone is logged and skipped (the schedule moves on); a
    bug in the start (a ``KeyError``, which is a ``LookupError``) is not swallowed as
    one of those: it reaches the round, whose caller logs it with its traceback."""
    clock = FakeClock(datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    async with runtime(sqlite_url, clock) as rt:
        svc = rt.triggers.service
        await publish(rt, schedule_workflow(cron="* * * * *"))

        async def gone(**_: Any) -> str:
            raise WorkflowNotFound("deleted meanwhile")

        monkeypatch.setattr(rt.engine, "start_execution", gone)
        clock.advance(60)
        await svc.round()  # skipped, not raised

        async def bug(**_: Any) -> str:
            raise KeyError("a bug")

        monkeypatch.setattr(rt.engine, "start_execution", bug)
        clock.advance(60)
        with pytest.raises(KeyError):
            await svc.round()


async def test_trigger_service_webhook_cache_expires_by_the_runtime_clock(sqlite_url: str) -> None:
    # The ingress reuses a resolved webhook for webhook_cache_s of its Clock, not of the
    # wall clock: a webhook disabled behind its back is served for the hour of fake time,
    # and dropped as soon as the fake clock has passed it.
    clock = FakeClock(datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    settings = Settings(database_url=sqlite_url, sandbox_enabled=False, webhook_cache_s=3600)
    async with open_runtime(settings, clock=clock) as rt:
        doc = schedule_workflow(cron="0 0 1 1 *")
        doc["nodes"][0]["config"] = {"triggerType": "webhook"}
        wf = await publish(rt, doc)
        hooks = rt.triggers.triggers
        hook = await hooks.create_webhook(
            tenant_id=TENANT, workflow_id=wf, node_id="tick", name="h", provider="none",
            config={"allow_unverified": True}, seal=lambda _tid: None,
        )  # fmt: skip
        ingress = rt.triggers.ingress
        assert len(await ingress.by_trigger(hook.id)) == 1
        await hooks.set_enabled(TENANT, hook.id, False)  # not through the ingress
        assert len(await ingress.by_trigger(hook.id)) == 1  # still cached
        clock.advance(3600 + 1)

        async def dropped() -> bool:
            return await ingress.by_trigger(hook.id) == []

        # the first call past the expiry still answers from the cache while it reloads
        await eventually(dropped, 10, "the disabled webhook dropped after its cache time")
