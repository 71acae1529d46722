// Test runs: the saved draft run with a given trigger input (POST /execute with its
// version), followed live over the execution's event stream; each node's status,
// duration, output or error go on the canvas.
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api } from "../api";
import { Link } from "../router";
import { followExecution } from "../sse";
import { applyEvent } from "../live";
import { TERMINAL, type ExecutionDetail } from "../types";
import { ErrorBox, JsonView, Status } from "../ui";
import type { RunState } from "./EditorCanvas";

/** The latest attempt of each node as the canvas shows it. */
export function runStates(ex: ExecutionDetail | null): Record<string, RunState> {
  const out: Record<string, RunState & { attempt: number }> = {};
  for (const r of ex?.nodes ?? []) {
    const cur = out[r.node_id];
    if (cur && cur.attempt > r.attempt) continue;
    out[r.node_id] = { status: r.status, duration_ms: r.duration_ms, output: r.output, error: r.error, attempt: r.attempt };
  }
  return out;
}

export interface TestRun {
  execution: ExecutionDetail | null;
  states: Record<string, RunState>;
  error: unknown;
  running: boolean;
  start: (workflowId: string, version: number, input: unknown) => Promise<void>;
}

export function useTestRun(): TestRun {
  const [execution, setExecution] = useState<ExecutionDetail | null>(null);
  const [error, setError] = useState<unknown>(null);
  const ctl = useRef<AbortController | null>(null);
  const timer = useRef<number | null>(null);
  useEffect(() => () => ctl.current?.abort(), []);

  const start = useCallback(async (workflowId: string, version: number, input: unknown) => {
    ctl.current?.abort();
    const abort = new AbortController();
    ctl.current = abort;
    setError(null);
    setExecution(null);
    try {
      const started = await api.execute(workflowId, input, version);
      const load = async () => {
        const d = await api.execution(started.execution_id);
        if (!abort.signal.aborted) setExecution(d);
        return d;
      };
      const first = await load();
      if (TERMINAL.has(first.status)) return;
      void followExecution(
        started.execution_id,
        (e) => {
          setExecution((cur) => (cur ? applyEvent(cur, e) : cur));
          // the full record (outputs, durations) shortly after each event
          if (timer.current === null) {
            timer.current = window.setTimeout(() => {
              timer.current = null;
              void load();
            }, 250);
          }
        },
        abort.signal,
        (s) => {
          if (s === "ended") void load();
        },
      );
    } catch (e) {
      setError(e);
    }
  }, []);

  const states = useMemo(() => runStates(execution), [execution]);
  return { execution, states, error, running: Boolean(execution && !TERMINAL.has(execution.status)), start };
}

export function TestRunPanel({ run, canRun, onRun }: { run: TestRun; canRun: boolean; onRun: (input: unknown) => Promise<void> }) {
  const [text, setText] = useState('{\n  "message": "hello"\n}');
  let input: unknown = null;
  let bad: string | null = null;
  try {
    input = text.trim() ? JSON.parse(text) : null;
  } catch (e) {
    bad = (e as Error).message;
  }
  const ex = run.execution;
  return (
    <div className="test-panel">
      <label htmlFor="test-input">Trigger input (JSON: the trigger's <code>data</code>)</label>
      <textarea id="test-input" className="code-input" rows={6} spellCheck={false} value={text} onChange={(e) => setText(e.target.value)} />
      {bad ? <div className="field-error">Not valid JSON: {bad}</div> : null}
      <button type="button" className="primary" disabled={!canRun || Boolean(bad) || run.running} onClick={() => void onRun(input)}>
        Run test
      </button>
      <div className="muted small-text">Saves the draft as a new version if it changed, then runs that version (publishing is not needed).</div>
      {run.error ? <ErrorBox error={run.error} /> : null}
      {ex && (
        <div className="card" data-testid="test-run" data-status={ex.status}>
          <div>
            Execution <Link to={`/executions/${ex.id}`} className="mono">{ex.id.slice(0, 8)}</Link> <Status status={ex.status} live={!TERMINAL.has(ex.status)} />
            {ex.duration_ms !== null && <span className="muted"> · {Math.round(ex.duration_ms)} ms</span>}
          </div>
          {TERMINAL.has(ex.status) && (ex.error ? <JsonView value={ex.error} label="test run error" /> : <JsonView value={ex.output} label="test run output" />)}
        </div>
      )}
    </div>
  );
}
