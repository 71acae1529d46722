"""Webhook helpers for tests: requests, a clock, and independent signers.

The signers follow each provider's documentation directly with ``hmac`` and ``base64``,
separately from the code under test, so a test that passes shows the verifier agrees
with the scheme, not merely with itself. Every signer takes ``(secret, [timestamp,]
body)`` in that order. The API served over loopback (``live_api``) is in
``tests/api_support.py``; its names are re-exported here for modules that import them
from this one. The set-up many webhook tests share is here too: an unverified webhook
on a workflow (``unverified_webhook``, from :mod:`flowmill.testing`, which the benchmarks
use too), and an event left ``received`` dispatched by a restarted process's trigger
service (``dispatched_after_restart``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flowmill.config import Settings
from flowmill.domain.execution import ExecutionRecord
from flowmill.runtime import open_runtime
from flowmill.store.webhook_events import WebhookEventStatus
from flowmill.testing import FakeClock, eventually, free_port, unverified_webhook
from flowmill.triggers.providers import IncomingWebhook, WebhookProviderRegistry
from flowmill.triggers.providers.base import WebhookProvider
from tests.api_support import KEYS, SEED, Live, live_api

__all__ = [
    "KEYS",
    "REGISTRY",
    "SEED",
    "Live",
    "b64_hmac",
    "clock_at",
    "dispatched_after_restart",
    "free_port",
    "hex_hmac",
    "hub_signature",
    "last_node",
    "live_api",
    "meta_signature",
    "post",
    "provider",
    "slack_headers",
    "standard_signature",
    "stripe_header",
    "unverified_webhook",
]

REGISTRY = WebhookProviderRegistry.from_entry_points()


def provider(name: str) -> WebhookProvider[Any]:
    return REGISTRY.get(name)


def clock_at(unix: float) -> FakeClock:
    return FakeClock(datetime.fromtimestamp(unix, UTC))


def post(
    body: bytes | str,
    headers: Mapping[str, str] | list[tuple[str, str]],
    *,
    content_type: str | None = "application/json",
    method: str = "POST",
    query: str = "",
) -> IncomingWebhook:
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    if content_type is not None:
        pairs.append(("Content-Type", content_type))
    return IncomingWebhook.build(method, "/hooks/t1", headers=pairs, body=body, query=query)


def hex_hmac(key: bytes | str, message: bytes | str, algorithm: str = "sha256") -> str:
    k = key.encode() if isinstance(key, str) else key
    m = message.encode() if isinstance(message, str) else message
    return hmac.new(k, m, getattr(hashlib, algorithm)).hexdigest()


def b64_hmac(key: bytes | str, message: bytes | str, algorithm: str = "sha256") -> str:
    k = key.encode() if isinstance(key, str) else key
    m = message.encode() if isinstance(message, str) else message
    return base64.b64encode(hmac.new(k, m, getattr(hashlib, algorithm)).digest()).decode()


def standard_signature(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return "v1," + b64_hmac(key, f"{msg_id}.{timestamp}.{body}")


def stripe_header(secret: str, timestamp: int, body: str) -> str:
    return f"t={timestamp},v1={hex_hmac(secret, f'{timestamp}.{body}')}"


def slack_headers(secret: str, timestamp: int, body: bytes | str) -> dict[str, str]:
    """Slack's headers: ``v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")``."""
    if isinstance(timestamp, bytes | str) and isinstance(body, int):
        # The order of the integration tests' former helper, (secret, body, timestamp).
        timestamp, body = body, timestamp
    raw = body.encode() if isinstance(body, str) else body
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": "v0=" + hex_hmac(secret, f"v0:{timestamp}:".encode() + raw),
    }


def hub_signature(secret: str, body: bytes | str) -> str:
    """GitHub's and Meta's ``X-Hub-Signature-256``: ``sha256=`` + hex HMAC of the body."""
    return "sha256=" + hex_hmac(secret, body)


meta_signature = hub_signature


def last_node(timeout_s: float) -> dict[str, Any]:
    """The ``respond`` of a webhook answered with its execution's result, waited for
    at most ``timeout_s``."""
    return {"mode": "last_node", "timeout_s": timeout_s}


async def dispatched_after_restart(
    database_url: str, event_id: str, recovery_s: float
) -> ExecutionRecord:
    """Start a process on ``database_url`` anew (worker and trigger service), wait for
    its recovery to dispatch the event left ``received``, and return the execution it
    started once that has ended."""
    settings = Settings(
        database_url=database_url,
        secret_keys=KEYS,
        webhook_recovery_s=recovery_s,
        scheduler_tick_s=0.05,
        sweep_interval_s=0.05,
        shutdown_grace_s=1,
    )
    async with open_runtime(settings) as rt, rt.engine.running():
        events = rt.triggers.events
        async with rt.triggers.service.running():

            async def processed() -> bool:
                row = await events.get(event_id)
                return row is not None and row.status is WebhookEventStatus.PROCESSED

            await eventually(processed, 15, "the event dispatched after the restart")
        row = await events.get(event_id)
        assert row is not None and row.execution_ids is not None
        [execution_id] = row.execution_ids
        return await rt.engine.wait(execution_id, timeout=10)
