// The editor's model: a Flowmill definition edited by pure functions, an undo history,
// and the node catalogue's handles. Nothing here draws; the canvas and the forms call
// these and keep the definition as the only state (so the JSON view, a save and a
// paste all see the same document).
import type { Definition, DefEdge, DefNode } from "../types";
import { handleOf, layoutDefinition } from "../graph/layout";
import { FAST_LAYOUT_FROM, fastLayout } from "./fastLayout";

export interface XY {
  x: number;
  y: number;
}

export interface NodeTypeInfo {
  type: string;
  label: string;
  description: string;
  category: string;
  icon: string;
  is_trigger: boolean;
  plugin: boolean;
  handles: { input: boolean; outputs: string[]; outputs_from: string | null; error: boolean };
  code_fields: string[];
  config_schema: JsonSchema;
}

export interface JsonSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: unknown[];
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  [key: string]: unknown;
}

export interface Problem {
  path: string;
  node_id: string | null;
  edge_index: number | null;
  code: string;
  message: string;
}

export const EMPTY: Definition = { name: "New workflow", nodes: [], edges: [] };

/** The nodes of `def` (an empty list rather than undefined). */
export const nodesOf = (def: Definition): DefNode[] => def.nodes ?? [];
export const edgesOf = (def: Definition): DefEdge[] => def.edges ?? [];

export function positionOf(n: DefNode): XY | null {
  const p = (n as { position?: unknown }).position as Partial<XY> | null | undefined;
  if (p && typeof p.x === "number" && typeof p.y === "number") return { x: p.x, y: p.y };
  return null;
}

/** A fresh id for a node of `type`: `type-1`, `type-2`... */
export function newId(def: Definition, type: string): string {
  const taken = new Set(nodesOf(def).map((n) => n.id));
  const base = type.replace(/_/g, "-");
  for (let i = 1; ; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
}

/** The config a new node starts with: the schema's defaults for required fields. */
export function starterConfig(info: NodeTypeInfo | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!info) return out;
  if (info.type === "trigger") return { triggerType: "manual" };
  const props = info.config_schema.properties ?? {};
  for (const key of info.config_schema.required ?? []) {
    const s = props[key];
    if (s && s.default !== undefined) out[key] = s.default;
  }
  return out;
}

export function addNode(def: Definition, type: string, at: XY, info?: NodeTypeInfo): [Definition, string] {
  const id = newId(def, type);
  const node: DefNode & { position: XY } = {
    id, type, name: info?.label ?? type, config: starterConfig(info),
    position: { x: Math.round(at.x), y: Math.round(at.y) },
  };
  return [{ ...def, nodes: [...nodesOf(def), node] }, id];
}

export function connect(def: Definition, source: string, target: string, handle: string | null): Definition {
  const h = handle || null;
  if (source === target) return def;
  const exists = edgesOf(def).some((e) => e.source === source && e.target === target && (handleOf(e) || null) === h);
  if (exists) return def;
  const edge: DefEdge = h ? { source, target, sourceHandle: h } : { source, target };
  let nodes = nodesOf(def);
  // an error route needs the source to route its errors
  if (h === "error") nodes = nodes.map((n) => (n.id === source ? { ...n, on_error: "route" } : n));
  return { ...def, nodes, edges: [...edgesOf(def), edge] };
}

export function edgeKey(e: DefEdge, i: number): string {
  return `e${i}-${e.source}-${e.target}-${handleOf(e)}`;
}

/** Remove nodes (with their edges) and edges (by key). */
export function remove(def: Definition, nodeIds: string[], edgeKeys: string[]): Definition {
  if (!nodeIds.length && !edgeKeys.length) return def;
  const gone = new Set(nodeIds);
  const keys = new Set(edgeKeys);
  return {
    ...def,
    nodes: nodesOf(def).filter((n) => !gone.has(n.id)),
    edges: edgesOf(def).filter((e, i) => !keys.has(edgeKey(e, i)) && !gone.has(e.source) && !gone.has(e.target)),
  };
}

export function move(def: Definition, moved: Record<string, XY>): Definition {
  return {
    ...def,
    nodes: nodesOf(def).map((n) =>
      moved[n.id] ? { ...n, position: { x: Math.round(moved[n.id].x), y: Math.round(moved[n.id].y) } } : n,
    ),
  };
}

export function updateNode(def: Definition, id: string, change: Partial<DefNode>): Definition {
  return {
    ...def,
    nodes: nodesOf(def).map((n) => {
      if (n.id !== id) return n;
      const out = { ...n, ...change } as Record<string, unknown>;
      for (const [k, v] of Object.entries(change)) if (v === undefined || v === null) delete out[k];
      return out as unknown as DefNode;
    }),
  };
}

