// Analytics, computed in the browser from the executions API for now.
//
// Everything the pages show goes through `AnalyticsSource` (and `workflowStats`), so a
// read-side API (`/api/analytics/...`, planned) can replace these client-side
// computations by another implementation of the same interface, without touching the
// pages. The pure functions below are unit-tested (analytics.test.ts).
import { api, collect } from "./api";
import { pool } from "./hooks";
import type { ExecutionDetail, ExecutionSummary, WebhookEvent, Webhook } from "./types";

// --- pure computations -----------------------------------------------------------

export interface Bucket {
  start: number; // epoch ms
  counts: Record<string, number>;
  total: number;
}

/** Executions per time bucket and status, every bucket of [from, to) present. */
export function bucketize(
  items: Pick<ExecutionSummary, "created_at" | "status">[],
  from: number,
  to: number,
  sizeMs: number,
): Bucket[] {
  const first = Math.floor(from / sizeMs) * sizeMs;
  const buckets: Bucket[] = [];
  for (let t = first; t < to; t += sizeMs) buckets.push({ start: t, counts: {}, total: 0 });
  for (const e of items) {
    const t = Date.parse(e.created_at);
    if (t < first || t >= to) continue;
    const b = buckets[Math.floor((t - first) / sizeMs)];
    b.counts[e.status] = (b.counts[e.status] ?? 0) + 1;
    b.total += 1;
  }
  return buckets;
}

