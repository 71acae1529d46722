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
  rerunFrom: (executionId: string, nodeId: string, version: number, pinned: Record<string, unknown>) => Promise<void>;
}

export function useTestRun(): TestRun {
  const [execution, setExecution] = useState<ExecutionDetail | null>(null);
  const [error, setError] = useState<unknown>(null);
  const ctl = useRef<AbortController | null>(null);
  const timer = useRef<number | null>(null);
  useEffect(() => () => ctl.current?.abort(), []);

  /** Show the execution `begin` starts, following it live. */
  const follow = useCallback(async (begin: () => Promise<string>) => {
    ctl.current?.abort();
    const abort = new AbortController();
    ctl.current = abort;
    setError(null);
    setExecution(null);
    try {
      const executionId = await begin();
      const load = async () => {
        const d = await api.execution(executionId);
        if (!abort.signal.aborted) setExecution(d);
        return d;
      };
      const first = await load();
      if (TERMINAL.has(first.status)) return;
      void followExecution(
        executionId,
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
  const start = useCallback(
    (workflowId: string, version: number, input: unknown) =>
      follow(async () => (await api.execute(workflowId, input, version)).execution_id),
    [follow],
  );
  const rerunFrom = useCallback(
    (executionId: string, nodeId: string, version: number, pinned: Record<string, unknown>) =>
      follow(async () => (await api.rerunFrom(executionId, nodeId, version, pinned)).execution_id),
    [follow],
  );

  const states = useMemo(() => runStates(execution), [execution]);
  return { execution, states, error, running: Boolean(execution && !TERMINAL.has(execution.status)), start, rerunFrom };
}

const PIN = "flowmill.editor.pinned-input:";

/** The trigger input pinned for a workflow's test runs (this browser keeps it). */
export function pinnedInput(workflowId: string | null): string | null {
  try {
    return workflowId ? localStorage.getItem(PIN + workflowId) : null;
  } catch {
    return null;
  }
}

export function pinInput(workflowId: string, text: string | null): void {
  try {
    if (text === null) localStorage.removeItem(PIN + workflowId);
    else localStorage.setItem(PIN + workflowId, text);
  } catch {
    // storage full or denied: the pin lasts as long as the page
  }
}

export function TestRunPanel({
  run, canRun, onRun, workflowId, offered,
}: {
  run: TestRun;
  canRun: boolean;
  onRun: (input: unknown) => Promise<void>;
  workflowId: string | null;
  offered: string | null; // an input offered from a node ("Use as test input")
}) {
  const [text, setText] = useState(() => offered ?? pinnedInput(workflowId) ?? '{\n  "message": "hello"\n}');
  const [pinned, setPinned] = useState(() => pinnedInput(workflowId));
  useEffect(() => {
    if (offered !== null) setText(offered);
  }, [offered]);
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
      <div className="actions">
        <button type="button" className="primary" disabled={!canRun || Boolean(bad) || run.running} onClick={() => void onRun(input)}>
          Run test
        </button>
        {workflowId && (pinned === text ? (
          <button type="button" onClick={() => { pinInput(workflowId, null); setPinned(null); }}>Unpin</button>
        ) : (
          <button type="button" disabled={Boolean(bad)} onClick={() => { pinInput(workflowId, text); setPinned(text); }}>Pin as test data</button>
        ))}
        {pinned === text && <span className="muted small-text" data-testid="pinned">pinned: used for every test run of this workflow</span>}
      </div>
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

const PINS = "flowmill.editor.pinned-outputs:";

/** Node outputs pinned as test data for a workflow (this browser keeps them). */
export function usePins(workflowId: string | null): [Record<string, unknown>, (nodeId: string, output: unknown) => void] {
  const [pins, setPins] = useState<Record<string, unknown>>({});
  useEffect(() => {
    try {
      setPins(workflowId ? JSON.parse(localStorage.getItem(PINS + workflowId) ?? "{}") : {});
    } catch {
      setPins({});
    }
  }, [workflowId]);
  const pin = useCallback(
    (nodeId: string, output: unknown) =>
      setPins((cur) => {
        const next = { ...cur };
        if (output === undefined) delete next[nodeId];
        else next[nodeId] = output;
        try {
          if (workflowId) localStorage.setItem(PINS + workflowId, JSON.stringify(next));
        } catch {
          // storage denied: pinned for this page only
        }
        return next;
      }),
    [workflowId],
  );
  return [pins, pin];
}
