"""EndedNews: waiters woken when an execution ends, here or in another process."""

from __future__ import annotations

import asyncio

from flowmill.engine.engine import Engine, EngineOptions
from flowmill.engine.news import BLIND_POLL_S, EndedNews
from flowmill.queue.local import LocalQueue
from flowmill.testing import (
    InMemoryDefinitions,
    InMemoryExecutionStore,
    InMemoryNewsChannel,
    InMemoryWorkerRegistry,
    eventually,
)
from tests.engine_support import registry


async def test_news_wakes_only_the_waiters_of_that_execution() -> None:
    news = EndedNews()
    with news.watch("a") as a, news.watch("b") as b:
        news.ended("a")
        assert a.is_set()
        assert not b.is_set()


async def test_news_forgets_waiters_that_left() -> None:
    news = EndedNews()
    with news.watch("a"):
        pass
    news.ended("a")  # nobody to wake, nothing kept
    assert news._waiters == {}


async def test_news_from_another_process_wakes_a_waiter() -> None:
    channel = InMemoryNewsChannel()
    here, there = EndedNews(channel), EndedNews(channel)
    assert here.crosses_processes
    with here.watch("x") as woken:
        with there.watch("y"):
            pass  # "there" listens too, as every process that waits does
        await channel.publish_ended("x")
        await asyncio.wait_for(woken.wait(), 1)
    assert channel.published == ["x"]


async def test_news_without_a_channel_stays_in_process() -> None:
    assert not EndedNews().crosses_processes


def _engine(channel: InMemoryNewsChannel | None = None) -> Engine:
    return Engine(
        store=InMemoryExecutionStore(),
        definitions=InMemoryDefinitions(),
        queue=LocalQueue(),
        registry=registry(),
        workers=InMemoryWorkerRegistry(),
        options=EngineOptions(wait_fallback_s=7.0),
        news=channel,
    )


async def test_news_decides_how_often_a_waiter_reads_the_database() -> None:
    # Nothing can tell this process (no worker in it, no channel): the blind poll.
    alone = _engine()
    assert alone.wait_poll_s == BLIND_POLL_S
    # A channel brings other processes' news: only the slow fallback read.
    assert _engine(InMemoryNewsChannel()).wait_poll_s == 7.0
    # Running the work itself, the engine tells its own waiters.
    async with alone.running():
        assert alone.wait_poll_s == 7.0


async def test_news_announce_wakes_here_and_tells_other_processes() -> None:
    channel = InMemoryNewsChannel()
    engine = _engine(channel)
    with engine.news.watch("event-1") as woken:
        engine.announce("event-1")
        assert woken.is_set()
    await eventually(lambda: channel.published == ["event-1"], 5, "the news published")
