"""Duration sketches: log-spaced bins from which percentiles are read within 1 %.

An exact p95 over every execution a workflow ever ran needs every duration; a sketch
needs one counter per bin, merges by adding counters (hours into days, batches into
totals) and answers any percentile with a relative error of at most ``ALPHA``
(DDSketch's scheme: bin ``i`` holds ``(GAMMA**(i-1), GAMMA**i]``, its value is the
point of that range nearest, relatively, to both ends). Zero has its own bin.

A sketch is a ``{bin: count}`` dict with string keys (it is stored as JSON).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
_ZERO = "z"

Sketch = dict[str, int]


def bin_of(ms: float) -> str:
    """The bin holding a duration of ``ms`` milliseconds."""
    if ms <= 0:
        return _ZERO
    return str(math.ceil(math.log(ms) / _LOG_GAMMA))


def value_of(key: str) -> float:
    """The value a bin stands for: within ``ALPHA`` of everything in it."""
    if key == _ZERO:
        return 0.0
    return 2 * GAMMA ** int(key) / (1 + GAMMA)


def add(sketch: Sketch, ms: float) -> None:
    """Count one duration."""
    key = bin_of(ms)
    sketch[key] = sketch.get(key, 0) + 1


def merge(sketches: Iterable[Mapping[str, int]]) -> Sketch:
    """The sum of several sketches."""
    out: Sketch = {}
    for s in sketches:
        for key, count in s.items():
            out[key] = out.get(key, 0) + int(count)
    return out


def quantile(sketch: Mapping[str, int], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (``0 < q <= 1``), or ``None`` when empty.

    The true nearest-rank value lies in the bin returned, so the answer is within
    ``ALPHA`` of it relatively.
    """
    total = sum(sketch.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for key in sorted(sketch, key=_order):
        seen += sketch[key]
        if seen >= rank:
            return round(value_of(key), 3)
    return round(value_of(max(sketch, key=_order)), 3)  # pragma: no cover - rank <= total


def _order(key: str) -> float:
    return -math.inf if key == _ZERO else int(key)
