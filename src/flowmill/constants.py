"""Names shared across processes: queues, key prefixes, job ids. Change with care:
other deployments (and Node.js producers) depend on them."""

from __future__ import annotations

import hashlib

TRIGGER_QUEUE = "flowmill-trigger"
NODE_QUEUE = "flowmill-node"
REDIS_PREFIX = "bull"  # BullMQ's default, so Node.js BullMQ producers find the queues
DEFAULT_TENANT = "default"


def step_job_id(execution_id: str, node_id: str, attempt: int, wake: int = 0) -> str:
    """The queue job id of a step: the same step always gets the same id.

    Node ids are user text, so they are hashed; BullMQ job ids must not contain ``:``.
    ``wake`` distinguishes the resumption of a suspended step from its first run.
    """
    digest = hashlib.blake2s(node_id.encode(), digest_size=8).hexdigest()
    suffix = f"-w{wake}" if wake else ""
    return f"s-{execution_id}-{digest}-{attempt}{suffix}"
