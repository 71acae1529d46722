// Loop bodies: a loop node's inline `config.body` ({nodes, edges}) is a workflow of its
// own, edited on the same canvas. A scope is the path of loop ids from the top
// definition down to the body being edited; the definition stays one document (one
// undo history, one save), and a body's edits are written back into its loop; the
// body's validation problems are drawn on it (problemsIn).
import type { Definition, DefNode, ExecutionSummary } from "../types";
import { nodesOf, type Problem } from "./model";

/** The inline body of `node` when it is a loop that has one. */
export function bodyOf(node: DefNode | undefined): Definition | null {
  if (!node || node.type !== "loop") return null;
  const body = node.config?.body;
  return body && typeof body === "object" && !Array.isArray(body) ? (body as Definition) : null;
}

/** The workflow `node` refers to (a sub-workflow, a loop over another workflow), when
 * it is an id rather than a `{{ }}` template. */
export function workflowRefOf(node: DefNode): string | null {
  if (node.type !== "sub_workflow" && node.type !== "loop") return null;
  const id = node.config?.workflow_id;
  return typeof id === "string" && id.trim() !== "" && !id.includes("{{") ? id.trim() : null;
}

/** The definition at `scope` (the root for []), or null when a loop on the way is gone
 * (an undo removed it). */
export function scopeOf(root: Definition, scope: string[]): Definition | null {
  let cur: Definition = root;
  for (const id of scope) {
    const body = bodyOf(nodesOf(cur).find((n) => n.id === id));
    if (!body) return null;
    cur = body;
  }
  return cur;
}

/** `root` with the definition at `scope` replaced by `sub`. */
export function withScope(root: Definition, scope: string[], sub: Definition): Definition {
  if (!scope.length) return sub;
  const [id, ...rest] = scope;
  return {
    ...root,
    nodes: nodesOf(root).map((n) => {
      if (n.id !== id) return n;
      const body = bodyOf(n) ?? { nodes: [], edges: [] };
      return { ...n, config: { ...(n.config ?? {}), body: withScope(body, rest, sub) } };
    }),
  };
}

/** Where a validation problem's path points inside loop bodies: `nodes[a].config.body.
 * nodes[b].config.body.nodes[c]…` → the scope [a, b]. */
const BODY = /^nodes\[([^\]]+)\]\.config\.body\./;

/** The problems of the definition at `scope`, as if it were validated alone: paths made
 * relative to it, `node_id` / `edge_index` naming its own nodes and edges (validation
 * names the top loop's node for a problem in its body). At the top, every problem. */
export function problemsIn(problems: Problem[], root: Definition, scope: string[]): Problem[] {
  if (!scope.length) return problems;
  const here = scopeOf(root, scope);
  if (!here) return [];
  const out: Problem[] = [];
  for (const p of problems) {
    let path = p.path;
    let inside = true;
    for (const id of scope) {
      const m = BODY.exec(path);
      if (!m || m[1] !== id) {
        inside = false;
        break;
      }
      path = path.slice(m[0].length);
    }
    if (!inside) continue;
    const node = /^nodes\[([^\]]+)\]/.exec(path)?.[1];
    const edge = /^edges\[(\d+)\]/.exec(path)?.[1];
    out.push({ ...p, path, node_id: node === undefined ? null : nodeIdOf(here, node), edge_index: edge === undefined ? null : Number(edge) });
  }
  return out;
}

/** `nodes[x]` names a node by id, or by index when it has no valid id (as the
 * server's `problems_of` reads it). */
function nodeIdOf(def: Definition, key: string): string {
  const nodes = nodesOf(def);
  if (nodes.some((n) => n.id === key)) return key;
  const i = /^\d+$/.test(key) ? Number(key) : -1;
  return i >= 0 && i < nodes.length && typeof nodes[i].id === "string" ? nodes[i].id : key;
}

/** The loop bodies a problem lies in (its scope), from its path: [] for the top. */
export function scopeOfProblem(p: Problem): string[] {
  const scope: string[] = [];
  let path = p.path;
  for (let m = BODY.exec(path); m; m = BODY.exec(path)) {
    scope.push(m[1]);
    path = path.slice(m[0].length);
  }
  return scope;
}

/** The node a problem names inside its scope (null: the scope's definition itself). */
export function nodeOfProblem(p: Problem, root: Definition): string | null {
  const scope = scopeOfProblem(p);
  if (!scope.length) return p.node_id;
  const here = problemsIn([p], root, scope)[0];
  return here?.node_id ?? null;
}

// --- a test run's iterations of a loop body --------------------------------------

export interface Iteration {
  id: string;
  index: number;
  status: string;
}

/** The iterations of loop `loopId` among an execution's children, in item order. */
export function iterationsOf(children: ExecutionSummary[], loopId: string): Iteration[] {
  return children
    .filter((c) => c.parent_node_id === loopId && typeof c.iteration === "number")
    .map((c) => ({ id: c.id, index: c.iteration as number, status: c.status }))
    .sort((a, b) => a.index - b.index);
}

/** The iteration shown: the one chosen if it is there, else the first. */
export function chosenIteration(iterations: Iteration[], chosen: number | undefined): Iteration | null {
  return iterations.find((i) => i.index === chosen) ?? iterations[0] ?? null;
}
