"""Names shared across processes: queues, key prefixes, job ids. Change with care:
other deployments (and Node.js producers) depend on them."""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

TRIGGER_QUEUE = "flowmill-trigger"
NODE_QUEUE = "flowmill-node"
# Queue names are settings (the seeds call theirs workflow-trigger and
# workflow-node-execution); BullMQ keys are "<prefix>:<name>:...", so no colon.
QUEUE_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
REDIS_PREFIX = "bull"  # BullMQ's default, so Node.js BullMQ producers find the queues
DEFAULT_TENANT = "default"


def node_digest(node_id: str) -> str:
    """The part of a step's job id that stands for its node (node ids are user text)."""
    return hashlib.blake2s(node_id.encode(), digest_size=8).hexdigest()


def step_job_id(execution_id: str, node_id: str, attempt: int, wake: int = 0) -> str:
    """The queue job id of a step: the same step always gets the same id.

    Node ids are user text, so they are hashed; BullMQ job ids must not contain ``:``.
    ``wake`` distinguishes the resumption of a suspended step from its first run.
    """
    suffix = f"-w{wake}" if wake else ""
    return f"s-{execution_id}-{node_digest(node_id)}-{attempt}{suffix}"


class StepJobRef(NamedTuple):
    """What a step's job id says: see :func:`step_job_id`."""

    execution_id: str
    node_digest: str
    attempt: int
    wake: int


_STEP_JOB_ID = re.compile(
    r"^s-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"-([0-9a-f]{16})-([1-9][0-9]{0,8})(?:-w([1-9][0-9]{0,8}))?$"
)


def parse_step_job_id(job_id: str) -> StepJobRef | None:
    """The parts of a step's job id; ``None`` when it is not one."""
    m = _STEP_JOB_ID.match(job_id)
    if m is None:
        return None
    return StepJobRef(m[1], m[2], int(m[3]), int(m[4] or 0))
