// Shapes of the public API's answers (see /openapi.json). Only what the app reads.

export type ExecStatus =
  | "pending" | "queued" | "running" | "waiting" | "succeeded" | "failed" | "cancelled";
export type NodeStatus = ExecStatus | "skipped";
export const EXEC_STATUSES: ExecStatus[] = [
  "pending", "queued", "running", "waiting", "succeeded", "failed", "cancelled",
];
export const TERMINAL = new Set<string>(["succeeded", "failed", "cancelled"]);

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface Tenant {
  id: string;
  name: string;
  created_at: string;
  auth: "api_key" | "jwt";
}

export interface WorkflowSummary {
  id: string;
  name: string;
  description: string;
  status: "draft" | "active" | "inactive" | "archived";
  tags: string[];
  latest_version: number;
  active_version: number | null;
  created_at: string;
  updated_at: string;
}

export interface DefNode {
  id: string;
  type: string;
  name?: string | null;
  config?: Record<string, unknown> | null;
  on_error?: "fail" | "continue" | "route" | null;
  retry?: Record<string, unknown> | null;
}

export interface DefEdge {
  source: string;
  target: string;
  sourceHandle?: string | boolean | null;
  source_handle?: string | boolean | null;
  label?: string | null;
}

export interface Definition {
  name?: string;
  nodes?: DefNode[];
  edges?: DefEdge[];
  settings?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface Workflow extends WorkflowSummary {
  definition: Definition;
}

export interface VersionSummary {
  workflow_id: string;
  version: number;
  definition_hash: string;
  note: string;
  created_at: string;
  published_at: string | null;
  active: boolean;
  latest: boolean;
}

export interface Version extends VersionSummary {
  definition: Definition;
}

export interface FieldChange {
  path: string;
  before: unknown;
  after: unknown;
}

export interface VersionDiff {
  workflow_id: string;
  from_version: number;
  to_version: number;
  identical: boolean;
  fields: FieldChange[];
  nodes_added: string[];
  nodes_removed: string[];
  nodes_changed: { id: string; changes: FieldChange[] }[];
  edges_added: { source: string; target: string; sourceHandle: string | null }[];
  edges_removed: { source: string; target: string; sourceHandle: string | null }[];
}

export interface ExecutionSummary {
  id: string;
  workflow_id: string;
  version: number;
  status: ExecStatus;
  trigger_type: string;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  duration_ms: number | null;
  retry_of: string | null;
  parent_execution_id: string | null;
  /** The parent's loop or sub_workflow node that started it (a child execution). */
  parent_node_id?: string | null;
  /** The loop item's index (a loop's child). */
  iteration?: number | null;
  [key: string]: unknown;
}

export interface NodeRun {
  node_id: string;
  status: NodeStatus;
  attempt: number;
  input: unknown;
  output: unknown;
  error: Record<string, unknown> | null;
  started_at: string | null;
  completed_at: string | null;
  duration_ms: number | null;
}

export interface ExecutionDetail extends ExecutionSummary {
  input: unknown;
  output: unknown;
  error: Record<string, unknown> | null;
  nodes: NodeRun[];
}

export interface LogLine {
  id: string;
  node_id: string | null;
  attempt: number | null;
  level: string;
  message: string;
  metadata: Record<string, unknown>;
  timestamp: string;
}

export interface Trigger {
  id: string;
  workflow_id: string;
  node_id: string;
  kind: "webhook" | "schedule" | "event";
  name: string;
  origin: "api" | "definition";
  enabled: boolean;
  provider: string | null;
  config: Record<string, unknown>;
  last_run_at: string | null;
  next_run_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface Webhook {
  id: string;
  name: string;
  workflow_id: string;
  node_id: string;
  provider: string;
  origin: "api" | "definition";
  status: "active" | "inactive";
  urls: string[];
  secret_hint: string | null;
  created_at: string;
}

export interface WebhookEvent {
  id: string;
  webhook_id: string | null;
  status: "received" | "processed" | "duplicate" | "rejected" | "no_match" | "failed";
  verified: boolean;
  verification_error: string | null;
  event_type: string | null;
  dedupe_key: string | null;
  method: string;
  path: string;
  execution_ids: string[];
  error: string | null;
  received_at: string;
  processed_at: string | null;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface Queues {
  backend: "bullmq" | "in_process";
  queues: { name: string; counts: Record<string, number> }[];
  queues_error: string | null;
  workers: {
    id: string;
    kind: string;
    hostname: string;
    pid: number;
    started_at: string;
    heartbeat_at: string;
    alive: boolean;
  }[];
  steps: Record<string, number>;
}

export interface StreamEvent {
  sequence: number;
  type: string;
  timestamp: string;
  execution_id?: string;
  node_id?: string;
  attempt?: number;
  [key: string]: unknown;
}
