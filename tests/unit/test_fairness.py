"""Fair shares between tenants: decayed demand, and slots handed out in turn."""

from __future__ import annotations

import asyncio

import pytest

from flowmill.fairness import PRIORITY_SCALE, FairShare, FairSlots


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_fairness_share_penalty_grows_with_demand_and_decays() -> None:
    clock = Clock()
    share = FairShare(half_life_s=10, clock=clock)
    penalties = [share.charge("flood") for _ in range(100)]
    assert penalties[:3] == [0, 1, 2]  # the demand before each job
    assert penalties[-1] == 99
    assert share.charge("quiet") == 0
    clock.now = 10.0  # one half-life
    assert share.charge("flood") == 50
    clock.now = 1000.0
    assert share.charge("flood") == 0


def test_fairness_share_priority_never_crosses_user_priorities() -> None:
    share = FairShare(clock=Clock())
    for _ in range(10 * PRIORITY_SCALE):
        share.charge("flood")
    flooded_high = share.priority("flood", 1)
    quiet_normal = share.priority("quiet", 0)
    assert flooded_high > quiet_normal  # priority first, fairness within it
    assert share.priority("quiet", 0) > share.priority("flood", 0)


async def _holder(slots: FairSlots, tenant: str, order: list[str], release: asyncio.Event) -> None:
    async with slots.slot(tenant):
        order.append(tenant)
        await release.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_fairness_slots_hand_freed_slots_to_tenants_in_turn() -> None:
    slots = FairSlots(capacity=1)
    order: list[str] = []
    gates = {name: asyncio.Event() for name in ("a0", "a1", "a2", "a3", "b0", "c0")}
    tasks = [asyncio.create_task(_holder(slots, "a", order, gates["a0"]))]
    await _settle()
    for name in ("a1", "a2", "a3", "b0", "c0"):  # a's backlog first, then b and c
        tasks.append(asyncio.create_task(_holder(slots, name[0], order, gates[name])))
        await _settle()
    for name in ("a0", "a1", "b0", "c0", "a2", "a3"):
        gates[name].set()
        await _settle()
    await asyncio.gather(*tasks)
    # FIFO would be a a a a b c; in turn, b and c get the second and third slots.
    assert order == ["a", "a", "b", "c", "a", "a"]


async def test_fairness_slots_reserve_serves_a_tenant_holding_nothing_at_once() -> None:
    slots = FairSlots(capacity=2, reserve=1)
    release = asyncio.Event()
    order: list[str] = []
    flood = [asyncio.create_task(_holder(slots, "a", order, release)) for _ in range(5)]
    await _settle()
    assert order == ["a", "a"] and slots.waiting == 3
    newcomer = asyncio.create_task(_holder(slots, "b", order, release))
    await _settle()
    assert order == ["a", "a", "b"]  # the reserve, although a was waiting first
    late = asyncio.create_task(_holder(slots, "b", order, release))
    await _settle()
    assert order == ["a", "a", "b"]  # b holds a slot now: no second reserve slot
    release.set()
    await asyncio.gather(*flood, newcomer, late)
    assert sorted(order) == ["a"] * 5 + ["b"] * 2
    assert slots.held("a") == slots.held("b") == 0


async def test_fairness_slots_cancelled_waiter_gives_its_turn_away() -> None:
    slots = FairSlots(capacity=1)
    release = asyncio.Event()
    order: list[str] = []
    first = asyncio.create_task(_holder(slots, "a", order, release))
    await _settle()
    gone = asyncio.create_task(_holder(slots, "b", order, release))
    after = asyncio.create_task(_holder(slots, "c", order, release))
    await _settle()
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    release.set()
    await asyncio.gather(first, after)
    assert order == ["a", "c"]
    assert slots.waiting == 0 and slots.held("b") == 0


async def test_fairness_slots_cap_holds_a_tenant_back_even_with_free_slots() -> None:
    caps = {"a": 2}
    slots = FairSlots(capacity=4, cap=lambda t: caps.get(t, 0))
    release = asyncio.Event()
    order: list[str] = []
    tasks = [asyncio.create_task(_holder(slots, "a", order, release)) for _ in range(4)]
    await _settle()
    assert order == ["a", "a"] and slots.waiting == 2  # two free slots, a at its cap
    tasks.append(asyncio.create_task(_holder(slots, "b", order, release)))
    await _settle()
    assert order == ["a", "a", "b"]  # b passes the capped a's waiting jobs
    release.set()
    await asyncio.gather(*tasks)
    assert order.count("a") == 4