/** Every node placed left to right: by dagre, or past FAST_LAYOUT_FROM nodes by the
 * linear-time layered layout. */
export function layoutPositions(def: Definition): Record<string, XY> {
  if (nodesOf(def).length > FAST_LAYOUT_FROM) return fastLayout(def);
  const at: Record<string, XY> = {};
  for (const n of layoutDefinition(def).nodes) at[n.id] = { x: n.x, y: n.y };
  return at;
}

export function autoLayout(def: Definition): Definition {
  return move(def, layoutPositions(def));
}

/** Nodes without a position get one from the layout (a definition written by hand). */
export function withPositions(def: Definition): Definition {
  const missing = nodesOf(def).filter((n) => !positionOf(n));
  if (!missing.length) return def;
  const laid = layoutPositions(def);
  return move(def, Object.fromEntries(missing.map((n) => [n.id, laid[n.id]])));
}

/** The output handles a node shows: "" is the default output. */
export function outputHandles(node: DefNode, info: NodeTypeInfo | undefined, def: Definition): string[] {
  const out: string[] = [];
  if (info) {
    if (info.is_trigger || !info.handles.outputs.length) out.push("");
    if (info.handles.outputs_from) out.push(...fromConfig(node.config ?? {}, info.handles.outputs_from));
    out.push(...info.handles.outputs);
  } else out.push("");
  // handles that edges already use (an unknown type, a case being renamed) stay visible
  for (const e of edgesOf(def)) if (e.source === node.id && !out.includes(handleOf(e))) out.push(handleOf(e));
  if (info?.handles.error && node.on_error === "route" && !out.includes("error")) out.push("error");
  const unique = [...new Set(out)];
  return [...unique.filter((h) => h !== "error"), ...(unique.includes("error") ? ["error"] : [])];
}

/** `cases[].handle` against `{cases: [{handle: "a"}, {handle: "b"}]}` → ["a", "b"]. */
export function fromConfig(config: Record<string, unknown>, path: string): string[] {
  const m = /^(\w+)\[\]\.(\w+)$/.exec(path);
  if (!m) return [];
  const list = config[m[1]];
  if (!Array.isArray(list)) return [];
  return list.map((x) => (x && typeof x === "object" ? (x as Record<string, unknown>)[m[2]] : null)).filter((h): h is string => typeof h === "string" && h !== "");
}

/** Problems by node id and by edge index. */
export function problemsByPlace(problems: Problem[]): { nodes: Record<string, Problem[]>; edges: Record<number, Problem[]>; other: Problem[] } {
  const nodes: Record<string, Problem[]> = {};
  const edges: Record<number, Problem[]> = {};
  const other: Problem[] = [];
  for (const p of problems) {
    if (p.node_id) (nodes[p.node_id] ??= []).push(p);
    else if (p.edge_index !== null && p.edge_index !== undefined) (edges[p.edge_index] ??= []).push(p);
    else other.push(p);
  }
  return { nodes, edges, other };
}

// --- undo / redo -------------------------------------------------------------------

export interface History {
  past: Definition[];
  present: Definition;
  future: Definition[];
  key: string | null; // what the last change was, to merge keystrokes into one step
  at: number;
}

export const MERGE_MS = 1000;
const LIMIT = 200;

export function initial(def: Definition): History {
  return { past: [], present: def, future: [], key: null, at: 0 };
}

/** Record a change. Changes with the same `key` within MERGE_MS (typing in one field)
 * are one step. */
export function record(h: History, next: Definition, key: string | null = null, now = Date.now()): History {
  if (next === h.present) return h;
  if (key !== null && key === h.key && now - h.at < MERGE_MS) {
    return { ...h, present: next, future: [], at: now };
  }
  return { past: [...h.past, h.present].slice(-LIMIT), present: next, future: [], key, at: now };
}

export function undo(h: History): History {
  if (!h.past.length) return h;
  return { past: h.past.slice(0, -1), present: h.past[h.past.length - 1], future: [h.present, ...h.future], key: null, at: 0 };
}

export function redo(h: History): History {
  if (!h.future.length) return h;
  return { past: [...h.past, h.present], present: h.future[0], future: h.future.slice(1), key: null, at: 0 };
}

/** The nodes `ids` and the edges between them, as a definition (copy as Flowmill JSON). */
export function fragment(def: Definition, ids: string[]): Definition {
  const keep = new Set(ids);
  return {
    nodes: nodesOf(def).filter((n) => keep.has(n.id)),
    edges: edgesOf(def).filter((e) => keep.has(e.source) && keep.has(e.target)),
  };
}

