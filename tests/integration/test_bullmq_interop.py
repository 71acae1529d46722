"""A Node.js service using BullMQ, written from the seed documents, starts workflows.

Installs the Node.js ``bullmq`` package once into a cache directory
(``FLOWMILL_TEST_NODE_CACHE``, default ``~/.cache/flowmill-tests``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from flowmill.engine.ports import TriggerJob
from flowmill.queue.bullmq import BullMQQueue
from tests.integration.bullmq_support import Recorder, consuming, fast_options
from tests.integration.conftest import unavailable

pytestmark = pytest.mark.redis

# The Node.js release line of the Python bullmq package pinned in pyproject.toml.
NODE_PACKAGES = ("bullmq@6.7.0", "ioredis@6.0.0")

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


def _node_modules() -> Path:
    """A directory with the Node.js packages installed (installed on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("node and npm are needed for the Node.js interop test")
    cache = Path(os.environ.get("FLOWMILL_TEST_NODE_CACHE", Path.home() / ".cache/flowmill-tests"))
    home = cache / ("node-" + "-".join(p.replace("@", "") for p in NODE_PACKAGES))
    if (home / "node_modules" / "bullmq" / "package.json").exists():
        return home
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache))  # moved into place whole: no half installs
    (staging / "package.json").write_text('{"private": true, "type": "module"}\n')
    try:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *NODE_PACKAGES],
            cwd=staging, check=True, capture_output=True, timeout=180,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(staging, ignore_errors=True)
        detail = getattr(e, "stderr", b"") or b""
        unavailable(f"npm install {' '.join(NODE_PACKAGES)} failed: {detail.decode()[-500:]}")
    if not home.exists():
        staging.rename(home)
    else:
        shutil.rmtree(staging, ignore_errors=True)  # another run won the race
    return home


async def run_node_script(source: str, name: str, *args: str) -> None:
    """Run a Node.js ES module with the BullMQ packages installed; it must succeed."""
    home = await asyncio.to_thread(_node_modules)
    # Inside the install directory: ES modules resolve packages from the script's place.
    script = home / f"script-{name}.mjs"
    script.write_text(source)
    try:
        node = await asyncio.create_subprocess_exec(
            "node", str(script), *args,
            cwd=home, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(node.communicate(), 60)
    finally:
        script.unlink()
    assert node.returncode == 0, (out + err).decode()


async def test_node_bullmq_trigger_jobs_reach_the_python_consumer(
    redis_url: str, redis_prefix: str
) -> None:
    await run_node_script(PRODUCER, redis_prefix, redis_url, redis_prefix)

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
