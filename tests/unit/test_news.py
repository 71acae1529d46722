"""EndedNews: waiters woken when an execution ends, here or in another process."""

from __future__ import annotations

import asyncio

from flowmill.engine.news import EndedNews
from flowmill.testing import InMemoryNewsChannel


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
