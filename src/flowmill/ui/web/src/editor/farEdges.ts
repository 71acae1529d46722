// The edges of a canvas zoomed out past reading, as three SVG paths (plain, error
// routes, edges with a problem) instead of one React Flow edge each.
//
// Why: dragging a node of the 498-node bench workflow with it all in view (zoom ≈ 0.1)
// cost about 4 ms of a frame's main thread in React Flow's edges alone (bench/
// ui_editor.py): each of its 516 edges is a component subscribed to the store, whose
// selector finds both ends again on every move, and an SVG of its own to paint. At
// that zoom an edge is a hairline without label or arrowhead that no one can click,
// so the canvas hands React Flow no edges there and draws these paths: one string per
// kind, rebuilt per frame from the nodes' boxes (a fraction of a millisecond).
import { handleOf } from "../graph/layout";
import type { DefEdge } from "../types";

/** What the paths need of a node: its box and its output handles, top to bottom. */
export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
  handles: string[];
}

export interface FarPaths {
  plain: string;
  error: string;
  invalid: string;
}

/** Where an edge leaves its source: the right side, at its handle's height (the
 * handles are spread evenly, as EditNode draws them). */
function sourcePoint(box: Box, handle: string): [number, number] {
  const n = box.handles.length;
  const i = n ? Math.max(0, box.handles.indexOf(handle)) : 0;
  return [box.x + box.width, box.y + (box.height * (i + 1)) / ((n || 1) + 1)];
}

/** One edge's path, kept with the boxes it was drawn from. */
export type Drawn = { from: Box; to: Box; handle: string; d: string };

/** The edges as SVG path data, by kind; an edge whose node is unknown is left out.
 * `invalid` holds the indexes of edges with a problem. With `memo` (kept by the caller
 * between frames, boxes unchanged when their node is), an edge whose two boxes are the
 * same objects as last time keeps its path: a drag redraws only the moved node's. */
export function farEdgePaths(
  edges: DefEdge[], boxes: Map<string, Box>, invalid: Set<number>, memo?: Map<number, Drawn>,
): FarPaths {
  const out: Record<keyof FarPaths, string[]> = { plain: [], error: [], invalid: [] };
  edges.forEach((e, i) => {
    const from = boxes.get(e.source);
    const to = boxes.get(e.target);
    if (!from || !to) return;
    const handle = handleOf(e);
    let drawn = memo?.get(i);
    if (!drawn || drawn.from !== from || drawn.to !== to || drawn.handle !== handle) {
      const [sx, sy] = sourcePoint(from, handle);
      const tx = to.x;
      const ty = to.y + to.height / 2;
      const mx = Math.round((sx + tx) / 2);
      const d = `M${Math.round(sx)} ${Math.round(sy)}C${mx} ${Math.round(sy)} ${mx} ${Math.round(ty)} ${Math.round(tx)} ${Math.round(ty)}`;
      drawn = { from, to, handle, d };
      memo?.set(i, drawn);
    }
    out[invalid.has(i) ? "invalid" : handle === "error" ? "error" : "plain"].push(drawn.d);
  });
  return { plain: out.plain.join(""), error: out.error.join(""), invalid: out.invalid.join("") };
}
