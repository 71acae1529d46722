// Test runs inside a loop's body: each iteration of a loop is a child execution of the
// run (GET /api/executions/{id}/children names its loop node and item index), so the
// body's canvas shows one chosen iteration's nodes as the top canvas shows the run's.
// Followed while anything on the way has not ended (its events are the child's, not
// the run's, so it is read again every second rather than streamed).
import { useEffect, useMemo, useState } from "react";
import { api, collect } from "../api";
import { TERMINAL, type ExecutionDetail } from "../types";
import type { RunState } from "./EditorCanvas";
import { chosenIteration, iterationsOf, type Iteration } from "./scope";
import { runStates } from "./TestRun";

/** Iterations past this many are not listed (a test run is for trying things). */
export const MAX_ITERATIONS = 500;
const FOLLOW_MS = 1000;

export interface BodyLevel {
  loopId: string;
  iterations: Iteration[];
  truncated: boolean;
  shown: Iteration | null;
}

export interface BodyRun {
  /** One per loop of the scope, top first; empty outside a body or before a run. */
  levels: BodyLevel[];
  /** The shown iteration's nodes (of the innermost body). */
  states: Record<string, RunState>;
  execution: ExecutionDetail | null;
  choose: (depth: number, index: number) => void;
  loading: boolean;
}

const NONE: Record<string, RunState> = {};

export function useBodyRun(run: ExecutionDetail | null, scope: string[]): BodyRun {
  const [chosen, setChosen] = useState<Record<string, number>>({});
  const [levels, setLevels] = useState<BodyLevel[]>([]);
  const [execution, setExecution] = useState<ExecutionDetail | null>(null);
  const [loading, setLoading] = useState(false);
  const [tick, setTick] = useState(0);
  const key = scope.join("/");
  const runId = run?.id ?? null;
  const runEnded = run ? TERMINAL.has(run.status) : true;

  // another run or another body: nothing of the last one stays on the canvas
  useEffect(() => {
    setLevels([]);
    setExecution(null);
  }, [runId, key]);

  useEffect(() => {
    if (!runId || !scope.length) return;
    const abort = new AbortController();
    let timer: number | null = null;
    const read = async () => {
      setLoading(true);
      try {
        const found: BodyLevel[] = [];
        let parent: string | null = runId;
        let open = !runEnded;
        let detail: ExecutionDetail | null = null;
        for (let depth = 0; depth < scope.length && parent; depth++) {
          const from: string = parent;
          const kids = await collect((cursor) => api.children(from, { limit: 200, cursor }, abort.signal), MAX_ITERATIONS);
          const iterations = iterationsOf(kids.items, scope[depth]);
          const shown = chosenIteration(iterations, chosen[scope.slice(0, depth + 1).join("/")]);
          found.push({ loopId: scope[depth], iterations, truncated: kids.truncated, shown });
          if (iterations.some((i) => !TERMINAL.has(i.status))) open = true;
          parent = shown?.id ?? null;
        }
        if (parent && found.length === scope.length) {
          detail = await api.execution(parent, abort.signal);
          if (!TERMINAL.has(detail.status)) open = true;
        }
        if (abort.signal.aborted) return;
        setLevels(found);
        setExecution(detail);
        // a loop that has not started its iterations yet leaves nothing to show: wait
        if (open || (!runEnded && !found.length)) timer = window.setTimeout(() => setTick((t) => t + 1), FOLLOW_MS);
      } catch (e) {
        if ((e as Error).name !== "AbortError" && !abort.signal.aborted) {
          timer = window.setTimeout(() => setTick((t) => t + 1), FOLLOW_MS * 3);
        }
      } finally {
        if (!abort.signal.aborted) setLoading(false);
      }
    };
    void read();
    return () => {
      abort.abort();
      if (timer !== null) clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [runId, runEnded, key, chosen, tick]);

  const states = useMemo(() => (execution ? runStates(execution) : NONE), [execution]);
  return {
    levels,
    states,
    execution,
    loading,
    choose: (depth, index) => setChosen((c) => ({ ...c, [scope.slice(0, depth + 1).join("/")]: index })),
  };
}
