"""``trigger``: where an execution starts (webhook, schedule, event, manual, api)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict, Field

from flowmill.nodes.base import NodeConfig, TriggerNodeType


class TriggerConfig(NodeConfig):
    """``triggerType`` says what starts it; ``actionType`` narrows webhook routes.

    Other keys (cron, provider settings...) belong to the trigger type and are kept.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    trigger_type: str = Field("manual", alias="triggerType", min_length=1)
    action_type: str | None = Field(None, alias="actionType")


class TriggerNode(TriggerNodeType[TriggerConfig]):
    """Starts the workflow; its output is ``{"type": "<triggerType>.<actionType>", "data"}``."""

    type_name = "trigger"
    Config = TriggerConfig
    description: ClassVar[str] = "Where an execution starts."

    def event_type(self, config: TriggerConfig, trigger_type: str) -> str:
        base = config.trigger_type or trigger_type
        return f"{base}.{config.action_type}" if config.action_type else base

    def config_issues(self, config: TriggerConfig, *, expressions_enabled: bool) -> list[str]:
        # Schedules and event triggers are checked when saved, not when they would fire.
        from flowmill.triggers.definitions import (
            EVENT_TYPE,
            SCHEDULE_TYPES,
            RespondMode,
            compile_schedule,
            event_config_issue,
        )
        from flowmill.triggers.schedule import ScheduleError

        raw = config.model_dump(by_alias=True)
        kind = config.trigger_type
        if kind in SCHEDULE_TYPES:
            try:
                compile_schedule(raw)
            except ScheduleError as e:
                return [str(e)]
        elif kind == EVENT_TYPE:
            issue = event_config_issue(raw)
            return [issue] if issue else []
        respond = raw.get("respond")
        mode = respond.get("mode") if isinstance(respond, dict) else respond
        if mode is not None and mode not in {m.value for m in RespondMode}:
            return [f"respond must be one of {', '.join(m.value for m in RespondMode)}"]
        return []
