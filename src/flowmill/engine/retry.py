"""Retry backoff: when the next attempt of a failing node may run. Pure."""

from __future__ import annotations

import random

from flowmill.domain.workflow import RetryPolicy


def backoff_ms(policy: RetryPolicy, failed_attempt: int, rng: random.Random | None = None) -> int:
    """Delay before the attempt after ``failed_attempt`` (1-based).

    ``fixed`` waits ``backoff_ms`` each time; ``exponential`` waits
    ``backoff_ms * 2 ** (failed_attempt - 1)``. Both are capped at ``max_backoff_ms``; then
    ``jitter`` (a fraction) randomises the delay downward by up to that fraction, which
    spreads retries of many executions that failed together.
    """
    base = policy.backoff_ms
    if policy.strategy == "exponential":
        base = policy.backoff_ms * (2 ** max(0, failed_attempt - 1))
    delay = min(base, policy.max_backoff_ms)
    if policy.jitter > 0 and delay > 0:
        r = (rng or random).random()
        delay = int(delay * (1 - policy.jitter * r))
    return max(0, int(delay))


def should_retry(policy: RetryPolicy, failed_attempt: int, retriable: bool) -> bool:
    """Whether a failed attempt is followed by another."""
    return retriable and failed_attempt < policy.max_attempts
