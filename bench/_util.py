"""Helpers shared by the benchmarks: statistics and table printing."""

from __future__ import annotations

import gc
import statistics
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table


def median_ms(samples: Sequence[float]) -> float:
    """Median of durations in seconds, in milliseconds."""
    return statistics.median(samples) * 1000


def p95_ms(samples: Sequence[float]) -> float:
    """95th percentile of durations in seconds, in milliseconds."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a table of results."""
    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c, justify="right" if c != columns[0] else "left")
    for row in rows:
        table.add_row(*[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row])
    Console().print(table)


def freeze_heap_like_a_server() -> None:
    """Freeze the heap as ``flowmill serve`` and ``flowmill worker`` do once started
    (``flowmill.background.running_background(freeze_heap=True)``), so that an engine run
    in the bench's own process is measured as it runs in theirs: without it a full
    collection walks the whole start-up heap (81 ms of an 812 ms 1,000-step chain)."""
    gc.collect()
    gc.freeze()
