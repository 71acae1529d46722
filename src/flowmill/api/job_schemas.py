"""Bodies of the job routes (``/api/jobs``): a queue job's status, in BullMQ's words."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flowmill.api.schemas import NodeStatusName

JobStateName = Literal[
    "waiting",
    "prioritized",
    "delayed",
    "active",
    "completed",
    "failed",
    "paused",
    "waiting-children",
    "unknown",
]


class JobStatusOut(BaseModel):
    """A queue job (seed 004's ``getJobStatus``). Its data is never shown."""

    model_config = ConfigDict(extra="forbid")

    id: str
    kind: Literal["step", "trigger"] = Field(
        description="`step`: runs one attempt of one node; `trigger`: starts executions."
    )
    state: JobStateName = Field(
        description="BullMQ's word for it; a step's comes from the database (the truth)."
    )
    queue: str | None = Field(description="The queue holding it (`local` when embedded).")
    queue_state: JobStateName | None = Field(
        description="What the queue itself says, while it holds the job (a step run "
        "inline after the one before it never was on a queue)."
    )
    execution_id: str | None = Field(description="The execution (a trigger job's first).")
    execution_ids: list[str] = Field(description="Every execution a trigger job started.")
    node_id: str | None
    attempt: int | None
    node_status: NodeStatusName | None = Field(description="A step's run status.")
    failed_reason: str | None
    attempts_made: int | None
    created_at: datetime | None
    processed_at: datetime | None
    finished_at: datetime | None


class JobList(BaseModel):
    """An execution's step jobs, oldest first."""

    model_config = ConfigDict(extra="forbid")

    items: list[JobStatusOut]
