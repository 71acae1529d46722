"""Webhook set-up over the HTTP API, shared by the tests and the benchmarks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["unverified_webhook"]


async def unverified_webhook(
    client: httpx.AsyncClient,
    workflow_id: str,
    node_id: str,
    *,
    respond: Mapping[str, Any] | None = None,
) -> str:
    """Register an unverified webhook (provider ``none``) on a workflow's trigger node.

    Args:
        client: An API client of the workflow's tenant.
        workflow_id: The workflow.
        node_id: Its trigger node.
        respond: The webhook's ``respond`` (``{"mode": "last_node", ...}``); none: the
            acknowledgement answers at once.

    Returns:
        The webhook's id: requests go to ``/webhooks/{id}/none``.

    Raises:
        AssertionError: The API did not create it (its answer is in the message).
    """
    body: dict[str, Any] = {
        "workflow_id": workflow_id,
        "node_id": node_id,
        "provider": "none",
        "config": {"allow_unverified": True},
    }
    if respond is not None:
        body["respond"] = dict(respond)
    created = await client.post("/api/webhooks", json=body)
    if created.status_code != 201:
        raise AssertionError(f"webhook not created: {created.status_code} {created.text}")
    return str(created.json()["id"])
