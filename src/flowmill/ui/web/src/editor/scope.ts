// Loop bodies: a loop node's inline `config.body` ({nodes, edges}) is a workflow of its
// own, edited on the same canvas. A scope is the path of loop ids from the top
// definition down to the body being edited; the definition stays one document (one
// undo history, one save), and a body's edits are written back into its loop.
import type { Definition, DefNode } from "../types";
import { nodesOf } from "./model";

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