/** Paste a fragment: its nodes get fresh ids (when taken) and move by `offset`. */
export function paste(def: Definition, frag: Definition, offset: XY = { x: 40, y: 40 }): [Definition, string[]] {
  let out = def;
  const rename: Record<string, string> = {};
  const added: string[] = [];
  for (const n of nodesOf(frag)) {
    const id = nodesOf(out).some((m) => m.id === n.id) ? newId(out, n.type) : n.id;
    rename[n.id] = id;
    const p = positionOf(n) ?? { x: 0, y: 0 };
    out = { ...out, nodes: [...nodesOf(out), { ...n, id, position: { x: p.x + offset.x, y: p.y + offset.y } } as DefNode] };
    added.push(id);
  }
  const edges = edgesOf(frag)
    .filter((e) => rename[e.source] && rename[e.target])
    .map((e) => ({ ...e, source: rename[e.source], target: rename[e.target] }));
  return [{ ...out, edges: [...edgesOf(out), ...edges] }, added];
}

/** `id` and every node reachable from it. */
export function downstreamOf(def: Definition, id: string): Set<string> {
  const seen = new Set([id]);
  const todo = [id];
  while (todo.length) {
    const cur = todo.pop()!;
    for (const e of edgesOf(def)) {
      if (e.source === cur && !seen.has(e.target)) {
        seen.add(e.target);
        todo.push(e.target);
      }
    }
  }
  return seen;
}

/** The pinned outputs a run from `id` uses: those of nodes before it (still there). */
export function pinsBefore(def: Definition, id: string, pins: Record<string, unknown>): Record<string, unknown> {
  const after = downstreamOf(def, id);
  const ids = new Set(nodesOf(def).map((n) => n.id));
  return Object.fromEntries(Object.entries(pins).filter(([n]) => ids.has(n) && !after.has(n)));
}

/** The `{{ }}` paths a node's templates can use, from what the last test run (or a pin)
 * gave its upstream nodes: `input…` (its predecessor's output), `nodes.<id>.output…`,
 * `trigger…`, `vars…` and `execution…`; a node without run data still gets the roots
 * (`input`, `trigger.data`, `nodes.<id>.output`), and `extra` (a loop body's `item`). */
export function templatePaths(def: Definition, nodeId: string, outputs: Record<string, unknown>, extra: string[] = []): string[] {
  const preds = new Map<string, string[]>();
  for (const e of edgesOf(def)) preds.set(e.target, [...(preds.get(e.target) ?? []), e.source]);
  const direct = preds.get(nodeId) ?? [];
  const before = new Set<string>();
  const todo = [...direct];
  while (todo.length) {
    const cur = todo.pop()!;
    if (before.has(cur) || cur === nodeId) continue;
    before.add(cur);
    todo.push(...(preds.get(cur) ?? []));
  }
  const out: string[] = [];
  // what the last run (or a pin) gave, else the bare roots: they exist without a run
  if (direct.length === 1 && direct[0] in outputs) out.push(...flatten("input", outputs[direct[0]]));
  else if (direct.length) out.push("input");
  const triggers = nodesOf(def).filter((n) => n.type === "trigger" && before.has(n.id));
  for (const t of triggers) out.push(...(t.id in outputs ? flatten("trigger", outputs[t.id]) : ["trigger.data"]));
  for (const id of before) out.push(...(id in outputs ? flatten(`nodes.${id}.output`, outputs[id]) : [`nodes.${id}.output`]));
  out.push(...extra);
  const vars = (def.settings as { variables?: Record<string, unknown> } | undefined)?.variables ?? {};
  out.push(...flatten("vars", vars).filter((p) => p !== "vars"));
  out.push("execution.id", "execution.workflow_id", "execution.started_at");
  return [...new Set(out)].slice(0, 80);
}

function flatten(prefix: string, value: unknown, depth = 0): string[] {
  const out = [prefix];
  if (depth >= 3 || value === null || typeof value !== "object") return out;
  if (Array.isArray(value)) return value.length ? [...out, ...flatten(`${prefix}[0]`, value[0], depth + 1)] : out;
  for (const [k, v] of Object.entries(value as Record<string, unknown>).slice(0, 20)) {
    const key = /^[A-Za-z_$][\w$]*$/.test(k) ? `${prefix}.${k}` : `${prefix}[${JSON.stringify(k)}]`;
    out.push(...flatten(key, v, depth + 1));
  }
  return out;
}
