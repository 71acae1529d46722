"""Domain events as the seeds' Socket.IO events: names, statuses, ids, rooms."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowmill.realtime.messages import StepDetails, rooms_of, socket_message
from flowmill.store.event_feed import FeedEvent

AT = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def event(type_: str, **payload: object) -> FeedEvent:
    return FeedEvent("ev", "t1", "ex1", type_, {"workflow_id": "wf1", **payload}, AT, 7)


@pytest.mark.parametrize(
    ("type_", "name", "status"),
    [
        ("execution.started", "started", "running"),
        ("node.started", "step_started", "running"),
        ("node.completed", "step_completed", "succeeded"),
        ("node.failed", "step_failed", "failed"),
        ("execution.completed", "completed", "succeeded"),
        ("execution.failed", "failed", "failed"),
        ("execution.cancelled", "cancelled", "cancelled"),
        ("node.retry_scheduled", "step_retry_scheduled", "queued"),
        ("node.skipped", "step_skipped", "skipped"),
    ],
)
def test_socket_messages_names_and_statuses(type_: str, name: str, status: str) -> None:
    message = socket_message(event(type_, node_id="n1", attempt=2))
    assert message is not None
    got, body = message
    assert (got, body["status"], body["type"]) == (name, status, type_)
    assert (body["execution_id"], body["workflow_id"], body["sequence"]) == ("ex1", "wf1", 7)
    assert body["timestamp"] == AT.isoformat()


def test_socket_messages_carry_step_details_and_skip_other_events() -> None:
    details = StepDetails(output={"x": 1}, started_at="s", completed_at="c")
    _, done = socket_message(event("node.completed", node_id="n1", attempt=1), details) or ("", {})
    assert (done["output"], done["step_id"], done["started_at"]) == ({"x": 1}, "n1", "s")
    _, failed = socket_message(event("node.failed", node_id="n1", error={"m": 1}), details) or (
        "",
        {},
    )
    assert "output" not in failed and failed["error"] == {"m": 1}
    assert socket_message(event("workflow.created")) is None
    assert rooms_of(event("node.started")) == ["tenant:t1", "execution:ex1", "workflow:wf1"]
    assert rooms_of(event("workflow.created")) == ["tenant:t1"]
