"""The duration sketch: percentiles within 1 % of the exact nearest-rank value,
whatever the data; sketches merge by adding."""

from __future__ import annotations

import math
import random

import pytest

from flowmill.projections import sketch


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("one value", [42.0]),
        ("zeros and ones", [0, 0, 1, 1, 1, 0]),
        ("integers 1..1000", [float(i) for i in range(1, 1001)]),
        ("long tail", [float(random.Random(1).paretovariate(1.2)) * 10 for _ in range(5000)]),
        ("spread", [random.Random(2).uniform(0.5, 3_600_000) for _ in range(3000)]),
    ],
)
@pytest.mark.parametrize("q", [0.5, 0.95, 0.99, 1.0])
def test_sketch_quantiles_within_one_percent(name: str, values: list[float], q: float) -> None:
    bins: sketch.Sketch = {}
    for v in values:
        sketch.add(bins, v)
    got, want = sketch.quantile(bins, q), exact(values, q)
    assert got is not None
    assert abs(got - want) <= sketch.ALPHA * want + 0.001, (name, q, got, want)


def test_sketch_merge_adds_and_empty_has_no_quantile() -> None:
    a: sketch.Sketch = {}
    b: sketch.Sketch = {}
    for v in (1, 2, 3):
        sketch.add(a, v)
    for v in (100, 200):
        sketch.add(b, v)
    merged = sketch.merge([a, b])
    assert sum(merged.values()) == 5
    assert sketch.quantile(merged, 1.0) == pytest.approx(200, rel=sketch.ALPHA)
    assert sketch.quantile({}, 0.5) is None
    assert sketch.bin_of(0) == sketch.bin_of(-3) == "z"
