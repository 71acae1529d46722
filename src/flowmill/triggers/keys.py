"""Dedupe keys for executions started by triggers, stable across processes.

Execution dedupe keys are unique per tenant (``workflow_executions.dedupe_key``,
300 characters), so each key names its trigger, and every replica derives the same
key for the same event or fire time without talking to the others.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
MAX_DEDUPE_KEY_LENGTH = 300


def _compact(identifier: str) -> str:
    """An id as is when short and plain, else a hash of it."""
    if _SAFE_ID.match(identifier):
        return identifier
    return hashlib.blake2s(identifier.encode(), digest_size=12).hexdigest()


def webhook_dedupe_key(trigger_id: str, event_id: str) -> str:
    """The dedupe key of a webhook event: one execution per trigger and provider event id.

    Two triggers may receive the same provider event, so the trigger is in the key.
    """
    key = f"webhook-{_compact(trigger_id)}-{event_id}"
    if len(key) <= MAX_DEDUPE_KEY_LENGTH:
        return key
    digest = hashlib.sha256(event_id.encode()).hexdigest()
    return f"webhook-{_compact(trigger_id)}-sha256-{digest}"


def firing_key(trigger_id: str, fire_at: datetime) -> str:
    """The dedupe key of one scheduled firing: ``schedule-<trigger>-<UTC fire time>``.

    Derived from the *scheduled* fire time, not the moment a replica got to it, so
    two schedulers that both believe they lead start one execution between them.
    Contains no ``:`` (BullMQ job ids cannot), e.g. ``schedule-trg_1-20260308T070000Z``.

    Raises:
        ValueError: ``fire_at`` is naive.
    """
    if fire_at.tzinfo is None or fire_at.utcoffset() is None:
        raise ValueError("fire_at must be timezone-aware")
    utc = fire_at.astimezone(UTC)
    stamp = utc.strftime("%Y%m%dT%H%M%S")
    if utc.microsecond:
        stamp += f".{utc.microsecond:06d}"
    return f"schedule-{_compact(trigger_id)}-{stamp}Z"
