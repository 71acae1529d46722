"""Group commit with :class:`flowmill.coalesce.Coalescer`.

Tests that a lone submit is flushed alone, that submits made while a flush is under way
go together in the next flush, that each caller gets its own result, that ``max_batch``
(also when changed between flushes) and ``key`` split batches in submission order, that
a per-item exception fails that caller only while a raised one fails the whole batch
without wedging the coalescer, that a caller cancelled before its batch is not flushed,
the ``batches`` / ``items`` counters, and that ``submit_or_alone`` goes alone only when
nothing else is under way (or, with ``lone_parties``, nothing of its party).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from flowmill.coalesce import Coalescer
from flowmill.testing import eventually


class Flush:
    """A flush that records its batches, answers ``item * 10``, and can be held."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.gate: asyncio.Event | None = None  # if given, each flush waits until it is set
        self.on_call: Callable[[list[int]], None] | None = None
        self.running = 0
        self.most_running = 0  # flushes under way at once, at most

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.calls.append(list(items))
        if self.on_call is not None:
            self.on_call(items)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.running -= 1
        return [item * 10 for item in items]


class Alone:
    """``alone()`` calls for :meth:`Coalescer.submit_or_alone`: each recorded, each held
    until ``gate`` is set, answering ``n * 100``."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gate = asyncio.Event()

    def __call__(self, n: int) -> Callable[[], Awaitable[int]]:
        async def _alone() -> int:
            self.calls.append(n)
            await self.gate.wait()
            return n * 100

        return _alone


async def _hold_first_flush(flush: Flush, coalescer: Coalescer[int, int]) -> asyncio.Task[int]:
    """Start a flush of item 0 and leave it waiting on ``flush.gate``."""
    flush.gate = asyncio.Event()
    first = asyncio.create_task(coalescer.submit(0))
    await eventually(lambda: len(flush.calls) == 1, 5, "the first flush under way")
    return first


def test_coalesce_rejects_max_batch_below_one() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Coalescer(Flush(), max_batch=0)


async def test_coalesce_flushes_a_lone_submit_alone() -> None:
    flush = Flush()
    coalescer = Coalescer(flush)

    assert await coalescer.submit(7) == 70
    assert flush.calls == [[7]]


async def test_coalesce_gathers_submits_made_during_a_flush_into_the_next() -> None:
    flush = Flush()
    coalescer = Coalescer(flush)
    first = await _hold_first_flush(flush, coalescer)

    rest = [asyncio.create_task(coalescer.submit(i)) for i in range(1, 5)]
    await eventually(lambda: len(coalescer._pending) == 4, 5, "four submits waiting")
    assert flush.calls == [[0]]  # nothing else flushed while the first is under way
    assert flush.gate is not None
    flush.gate.set()

    assert await first == 0
    assert await asyncio.gather(*rest) == [10, 20, 30, 40]
    assert flush.calls == [[0], [1, 2, 3, 4]]
    assert flush.most_running == 1


async def test_coalesce_gives_each_caller_its_own_result_in_order() -> None:
    flush = Flush()
    coalescer = Coalescer(flush)

    results = await asyncio.gather(*(coalescer.submit(i) for i in (3, 1, 2)))

    assert results == [30, 10, 20]
    assert flush.calls == [[3, 1, 2]]


async def test_coalesce_splits_pending_items_by_max_batch() -> None:
    flush = Flush()
    coalescer = Coalescer(flush, max_batch=2)

    results = await asyncio.gather(*(coalescer.submit(i) for i in range(7)))

    assert results == [i * 10 for i in range(7)]
    assert flush.calls == [[0, 1], [2, 3], [4, 5], [6]]


async def test_coalesce_applies_max_batch_changed_between_flushes() -> None:
    flush = Flush()
    coalescer = Coalescer(flush, max_batch=2)

    def grow(items: list[int]) -> None:
        coalescer.max_batch = 3

    flush.on_call = grow
    await asyncio.gather(*(coalescer.submit(i) for i in range(7)))

    assert flush.calls == [[0, 1], [2, 3, 4], [5, 6]]


async def test_coalesce_puts_same_key_items_in_later_flushes_in_order() -> None:
    calls: list[list[str]] = []

    async def flush(items: list[str]) -> list[str | BaseException]:
        calls.append(list(items))
        return [item.upper() for item in items]

    coalescer: Coalescer[str, str] = Coalescer(flush, key=lambda item: item[0])
    items = ["a1", "b1", "a2", "a3", "c1", "b2"]

    results = await asyncio.gather(*(coalescer.submit(i) for i in items))

    assert results == ["A1", "B1", "A2", "A3", "C1", "B2"]
    assert calls == [["a1", "b1", "c1"], ["a2", "b2"], ["a3"]]


async def test_coalesce_fails_only_the_caller_whose_result_is_an_exception() -> None:
    error = ValueError("bad item")

    async def flush(items: list[int]) -> list[int | BaseException]:
        return [error if item == 2 else item * 10 for item in items]

    coalescer: Coalescer[int, int] = Coalescer(flush)

    one, two, three = (asyncio.create_task(coalescer.submit(i)) for i in (1, 2, 3))

    assert await one == 10
    with pytest.raises(ValueError, match="bad item"):
        await two
    assert await three == 30


async def test_coalesce_fails_the_whole_batch_when_flush_raises_and_recovers() -> None:
    calls: list[list[int]] = []

    async def flush(items: list[int]) -> list[int | BaseException]:
        calls.append(list(items))
        if len(calls) == 1:
            raise RuntimeError("connection lost")
        return [item * 10 for item in items]

    coalescer: Coalescer[int, int] = Coalescer(flush, max_batch=2)

    async with asyncio.timeout(1):  # a stuck coalescer would leave item 3 waiting
        submits = (coalescer.submit(i) for i in (1, 2, 3))
        results = await asyncio.gather(*submits, return_exceptions=True)
        assert [type(r) for r in results] == [RuntimeError, RuntimeError, int]
        assert [str(r) for r in results] == ["connection lost", "connection lost", "30"]

        assert await coalescer.submit(4) == 40
    assert calls == [[1, 2], [3], [4]]


async def test_coalesce_skips_a_caller_cancelled_before_its_batch() -> None:
    flush = Flush()
    coalescer = Coalescer(flush)
    first = await _hold_first_flush(flush, coalescer)

    gone = asyncio.create_task(coalescer.submit(1))
    kept = asyncio.create_task(coalescer.submit(2))
    await eventually(lambda: len(coalescer._pending) == 2, 5, "both waiting for a batch")
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert flush.gate is not None
    flush.gate.set()

    assert await first == 0
    assert await kept == 20
    assert flush.calls == [[0], [2]]
    assert coalescer.items == 2


async def test_coalesce_counts_batches_and_items() -> None:
    flush = Flush()
    coalescer = Coalescer(flush, max_batch=3)
    assert (coalescer.batches, coalescer.items) == (0, 0)

    await asyncio.gather(*(coalescer.submit(i) for i in range(7)))
    assert (coalescer.batches, coalescer.items) == (3, 7)

    await coalescer.submit(9)
    assert (coalescer.batches, coalescer.items) == (4, 8)


async def test_coalesce_fails_callers_when_flush_returns_too_few_results() -> None:
    async def short(items: list[int]) -> list[int | BaseException]:
        return items[:-1]

    coalescer: Coalescer[int, int] = Coalescer(short)
    async with asyncio.timeout(1):
        with pytest.raises(RuntimeError, match="results"):
            await asyncio.gather(coalescer.submit(1), coalescer.submit(2))


async def test_coalesce_fails_only_the_item_whose_key_raises() -> None:
    def key(item: int) -> int:
        if item == 2:
            raise ValueError("no key")
        return item

    async def double(items: list[int]) -> list[int | BaseException]:
        return [i * 2 for i in items]

    coalescer: Coalescer[int, int] = Coalescer(double, key=key)
    async with asyncio.timeout(1):
        results = await asyncio.gather(
            coalescer.submit(1), coalescer.submit(2), return_exceptions=True
        )
    assert results[0] == 2
    assert isinstance(results[1], ValueError)


async def test_coalesce_fills_a_full_batch_from_parties_in_turn() -> None:
    """A flood of one party's items pending before another's single one: the next
    batch takes the newcomer, not only the flood's oldest."""
    flush = Flush()
    # Items 100+ are the flood's, items below 100 the quiet party's.
    coalescer = Coalescer(flush, max_batch=4, share=lambda item: item >= 100)
    first = await _hold_first_flush(flush, coalescer)
    flood = [asyncio.create_task(coalescer.submit(100 + i)) for i in range(12)]
    quiet = asyncio.create_task(coalescer.submit(7))
    await asyncio.sleep(0)  # not a wait: lets every submit reach the pending list
    assert flush.gate is not None
    flush.gate.set()
    await asyncio.gather(first, quiet, *flood)
    assert 7 in flush.calls[1], flush.calls
    # Each party's own items keep their order.
    flood_order = [i for call in flush.calls for i in call if i >= 100]
    assert flood_order == sorted(flood_order)