/** Nearest-rank percentile of `values` (which need not be sorted); null when empty. */
export function percentile(values: number[], p: number): number | null {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export interface Percentiles {
  count: number;
  p50: number | null;
  p90: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
}

export function durationPercentiles(values: number[]): Percentiles {
  return {
    count: values.length,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p95: percentile(values, 95),
    p99: percentile(values, 99),
    max: values.length ? Math.max(...values) : null,
  };
}

export interface NodeStat {
  workflowId: string;
  nodeId: string;
  runs: number; // attempts
  failures: number; // failed attempts
  retries: number; // attempts after the first
  avgMs: number | null;
  p95Ms: number | null;
}

/** Per (workflow, node): attempts, failed attempts, retries and durations. */
export function nodeStats(details: Pick<ExecutionDetail, "workflow_id" | "nodes">[]): NodeStat[] {
  const by = new Map<string, { wf: string; node: string; runs: number; failures: number; retries: number; ms: number[] }>();
  for (const d of details) {
    for (const r of d.nodes) {
      if (r.status === "skipped") continue;
      const key = `${d.workflow_id}\u0000${r.node_id}`;
      let s = by.get(key);
      if (!s) by.set(key, (s = { wf: d.workflow_id, node: r.node_id, runs: 0, failures: 0, retries: 0, ms: [] }));
      s.runs += 1;
      if (r.status === "failed") s.failures += 1;
      if (r.attempt > 1) s.retries += 1;
      if (r.duration_ms !== null) s.ms.push(r.duration_ms);
    }
  }
  return [...by.values()].map((s) => ({
    workflowId: s.wf,
    nodeId: s.node,
    runs: s.runs,
    failures: s.failures,
    retries: s.retries,
    avgMs: s.ms.length ? s.ms.reduce((a, b) => a + b, 0) / s.ms.length : null,
    p95Ms: percentile(s.ms, 95),
  }));
}

export interface WebhookTraffic {
  webhookId: string;
  name: string;
  provider: string;
  total: number;
  byStatus: Record<string, number>;
  unverified: number;
}

export function webhookTraffic(hook: Pick<Webhook, "id" | "name" | "provider">, events: Pick<WebhookEvent, "status" | "verified">[]): WebhookTraffic {
  const byStatus: Record<string, number> = {};
  let unverified = 0;
  for (const e of events) {
    byStatus[e.status] = (byStatus[e.status] ?? 0) + 1;
    if (!e.verified) unverified += 1;
  }
  return { webhookId: hook.id, name: hook.name, provider: hook.provider, total: events.length, byStatus, unverified };
}

// --- the source interface ----------------------------------------------------------

export interface AnalyticsQuery {
  from: number;
  to: number;
  bucketMs: number;
  workflowId?: string;
}

export interface AnalyticsReport {
  buckets: Bucket[];
  durations: Percentiles;
  slowestNodes: NodeStat[];
  failingNodes: NodeStat[];
  webhooks: WebhookTraffic[];
  /** What the figures rest on, so the page can say so. */
  basis: { executions: number; truncated: boolean; detailed: number; source: string };
}

export interface AnalyticsSource {
  report(q: AnalyticsQuery, onProgress?: (what: string) => void): Promise<AnalyticsReport>;
}

export const LIMITS = { executions: 5000, detailed: 100, webhookEvents: 1000 };

/** Computes the report from `GET /api/executions`, execution details and webhook events. */
export const clientSideAnalytics: AnalyticsSource = {
  async report(q, onProgress = () => {}) {
    onProgress("executions");
    const { items, truncated } = await collect(
      (cursor) =>
        api.executions({
          workflow_id: q.workflowId,
          started_from: new Date(q.from).toISOString(),
          started_to: new Date(q.to).toISOString(),
          limit: 200,
          cursor,
        }),
      LIMITS.executions,
    );
    const ended = items.filter((e) => e.duration_ms !== null && e.completed_at);
    onProgress("node runs");
    const sample = ended.slice(0, LIMITS.detailed);
    const details = await pool(sample, 4, (e) => api.execution(e.id));
    const nodes = nodeStats(details);
    onProgress("webhooks");
    const hooks = await collect((cursor) => api.webhooks({ workflow_id: q.workflowId, limit: 200, cursor }), 200);
    const webhooks = await pool(hooks.items, 3, async (h) => {
      const ev = await collect(
        (cursor) =>
          api.webhookEvents(h.id, {
            received_from: new Date(q.from).toISOString(),
            received_to: new Date(q.to).toISOString(),
            limit: 200,
            cursor,
          }),
        LIMITS.webhookEvents,
      );
      return webhookTraffic(h, ev.items);
    });
    return {
      buckets: bucketize(items, q.from, q.to, q.bucketMs),
      durations: durationPercentiles(ended.map((e) => e.duration_ms as number)),
      slowestNodes: [...nodes].filter((n) => n.avgMs !== null).sort((a, b) => (b.p95Ms ?? 0) - (a.p95Ms ?? 0)).slice(0, 10),
      failingNodes: [...nodes].filter((n) => n.failures > 0).sort((a, b) => b.failures - a.failures || b.runs - a.runs).slice(0, 10),
      webhooks: webhooks.filter((w) => w.total > 0).sort((a, b) => b.total - a.total),
      basis: { executions: items.length, truncated, detailed: details.length, source: "client" },
    };
  },
};

// --- per-workflow figures for the workflows list --------------------------------------

export interface WorkflowStats {
  last: ExecutionSummary | null;
  ended: number;
  succeeded: number;
}

export const STATS_WINDOW = 20;

export function statsOf(items: ExecutionSummary[]): WorkflowStats {
  const ended = items.filter((e) => e.status === "succeeded" || e.status === "failed" || e.status === "cancelled");
  return {
    last: items[0] ?? null,
    ended: ended.length,
    succeeded: ended.filter((e) => e.status === "succeeded").length,
  };
}

const inflight: Promise<unknown>[] = [];

/** Last run and success rate of the last `STATS_WINDOW` executions (at most 4 loads at once). */
export async function workflowStats(workflowId: string): Promise<WorkflowStats> {
  while (inflight.length >= 4) await Promise.race(inflight).catch(() => undefined);
  const p = api.workflowExecutions(workflowId, { limit: STATS_WINDOW });
  inflight.push(p);
  try {
    return statsOf((await p).items);
  } finally {
    inflight.splice(inflight.indexOf(p), 1);
  }
}
