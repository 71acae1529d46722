"""The node services of the integration layer (agents, connectors), built from settings.

Kept out of ``runtime`` so that module only hands them over.
"""

from __future__ import annotations

from typing import Any

from flowmill.config import Settings
from flowmill.engine.services import ConnectorSettings
from flowmill.store.database import Database


def node_extras(settings: Settings, *, db: Database | None) -> dict[str, Any]:
    """``NodeServices`` fields for agent and connector nodes."""
    extras: dict[str, Any] = {
        "connectors": ConnectorSettings(
            sqlite_dirs=tuple(settings.connector_sqlite_dirs),
            max_rows=settings.connector_max_rows,
        )
    }
    if db is not None:
        from flowmill.agents.backend import SqlAgentBackend

        extras["agents"] = SqlAgentBackend(db)
    return extras
