// The editor's pure parts: definition edits, undo history, handles, problems, paste.
import { describe, expect, it } from "vitest";
import {
  addNode, autoLayout, connect, edgeKey, fragment, fromConfig, initial, MERGE_MS, nodesOf, outputHandles,
  paste, positionOf, problemsByPlace, record, redo, remove, templatePaths, undo, withPositions, type NodeTypeInfo,
} from "./model";
import { fastLayout } from "./fastLayout";
import { fieldProblems } from "./NodePanel";
import { parseLoose, resolve, showLoose } from "./SchemaForm";
import { complete, matching, templateAt } from "./complete";
import { tokenize } from "./highlight";
import { bodyOf, scopeOf, withScope, workflowRefOf } from "./scope";
import type { Definition } from "../types";

const info = (over: Partial<NodeTypeInfo> = {}): NodeTypeInfo => ({
  type: "function", label: "Function", description: "", category: "code", icon: "code",
  is_trigger: false, plugin: false, handles: { input: true, outputs: [], outputs_from: null, error: true },
  code_fields: ["code"],
  config_schema: { type: "object", properties: { code: { type: "string" }, n: { type: "integer", default: 3 } }, required: ["code", "n"] },
  ...over,
});

describe("editor model", () => {
  it("adds nodes with fresh ids, positions and required defaults", () => {
    const [a, id1] = addNode({ name: "w" }, "function", { x: 10.4, y: 20 }, info());
    const [b, id2] = addNode(a, "function", { x: 0, y: 0 }, info());
    expect([id1, id2]).toEqual(["function-1", "function-2"]);
    expect(nodesOf(b)[0]).toMatchObject({ id: "function-1", name: "Function", config: { n: 3 }, position: { x: 10, y: 20 } });
  });

  it("connects once, routes errors, and removes nodes with their edges", () => {
    let d: Definition = { nodes: [{ id: "a", type: "x" }, { id: "b", type: "x" }, { id: "c", type: "x" }], edges: [] };
    d = connect(d, "a", "b", null);
    d = connect(d, "a", "b", null);
    d = connect(d, "b", "c", "error");
    expect(d.edges).toEqual([{ source: "a", target: "b" }, { source: "b", target: "c", sourceHandle: "error" }]);
    expect(nodesOf(d)[1].on_error).toBe("route");
    const gone = remove(d, ["b"], []);
    expect(gone.edges).toEqual([]);
    const oneEdge = remove(d, [], [edgeKey(d.edges![0], 0)]);
    expect(oneEdge.edges).toHaveLength(1);
  });

  it("undoes and redoes, merging a burst of typing in one field into one step", () => {
    const d0: Definition = { name: "a" };
    let h = initial(d0);
    h = record(h, { name: "ab" }, "name", 1000);
    h = record(h, { name: "abc" }, "name", 1000 + MERGE_MS / 2);
    h = record(h, { name: "abc", nodes: [] }, null, 5000);
    expect(h.past).toHaveLength(2);
    h = undo(h);
    expect(h.present).toEqual({ name: "abc" });
    h = undo(h);
    expect(h.present).toEqual(d0);
    h = redo(redo(h));
    expect(h.present).toEqual({ name: "abc", nodes: [] });
    expect(undo(initial(d0)).present).toBe(d0);
  });

  it("names a node's outputs from its type, config and edges", () => {
    const sw = info({ type: "switch", handles: { input: true, outputs: ["default"], outputs_from: "cases[].handle", error: true } });
    const node = { id: "s", type: "switch", config: { cases: [{ handle: "big" }, { handle: "small" }] }, on_error: "route" as const };
    expect(outputHandles(node, sw, { nodes: [node] })).toEqual(["big", "small", "default", "error"]);
    expect(outputHandles({ id: "f", type: "function" }, info(), { nodes: [] })).toEqual([""]);
    expect(fromConfig({ cases: "no" }, "cases[].handle")).toEqual([]);
  });

  it("places nodes without a position and lays out all on request", () => {
    const d: Definition = { nodes: [{ id: "a", type: "t" }, { id: "b", type: "t", position: { x: 5, y: 6 } } as never], edges: [{ source: "a", target: "b" }] };
    const placed = withPositions(d);
    expect(positionOf(nodesOf(placed)[0])).not.toBeNull();
    expect(positionOf(nodesOf(placed)[1])).toEqual({ x: 5, y: 6 });
    const laid = autoLayout(d);
    expect(positionOf(nodesOf(laid)[1])!.x).toBeGreaterThan(positionOf(nodesOf(laid)[0])!.x);
  });

  it("copies a selection as a definition and pastes it with fresh ids", () => {
    const d: Definition = { nodes: [{ id: "a", type: "t" }, { id: "b", type: "t" }, { id: "c", type: "t" }], edges: [{ source: "a", target: "b" }, { source: "b", target: "c" }] };
    const frag = fragment(d, ["a", "b"]);
    expect(frag.edges).toEqual([{ source: "a", target: "b" }]);
    const [out, added] = paste(d, frag);
    expect(added).toEqual(["t-1", "t-2"]);
    expect(out.edges!.at(-1)).toEqual({ source: "t-1", target: "t-2" });
  });

  it("sorts problems onto nodes, edges and config fields", () => {
    const p = (path: string, node_id: string | null, edge_index: number | null) => ({ path, node_id, edge_index, code: "x", message: path });
    const places = problemsByPlace([p("nodes[a].config.code", "a", null), p("edges[1].target", null, 1), p("nodes", null, null)]);
    expect(Object.keys(places.nodes)).toEqual(["a"]);
    expect(Object.keys(places.edges)).toEqual(["1"]);
    expect(places.other).toHaveLength(1);
    expect(fieldProblems([p("nodes[a].config.cases.0.handle", "a", null), p("nodes[a]", "a", null)]).fields.cases).toEqual(["nodes[a].config.cases.0.handle"]);
  });
});

