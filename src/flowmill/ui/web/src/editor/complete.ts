// Completion inside `{{ }}` templates: where the caret is in a template, which paths
// match what is typed there, and the text once one is chosen. Pure, so unit-tested.

export interface TemplateSpot {
  /** Where the path being typed starts (just after `{{` and its spaces). */
  start: number;
  /** What is typed so far. */
  query: string;
}

/** The template the caret is in (after a `{{` that is not closed before the caret). */
export function templateAt(text: string, caret: number): TemplateSpot | null {
  const before = text.slice(0, caret);
  const open = before.lastIndexOf("{{");
  if (open < 0 || before.indexOf("}}", open) >= 0) return null;
  const inner = before.slice(open + 2);
  const lead = inner.length - inner.trimStart().length;
  const query = inner.slice(lead);
  if (/[\s}]/.test(query)) return null; // past the path: an operator, a filter
  return { start: open + 2 + lead, query };
}

/** The paths that match `query`: those starting with it first, then those containing it. */
export function matching(paths: string[], query: string, limit = 12): string[] {
  const q = query.toLowerCase();
  const starts = paths.filter((p) => p.toLowerCase().startsWith(q));
  const inside = q ? paths.filter((p) => !p.toLowerCase().startsWith(q) && p.toLowerCase().includes(q)) : [];
  return [...starts, ...inside].slice(0, limit);
}

/** `text` with the path typed at `spot` (up to `caret`) replaced by `path`, closed with
 * ` }}` unless it already is; and where the caret goes. */
export function complete(text: string, caret: number, spot: TemplateSpot, path: string): { text: string; caret: number } {
  const after = text.slice(caret);
  const closed = /^[\w$.[\]"]*\s*\}\}/.exec(after);
  const head = `${text.slice(0, spot.start).replace(/\{\{$/, "{{ ")}${path}`;
  if (closed) {
    const rest = after.slice(closed[0].length);
    return { text: `${head} }}${rest}`, caret: head.length + 3 };
  }
  return { text: `${head} }}${after}`, caret: head.length + 3 };
}
