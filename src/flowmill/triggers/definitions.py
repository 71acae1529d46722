"""Trigger nodes of a workflow definition, as rows of the ``triggers`` table.

Pure: reads a stored definition, says which trigger rows its published version
needs. The store writes them in the publishing transaction (``store/triggers.py``).

- ``{"triggerType": "schedule", "cron": "30 2 * * *", "timezone": "America/New_York"}``
  (``"cron"`` is accepted as a trigger type too) → a ``schedule`` row.
- ``{"triggerType": "event", "event": "execution.failed", "workflow_id": "..."}`` →
  an ``event`` row.
- ``manual`` and ``api`` start nothing by themselves → no row.
- Any other trigger type (``webhook``, ``instagram``...) with an ``actionType`` → a
  ``webhook`` row routed as ``{triggerType}/{actionType}``, which the seed URL
  ``/webhooks/{tenant}/{triggerType}/{actionType}`` reaches. The node may name a
  ``provider`` (with ``providerConfig`` and a ``secretCredential``); without one the
  route is explicitly unverified (provider ``none``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flowmill.triggers.schedule import Schedule, ScheduleSpec, parse_schedule

SCHEDULE_TYPES = frozenset({"schedule", "cron"})
EVENT_TYPE = "event"
NOT_ROWS = frozenset({"manual", "api"})
SCHEDULE_KEYS = frozenset(ScheduleSpec.model_fields)
MAX_ROUTE_PART = 100


class TriggerKind(StrEnum):
    """What a ``triggers`` row listens to."""

    WEBHOOK = "webhook"  # HTTP requests to its URL
    SCHEDULE = "schedule"  # fire times of a cron expression or interval
    EVENT = "event"  # domain or custom events of the tenant's event store


class RespondMode(StrEnum):
    """When a webhook answers its caller."""

    IMMEDIATE = "immediate"  # as soon as the event is recorded (default)
    LAST_NODE = "last_node"  # when the execution ends, with its output (or 202 on timeout)
    RESPONSE_NODE = "response_node"  # with the rendered output of the `response` node


@dataclass(frozen=True)
class TriggerSpec:
    """One trigger row a published definition needs.

    Attributes:
        node_id: The trigger node.
        kind: Webhook, schedule or event.
        config: What the row stores (schedule keys only, for schedules).
        provider: Webhook provider name (``none`` when the node names none).
        route: ``{triggerType}/{actionType}`` of a webhook node.
        name: The node's name, for listings.
    """

    node_id: str
    kind: TriggerKind
    config: dict[str, Any] = field(default_factory=dict)
    provider: str | None = None
    route: str | None = None
    name: str = ""


def route_of(trigger_type: str, action_type: str) -> str:
    """The route key of the seed URL form ``/webhooks/{tenant}/{trigger}/{action}``."""
    return f"{trigger_type}/{action_type}"


def schedule_config(node_config: Mapping[str, Any]) -> dict[str, Any]:
    """The schedule keys of a trigger node's config (the others are the node's own)."""
    return {k: v for k, v in node_config.items() if k in SCHEDULE_KEYS}


def compile_schedule(config: Mapping[str, Any], default_timezone: str = "UTC") -> Schedule:
    """A schedule row's config, compiled.

    Raises:
        ScheduleError: Invalid; the message names the field.
    """
    return parse_schedule(schedule_config(config), default_timezone=default_timezone)


def event_config_issue(config: Mapping[str, Any]) -> str | None:
    """What is wrong with an event trigger's config (``None``: fine)."""
    event = config.get("event")
    if not isinstance(event, str) or not event.strip() or len(event) > 64:
        return "an event trigger needs 'event': the event type to start on (1-64 chars)"
    wf = config.get("workflow_id")
    if wf is not None and not isinstance(wf, str):
        return "'workflow_id' must be a workflow id (text)"
    return None


def respond_of(config: Mapping[str, Any]) -> tuple[RespondMode, float]:
    """A webhook's respond mode and timeout (seconds) from its row config."""
    respond = config.get("respond") or {}
    mode = RespondMode(respond.get("mode", RespondMode.IMMEDIATE.value))
    return mode, float(respond.get("timeout_s", 10.0))


def triggers_of(definition: Mapping[str, Any]) -> list[TriggerSpec]:
    """The trigger rows a definition's trigger nodes need, in node order."""
    out: list[TriggerSpec] = []
    for node in definition.get("nodes") or ():
        if not isinstance(node, Mapping) or node.get("type") != "trigger":
            continue
        node_id = str(node.get("id"))
        name = str(node.get("name") or "")
        cfg: Mapping[str, Any] = node.get("config") or {}
        kind = str(cfg.get("triggerType") or "manual")
        if kind in NOT_ROWS:
            continue
        if kind in SCHEDULE_TYPES:
            out.append(TriggerSpec(node_id, TriggerKind.SCHEDULE, schedule_config(cfg), name=name))
        elif kind == EVENT_TYPE:
            event = {k: cfg[k] for k in ("event", "workflow_id", "filter") if k in cfg}
            out.append(TriggerSpec(node_id, TriggerKind.EVENT, event, name=name))
        elif cfg.get("actionType"):
            action = str(cfg["actionType"])
            out.append(
                TriggerSpec(
                    node_id,
                    TriggerKind.WEBHOOK,
                    _webhook_config(cfg),
                    provider=str(cfg.get("provider") or "none"),
                    route=route_of(kind, action),
                    name=name,
                )
            )
    return out


def _webhook_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    provider_config = dict(cfg.get("providerConfig") or {})
    if not cfg.get("provider"):
        # No provider named: the seed's route is unverified by design, and says so.
        provider_config = {"allow_unverified": True}
    out: dict[str, Any] = {"provider": provider_config}
    if cfg.get("secretCredential"):
        out["secret_credential"] = str(cfg["secretCredential"])
    respond = cfg.get("respond")
    if isinstance(respond, str):
        out["respond"] = {"mode": respond, "timeout_s": cfg.get("respondTimeoutS", 10.0)}
    elif isinstance(respond, Mapping):
        out["respond"] = dict(respond)
    return out
