"""Retry backoff."""

from __future__ import annotations

import random

import pytest

from flowmill.domain.workflow import RetryPolicy
from flowmill.engine.retry import backoff_ms, should_retry


@pytest.mark.parametrize(
    ("policy", "attempt", "expected"),
    [
        (RetryPolicy(3, 100, "fixed"), 1, 100),
        (RetryPolicy(3, 100, "fixed"), 2, 100),
        (RetryPolicy(5, 100, "exponential"), 1, 100),
        (RetryPolicy(5, 100, "exponential"), 2, 200),
        (RetryPolicy(5, 100, "exponential"), 4, 800),
        (RetryPolicy(9, 100, "exponential", max_backoff_ms=500), 6, 500),
        (RetryPolicy(3, 0, "fixed"), 1, 0),
    ],
)
def test_retry_backoff_without_jitter(policy: RetryPolicy, attempt: int, expected: int) -> None:
    assert backoff_ms(policy, attempt) == expected


def test_retry_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(5, 1000, "fixed", jitter=0.5)
    rng = random.Random(7)
    delays = {backoff_ms(policy, 1, rng) for _ in range(200)}
    assert min(delays) >= 500
    assert max(delays) <= 1000
    assert len(delays) > 50


@pytest.mark.parametrize(
    ("attempt", "retriable", "expected"),
    [(1, True, True), (2, True, True), (3, True, False), (1, False, False)],
)
def test_retry_should_retry(attempt: int, retriable: bool, expected: bool) -> None:
    assert should_retry(RetryPolicy(max_attempts=3), attempt, retriable) is expected


def test_retry_jitter_comes_from_the_given_random_source() -> None:
    """A survivor of the mutation run: a seeded source gives the same delays again."""
    policy = RetryPolicy(max_attempts=5, backoff_ms=1000, jitter=0.5)
    first = [backoff_ms(policy, a, random.Random(7)) for a in (1, 2, 3)]
    assert first == [backoff_ms(policy, a, random.Random(7)) for a in (1, 2, 3)]
    assert len({backoff_ms(policy, 1, random.Random(seed)) for seed in range(20)}) > 1


class _Half(random.Random):
    """A random source that always draws 0.5."""

    def random(self) -> float:
        return 0.5


def test_retry_jitter_applies_to_the_shortest_delay_too() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_ms=1, jitter=0.5)
    assert backoff_ms(policy, 1, _Half()) == 0  # 1 ms * (1 - 0.5 * 0.5), rounded down
    assert backoff_ms(RetryPolicy(max_attempts=5, backoff_ms=1000, jitter=0.5), 1, _Half()) == 750
