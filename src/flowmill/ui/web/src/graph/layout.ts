// A workflow definition → positioned nodes and labelled edges (dagre, left to right).
// Pure: the graph view draws what this returns.
import { Graph, layout } from "@dagrejs/dagre";
import type { Definition, DefEdge } from "../types";

export const NODE_W = 200;
export const NODE_H = 64;

export interface LaidNode {
  id: string;
  type: string;
  name: string;
  x: number;
  y: number;
  handles: string[]; // outgoing handles, in first-use order ("" is the default output)
  onError: string | null;
}

export interface LaidEdge {
  id: string;
  source: string;
  target: string;
  handle: string; // "" for the default output
  label: string | null;
  error: boolean;
}

export function handleOf(e: DefEdge): string {
  const h = e.sourceHandle ?? e.source_handle;
  if (h === null || h === undefined || h === "") return "";
  return String(h);
}

export function layoutDefinition(def: Definition): { nodes: LaidNode[]; edges: LaidEdge[] } {
  const defNodes = def.nodes ?? [];
  const defEdges = def.edges ?? [];
  const g = new Graph({ multigraph: true });
  g.setGraph({ rankdir: "LR", nodesep: 36, ranksep: 90, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  const known = new Set(defNodes.map((n) => n.id));
  for (const n of defNodes) g.setNode(n.id, { width: NODE_W, height: NODE_H });
  const edges: LaidEdge[] = [];
  const handles = new Map<string, string[]>();
  defEdges.forEach((e, i) => {
    if (!known.has(e.source) || !known.has(e.target)) return;
    const handle = handleOf(e);
    const list = handles.get(e.source) ?? [];
    if (!list.includes(handle)) list.push(handle);
    handles.set(e.source, list);
    const label = e.label ?? (handle || null);
    // labelled edges get room for their label between the ranks
    g.setEdge(e.source, e.target, label ? { width: label.length * 7 + 10, height: 18 } : {}, `e${i}`);
    edges.push({
      id: `e${i}-${e.source}-${e.target}-${handle}`,
      source: e.source,
      target: e.target,
      handle,
      label,
      error: handle === "error",
    });
  });
  layout(g);
  const nodes = defNodes.map((n) => {
    const p = g.node(n.id) as { x: number; y: number };
    const hs = handles.get(n.id) ?? [];
    // the default output first, the error route last, branches in between
    hs.sort((a, b) => rank(a) - rank(b));
    return {
      id: n.id,
      type: n.type,
      name: n.name || n.id,
      x: p.x - NODE_W / 2,
      y: p.y - NODE_H / 2,
      handles: hs,
      onError: n.on_error ?? null,
    };
  });
  return { nodes, edges };
}

function rank(h: string): number {
  if (h === "") return 0;
  if (h === "error") return 2;
  return 1;
}
