"""Group commit: concurrent requests gathered into one call, so into one round trip.

On this kind of machine a socket write costs more than the statement it carries (a
third of a worker's CPU was ``send``), and a PostgreSQL commit that bumps a tenant's
event sequence holds that row until its WAL flush: commits of one tenant run one after
another. Both costs are per call, not per item, so a worker with 32 steps finishing at
once pays them once for all 32 when the calls are merged.

A :class:`Coalescer` adds no delay: a request that finds nothing under way is flushed at
the next turn of the event loop; requests made while a flush is under way go together in
the next one (the way PostgreSQL's own group commit works).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]


class Coalescer(Generic[T, R]):
    """Runs the requests of concurrent callers as batches, one batch at a time.

    Args:
        flush: Does a batch; returns one result per item, in order. An exception in
            place of a result fails that item alone; an exception raised fails the
            whole batch.
        max_batch: Most items in one flush.
        key: Items with the same key never share a batch (a later one waits for the
            next flush): two steps of one execution must not be one statement.
        share: The tenant (or other party) an item is for. With it, a full batch is
            filled from the parties in turn rather than first-come: one party's flood
            of pending items cannot push another's single item past the next flush.
        lone_parties: With ``share``, how many :meth:`submit_or_alone` calls may go
            alone at once for parties with nothing pending or under way, while other
            parties' batches flush: a quiet tenant's one item does not wait for a
            flood's batch to finish first (0: only when nothing at all is under way).
    """

    def __init__(
        self,
        flush: Flush[T, R],
        *,
        max_batch: int = 64,
        key: Callable[[T], Hashable] | None = None,
        share: Callable[[T], Hashable] | None = None,
        lone_parties: int = 0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._flush = flush
        self.max_batch = max_batch  # may be changed between flushes
        self._key = key
        self._share = share
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # flushes done (for tests and benchmarks)
        self.items = 0  # items flushed
        self._alone = 0  # calls under way that went alone (submit_or_alone)
        self._lone_parties = lone_parties if share is not None else 0
        self._busy: Counter[Hashable] = Counter()  # party -> its items pending or under way

    @property
    def idle(self) -> bool:
        """Nothing waits and no flush is under way (a lone request could go alone)."""
        return not self._pending and (self._task is None or self._task.done())

    async def submit(self, item: T) -> R:
        """Have ``item`` done in the next batch; its result (or its exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await self._as_party(item, future)

    async def _as_party(self, item: T, work: Awaitable[R]) -> R:
        """``work``, counting ``item``'s party as busy meanwhile (with ``lone_parties``)."""
        if not self._lone_parties:
            return await work
        with self._busy_party(item):
            return await work

    def _party(self, item: T) -> Hashable:
        assert self._share is not None
        try:
            return self._share(item)
        except Exception:
            return None

    @contextlib.contextmanager
    def _busy_party(self, item: T) -> Iterator[None]:
        party = self._party(item)
        self._busy[party] += 1
        try:
            yield
        finally:
            self._busy[party] -= 1
            if not self._busy[party]:
                del self._busy[party]

    async def submit_or_alone(self, item: T, alone: Callable[[], Awaitable[R]]) -> R:
        """``alone()`` when nothing else is under way (no flush, nothing pending, no
        other lone call), else :meth:`submit` ``item``.

        For a store whose batch costs more than a lone call (a savepoint, an extra turn
        of the event loop): a request that comes alone, as a chain's steps do, takes
        the cheaper path; requests arriving meanwhile are batched as usual. With
        ``lone_parties``, a request whose party has nothing pending or under way also
        goes alone (up to that many at once).
        """
        nothing_under_way = self._alone == 0 and self.idle
        # with lone_parties: its party has nothing under way, so don't queue behind others'
        party_free = self._alone < self._lone_parties and not self._busy[self._party(item)]
        if not (nothing_under_way or party_free):
            return await self.submit(item)
        self._alone += 1
        try:
            return await self._as_party(item, alone())
        finally:
            self._alone -= 1

    def _in_turns(self) -> list[tuple[T, asyncio.Future[R]]]:
        """The pending items ordered by turns of their parties: each party's first, then
        each party's second, ... (first-come within a party)."""
        pending = self._pending
        if self._share is None or len(pending) <= self.max_batch:
            return pending
        rounds: list[list[tuple[T, asyncio.Future[R]]]] = []
        seen: dict[Hashable, int] = {}
        for entry in pending:
            try:
                party = self._share(entry[0])
            except Exception:
                party = None
            n = seen.get(party, 0)
            seen[party] = n + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(entry)
        return [entry for turn in rounds for entry in turn]

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        rest: list[tuple[T, asyncio.Future[R]]] = []
        keys: set[Hashable] = set()
        limit = max(1, self.max_batch)
        for entry in self._in_turns():
            item, future = entry
            if future.done():  # its caller gave up before the flush began
                continue
            if len(batch) >= limit:
                rest.append(entry)
                continue
            if self._key is not None:
                try:
                    k = self._key(item)
                except Exception as e:
                    future.set_exception(e)
                    continue
                if k in keys:
                    rest.append(entry)
                    continue
                keys.add(k)
            batch.append(entry)
        self._pending = rest
        return batch

    async def _drain(self) -> None:
        while self._pending:
            batch = self._take()
            if not batch:
                continue
            try:
                results = await self._flush([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"flush gave {len(results)} results for {len(batch)}")
            except Exception as e:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            except BaseException:
                # Cancelled (the loop is closing): nobody is left to flush for the rest.
                for _, future in batch + self._pending:
                    if not future.done():
                        future.cancel()
                self._pending = []
                raise
            self.batches += 1
            self.items += len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
