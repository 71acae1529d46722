"""The seeds' queue names and producers: a deployment on ``workflow-trigger`` /
``workflow-node-execution``, and a Node.js service written from the seed documents'
own snippets (seed 000's webhook handler, seed 004's ``BullMQAdapter`` and
``createExecutionTask``) starting executions there. Their jobs' status is read back over
HTTP by id (seed 004's ``getJobStatus``), in distributed mode: real Redis, real BullMQ.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowmill.queue.bullmq import BullMQQueue
from flowmill.testing import eventually
from tests.api_support import THREE_NODES, Api, open_api
from tests.node_support import BULLMQ_PACKAGES, run_node_script

pytestmark = pytest.mark.redis

CLIENT = "550e8400-e29b-41d4-a716-446655440000"  # seed 004's example clientUuid
SECRET = "token-never-to-be-seen-9c1e"

# The seed documents' code, kept as written; only the connection (the test's Redis key
# prefix) and the ids printed at the end are the test's.
PRODUCER = """
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

const [url, prefix, clientUuid, workflowId, secret] = process.argv.slice(2);
const connection = new Redis(url, { maxRetriesPerRequest: null });

// Seed 000, section 2.3: setupWorkflowQueues
function setupWorkflowQueues(redisConnection) {
  const workflowNodeQueue = new Queue('workflow-node-execution', {
    connection: redisConnection, prefix,
  });
  const workflowTriggerQueue = new Queue('workflow-trigger', {
    connection: redisConnection, prefix,
  });
  return { workflowNodeQueue, workflowTriggerQueue };
}

// Seed 004, section 4.3: BullMQAdapter.addJob
class BullMQAdapter {
  constructor(redisConnection) { this.redisConnection = redisConnection; this.queues = new Map(); }
  getQueue(queueName) {
    if (!this.queues.has(queueName)) {
      this.queues.set(queueName, new Queue(queueName, {
        connection: this.redisConnection, prefix,
        defaultJobOptions: { removeOnComplete: 100, removeOnFail: 500 },
      }));
    }
    return this.queues.get(queueName);
  }
  async addJob(queueName, data, options) {
    const queue = this.getQueue(queueName);
    const job = await queue.add('process', data, options);
    return job.id.toString();
  }
  async close() { for (const q of this.queues.values()) await q.close(); }
}

const { workflowNodeQueue, workflowTriggerQueue } = setupWorkflowQueues(connection);
const jobQueue = new BullMQAdapter(connection);

// Seed 000, section 4.1: the webhook handler queues a workflow execution
const triggerJob = await jobQueue.addJob('workflow-trigger', {
  workflowId, tenantId: clientUuid, triggerType: 'webhook.test',
  triggerData: { message: 'from node' }, webhookId: 'wh-1',
});

// Seed 004, section 4.2: createExecutionTask
const triggerType = 'instagram', actionType = 'message';
const payload = {
  entry: [{ messaging: [{ sender: { id: 'cust-42' }, message: { text: 'hi' } }] }],
};
const nodeJob = await jobQueue.addJob('workflow-node-execution', {
  nodeId: `${clientUuid}-${triggerType}-${actionType}`,
  payload: payload,
  metadata: {
    source: 'instagram', sourceType: triggerType, actionType: actionType,
    customerId: 'cust-42', clientId: clientUuid, receivedAt: new Date().toISOString(),
  },
  credentials: { id: clientUuid, credentials: { access_token: secret } },
}, {
  attempts: 3,
  backoff: { type: 'exponential', delay: 5000 },
  removeOnComplete: false,
  timeout: 30000,
});

