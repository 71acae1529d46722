"""A thread pool that takes waiting calls from tenants in turn instead of first-come.

SQLite has one writer: every commit of every tenant runs on one thread. A FIFO executor
puts a quiet tenant's single commit behind every commit a flood queued before it;
limiting how many calls are handed over (a semaphore in front of the executor) only
moves that queue, and the hand-over itself waits for a busy event loop between two
commits. Here the calls wait inside the pool, per tenant, and each thread that comes
free takes the next tenant in turn: a quiet tenant's call runs after at most one call
per other waiting tenant, and the threads never wait for the event loop.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

from flowmill.fairness import current_tenant

P = ParamSpec("P")
T = TypeVar("T")

_Call = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class FairExecutor(Executor):
    """``threads`` worker threads serving the tenants that wait in turn (round robin).

    A call belongs to :data:`~flowmill.fairness.current_tenant` where it is submitted
    (``loop.run_in_executor`` submits in the event loop's thread, inside the step's
    context). Within a tenant, calls run in the order submitted.

    Args:
        threads: Worker threads (started on first use).
        name: Prefix of the threads' names.
    """

    def __init__(self, threads: int = 1, name: str = "flowmill-fair") -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self._size = threads
        self._name = name
        self._cv = threading.Condition()
        self._calls: dict[str, deque[_Call]] = {}
        self._turns: deque[str] = deque()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue ``fn(*args, **kwargs)`` for the current tenant."""
        tenant = current_tenant.get()
        fut: Future[T] = Future()
        with self._cv:
            if self._closed:
                raise RuntimeError("cannot submit after shutdown")
            calls = self._calls.get(tenant)
            if calls is None:
                calls = self._calls[tenant] = deque()
                self._turns.append(tenant)
            calls.append((fut, fn, args, kwargs))
            if len(self._threads) < self._size:
                self._start_thread()
            self._cv.notify()
        return fut

    def _start_thread(self) -> None:
        t = threading.Thread(
            target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
        )
        self._threads.append(t)
        t.start()

    def _next(self) -> _Call | None:
        """The next tenant's first call (waits for one); ``None`` once shut down."""
        with self._cv:
            while not self._turns:
                if self._closed:
                    return None
                self._cv.wait()
            tenant = self._turns.popleft()
            calls = self._calls[tenant]
            call = calls.popleft()
            if calls:
                self._turns.append(tenant)
            else:
                del self._calls[tenant]
            return call

    def _work(self) -> None:
        while (call := self._next()) is not None:
            fut, fn, args, kwargs = call
            if not fut.set_running_or_notify_cancel():
                continue  # its caller gave up before it started
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:
                fut.set_exception(e)
            else:
                fut.set_result(result)

    def soonest(self, tenants: Iterable[str]) -> str:
        """Of ``tenants``, the one whose next call would run first.

        For work done for several tenants at once (a batch of their commits): run in
        the turn of the quietest one, so a quiet tenant's commit that shares a batch
        with a flood's does not wait in the flood's queue. A tenant with no call
        waiting runs after one call of each waiting tenant; one with ``k`` waiting
        runs after about ``k`` rounds more.
        """
        with self._cv:
            rounds = len(self._turns)
            position = {t: i for i, t in enumerate(self._turns)}

            def wait(tenant: str) -> int:
                calls = self._calls.get(tenant)
                return rounds if not calls else len(calls) * rounds + position[tenant]

            return min(tenants, key=wait)

    @property
    def waiting(self) -> int:
        """Calls not started yet."""
        with self._cv:
            return sum(len(c) for c in self._calls.values())

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking calls; the queued ones still run unless ``cancel_futures``."""
        with self._cv:
            self._closed = True
            if cancel_futures:
                for calls in self._calls.values():
                    for fut, *_ in calls:
                        fut.cancel()
                self._calls.clear()
                self._turns.clear()
            self._cv.notify_all()
            threads = list(self._threads)
        if wait:
            for t in threads:
                if t is not threading.current_thread():
                    t.join()
