"""``webhook_analytics``: per webhook, calls by outcome and the last call.

Every request a webhook URL received ends as one ``webhook.received`` event with its
final status (processed, rejected, duplicate, no_match, failed). A call on the seed
route that fanned out to several webhooks counts for each of them; a refused call
that named no single webhook counts under ``route:<path>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from flowmill.domain.events import EventType
from flowmill.projections.base import Key, Projection, Row, later
from flowmill.store.event_feed import FeedEvent
from flowmill.store.tables import webhook_analytics

_COLUMN_OF_STATUS = {
    "processed": "succeeded",
    "rejected": "rejected",
    "duplicate": "duplicates",
    "no_match": "no_match",
    "failed": "failed",
}


def webhook_keys(payload: dict[str, object]) -> list[str]:
    """The webhooks a ``webhook.received`` event counts for."""
    targets = payload.get("targets")
    if isinstance(targets, list) and targets:
        return [str(t) for t in dict.fromkeys(targets)]
    if isinstance(payload.get("trigger_id"), str):
        return [str(payload["trigger_id"])]
    return [f"route:{payload.get('route') or ''}"[:300]]


class WebhookAnalytics(Projection):
    """Per webhook of a tenant: the seed's ``webhook_analytics`` view."""

    name = "webhook_analytics"
    table = webhook_analytics
    key = ("webhook_id",)
    types = frozenset({EventType.WEBHOOK_RECEIVED.value})

    def keys(self, event: FeedEvent) -> Iterable[Key]:
        if event.type != EventType.WEBHOOK_RECEIVED:
            return ()
        return [(k,) for k in webhook_keys(event.payload)]

    def empty(self, key: Key) -> Row:
        return {
            "webhook_id": key[0],
            "provider": None,
            "total": 0,
            "succeeded": 0,
            "rejected": 0,
            "duplicates": 0,
            "no_match": 0,
            "failed": 0,
            "last_called_at": None,
        }

    def apply(self, row: Row, event: FeedEvent) -> None:
        p = event.payload
        row["total"] += 1
        column = _COLUMN_OF_STATUS.get(str(p.get("status")))
        if column is not None:
            row[column] += 1
        if isinstance(p.get("provider"), str):
            row["provider"] = p["provider"]
        received = p.get("received_at")
        at = datetime.fromisoformat(received) if isinstance(received, str) else event.timestamp
        row["last_called_at"] = later(row["last_called_at"], at)
