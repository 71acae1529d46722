"""Webhook providers: one module per signature scheme, registered by entry point
(group ``flowmill.webhook_providers``). Pure: no I/O, the clock is passed in."""

from flowmill.triggers.providers.base import (
    FailureReason,
    ProviderConfig,
    Verification,
    WebhookProvider,
    WebhookResponse,
)
from flowmill.triggers.providers.payload import PayloadError
from flowmill.triggers.providers.registry import DuplicateProviderError, WebhookProviderRegistry
from flowmill.triggers.providers.request import Headers, IncomingWebhook, QueryParams

__all__ = [
    "DuplicateProviderError",
    "FailureReason",
    "Headers",
    "IncomingWebhook",
    "PayloadError",
    "ProviderConfig",
    "QueryParams",
    "Verification",
    "WebhookProvider",
    "WebhookProviderRegistry",
    "WebhookResponse",
]
