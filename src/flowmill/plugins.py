"""Explicit plugin registries: named, refusing duplicates, fed by entry points.

Node types and webhook providers are plugins of this kind; each has a typed base
class and a registry subclass naming its entry-point group.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any, ClassVar, Generic, Self, TypeVar

from flowmill.domain.errors import Invalid

P = TypeVar("P")


class DuplicatePluginError(Invalid):
    """Two plugins claimed the same name."""


class PluginRegistry(Generic[P]):
    """Maps names to plugin instances (one instance per plugin class).

    Subclasses set ``base`` (the class plugins must subclass), ``name_attribute`` (the
    class attribute holding a plugin's name), ``group`` (the entry-point group) and
    ``kind`` (for messages).
    """

    base: ClassVar[type[Any]]
    name_attribute: ClassVar[str]
    group: ClassVar[str]
    kind: ClassVar[str] = "plugin"
    duplicate_error: ClassVar[type[DuplicatePluginError]] = DuplicatePluginError

    def __init__(self, plugins: Iterable[type[P]] = ()) -> None:
        self._plugins: dict[str, P] = {}
        for plugin in plugins:
            self.register(plugin)

    def register(self, plugin: type[P]) -> None:
        """Add a plugin.

        Raises:
            DuplicatePluginError: Its name is taken.
        """
        name = getattr(plugin, self.name_attribute)
        if name in self._plugins:
            existing = type(self._plugins[name])
            raise self.duplicate_error(
                f"{self.kind} {name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        self._plugins[name] = plugin()

    def get(self, name: str) -> P:
        """The plugin called ``name``.

        Raises:
            KeyError: Unknown name.
        """
        return self._plugins[name]

    def __contains__(self, name: object) -> bool:
        return name in self._plugins

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._plugins))

    @classmethod
    def from_entry_points(cls, group: str | None = None) -> Self:
        """A registry of every plugin installed under the entry-point group.

        Raises:
            TypeError: An entry point does not name a subclass of ``base``.
            ValueError: An entry point's name differs from its plugin's name.
        """
        registry = cls()
        for ep in sorted(entry_points(group=group or cls.group), key=lambda e: e.name):
            plugin = ep.load()
            if not (isinstance(plugin, type) and issubclass(plugin, cls.base)):
                raise TypeError(
                    f"entry point {ep.name!r} does not name a {cls.base.__name__} subclass"
                )
            name = getattr(plugin, cls.name_attribute)
            if name != ep.name:
                raise ValueError(
                    f"entry point {ep.name!r} loads {cls.kind} {name!r}; the names must match"
                )
            registry.register(plugin)
        return registry