describe("schema form", () => {
  it("resolves refs and nullable unions", () => {
    const root = { $defs: { C: { type: "object", properties: { a: { type: "string" } } } } };
    expect(resolve({ $ref: "#/$defs/C" }, root).schema.properties).toBeDefined();
    const r = resolve({ anyOf: [{ type: "string" }, { type: "null" }], title: "T" }, root);
    expect([r.schema.type, r.nullable, r.schema.title]).toEqual(["string", true, "T"]);
  });

  it("keeps text that is not JSON as a template string", () => {
    expect(parseLoose('{"a": 1}')).toEqual({ a: 1 });
    expect(parseLoose("{{ input.x }}")).toBe("{{ input.x }}");
    expect(parseLoose("")).toBeUndefined();
    expect(showLoose("42")).toBe('"42"');
    expect(showLoose("hi {{x}}")).toBe("hi {{x}}");
  });
});

describe("fast layout", () => {
  it("puts each node a column right of its predecessors and keeps branches in bands", () => {
    const d: Definition = {
      nodes: ["t", "s", "a1", "a2", "b1", "b2", "j"].map((id) => ({ id, type: "x" })),
      edges: [
        { source: "t", target: "s" }, { source: "s", target: "a1" }, { source: "a1", target: "a2" },
        { source: "s", target: "b1" }, { source: "b1", target: "b2" }, { source: "a2", target: "j" },
        { source: "b2", target: "j" },
      ],
    };
    const at = fastLayout(d);
    expect(at.t.x).toBeLessThan(at.s.x);
    expect(at.a2.x).toBeLessThan(at.j.x);
    expect(at.a1.x).toBe(at.b1.x);
    expect(Math.sign(at.a1.y - at.b1.y)).toBe(Math.sign(at.a2.y - at.b2.y)); // no crossing
    expect(new Set(Object.values(at).map((p) => `${p.x},${p.y}`)).size).toBe(7);
  });

  it("places nodes on a cycle too (a draft may have one)", () => {
    const d: Definition = { nodes: [{ id: "a", type: "x" }, { id: "b", type: "x" }], edges: [{ source: "a", target: "b" }, { source: "b", target: "a" }] };
    expect(Object.keys(fastLayout(d)).sort()).toEqual(["a", "b"]);
  });
});

describe("template paths", () => {
  it("offers the predecessor's output as input, upstream outputs, the trigger and vars", () => {
    const d: Definition = {
      nodes: [{ id: "t", type: "trigger" }, { id: "f", type: "function" }, { id: "r", type: "response" }],
      edges: [{ source: "t", target: "f" }, { source: "f", target: "r" }],
      settings: { variables: { region: "eu" } },
    };
    const paths = templatePaths(d, "r", { t: { data: { message: "hi" } }, f: { result: "x", items: [{ id: 1 }] } });
    expect(paths).toEqual(expect.arrayContaining([
      "input.result", "input.items[0].id", "trigger.data.message", "nodes.f.output.result", "vars.region", "execution.id",
    ]));
    expect(paths).not.toContain("nodes.r.output");
    expect(templatePaths(d, "t", {})).toEqual(["vars.region", "execution.id", "execution.workflow_id", "execution.started_at"]);
  });
});

