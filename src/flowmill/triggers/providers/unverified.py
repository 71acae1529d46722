"""``none``: no verification at all, for test routes and trusted networks only.

The seed's ``/webhooks/{client}/{trigger}/{action}`` route has no signature scheme.
Choosing this provider is not enough: the config must also say
``allow_unverified: true``, so nobody ends up here by leaving a field empty.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field, field_validator

from flowmill.triggers.providers.base import ProviderConfig, WebhookProvider
from flowmill.triggers.providers.request import IncomingWebhook


class UnverifiedConfig(ProviderConfig):
    """Config of the ``none`` provider.

    Attributes:
        allow_unverified: Must be ``true``: anyone who knows the URL can start the
            workflow.
        event_id_header: Header holding a dedupe key, if the sender sends one.
    """

    allow_unverified: bool = Field(False, validate_default=True)
    event_id_header: str | None = Field(None, min_length=1, max_length=100)

    @field_validator("allow_unverified")
    @classmethod
    def _must_opt_in(cls, value: bool) -> bool:
        if not value:
            raise ValueError(
                "provider 'none' accepts any request; set allow_unverified: true to confirm"
            )
        return value


class UnverifiedProvider(WebhookProvider[UnverifiedConfig]):
    """Accepts every request (explicit opt-in)."""

    name = "none"
    Config = UnverifiedConfig
    requires_secret: ClassVar[bool] = False
    description: ClassVar[str] = "No verification (explicit opt-in)"

    def secret_issue(self, secret: str) -> str | None:
        return None

    def signing(
        self,
        request: IncomingWebhook,
        secrets: tuple[str, ...],
        config: UnverifiedConfig,
        now: datetime,
    ) -> None:
        return None  # nothing is signed: the opt-in in the config is the whole check

    def default_event_id(
        self, request: IncomingWebhook, payload: Any, config: UnverifiedConfig
    ) -> Any:
        return request.headers.get(config.event_id_header) if config.event_id_header else None
