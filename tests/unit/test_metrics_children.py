"""Metric children kept by label values: each label set counts apart, made once."""

from __future__ import annotations

from flowmill.observability.metrics import Metrics


def _counts(m: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in m.registry.collect()
        for s in family.samples
        if s.name == name
    }


def test_metrics_children_count_each_label_set_apart() -> None:
    m = Metrics()
    for outcome in ("succeeded", "failed", "succeeded"):
        m.step_duration_of("noop", outcome).observe(0.01)
    m.queue_waited("flowmill-nodes", 0.5)
    m.queue_waited("flowmill-triggers", 0.5)
    m.queue_waited("flowmill-nodes", 0.5)
    steps = _counts(m, "flowmill_step_duration_seconds_count")
    assert steps == {
        (("node_type", "noop"), ("outcome", "succeeded")): 2,
        (("node_type", "noop"), ("outcome", "failed")): 1,
    }
    waits = _counts(m, "flowmill_queue_wait_seconds_count")
    assert waits == {(("queue", "flowmill-nodes"),): 2, (("queue", "flowmill-triggers"),): 1}
    assert m.step_duration_of("noop", "failed") is m.step_duration.labels("noop", "failed")
