// Unit tests of the app's pure parts: SSE parsing, live event application, analytics
// computations, graph layout. `npm test` runs them (and ./dev test, when npm is there).
import { describe, expect, it } from "vitest";
import { bucketize, durationPercentiles, nodeStats, percentile, statsOf, webhookTraffic } from "./analytics";
import { fromDocument } from "./capabilities";
import { layoutDefinition } from "./graph/layout";
import { applyEvent, nodeStates } from "./live";
import { SseParser } from "./sse";
import type { ExecutionDetail, ExecutionSummary } from "./types";

describe("SseParser", () => {
  it("splits messages across chunks, skips comments, keeps ids", () => {
    const p = new SseParser();
    expect(p.push(": following\n\nid: 3\nevent: node.started\ndata: {\"a\"")).toEqual([]);
    expect(p.push(":1}\n\nid: 4\r\nevent: x\r\ndata: one\r\ndata: two\r\n\r\n")).toEqual([
      { id: "3", event: "node.started", data: '{"a":1}' },
      { id: "4", event: "x", data: "one\ntwo" },
    ]);
  });
});

const detail = (over: Partial<ExecutionDetail> = {}): ExecutionDetail => ({
  id: "e", workflow_id: "w", version: 1, status: "running", trigger_type: "manual",
  created_at: "2026-01-01T00:00:00Z", started_at: "2026-01-01T00:00:00Z", completed_at: null,
  duration_ms: null, retry_of: null, parent_execution_id: null, input: null, output: null,
  error: null, nodes: [], ...over,
});

describe("applyEvent", () => {
  it("moves a node from running to succeeded and the execution to its end", () => {
    let ex = detail();
    ex = applyEvent(ex, { sequence: 1, type: "node.started", timestamp: "2026-01-01T00:00:01Z", node_id: "a", attempt: 1 });
    expect(nodeStates(ex.nodes).a).toEqual({ status: "running", attempts: 1 });
    ex = applyEvent(ex, { sequence: 2, type: "node.completed", timestamp: "2026-01-01T00:00:02Z", node_id: "a", attempt: 1 });
    expect(ex.nodes[0].status).toBe("succeeded");
    expect(ex.nodes[0].completed_at).toBe("2026-01-01T00:00:02Z");
    ex = applyEvent(ex, { sequence: 3, type: "execution.completed", timestamp: "2026-01-01T00:00:02Z" });
    expect(ex.status).toBe("succeeded");
  });

  it("never moves an ended node or execution back", () => {
    const ex = detail({ status: "failed", nodes: [{ node_id: "a", attempt: 1, status: "failed", input: null, output: null, error: null, started_at: null, completed_at: null, duration_ms: 1 }] });
    expect(applyEvent(ex, { sequence: 1, type: "node.started", timestamp: "t", node_id: "a", attempt: 1 })).toBe(ex);
    expect(applyEvent(ex, { sequence: 1, type: "execution.started", timestamp: "t" })).toBe(ex);
  });

  it("shows a retry as a new attempt", () => {
    let ex = applyEvent(detail(), { sequence: 1, type: "node.failed", timestamp: "t", node_id: "a", attempt: 1, error: { message: "x" } });
    ex = applyEvent(ex, { sequence: 2, type: "node.retry_scheduled", timestamp: "t", node_id: "a", attempt: 2 });
    expect(nodeStates(ex.nodes).a).toEqual({ status: "queued", attempts: 2 });
  });
});

describe("analytics", () => {
  it.each([
    [[], 50, null],
    [[5], 99, 5],
    [[1, 2, 3, 4], 50, 2],
    [[4, 3, 2, 1], 95, 4],
    [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9],
  ])("percentile(%j, %d) = %j", (values, p, want) => {
    expect(percentile(values as number[], p)).toBe(want);
  });

  it("buckets executions by time and status, with empty buckets", () => {
    const at = (iso: string, status: string) => ({ created_at: iso, status }) as ExecutionSummary;
    const from = Date.parse("2026-01-01T00:00:00Z");
    const b = bucketize([at("2026-01-01T00:10:00Z", "failed"), at("2026-01-01T02:59:00Z", "succeeded"), at("2026-01-01T02:00:00Z", "succeeded"), at("2025-12-31T23:00:00Z", "failed")], from, from + 3 * 3600e3, 3600e3);
    expect(b.map((x) => x.total)).toEqual([1, 0, 2]);
    expect(b[2].counts).toEqual({ succeeded: 2 });
  });

  it("counts node attempts, failures and retries per workflow and node", () => {
    const run = (node_id: string, attempt: number, status: string, ms: number) => ({ node_id, attempt, status, duration_ms: ms }) as ExecutionDetail["nodes"][number];
    const stats = nodeStats([
      { workflow_id: "w", nodes: [run("a", 1, "failed", 10), run("a", 2, "succeeded", 30), run("b", 1, "skipped", 0)] },
      { workflow_id: "w", nodes: [run("a", 1, "succeeded", 20)] },
    ]);
    expect(stats).toEqual([{ workflowId: "w", nodeId: "a", runs: 3, failures: 1, retries: 1, avgMs: 20, p95Ms: 30 }]);
    expect(durationPercentiles([1, 2, 3]).p50).toBe(2);
  });

  it("tallies webhook events by outcome and the last run's success rate", () => {
    const t = webhookTraffic({ id: "h", name: "n", provider: "github" }, [
      { status: "processed", verified: true }, { status: "rejected", verified: false }, { status: "processed", verified: true },
    ]);
    expect(t).toMatchObject({ total: 3, byStatus: { processed: 2, rejected: 1 }, unverified: 1 });
    const s = statsOf([{ status: "running" }, { status: "failed" }, { status: "succeeded" }] as ExecutionSummary[]);
    expect(s).toMatchObject({ ended: 2, succeeded: 1 });
    expect(s.last?.status).toBe("running");
  });
});

describe("layout and capabilities", () => {
  it("gives branch handles labels, the error route last, every node a place", () => {
    const { nodes, edges } = layoutDefinition({
      nodes: [{ id: "t", type: "trigger" }, { id: "c", type: "conditional" }, { id: "x", type: "noop" }, { id: "y", type: "noop" }, { id: "e", type: "error_handler" }],
      edges: [{ source: "t", target: "c" }, { source: "c", target: "e", sourceHandle: "error" }, { source: "c", target: "x", sourceHandle: "true" }, { source: "c", target: "y", sourceHandle: false }, { source: "c", target: "zzz" }],
    });
    expect(nodes.find((n) => n.id === "c")?.handles).toEqual(["true", "false", "error"]);
    expect(edges.map((e) => [e.label, e.error])).toEqual([[null, false], ["error", true], ["true", false], ["false", false]]);
    expect(new Set(nodes.map((n) => `${n.x},${n.y}`)).size).toBe(5);
  });

  it("reads endpoints and parameters from the OpenAPI document", () => {
    const caps = fromDocument({ paths: { "/api/executions": { get: { parameters: [{ name: "status", in: "query" }] } }, "/api/credentials/{credential_id}": { delete: {} } } });
    expect(caps.hasParam("/api/executions", "status")).toBe(true);
    expect(caps.hasParam("/api/executions", "customer_id")).toBe(false);
    expect(caps.hasPath("/api/credentials")).toBe(false);
    expect(caps.hasItem("/api/credentials", "delete")).toBe(true);
  });
});
