"""Tuning of one engine process, in a module of its own so that the engine's parts
(the sweeper, the runner) can take it without importing the engine that assembles them."""

from __future__ import annotations

from dataclasses import dataclass, field

from flowmill.engine.news import WAIT_FALLBACK_S
from flowmill.engine.runner import RunnerOptions


@dataclass
class EngineOptions:
    """Tuning of one engine process.

    Attributes:
        concurrency: Jobs run at once by this worker.
        sweep_interval_s: How often to look for orphaned steps, deadlines, limits.
        heartbeat_interval_s: How often this worker says it is alive.
        dead_after_s: A worker silent this long is dead; its steps are taken over.
        orphan_grace_s: A queue-held step older than this and absent from the queue is
            put back (covers a crash between commit and enqueue).
        shutdown_grace_s: Time running steps get to finish on shutdown.
        max_output_bytes: Largest node output accepted.
        wait_fallback_s: Longest pause between database reads of a waiter (``wait``,
            late webhook answers) that news wakes; only news lost on the way waits it.
    """

    concurrency: int = 16
    sweep_interval_s: float = 1.0
    heartbeat_interval_s: float = 2.0
    dead_after_s: float = 15.0
    orphan_grace_s: float = 30.0
    shutdown_grace_s: float = 10.0
    max_output_bytes: int = 16 * 1024 * 1024
    wait_fallback_s: float = WAIT_FALLBACK_S
    runner: RunnerOptions = field(default_factory=RunnerOptions)
