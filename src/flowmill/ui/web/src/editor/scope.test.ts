import { describe, expect, it } from "vitest";
import type { Definition, ExecutionSummary } from "../types";
import type { Problem } from "./model";
import { chosenIteration, iterationsOf, nodeOfProblem, problemsIn, scopeOfProblem } from "./scope";

const inner: Definition = { nodes: [{ id: "deep", type: "noop", config: {} }], edges: [] };
const body: Definition = {
  nodes: [
    { id: "each", type: "trigger", config: { triggerType: "manual" } },
    { id: "price", type: "transform", config: { mapping: "{{ nodes.gone.output }}" } },
    { id: "again", type: "loop", config: { count: 2, body: inner } },
  ],
  edges: [{ source: "each", target: "price" }],
};
const root: Definition = {
  nodes: [
    { id: "trigger", type: "trigger", config: { triggerType: "manual" } },
    { id: "orders", type: "loop", config: { items: "{{ trigger.data.orders }}", body } },
  ],
  edges: [{ source: "trigger", target: "orders" }],
};
const problem = (path: string, node_id: string | null = null): Problem => ({ path, node_id, edge_index: null, code: "x", message: path });

const top = problem("nodes[trigger].config.triggerType", "trigger");
const price = problem("nodes[orders].config.body.nodes[price].config.mapping", "orders");
const edge = problem("nodes[orders].config.body.edges[0]", "orders");
const byIndex = problem("nodes[orders].config.body.nodes[1]", "orders");
const deep = problem("nodes[orders].config.body.nodes[again].config.body.nodes[deep]", "orders");
const all = [top, price, edge, byIndex, deep];

describe("problemsIn", () => {
  it("at the top, is every problem as validation gave it", () => {
    expect(problemsIn(all, root, [])).toBe(all);
  });

  it("in a loop's body, is the body's problems, relative to it", () => {
    expect(problemsIn(all, root, ["orders"])).toEqual([
      { ...price, path: "nodes[price].config.mapping", node_id: "price" },
      { ...edge, path: "edges[0]", node_id: null, edge_index: 0 },
      { ...byIndex, path: "nodes[1]", node_id: "price" }, // by index, as the server reads it
      { ...deep, path: "nodes[again].config.body.nodes[deep]", node_id: "again" },
    ]);
  });

  it("follows bodies inside bodies, and has none for a loop that is gone", () => {
    expect(problemsIn(all, root, ["orders", "again"])).toEqual([{ ...deep, path: "nodes[deep]", node_id: "deep" }]);
    expect(problemsIn(all, root, ["trigger"])).toEqual([]);
  });
});

describe("scopeOfProblem, nodeOfProblem", () => {
  it("say which body a problem is in and which node of it", () => {
    expect(scopeOfProblem(top)).toEqual([]);
    expect(nodeOfProblem(top, root)).toBe("trigger");
    expect(scopeOfProblem(price)).toEqual(["orders"]);
    expect(nodeOfProblem(price, root)).toBe("price");
    expect(scopeOfProblem(deep)).toEqual(["orders", "again"]);
    expect(nodeOfProblem(deep, root)).toBe("deep");
    expect(nodeOfProblem(edge, root)).toBeNull();
  });
});

describe("iterationsOf, chosenIteration", () => {
  const child = (id: string, parent_node_id: string | null, iteration: number | null, status = "succeeded") =>
    ({ id, parent_node_id, iteration, status, workflow_id: "w", version: 1, trigger_type: "loop", created_at: "", started_at: null, completed_at: null, duration_ms: null, retry_of: null, parent_execution_id: "p" }) as ExecutionSummary;
  const kids = [child("c2", "orders", 2, "running"), child("s", "call", null), child("c0", "orders", 0), child("c1", "orders", 1, "failed"), child("o", "other", 0)];

  it("lists one loop's iterations in item order (children come newest first)", () => {
    expect(iterationsOf(kids, "orders")).toEqual([
      { id: "c0", index: 0, status: "succeeded" },
      { id: "c1", index: 1, status: "failed" },
      { id: "c2", index: 2, status: "running" },
    ]);
    expect(iterationsOf(kids, "call")).toEqual([]); // a sub-workflow call is no iteration
  });

  it("shows the chosen iteration while it is there, else the first", () => {
    const its = iterationsOf(kids, "orders");
    expect(chosenIteration(its, 1)?.id).toBe("c1");
    expect(chosenIteration(its, undefined)?.id).toBe("c0");
    expect(chosenIteration(its, 7)?.id).toBe("c0");
    expect(chosenIteration([], 0)).toBeNull();
  });
});
