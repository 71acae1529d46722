// An execution's events → the state shown on its page. Pure (tested alone): the page
// applies each event at once, so a step shows up the moment its event arrives, and
// reloads the full record (outputs, timings) shortly after.
import type { ExecutionDetail, NodeRun, StreamEvent } from "./types";

const NODE_STATUS: Record<string, string> = {
  "node.started": "running",
  "node.completed": "succeeded",
  "node.failed": "failed",
  "node.retry_scheduled": "queued",
  "node.waiting": "waiting",
  "node.skipped": "skipped",
  "node.cancelled": "cancelled",
};
const EXEC_STATUS: Record<string, string> = {
  "execution.queued": "queued",
  "execution.started": "running",
  "execution.waiting": "waiting",
  "execution.completed": "succeeded",
  "execution.failed": "failed",
  "execution.cancelled": "cancelled",
};

export function applyEvent(ex: ExecutionDetail, e: StreamEvent): ExecutionDetail {
  const es = EXEC_STATUS[e.type];
  if (es) {
    if (ex.status === es) return ex;
    // an older stored event must not undo a newer state the record already has
    if (["succeeded", "failed", "cancelled"].includes(ex.status)) return ex;
    return { ...ex, status: es as ExecutionDetail["status"] };
  }
  const ns = NODE_STATUS[e.type];
  if (!ns || !e.node_id) return ex;
  const attempt = e.attempt ?? 1;
  const nodes = [...ex.nodes];
  const i = nodes.findIndex((r) => r.node_id === e.node_id && r.attempt === attempt);
  if (i >= 0) {
    const r = nodes[i];
    if (r.status === ns) return ex;
    if (["succeeded", "failed", "skipped", "cancelled"].includes(r.status) && ns === "running") return ex;
    nodes[i] = {
      ...r,
      status: ns as NodeRun["status"],
      started_at: r.started_at ?? (ns === "running" ? e.timestamp : r.started_at),
      completed_at: ["succeeded", "failed", "skipped", "cancelled"].includes(ns) ? r.completed_at ?? e.timestamp : r.completed_at,
      error: (e.error as NodeRun["error"]) ?? r.error,
    };
  } else {
    nodes.push({
      node_id: e.node_id,
      status: ns as NodeRun["status"],
      attempt,
      input: undefined,
      output: undefined,
      error: (e.error as NodeRun["error"]) ?? null,
      started_at: ns === "running" ? e.timestamp : null,
      completed_at: ["succeeded", "failed", "skipped", "cancelled"].includes(ns) ? e.timestamp : null,
      duration_ms: typeof e.duration_ms === "number" ? e.duration_ms : null,
    });
  }
  return { ...ex, nodes };
}

/** The latest attempt of each node: what colours the graph. */
export function nodeStates(runs: NodeRun[]): Record<string, { status: string; attempts: number }> {
  const out: Record<string, { status: string; attempts: number }> = {};
  for (const r of runs) {
    const cur = out[r.node_id];
    if (!cur || r.attempt >= cur.attempts) out[r.node_id] = { status: r.status, attempts: r.attempt };
  }
  return out;
}