console.log(JSON.stringify({ triggerJob, nodeJob }));
await jobQueue.close();
await workflowNodeQueue.close();
await workflowTriggerQueue.close();
await connection.quit();
"""

INSTAGRAM: dict[str, Any] = {
    "name": "Instagram reply",
    "nodes": [
        {"id": "dm", "type": "trigger",
         "config": {"triggerType": "instagram", "actionType": "message"}},
        {"id": "who", "type": "transform",
         "config": {"mapping": {"customer": "{{trigger.customerId}}",
                                "text": "{{data.entry[0].messaging[0].message.text}}"}}},
    ],
    "edges": [{"source": "dm", "target": "who"}],
}  # fmt: skip


async def _eventually_done(api: Api, job_id: str, queue: str) -> dict[str, Any]:
    async def finished() -> dict[str, Any]:
        r = await api.a.get(f"/api/jobs/{job_id}", params={"queue": queue})
        assert r.status_code == 200 and r.json()["state"] in ("completed", "failed"), r.text
        return dict(r.json())

    body = await eventually(finished, 30, f"job {job_id} on {queue} finishing")
    # Not retried: the first read that says "completed" must carry the result. (The
    # state and the job used to be read apart, the state last: about one run in four
    # saw a completed trigger job that had started nothing.)
    assert body["kind"] != "trigger" or body["execution_id"] is not None, body
    return body


async def _succeeded(api: Api, execution_id: str) -> dict[str, Any]:
    async def succeeded() -> dict[str, Any]:
        r = await api.a.get(f"/api/executions/{execution_id}")
        body = r.json()
        assert r.status_code == 200 and body["status"] == "succeeded", (r.status_code, body)
        return dict(body)

    return await eventually(succeeded, 30, f"execution {execution_id} succeeding")


async def test_seed_queues_node_producer_starts_executions_on_the_seed_names(
    sqlite_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = {
        "redis_url": redis_url,
        "queue_prefix": redis_prefix,
        "queue_trigger": "workflow-trigger",
        "queue_node": "workflow-node-execution",
    }
    async with open_api(sqlite_url, **settings) as api:
        await api.ctx.tenants.ensure(CLIENT)
        client_key = (await api.ctx.keys.create(CLIENT, "seed")).secret
        api.a.headers["Authorization"] = f"Bearer {client_key}"  # tenant A is the client
        wf = await api.workflow(THREE_NODES)
        insta = await api.workflow(INSTAGRAM)

        printed = await run_node_script(
            PRODUCER, redis_prefix, BULLMQ_PACKAGES, redis_url, redis_prefix, CLIENT, wf, SECRET
        )
        ids = json.loads(printed.strip().splitlines()[-1])

        # Seed 000's trigger job: its status by id names the execution it started.
        job = await _eventually_done(api, ids["triggerJob"], "workflow-trigger")
        assert (job["kind"], job["state"], job["queue"]) == (
            "trigger", "completed", "workflow-trigger",
        )  # fmt: skip
        ex = await _succeeded(api, job["execution_id"])
        assert ex["workflow_id"] == wf
        assert ex["output"] == "The processed result is: from node processed"
        assert ex["trigger_type"] == "webhook.test"

        # Seed 004's node job: the tenant's workflow on the instagram/message route.
        job = await _eventually_done(api, ids["nodeJob"], "workflow-node-execution")
        assert (job["kind"], job["state"]) == ("trigger", "completed"), job
        (started,) = job["execution_ids"]
        ex = await _succeeded(api, started)
        assert ex["workflow_id"] == insta
        assert ex["output"] == {"customer": "cust-42", "text": "hi"}
        assert ex["nodes"][0]["output"]["clientId"] == CLIENT

        # The engine's own step jobs go by the seed name too, and read back by id.
        counts = await _queue_counts(api.runtime.queue)
        assert set(counts) == {"workflow-trigger", "workflow-node-execution"}
        steps = (await api.a.get(f"/api/executions/{started}/jobs")).json()["items"]
        assert [(s["node_id"], s["state"]) for s in steps] == [("who", "completed")]
        step = (await api.a.get(f"/api/jobs/{steps[0]['id']}")).json()
        assert step["execution_id"] == started

        # Another tenant sees none of it; the producer's credentials are nowhere.
        for path in (
            f"/api/jobs/{ids['triggerJob']}",
            f"/api/jobs/{ids['nodeJob']}",
            f"/api/jobs/{steps[0]['id']}",
            f"/api/executions/{started}",
        ):
            assert (await api.b.get(path)).status_code == 404, path
        seen = [
            await api.a.get(f"/api/jobs/{ids['nodeJob']}"),
            await api.a.get(f"/api/executions/{started}"),
            await api.a.get(f"/api/executions/{started}/jobs"),
        ]
        assert all(SECRET not in r.text for r in seen)  # fmt: skip


async def _queue_counts(queue: Any) -> dict[str, dict[str, int]]:
    assert isinstance(queue, BullMQQueue)
    return await queue.counts()


async def test_seed_queues_default_names_are_unchanged(
    sqlite_url: str, redis_url: str, redis_prefix: str
) -> None:
    async with open_api(sqlite_url, redis_url=redis_url, queue_prefix=redis_prefix) as api:
        wf = await api.workflow(THREE_NODES)
        # Started without a wait, so its steps go through the node queue (a process
        # with a worker runs an execute?wait's steps in place, with no job).
        r = await api.a.post(f"/api/workflows/{wf}/execute", json={"input": {"message": "x"}})
        assert r.status_code in (200, 202), r.text
        await _succeeded(api, r.json()["execution_id"])
        counts = await _queue_counts(api.runtime.queue)
        assert set(counts) == {"flowmill-trigger", "flowmill-node"}
        assert counts["flowmill-node"]["completed"] >= 1
