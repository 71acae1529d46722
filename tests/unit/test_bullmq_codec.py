"""The job data schema of the BullMQ queues (no Redis needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flowmill.engine.ports import StepJob, TriggerJob
from flowmill.queue.bullmq_codec import (
    JobDataError,
    decode_node_job,
    decode_step,
    decode_trigger,
    delay_ms,
    encode_step,
    encode_trigger,
    from_bullmq_priority,
    to_bullmq_priority,
)


def test_bullmq_codec_seed_style_trigger_data_is_understood() -> None:
    # As the seed's webhook handler adds it (extra keys such as webhookId are ignored).
    job = decode_trigger(
        {
            "workflowId": 7,
            "tenantId": "client-1",
            "triggerType": "webhook.test",
            "triggerData": {"message": "hi"},
            "webhookId": "wh-1",
        }
    )
    assert job == TriggerJob("client-1", "7", "webhook.test", {"message": "hi"})


def test_bullmq_codec_trigger_data_round_trips() -> None:
    job = TriggerJob("t", "w", "schedule", [1, {"a": None}], 2, "cron", "k", {"m": 1}, priority=4)
    assert decode_trigger(encode_trigger(job), to_bullmq_priority(4)) == job


def test_bullmq_codec_trigger_data_is_json_whatever_python_handed_in() -> None:
    data = encode_trigger(TriggerJob("t", "w", "manual", {"tags": ("a", "b")}))
    assert data == {"tenant_id": "t", "workflow_id": "w", "trigger_type": "manual",
                    "data": {"tags": ["a", "b"]}}  # fmt: skip


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({}, "tenant_id: Field required"),
        ({"tenant_id": "t", "trigger_type": "x"}, "workflow_id: Field required"),
        ({"tenant_id": "", "workflow_id": "w", "trigger_type": "x"}, "tenant_id: String should"),
        ({"tenant_id": True, "workflow_id": "w", "trigger_type": "x"}, "tenant_id: Input should"),
        ({"workflow_id": "w", "workflowId": "v", "tenant_id": "t", "trigger_type": "x"},
         "workflow_id and workflowId disagree"),
        ({"tenant_id": "t", "workflow_id": "w", "trigger_type": "x", "metadata": []},
         "metadata: Input should be a valid dictionary"),
        ({"tenant_id": "t", "workflow_id": "w", "trigger_type": "x", "version": 0}, "version"),
        (None, "job data must be a JSON object, not NoneType"),
    ],
)  # fmt: skip
def test_bullmq_codec_bad_trigger_data_is_refused_naming_the_field(
    data: object, reason: str
) -> None:
    with pytest.raises(JobDataError) as e:
        decode_trigger(data)
    assert reason in str(e.value)


def test_bullmq_codec_trigger_data_of_a_webhook_event_round_trips_without_a_workflow() -> None:
    job = TriggerJob("t", "", "webhook", None, webhook_event_id="0190-evt")
    data = encode_trigger(job)
    assert data == {"tenant_id": "t", "trigger_type": "webhook", "data": None,
                    "webhook_event_id": "0190-evt"}  # fmt: skip
    assert decode_trigger(data) == job
    assert decode_trigger({**data, "webhookEventId": "0190-evt"}) == job


def test_bullmq_codec_the_same_value_under_both_spellings_is_fine() -> None:
    data = {"tenant_id": "t", "tenantId": "t", "workflow_id": "w", "trigger_type": "x"}
    assert decode_trigger(data).tenant_id == "t"


def test_bullmq_codec_step_data_round_trips() -> None:
    job = StepJob("ex", "node with spaces", 3, tenant_id="t", wake=1234, priority=-2)
    back = decode_step(encode_step(job), to_bullmq_priority(-2))
    assert back == job
    assert back.job_id == job.job_id


@pytest.mark.parametrize(
    "data",
    [{"execution_id": "e", "node_id": "n", "attempt": 0},
     {"execution_id": "e", "node_id": "n", "attempt": "1"},
     {"execution_id": "e", "attempt": 1},
     ["e", "n", 1]],
)  # fmt: skip
def test_bullmq_codec_bad_step_data_is_refused(data: object) -> None:
    with pytest.raises(JobDataError):
        decode_step(data)


def test_bullmq_codec_priorities_keep_their_order_within_bullmq_range() -> None:
    engine = [10**9, 100, 1, 0, -1, -100, -(10**9)]
    bull = [to_bullmq_priority(p) for p in engine]
    assert bull == sorted(bull)  # BullMQ runs lower numbers first
    assert all(1 <= b <= 2**21 for b in bull)
    assert [from_bullmq_priority(to_bullmq_priority(p)) for p in (100, 0, -100)] == [100, 0, -100]
    assert from_bullmq_priority(0) == 0  # a job added without priority


def test_bullmq_codec_delays_round_up_so_a_job_never_fires_early() -> None:
    now_ms = 1_700_000_000_000
    just_after = datetime.fromtimestamp(now_ms / 1000, UTC) + timedelta(microseconds=1)
    assert delay_ms(just_after, now_ms) == 1
    assert delay_ms(just_after - timedelta(seconds=5), now_ms) == 0
    assert delay_ms(None, now_ms) == 0


SEED_004_META = {
    "source": "instagram",
    "sourceType": "instagram",
    "actionType": "message",
    "customerId": "c-1",
    "clientId": "client-1",
}


@pytest.mark.parametrize(
    ("data", "job"),
    [
        (  # seed 004's createExecutionTask: the seed route of the tenant
            {"nodeId": "client-1-instagram-message", "payload": {"x": 1},
             "metadata": SEED_004_META, "credentials": {"token": "s3cret"}},
            TriggerJob("client-1", "", "webhook", {"x": 1}, metadata=SEED_004_META,
                       route="instagram/message"),
        ),
        (  # the route read from the node id when the metadata does not say it
            {"nodeId": "client-1-shop-order", "payload": 2, "metadata": {"clientId": "client-1"}},
            TriggerJob("client-1", "", "webhook", 2, metadata={"clientId": "client-1"},
                       route="shop/order"),
        ),
        (  # a workflow named: start it at that trigger node
            {"workflowId": "wf-1", "nodeId": "hook", "tenantId": "t", "data": [1],
             "triggerType": "api", "version": 2, "dedupeKey": "k"},
            TriggerJob("t", "wf-1", "api", [1], version=2, node_id="hook", dedupe_key="k"),
        ),
        (  # Flowmill's own step jobs are still step jobs
            {"execution_id": "e", "node_id": "n", "attempt": 2},
            StepJob("e", "n", 2),
        ),
    ],
)  # fmt: skip
def test_bullmq_codec_node_queue_jobs_of_the_seeds_start_at_a_trigger_node(
    data: dict[str, object], job: StepJob | TriggerJob
) -> None:
    assert decode_node_job(data) == job


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"nodeId": "x-a-b", "payload": 1}, "tenant_id: Field required"),
        ({"nodeId": "client-1-nothing", "metadata": {"clientId": "client-1"}}, "workflow_id"),
        ({"nodeId": "other-a-b", "tenantId": "client-1"}, "workflow_id"),
        ({"payload": 1, "tenantId": "t"}, "node_id: Field required"),
        ({"executionId": "e", "nodeId": "n"}, "attempt"),
    ],
)
def test_bullmq_codec_bad_node_queue_jobs_are_refused_naming_the_field(
    data: object, reason: str
) -> None:
    with pytest.raises(JobDataError, match=reason):
        decode_node_job(data)