async def test_coalesce_submit_or_alone_goes_alone_only_when_nothing_else_is_under_way() -> None:
    flush = Flush()
    c = Coalescer(flush)
    alone = Alone()
    first = asyncio.ensure_future(c.submit_or_alone(1, alone(1)))
    await eventually(lambda: alone.calls == [1], 2, "the first call going alone")
    # A lone call is under way: these are batched, together.
    rest = [asyncio.ensure_future(c.submit_or_alone(n, alone(n))) for n in (2, 3)]
    assert await asyncio.gather(*rest) == [20, 30]
    assert flush.calls == [[2, 3]]
    alone.gate.set()
    assert await first == 100
    # Nothing under way again: alone.
    assert await c.submit_or_alone(4, alone(4)) == 400
    assert alone.calls == [1, 4]


async def test_coalesce_submit_or_alone_lets_a_party_with_nothing_under_way_go_alone() -> None:
    """With ``lone_parties``, a party's first request goes alone while another party's
    batch is held; its next one, made while the first is under way, is batched; so is
    a request past the limit of lone calls."""
    flush = Flush()
    # Items 100+ are the flood's; each item below 100 is a party of its own.
    c = Coalescer(flush, share=lambda item: "flood" if item >= 100 else item, lone_parties=1)
    first = await _hold_first_flush(flush, c)
    alone = Alone()
    quiet = asyncio.ensure_future(c.submit_or_alone(7, alone(7)))
    await eventually(lambda: alone.calls == [7], 2, "the quiet party's call going alone")
    again = asyncio.ensure_future(c.submit_or_alone(7, alone(7)))  # 7 is under way
    other = asyncio.ensure_future(c.submit_or_alone(8, alone(8)))  # over the limit
    flood = asyncio.ensure_future(c.submit_or_alone(101, alone(101)))
    alone.gate.set()
    assert await quiet == 700
    assert flush.gate is not None
    flush.gate.set()
    assert await asyncio.gather(first, again, other, flood) == [0, 70, 80, 1010]
    assert alone.calls == [7]
    # Nothing under way: the first call goes alone as without lone_parties.
    assert await c.submit_or_alone(9, alone(9)) == 900
