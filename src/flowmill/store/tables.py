"""Tables (DESIGN §5). Every tenant-owned table has ``tenant_id``, filtered on by every
query. Indexes follow the queries that use them; each says which."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from flowmill.domain.states import LIVE_NODE_STATUSES, NodeRunStatus
from flowmill.store.types import Id, Json, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING)
#: The statuses of a node run not finished (domain.states), in their declared order;
#: written once here for every writer's SQL (raw statements take LIVE_SQL).
LIVE_STATUSES = tuple(s.value for s in NodeRunStatus if s in LIVE_NODE_STATUSES)
LIVE_SQL = "(" + ", ".join(f"'{s}'" for s in LIVE_STATUSES) + ")"
_live_sql = sa.text(f"status IN {LIVE_SQL}")


def inline(value: str) -> sa.BindParameter[str]:
    """``value`` written into the statement, not sent as a parameter.

    For a status a partial index is defined by (``WHERE status = 'received'``):
    PostgreSQL uses such an index only where it can prove the predicate, which it cannot
    against a parameter. A statement run often is planned once for any parameters (the
    generic plan, after five runs), so a parameter there scanned the whole table, a
    little longer with every row the table gained.
    """
    return sa.literal(value, literal_execute=True)


_live_exec_sql = sa.text("status IN ('pending', 'queued', 'running', 'waiting')")
_queued_exec_sql = sa.text("status = 'queued'")

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # Last sequence number given to this tenant's events; the row lock taken to bump it
    # orders the tenant's commits, so readers by sequence never miss a late commit.
    sa.Column("event_seq", sa.BigInteger(), nullable=False, server_default="0"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("prefix", sa.String(32), nullable=False),
    sa.Column("key_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_used_at", UTCDateTime()),
    sa.Column("revoked_at", UTCDateTime()),
)

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("tags", Json(), nullable=False),
    sa.Column("latest_version", sa.Integer(), nullable=False),
    sa.Column("active_version", sa.Integer()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("deleted_at", UTCDateTime()),
    # listing a tenant's workflows, newest first, filtered by status
    sa.Index("ix_workflows_tenant_status", "tenant_id", "status", "id"),
    sa.Index("ix_workflows_tenant_name", "tenant_id", "name"),
)

workflow_versions = sa.Table(
    "workflow_versions",
    metadata,
    sa.Column(
        "workflow_id", Id(), sa.ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("definition", Json(), nullable=False),
    sa.Column("definition_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("published_at", UTCDateTime()),
    sa.Column("note", sa.Text(), nullable=False, server_default=""),
)

triggers = sa.Table(
    "triggers",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column(
        "workflow_id", Id(), sa.ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("node_id", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # webhook | schedule | event
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("provider", sa.String(32)),
    sa.Column("config", Json(), nullable=False),
    sa.Column("secret", sa.LargeBinary()),  # encrypted
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("last_run_at", UTCDateTime()),
    sa.Column("next_run_at", UTCDateTime()),
    # "api": registered with POST /api/webhooks; "definition": a trigger node of the
    # workflow's published version, kept in step with it when it is published.
    sa.Column("origin", sa.String(16), nullable=False, server_default="api"),
    # "{triggerType}/{actionType}" of a definition's webhook node: the seed route
    # /webhooks/{tenant}/{triggerType}/{actionType} finds its targets by it
    sa.Column("route", sa.String(300)),
    sa.Index("ix_triggers_tenant_workflow", "tenant_id", "workflow_id"),
    # the scheduler's scan for due schedules
    sa.Index("ix_triggers_due", "kind", "enabled", "next_run_at"),
    sa.Index("ix_triggers_route", "tenant_id", "route"),
)

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("trigger_id", Id()),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("route", sa.String(500), nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("headers", Json(), nullable=False),
    sa.Column("body", sa.LargeBinary(), nullable=False),
    # a body above the blob threshold lives in ``blobs`` (``body`` is then empty)
    sa.Column("body_blob_id", Id()),
    sa.Column("verified", sa.Boolean(), nullable=False),
    sa.Column("verification_error", sa.String(200)),
    sa.Column("dedupe_key", sa.String(300)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("event_type", sa.String(200)),  # the provider's kind of event
    # trigger ids the event was verified for (the seed route may fan out to several)
    sa.Column("targets", Json()),
    sa.Column("execution_ids", Json(), nullable=False),
    sa.Column("error", sa.Text()),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("processed_at", UTCDateTime()),
    sa.UniqueConstraint("tenant_id", "dedupe_key"),
    sa.Index("ix_webhook_events_trigger", "tenant_id", "trigger_id", "id"),
    # the sweeper's look for received events whose job was lost
    sa.Index(
        "ix_webhook_events_received",
        "received_at",
        sqlite_where=sa.text("status = 'received'"),
        postgresql_where=sa.text("status = 'received'"),
    ),
)

workflow_executions = sa.Table(
    "workflow_executions",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("workflow_id", Id(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("trigger_type", sa.String(64), nullable=False),
    sa.Column("trigger", Json(), nullable=False),
    sa.Column("output", Json()),
    sa.Column("error", Json()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("completed_at", UTCDateTime()),
    sa.Column("deadline_at", UTCDateTime()),
    sa.Column("parent_execution_id", Id()),
    # a child (loop iteration, sub-workflow call): the parent's node that started it and,
    # for a loop, the item's index; the parent collects its children by them
    sa.Column("parent_node_id", sa.String(200)),
    sa.Column("iteration", sa.Integer()),
    sa.Column("retry_of", Id()),
    # what the execution is about, e.g. {"customerId", "clientId"} of a channel message;
    # the executions list filters on it
    sa.Column("metadata", Json()),
    # one execution per outside event (webhook event id, schedule firing, trigger job)
    sa.Column("dedupe_key", sa.String(300)),
    sa.UniqueConstraint("tenant_id", "dedupe_key"),
    # GET /api/executions: keyset pages by id, with or without a status filter
    sa.Index("ix_executions_tenant_id", "tenant_id", "id"),
    sa.Index("ix_executions_tenant_status", "tenant_id", "status", "id"),
    sa.Index("ix_executions_tenant_workflow", "tenant_id", "workflow_id", "id"),
    # a parent's children in item order (loop collection, GET .../children)
    sa.Index("ix_executions_parent", "parent_execution_id", "parent_node_id", "iteration"),
    # concurrency limits count a workflow's live executions; the sweeper finds deadlines
    sa.Index(
        "ix_executions_live",
        "workflow_id",
        "status",
        sqlite_where=_live_exec_sql,
        postgresql_where=_live_exec_sql,
    ),
    # the oldest queued executions (the sweep that starts them), without walking the
    # primary key past every ended one
    sa.Index(
        "ix_executions_queued",
        "id",
        sqlite_where=_queued_exec_sql,
        postgresql_where=_queued_exec_sql,
    ),
)

node_executions = sa.Table(
    "node_executions",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column(
        "execution_id",
        Id(),
        sa.ForeignKey("workflow_executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("node_id", sa.String(200), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("input", Json()),
    sa.Column("output", Json()),
    sa.Column("error", Json()),
    sa.Column("handles", Json()),
    sa.Column("state", Json()),
    sa.Column("not_before", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("completed_at", UTCDateTime()),
    sa.Column("owner", sa.String(64)),
    # the planner's lookups by (execution, node); also makes each attempt unique
    sa.UniqueConstraint("execution_id", "node_id", "attempt"),
    # recovery and the sweeper scan only live runs
    sa.Index(
        "ix_node_executions_live",
        "owner",
        "not_before",
        sqlite_where=_live_sql,
        postgresql_where=_live_sql,
    ),
    # "is anything of this execution still running?" without reading finished runs
    sa.Index(
        "ix_node_executions_live_execution",
        "execution_id",
        sqlite_where=_live_sql,
        postgresql_where=_live_sql,
    ),
)

execution_signals = sa.Table(
    "execution_signals",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column(
        "execution_id",
        Id(),
        sa.ForeignKey("workflow_executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("payload", Json()),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    # the wait node that took it (its node id): a signal is delivered once, and a wait
    # retried after a crash finds the signal it had already taken
    sa.Column("consumed_by", sa.String(200)),
    sa.Column("consumed_at", UTCDateTime()),
    # a wait looks for the oldest signal of its name, by execution
    sa.Index("ix_execution_signals_execution", "execution_id", "name", "received_at"),
)

execution_logs = sa.Table(
    "execution_logs",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column(
        "execution_id",
        Id(),
        sa.ForeignKey("workflow_executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("node_id", sa.String(200)),
    sa.Column("attempt", sa.Integer()),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("metadata", Json(), nullable=False),
    sa.Column("timestamp", UTCDateTime(), nullable=False),
    sa.Index("ix_execution_logs_execution", "execution_id", "id"),
)

event_store = sa.Table(
    "event_store",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("stream_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("payload", Json(), nullable=False),
    sa.Column("timestamp", UTCDateTime(), nullable=False),
    sa.Column("sequence_number", sa.BigInteger(), nullable=False),
    # consumers read a tenant's feed by sequence
    sa.UniqueConstraint("tenant_id", "sequence_number"),
    sa.Index("ix_event_store_stream", "stream_id", "sequence_number"),
)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # what may be shown: the non-secret fields, and a hint of the secret ("…wxyz")
    sa.Column("details", Json(), nullable=False, server_default="{}"),
    sa.Column("hint", sa.String(16)),
    # an OAuth2 token refresh under way (any process): others wait for its result
    sa.Column("refresh_lease_until", UTCDateTime()),
    sa.UniqueConstraint("tenant_id", "name"),
)

agent_configs = sa.Table(
    "agent_configs",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("character", Json(), nullable=False),
    sa.Column("max_tokens", sa.Integer(), nullable=False),
    sa.Column("temperature", sa.Float(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # "openai" (any OpenAI-compatible Chat Completions server) or "anthropic"
    sa.Column("provider", sa.String(32), nullable=False, server_default="openai"),
    sa.Column("history_window", sa.Integer(), nullable=False, server_default="20"),
    sa.Column("credential", sa.String(200)),  # id or name of the API key's credential
    sa.Column("base_url", sa.String(500)),
    # timeout_s, max_retries, tools (reserved), max_tool_rounds
    sa.Column("settings", Json(), nullable=False, server_default="{}"),
    sa.UniqueConstraint("tenant_id", "name"),
)

conversation_history = sa.Table(
    "conversation_history",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("conversation_id", sa.String(255), nullable=False),
    sa.Column("role", sa.String(50), nullable=False),
    sa.Column("content", sa.Text(), nullable=False),
    sa.Column("timestamp", UTCDateTime(), nullable=False),
    sa.Column("client_id", sa.String(255), nullable=False, server_default=""),
    # the step that wrote the turn: written with its checkpoint, once (see docs/agents.md)
    sa.Column("execution_id", Id()),
    sa.Column("node_id", sa.String(200)),
    sa.Column("attempt", sa.Integer()),
    sa.Column("seq", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("metadata", Json()),  # model and token usage of a reply
    # a second write of one step's turns is refused, whatever path it takes
    sa.UniqueConstraint("execution_id", "node_id", "seq"),
    # a conversation's latest turns (history window) and GET /api/conversations/{id}
    sa.Index("ix_conversation_history_conv", "tenant_id", "conversation_id", "id"),
)

# A tenant's connected accounts (seed 004): where messages come from and how to reply.
channels = sa.Table(
    "channels",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # instagram
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("account_id", sa.String(200), nullable=False),  # the Instagram account id
    sa.Column("credential", sa.String(200)),  # id or name of the reply credential
    sa.Column("agent_id", Id()),
    sa.Column("workflow_id", Id()),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # a webhook payload names the account: it finds its channel by it
    sa.UniqueConstraint("tenant_id", "kind", "account_id"),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
)

# One row per leader-elected role ("scheduler"): whoever holds an unexpired lease leads.
scheduler_leases = sa.Table(
    "scheduler_leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("acquired_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)

# How far each consumer of the event store has read each tenant's feed.
event_consumers = sa.Table(
    "event_consumers",
    metadata,
    sa.Column("consumer", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("last_sequence", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# A tenant's quota overrides (flowmill.quotas); tenants without a row use the defaults.
tenant_quotas = sa.Table(
    "tenant_quotas",
    metadata,
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("quotas", Json(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# --- read models (projections/) -------------------------------------------------------
# Disposable: the projector derives every row from event_store and
# `flowmill projections rebuild` makes them again by replay. The write path never reads
# them. Duration columns are milliseconds; `durations` is a log-bucket sketch
# ({bin: count}, see projections/sketch.py) from which the percentiles are read.


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def _duration_columns() -> list[sa.Column[Any]]:
    return [
        _counter("duration_count"),
        _counter("duration_sum_ms"),
        sa.Column("avg_duration_ms", sa.Float()),
        sa.Column("p95_duration_ms", sa.Float()),
        sa.Column("durations", Json(), nullable=False),
    ]


workflow_summary = sa.Table(
    "workflow_summary",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("workflow_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(300)),
    sa.Column("created_by", sa.String(200)),
    sa.Column("created_at", UTCDateTime()),
    sa.Column("deleted_at", UTCDateTime()),
    _counter("executions"),  # executions that started
    _counter("queued"),  # starts held back by a limit
    _counter("succeeded"),
    _counter("failed"),
    _counter("cancelled"),
    sa.Column("last_executed_at", UTCDateTime()),
    *_duration_columns(),
)

node_performance = sa.Table(
    "node_performance",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("workflow_id", sa.String(64), primary_key=True),
    sa.Column("node_id", sa.String(200), primary_key=True),
    _counter("runs"),  # attempts that finished (succeeded or failed)
    _counter("failures"),  # attempts that failed
    _counter("retries"),  # attempts scheduled after a failure
    sa.Column("last_run_at", UTCDateTime()),
    *_duration_columns(),
)

webhook_analytics = sa.Table(
    "webhook_analytics",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    # the trigger id, or "route:<path>" for a refused call that named no single webhook
    sa.Column("webhook_id", sa.String(300), primary_key=True),
    sa.Column("provider", sa.String(32)),
    _counter("total"),
    _counter("succeeded"),  # processed: executions started
    _counter("rejected"),  # failed verification
    _counter("duplicates"),  # dedupe key seen before
    _counter("no_match"),  # verified, but no active workflow took it
    _counter("failed"),  # dispatch failed for good
    sa.Column("last_called_at", UTCDateTime()),
)

# Executions per workflow per hour (hours since the Unix epoch, UTC): the analytics'
# time buckets; a day is 24 of them.
workflow_activity = sa.Table(
    "workflow_activity",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("workflow_id", sa.String(64), primary_key=True),
    sa.Column("hour", sa.BigInteger(), primary_key=True, autoincrement=False),
    _counter("started"),
    _counter("succeeded"),
    _counter("failed"),
    _counter("cancelled"),
    *_duration_columns(),
)

# Large payloads (flowmill.blobs): the index of every blob, whatever backend holds its
# bytes. Owned by an execution or a webhook event and deleted with it (retention).
blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("id", Id(), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("execution_id", Id()),
    sa.Column("webhook_event_id", Id()),
    # execution:node:attempt:path of the write; a step run twice writes twice, and
    # usage counts each step key once (flowmill.blobs.store)
    sa.Column("step_key", sa.String(600)),
    sa.Column("status", sa.String(16), nullable=False),  # writing, ready, doomed
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("media_type", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("sha256", sa.String(64)),
    sa.Column("backend", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # retention: the blobs of a batch of executions / webhook events
    sa.Index("ix_blobs_execution", "tenant_id", "execution_id"),
    sa.Index("ix_blobs_webhook_event", "tenant_id", "webhook_event_id"),
    # purges: doomed blobs, and writes a crash left unfinished
    sa.Index("ix_blobs_status", "tenant_id", "status", "created_at"),
)

# Bytes of blobs kept in the database (the PostgreSQL backend), a chunk per row.
blob_chunks = sa.Table(
    "blob_chunks",
    metadata,
    sa.Column("blob_id", Id(), sa.ForeignKey("blobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("data", sa.LargeBinary(), nullable=False),
)
