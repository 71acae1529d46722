"""Optional dependencies, imported when a feature needs them.

The embedded default (SQLite, the in-process queue) installs none of them; PostgreSQL,
BullMQ on Redis, Socket.IO, tracing and LLM agents each come with an extra of the
package (``pip install 'flowmill[postgres]'``). Code that needs one imports it through
:func:`require`, so a missing package says which extra brings it instead of a bare
``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from flowmill.domain.errors import FlowmillError

# module -> (extra that installs it, what it is for)
EXTRAS: dict[str, tuple[str, str]] = {
    "asyncpg": ("postgres", "PostgreSQL"),
    "redis": ("redis", "Redis (FLOWMILL_REDIS_URL)"),
    "bullmq": ("redis", "BullMQ workers (FLOWMILL_REDIS_URL)"),
    "msgpack": ("redis", "BullMQ workers (FLOWMILL_REDIS_URL)"),
    "socketio": ("realtime", "Socket.IO"),
    "opentelemetry": ("otel", "OpenTelemetry tracing"),
    "openai": ("agents", "agent nodes"),
    "anthropic": ("agents", "agent nodes"),
    "httpx2": ("agents", "agent nodes"),
    "aiosqlite": ("connectors", "database_query on SQLite"),
    "aiomysql": ("connectors", "database_query on MySQL"),
}


class MissingExtra(FlowmillError, ImportError):
    """An optional dependency is not installed; the message names the extra to add."""

    def __init__(self, module: str) -> None:
        extra, feature = EXTRAS.get(module.split(".", 1)[0], ("all", module))
        self.extra = extra
        super().__init__(
            f"{feature} needs the {module.split('.', 1)[0]!r} package, which is not installed; "
            f"install Flowmill with it: pip install 'flowmill[{extra}]'",
            name=module,
        )


def require(module: str) -> ModuleType:
    """Import ``module`` (e.g. ``"asyncpg"``) or raise :class:`MissingExtra`.

    Raises:
        MissingExtra: The package is not installed.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".", 1)[0] != module.split(".", 1)[0]:
            raise  # something the module itself imports is broken: not ours to rename
        raise MissingExtra(module) from None


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(module) is not None