describe("template completion", () => {
  it("finds the template at the caret, and only an open one", () => {
    expect(templateAt("Hi {{ inp", 9)).toEqual({ start: 6, query: "inp" });
    expect(templateAt("Hi {{inp", 8)).toEqual({ start: 5, query: "inp" });
    expect(templateAt("Hi {{ a }} b", 12)).toBeNull();
    expect(templateAt("no template", 5)).toBeNull();
    expect(templateAt("{{ a | upper", 12)).toBeNull();
  });

  it("offers the paths starting with what is typed first, then those containing it", () => {
    expect(matching(["input.a", "nodes.f.output.input", "trigger.data"], "inp")).toEqual(["input.a", "nodes.f.output.input"]);
    expect(matching(["a", "b"], "")).toEqual(["a", "b"]);
  });

  it("completes a path and closes the template once", () => {
    expect(complete("Hi {{ inp", 9, { start: 6, query: "inp" }, "input.result")).toEqual({ text: "Hi {{ input.result }}", caret: 21 });
    expect(complete("Hi {{inp}} !", 8, { start: 5, query: "inp" }, "input.x")).toEqual({ text: "Hi {{ input.x }} !", caret: 16 });
    expect(complete("{{ in }} and", 5, { start: 3, query: "in" }, "input")).toEqual({ text: "{{ input }} and", caret: 11 });
  });

  it("offers the roots of the upstream nodes before any run", () => {
    const d: Definition = {
      nodes: [{ id: "t", type: "trigger" }, { id: "f", type: "function" }, { id: "r", type: "response" }],
      edges: [{ source: "t", target: "f" }, { source: "f", target: "r" }],
    };
    expect(templatePaths(d, "r", {}, ["item"])).toEqual(expect.arrayContaining(["input", "trigger.data", "nodes.f.output", "nodes.t.output", "item"]));
  });
});

describe("JavaScript highlighting", () => {
  it("covers the code exactly and names keywords, strings, comments and numbers", () => {
    const code = 'const x = "a{b}"; // note\nreturn { n: 42, ok: true, s: `t ${x}` };';
    const tokens = tokenize(code);
    expect(tokens.map((t) => t.text).join("")).toBe(code);
    const kinds = Object.fromEntries(tokens.filter((t) => t.kind !== "plain").map((t) => [t.text, t.kind]));
    expect(kinds).toMatchObject({ const: "keyword", '"a{b}"': "string", "// note": "comment", "42": "number", true: "literal", "`t ${x}`": "string" });
  });
});

describe("loop bodies", () => {
  const root: Definition = {
    name: "w",
    nodes: [
      { id: "t", type: "trigger" },
      { id: "each", type: "loop", config: { items: "{{ input }}", body: { nodes: [{ id: "bt", type: "trigger" }, { id: "in", type: "loop", config: { count: 2, body: { nodes: [{ id: "x", type: "noop" }], edges: [] } } }], edges: [] } } },
      { id: "sub", type: "sub_workflow", config: { workflow_id: "wf-2" } },
    ],
    edges: [],
  };

  it("reads and writes a nested body, leaving the rest as it was", () => {
    expect(nodesOf(scopeOf(root, ["each", "in"])!).map((n) => n.id)).toEqual(["x"]);
    expect(scopeOf(root, ["t"])).toBeNull();
    const changed = withScope(root, ["each", "in"], { nodes: [{ id: "y", type: "noop" }], edges: [] });
    expect(nodesOf(scopeOf(changed, ["each", "in"])!).map((n) => n.id)).toEqual(["y"]);
    expect(nodesOf(scopeOf(changed, ["each"])!).map((n) => n.id)).toEqual(["bt", "in"]);
    expect(nodesOf(changed)[2]).toBe(nodesOf(root)[2]);
    expect(withScope(root, [], changed)).toBe(changed);
  });

  it("names the workflow a node refers to, not a template", () => {
    expect(workflowRefOf(nodesOf(root)[2])).toBe("wf-2");
    expect(workflowRefOf({ id: "s", type: "sub_workflow", config: { workflow_id: "{{ input.wf }}" } })).toBeNull();
    expect(bodyOf(nodesOf(root)[1])).not.toBeNull();
  });
});
