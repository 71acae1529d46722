"""The daily read commands against a running server instead of the local database.

``flowmill executions list / show / logs --url URL`` read through the public HTTP API
with the key in ``FLOWMILL_API_KEY``: the same tables, for a server elsewhere (or one
on PostgreSQL that this machine cannot reach directly). The answers become the same
records the local commands read, so both render alike.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import httpx

from flowmill.cli_local import fail
from flowmill.domain.execution import ExecutionRecord, NodeRun
from flowmill.domain.states import ExecutionStatus, NodeRunStatus


class Remote:
    """A server's API, with the caller's key (its tenant is the key's)."""

    def __init__(self, url: str, key: str | None = None) -> None:
        key = key or os.environ.get("FLOWMILL_API_KEY")
        if not key:
            raise fail(
                "no API key for the server: set FLOWMILL_API_KEY",
                "serve printed one on its first start; make another with: "
                "flowmill keys create --tenant default",
                code=2,
            )
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    async def close(self) -> None:
        """Release the connection pool."""
        await self._client.aclose()

    async def get(self, path: str, missing: str = "", **params: Any) -> Any:
        """GET ``path``; an error answer or an unreachable server ends the command
        (``missing`` is what a 404 means)."""
        query = {k: v for k, v in params.items() if v}
        try:
            r = await self._client.get(path, params=query)
        except httpx.TransportError as e:
            raise fail(
                f"cannot reach {self.url}: {e or type(e).__name__}",
                "is `flowmill serve` running there? (--url or FLOWMILL_URL)",
                code=3,
            ) from None
        if r.status_code == 401:
            raise fail(f"{self.url} refused the API key (401)", "check FLOWMILL_API_KEY")
        if r.status_code == 404:
            raise fail(f"{self.url} has {missing or 'no ' + path} for this key's tenant")
        if not r.is_success:
            raise fail(f"{self.url} answered {r.status_code}: {r.text[:300]}")
        return r.json()

    async def executions(
        self, workflow: str | None, statuses: list[str], limit: int
    ) -> list[dict[str, Any]]:
        """The newest executions, as the local ``executions list`` rows."""
        page = await self.get("/api/executions", workflow_id=workflow, status=statuses, limit=limit)
        names: dict[str, str] = {}
        rows = []
        for x in page["items"]:
            if x["workflow_id"] not in names:
                wf = await self.get(f"/api/workflows/{x['workflow_id']}")
                names[x["workflow_id"]] = wf["name"]
            rows.append(
                {
                    **{k: x[k] for k in ("id", "workflow_id", "version", "status")},
                    "tenant_id": None,
                    "workflow": names[x["workflow_id"]],
                    "trigger_type": x["trigger_type"],
                    "created_at": _time(x["created_at"]),
                    "started_at": _time(x["started_at"]),
                    "completed_at": _time(x["completed_at"]),
                }
            )
        return rows

    async def detail(
        self, execution_id: str
    ) -> tuple[ExecutionRecord, list[NodeRun], dict[str, Any]]:
        """An execution, its node runs and the definition of its version."""
        x = await self.get(
            f"/api/executions/{execution_id}", missing=f"no execution {execution_id}"
        )
        definition = await self.get(
            f"/api/workflows/{x['workflow_id']}/export", version=x["version"]
        )
        record = ExecutionRecord(
            id=x["id"],
            tenant_id="(the key's)",
            workflow_id=x["workflow_id"],
            version=x["version"],
            status=ExecutionStatus(x["status"]),
            trigger={"data": x.get("input")},
            trigger_type=x["trigger_type"],
            created_at=_need_time(x["created_at"]),
            started_at=_time(x["started_at"]),
            completed_at=_time(x["completed_at"]),
            output=x.get("output"),
            error=x.get("error"),
        )
        runs = [
            NodeRun(
                id="",
                execution_id=x["id"],
                tenant_id="",
                node_id=n["node_id"],
                attempt=n["attempt"],
                status=NodeRunStatus(n["status"]),
                output=n.get("output"),
                error=n.get("error"),
                created_at=_time(n["started_at"]),
                started_at=_time(n["started_at"]),
                completed_at=_time(n["completed_at"]),
            )
            for n in x["nodes"]
        ]
        return record, runs, definition

    async def logs(self, execution_id: str, node: str | None) -> list[dict[str, Any]]:
        """Every log line of an execution, oldest first."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await self.get(
                f"/api/executions/{execution_id}/logs",
                missing=f"no execution {execution_id}",
                node_id=node,
                cursor=cursor,
                limit=1000,
            )
            out += [
                {
                    "timestamp": _need_time(x["timestamp"]),
                    "node_id": x["node_id"],
                    "attempt": x["attempt"],
                    "level": x["level"],
                    "message": x["message"],
                }
                for x in page["items"]
            ]
            cursor = page.get("next_cursor")
            if not cursor:
                return out


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _need_time(text: str) -> datetime:
    return datetime.fromisoformat(text)
