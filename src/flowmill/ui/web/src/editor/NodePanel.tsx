// The selected node's settings: name, error handling and its config form (drawn from
// the type's JSON Schema), its problems, and what it did in the last test run.
import { useEffect, useState } from "react";
import type { DefNode } from "../types";
import { JsonView } from "../ui";
import type { RunState } from "./EditorCanvas";
import type { NodeTypeInfo, Problem } from "./model";
import { SchemaForm } from "./SchemaForm";

/** `nodes[x].config.cases.0.handle` → the config's `cases` field (and its full path). */
export function fieldProblems(problems: Problem[]): { fields: Record<string, string[]>; rest: Problem[] } {
  const fields: Record<string, string[]> = {};
  const rest: Problem[] = [];
  for (const p of problems) {
    const m = /^nodes\[[^\]]+\]\.config\.(.+)$/.exec(p.path);
    if (!m) {
      rest.push(p);
      continue;
    }
    const parts = m[1].split(".");
    (fields[parts[0]] ??= []).push(p.message);
    if (parts.length > 1) (fields[parts.filter((x) => !/^\d+$/.test(x)).join(".")] ??= []);
  }
  return { fields, rest };
}

export function NodePanel({
  node, info, problems, run, count, onChange, onUseAsInput, pinned, onPin, canRunFrom, onRunFrom, paths,
  runLabel = "Last test run", inBody = false,
}: {
  node: DefNode | null;
  info: NodeTypeInfo | undefined;
  problems: Problem[];
  run: RunState | undefined;
  count: number;
  onChange: (change: Partial<DefNode>, key: string) => void;
  onUseAsInput: (data: unknown) => void;
  pinned: unknown; // undefined: not pinned
  onPin: (output: unknown) => void; // undefined unpins
  canRunFrom: boolean;
  onRunFrom: () => void;
  paths: string[];
  /** What the run card is titled ("Last test run", an iteration of a loop body). */
  runLabel?: string;
  /** In a loop's body: its runs are iterations, which are not pinned nor offered as
   * the workflow's test input. */
  inBody?: boolean;
}) {
  if (!node) {
    return (
      <div className="muted small-text panel-hint">
        {count > 1
          ? `${count} nodes selected: drag to move them, Delete to remove them, Ctrl+C to copy them as JSON.`
          : "Drag a node type from the left onto the canvas, connect an output (right) to an input (left), and click a node to edit it. Delete removes the selection; Ctrl+Z undoes."}
      </div>
    );
  }
  const { fields, rest } = fieldProblems(problems);
  return (
    <div className="node-panel" data-testid="node-panel" data-node-id={node.id}>
      <h3>
        {info?.label ?? node.type} <span className="muted small-text">{node.id}</span>
      </h3>
      {info?.description && <p className="muted small-text">{info.description}</p>}
      <div className="schema-field">
        <label htmlFor={`name-${node.id}`}>Name</label>
        <input id={`name-${node.id}`} type="text" value={node.name ?? ""} onChange={(e) => onChange({ name: e.target.value || null }, `name:${node.id}`)} />
      </div>
      {info && !info.is_trigger && (
        <div className="schema-field">
          <label htmlFor={`onerror-${node.id}`}>On error</label>
          <select id={`onerror-${node.id}`} value={node.on_error ?? "fail"} onChange={(e) => onChange({ on_error: e.target.value === "fail" ? null : (e.target.value as DefNode["on_error"]) }, `onerror:${node.id}`)}>
            <option value="fail">fail the execution</option>
            <option value="continue">continue with the error as output</option>
            <option value="route">route to the error output</option>
          </select>
        </div>
      )}
      {info ? (
        <SchemaForm
          schema={info.config_schema}
          value={(node.config ?? {}) as Record<string, unknown>}
          codeFields={info.code_fields}
          nodeId={node.id}
          problems={fields}
          paths={paths}
          onChange={(config, field) => onChange({ config }, `config:${node.id}:${field}`)}
        />
      ) : (
        <div className="field-error">Unknown node type {node.type}: edit it in the JSON view.</div>
      )}
      {rest.length > 0 && (
        <ul className="field-error">
          {rest.map((p, i) => <li key={i}>{p.message}</li>)}
        </ul>
      )}
      {canRunFrom && info && !info.is_trigger && (
        <button type="button" className="primary" onClick={onRunFrom} title="Run this node and the nodes after it again; the nodes before it keep the last test run's outputs, or their pinned ones">
          Run from here
        </button>
      )}
      {pinned !== undefined && <PinnedEditor nodeId={node.id} value={pinned} onChange={onPin} />}
      {run && (
        <div className="card">
          <strong>{runLabel}: {run.status}</strong>
          {run.duration_ms !== null && <span className="muted"> · {Math.round(run.duration_ms)} ms</span>}
          {run.error ? <JsonView value={run.error} label={`${node.id} error`} /> : <JsonView value={run.output} label={`${node.id} output`} />}
          {!inBody && pinned === undefined && run.status === "succeeded" && (
            <button type="button" className="small" onClick={() => onPin(run.output ?? null)}>Pin this output as test data</button>
          )}
          {!inBody && info?.is_trigger && run.output !== undefined && (
            <button type="button" className="small" onClick={() => onUseAsInput((run.output as { data?: unknown } | null)?.data ?? null)}>
              Use its data as test input
            </button>
          )}
        </div>
      )}
    </div>
  );
}

/** A pinned output, editable as JSON: what a run from a later node uses for this one. */
function PinnedEditor({ nodeId, value, onChange }: { nodeId: string; value: unknown; onChange: (v: unknown) => void }) {
  const [text, setText] = useState(() => JSON.stringify(value, null, 2));
  const [bad, setBad] = useState<string | null>(null);
  useEffect(() => setText(JSON.stringify(value, null, 2)), [nodeId]); // eslint-disable-line react-hooks/exhaustive-deps
  return (
    <div className="card pinned" data-testid="pinned-output">
      <label htmlFor={`pin-${nodeId}`}>Pinned output (JSON): runs from a later node use it</label>
      <textarea
        id={`pin-${nodeId}`} className="code-input" rows={5} spellCheck={false} value={text}
        onChange={(e) => {
          setText(e.target.value);
          try {
            onChange(JSON.parse(e.target.value));
            setBad(null);
          } catch (err) {
            setBad((err as Error).message);
          }
        }}
      />
      {bad && <div className="field-error">Not valid JSON: {bad}</div>}
      <button type="button" className="small" onClick={() => onChange(undefined)}>Unpin</button>
    </div>
  );
}
