"""A Node.js service using BullMQ, written from the seed documents, starts workflows.

The Node.js ``bullmq`` package is installed once into a cache directory
(``run_node_script`` in ``tests/node_support.py``).
"""

from __future__ import annotations

import pytest

from flowmill.engine.ports import TriggerJob
from flowmill.queue.bullmq import BullMQQueue
from tests.integration.bullmq_support import Recorder, consuming, fast_options
from tests.node_support import BULLMQ_PACKAGES, run_node_script

pytestmark = pytest.mark.redis

PRODUCER = """
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

const [url, prefix] = process.argv.slice(2);
const connection = new Redis(url, { maxRetriesPerRequest: null });
const queue = new Queue('flowmill-trigger', { connection, prefix });
// As the seed's webhook handler and scheduler add them (camelCase)...
await queue.add('process', {
  workflowId: 'wf-seed', tenantId: 'client-1', triggerType: 'webhook.test',
  triggerData: { message: 'hello', count: 2 }, webhookId: 'wh-1',
});
// ...and with every field of the documented schema (snake_case).
await queue.add('trigger', {
  tenant_id: 't-2', workflow_id: 42, trigger_type: 'schedule', data: [1, 'two'],
  version: 3, node_id: 'cron-1', dedupe_key: 'tick-1', metadata: { source: 'node' },
});
await queue.close();
await connection.quit();
"""


async def test_bullmq_interop_node_trigger_jobs_reach_the_python_consumer(
    redis_url: str, redis_prefix: str
) -> None:
    await run_node_script(PRODUCER, redis_prefix, BULLMQ_PACKAGES, redis_url, redis_prefix)

    queue = BullMQQueue(redis_url, fast_options(redis_prefix))
    recorder = Recorder()
    try:
        async with consuming(queue, recorder, concurrency=1):
            jobs = await recorder.wait_for(2)
    finally:
        await queue.close()
    assert jobs == [
        TriggerJob(
            tenant_id="client-1",
            workflow_id="wf-seed",
            trigger_type="webhook.test",
            data={"message": "hello", "count": 2},
        ),
        TriggerJob(
            tenant_id="t-2",
            workflow_id="42",
            trigger_type="schedule",
            data=[1, "two"],
            version=3,
            node_id="cron-1",
            dedupe_key="tick-1",
            metadata={"source": "node"},
        ),
    ]
