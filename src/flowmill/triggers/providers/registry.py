"""The registry of webhook providers (entry-point group ``flowmill.webhook_providers``)."""

from __future__ import annotations

from typing import Any

from flowmill.plugins import DuplicatePluginError, PluginRegistry
from flowmill.triggers.providers.base import WebhookProvider

ENTRY_POINT_GROUP = "flowmill.webhook_providers"


class DuplicateProviderError(DuplicatePluginError):
    """Two providers claimed the same name."""


class WebhookProviderRegistry(PluginRegistry[WebhookProvider[Any]]):
    """Maps provider names to provider instances."""

    base = WebhookProvider
    name_attribute = "name"
    group = ENTRY_POINT_GROUP
    kind = "webhook provider"
    duplicate_error = DuplicateProviderError
