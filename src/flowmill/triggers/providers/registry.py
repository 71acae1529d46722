"""The registry of webhook providers: explicit, refuses duplicates, fed by entry points."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any

from flowmill.triggers.providers.base import WebhookProvider

ENTRY_POINT_GROUP = "flowmill.webhook_providers"


class DuplicateProviderError(ValueError):
    """Two providers claimed the same name."""


class WebhookProviderRegistry:
    """Maps provider names to provider instances."""

    def __init__(self, providers: Iterable[type[WebhookProvider[Any]]] = ()) -> None:
        self._providers: dict[str, WebhookProvider[Any]] = {}
        for p in providers:
            self.register(p)

    def register(self, provider: type[WebhookProvider[Any]]) -> None:
        """Add a provider.

        Raises:
            DuplicateProviderError: Its ``name`` is taken.
        """
        name = provider.name
        if name in self._providers:
            existing = type(self._providers[name])
            raise DuplicateProviderError(
                f"webhook provider {name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        self._providers[name] = provider()

    def get(self, name: str) -> WebhookProvider[Any]:
        """The provider called ``name``.

        Raises:
            KeyError: Unknown provider.
        """
        return self._providers[name]

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._providers))

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP) -> WebhookProviderRegistry:
        """Build a registry of every provider installed under the entry-point group."""
        registry = cls()
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            provider = ep.load()
            if not (isinstance(provider, type) and issubclass(provider, WebhookProvider)):
                raise TypeError(f"entry point {ep.name!r} does not name a WebhookProvider")
            if provider.name != ep.name:
                raise ValueError(
                    f"entry point {ep.name!r} loads provider {provider.name!r}; "
                    "the names must match"
                )
            registry.register(provider)
        return registry
