"""Settings of the BullMQ adapter (read by the queue and its consumer alike)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flowmill.constants import NODE_QUEUE, REDIS_PREFIX, TRIGGER_QUEUE


@dataclass(frozen=True)
class Retention:
    """How many finished jobs BullMQ keeps, for dashboards (the database keeps the record).

    Attributes:
        count: Newest jobs kept; 0 removes each job when it finishes; None: no limit.
        age_s: Jobs older than this are removed; None: no limit.
    """

    count: int | None = None
    age_s: int | None = None

    def to_bullmq(self) -> bool | dict[str, int]:
        """The ``removeOnComplete``/``removeOnFail`` option value."""
        if self.count is None and self.age_s is None:
            return False  # keep everything
        out: dict[str, int] = {}
        if self.count is not None:
            out["count"] = self.count
        if self.age_s is not None:
            out["age"] = self.age_s
        return out


@dataclass(frozen=True)
class BullMQOptions:
    """Settings of the BullMQ adapter; the defaults suit production.

    Attributes:
        prefix: Redis key prefix (BullMQ's default, so Node.js producers find the queues).
        remove_on_complete: Completed jobs kept.
        remove_on_fail: Failed jobs kept (they carry the failure reason).
        lock_duration_ms: A job whose worker stops renewing its lock this long is stalled.
        stalled_interval_ms: How often workers look for stalled jobs; a dead worker's job
            is back in wait after at most about ``lock_duration_ms + 2 * stalled_interval_ms``.
        max_stalled_count: Stalls after which BullMQ fails a job (the sweeper re-adds it
            while the database says it is not done).
        drain_delay_s: Longest blocking wait of an idle worker before it polls again.
        reconnect_delay_ms: Pause between attempts while Redis is unreachable.
        trigger_concurrency: Trigger jobs taken at once (default: a quarter of the
            consumer's concurrency, at least 1); all handlers share the concurrency.
        hand_back_timeout_s: Time allowed to put a job back on shutdown.
        trigger_queue: Name of the queue of trigger jobs.
        node_queue: Name of the queue of step jobs (where Node.js producers may also
            put jobs that start a workflow at a trigger node, as seed 004 does).

    Raises:
        ValueError: The two queue names are the same.
    """

    prefix: str = REDIS_PREFIX
    remove_on_complete: Retention = field(default_factory=lambda: Retention(1000, 24 * 3600))
    remove_on_fail: Retention = field(default_factory=lambda: Retention(10_000, 7 * 24 * 3600))
    lock_duration_ms: int = 30_000
    stalled_interval_ms: int = 30_000
    max_stalled_count: int = 1
    drain_delay_s: int = 5
    reconnect_delay_ms: int = 1_000
    trigger_concurrency: int | None = None
    hand_back_timeout_s: float = 5.0
    trigger_queue: str = TRIGGER_QUEUE
    node_queue: str = NODE_QUEUE

    def __post_init__(self) -> None:
        if self.trigger_queue == self.node_queue:
            raise ValueError(f"the trigger and node queues must differ ({self.node_queue!r})")
