import { lazy, memo, Suspense, useCallback, useDeferredValue, useEffect, useMemo, useRef, useState } from "react";
import { api, collect } from "../api";
import { capabilities } from "../capabilities";
import { ExecutionTable } from "../ExecutionTable";
import { dateTime, duration, shortId } from "../format";
import { useAsync, useInterval } from "../hooks";
import { applyEvent, nodeStates } from "../live";
import { Link, navigate, useQueryState } from "../router";
import { followExecution } from "../sse";
import { TERMINAL, type Definition, type ExecutionDetail, type NodeRun } from "../types";
import { Confirm, Empty, ErrorBox, JsonView, Loading, Status, Time } from "../ui";

const WorkflowGraph = lazy(() => import("../graph/WorkflowGraph"));

function useExecution(id: string) {
  const [ex, setEx] = useState<ExecutionDetail | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [stream, setStream] = useState<"idle" | "live" | "reconnecting" | "ended">("idle");
  const timer = useRef<number | null>(null);
  const load = useCallback(async () => {
    try {
      const d = await api.execution(id);
      // keep the event-applied state if the stream already moved past what was read
      setEx((cur) => (cur && cur.id === d.id && TERMINAL.has(cur.status) && !TERMINAL.has(d.status) ? { ...d, status: cur.status } : d));
      setError(null);
      return d;
    } catch (e) {
      setError(e);
      return null;
    }
  }, [id]);
  const refresh = useCallback(() => {
    if (timer.current !== null) return;
    timer.current = window.setTimeout(() => {
      timer.current = null;
      void load();
    }, 300);
  }, [load]);
  useEffect(() => {
    setEx(null);
    setStream("idle");
    const ctl = new AbortController();
    void load().then((d) => {
      if (!d || ctl.signal.aborted || TERMINAL.has(d.status)) return;
      void followExecution(
        id,
        (e) => {
          setEx((cur) => (cur ? applyEvent(cur, e) : cur));
          refresh();
        },
        ctl.signal,
        (s) => {
          setStream(s);
          if (s === "ended") void load();
        },
      );
    });
    return () => {
      ctl.abort();
      if (timer.current !== null) clearTimeout(timer.current);
      timer.current = null;
    };
  }, [id, load, refresh]);
  return { ex, error, stream, reload: load, follow: () => setStream("idle") };
}

export default function ExecutionPage({ id }: { id: string }) {
  const { ex, error, stream, reload } = useExecution(id);
  const [query, setQuery] = useQueryState();
  const selected = query.get("node");
  const [actionError, setActionError] = useState<unknown>(null);
  const definition = useAsync(
    async () => (ex ? (await api.version(ex.workflow_id, ex.version)).definition : null),
    [ex?.workflow_id, ex?.version],
  );
  const wfName = useAsync(async () => (ex ? (await api.workflow(ex.workflow_id)).name : null), [ex?.workflow_id]);
  const states = useMemo(() => (ex ? nodeStates(ex.nodes) : {}), [ex]);
  // The header and the graph show each event at once; the heavier parts (timeline,
  // steps with their JSON, logs) follow in a deferred render that never holds them up.
  const slow = useDeferredValue(ex);

  if (error && !ex) return <div className="page"><ErrorBox error={error} onRetry={reload} /></div>;
  if (!ex) return <Loading what="Loading the execution" />;
  const live = !TERMINAL.has(ex.status);
  const act = async (fn: () => Promise<unknown>) => {
    setActionError(null);
    try {
      await fn();
    } catch (e) {
      setActionError(e);
    }
  };
  return (
    <div className="page">
      <div className="crumbs"><Link to="/executions">Executions</Link> /</div>
      <div className="page-head">
        <h1>
          Execution <span className="mono" title={ex.id}>{shortId(ex.id)}</span>{" "}
          <span data-testid="execution-status"><Status status={ex.status} live={live} /></span>
        </h1>
        <div className="actions">
          {live && (
            <Confirm label="Cancel" question="Cancel this execution? Running steps are cancelled; nothing more starts." onConfirm={() => act(async () => { await api.cancel(ex.id); await reload(); })} />
          )}
          {(ex.status === "failed" || ex.status === "cancelled") && (
            <button type="button" className="primary" onClick={() => act(async () => navigate(`/executions/${(await api.retry(ex.id, false)).execution_id}`))}>
              Retry from failed
            </button>
          )}
          {!live && (
            <button type="button" onClick={() => act(async () => navigate(`/executions/${(await api.retry(ex.id, true)).execution_id}`))}>
              Retry from start
            </button>
          )}
        </div>
      </div>
      <dl className="facts">
        <div><dt>Workflow</dt><dd><Link to={`/workflows/${ex.workflow_id}`}>{wfName.data ?? shortId(ex.workflow_id)}</Link> v{ex.version}</dd></div>
        <div><dt>Trigger</dt><dd>{ex.trigger_type}</dd></div>
        <div><dt>Started</dt><dd title={dateTime(ex.started_at ?? ex.created_at)}><Time iso={ex.started_at ?? ex.created_at} /></dd></div>
        <div><dt>Duration</dt><dd>{live ? <LiveDuration since={ex.started_at ?? ex.created_at} /> : duration(ex.duration_ms)}</dd></div>
        {ex.retry_of && <div><dt>Retry of</dt><dd><Link to={`/executions/${ex.retry_of}`} className="mono">{shortId(ex.retry_of)}</Link></dd></div>}
        {ex.parent_execution_id && <div><dt>Parent</dt><dd><Link to={`/executions/${ex.parent_execution_id}`} className="mono">{shortId(ex.parent_execution_id)}</Link></dd></div>}
        <div><dt>Updates</dt><dd data-testid="stream-state">{live ? (stream === "live" ? "● following live" : stream === "reconnecting" ? "reconnecting…" : "connecting…") : "ended"}</dd></div>
      </dl>
      {actionError ? <ErrorBox error={actionError} /> : null}
      {ex.error && (
        <div className="error-box" role="alert">
          <strong>{String(ex.error.type ?? "Error")}</strong>: {String(ex.error.message ?? "")}
          {ex.error.node_id ? <> (node <code>{String(ex.error.node_id)}</code>)</> : null}
        </div>
      )}
      <section>
        <h2>Graph</h2>
        {definition.data ? (
          <Suspense fallback={<Loading what="Drawing the graph" />}>
            <WorkflowGraph definition={definition.data as Definition} states={states} selected={selected} onSelect={(n) => setQuery({ node: n })} height={360} />
          </Suspense>
        ) : definition.error ? <ErrorBox error={definition.error} /> : <Loading />}
      </section>
      <section>
        <h2>Timeline</h2>
        {slow && <Timeline ex={slow} onSelect={(n) => setQuery({ node: n })} />}
      </section>
      <section>
        <h2>Steps</h2>
        {slow && <Steps ex={slow} selected={selected} />}
      </section>
      <section className="two-col">
        <div>
          <h2>Input</h2>
          <JsonView value={ex.input} label="execution input" />
        </div>
        <div>
          <h2>Output</h2>
          {ex.output === null && live ? <div className="muted">Not finished yet.</div> : <JsonView value={ex.output} label="execution output" />}
        </div>
      </section>
      <section>
        <h2>Logs</h2>
        <Logs id={ex.id} nodes={nodeIds(slow ?? ex)} live={live} />
      </section>
      <Children id={ex.id} />
    </div>
  );
}

function nodeIds(ex: ExecutionDetail): string {
  return [...new Set(ex.nodes.map((n) => n.node_id))].join(",");
}

function LiveDuration({ since }: { since: string }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, []);
  return <>{duration(now - Date.parse(since))}</>;
}

function Timeline({ ex, onSelect }: { ex: ExecutionDetail; onSelect: (n: string) => void }) {
  const [now, setNow] = useState(Date.now());
  const live = !TERMINAL.has(ex.status);
  useEffect(() => {
    if (!live) return;
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, [live]);
  const runs = ex.nodes.filter((r) => r.started_at);
  if (!runs.length) return <div className="muted">No step has started yet.</div>;
  const t0 = Math.min(...runs.map((r) => Date.parse(r.started_at!)), Date.parse(ex.started_at ?? ex.created_at));
  const end = (r: NodeRun) => (r.completed_at ? Date.parse(r.completed_at) : live ? now : Date.parse(ex.completed_at ?? r.started_at!));
  const t1 = Math.max(...runs.map(end), ex.completed_at ? Date.parse(ex.completed_at) : live ? now : 0, t0 + 1);
  const span = t1 - t0;
  return (
    <div className="gantt" role="table" aria-label="Timeline of steps and attempts">
      <div className="gantt-scale" aria-hidden="true">
        <span>0</span><span>{duration(span / 2)}</span><span>{duration(span)}</span>
      </div>
      {runs.map((r) => {
        const s = Date.parse(r.started_at!);
        const left = ((s - t0) / span) * 100;
        const width = Math.max(((end(r) - s) / span) * 100, 0.4);
        return (
          <div className="gantt-row" role="row" key={`${r.node_id}-${r.attempt}`}>
            <button type="button" role="cell" className="gantt-label link-like" onClick={() => onSelect(r.node_id)}>
              {r.node_id}{r.attempt > 1 ? ` (attempt ${r.attempt})` : ""}
            </button>
            <div className="gantt-track" role="cell">
              <div
                className={`gantt-bar bar-${r.status}`}
                style={{ left: `${left}%`, width: `${width}%` }}
                title={`${r.node_id} attempt ${r.attempt}: ${r.status}, ${duration(r.duration_ms ?? end(r) - s)}`}
              />
              <span className="gantt-dur" style={{ left: `min(${left + width}%, calc(100% - 5em))` }}>
                {duration(r.duration_ms ?? end(r) - s)}
              </span>
            </div>
          </div>
        );
      })}
    </div>
  );
}

const Steps = memo(function Steps({ ex, selected }: { ex: ExecutionDetail; selected: string | null }) {
  const byNode = new Map<string, NodeRun[]>();
  for (const r of ex.nodes) byNode.set(r.node_id, [...(byNode.get(r.node_id) ?? []), r]);
  if (!byNode.size) return <div className="muted">No steps yet.</div>;
  return (
    <div className="steps">
      {[...byNode.entries()].map(([node, runs]) => {
        const last = runs[runs.length - 1];
        return (
          <details key={node} open={selected === node || last.status === "failed"} className="step" data-node-id={node} data-status={last.status}>
            <summary>
              <Status status={last.status} /> <strong>{node}</strong>
              {runs.length > 1 && <span className="muted"> · {runs.length} attempts</span>}
              <span className="muted"> · {duration(last.duration_ms)}</span>
            </summary>
            {runs.map((r) => (
              <div key={r.attempt} className="attempt">
                {runs.length > 1 && <h4>Attempt {r.attempt} <Status status={r.status} /></h4>}
                <div className="three-col">
                  <div><h5>Input</h5><JsonView value={r.input} label={`${node} input`} /></div>
                  <div><h5>Output</h5><JsonView value={r.output} label={`${node} output`} /></div>
                  <div><h5>Error</h5>{r.error ? <JsonView value={r.error} label={`${node} error`} /> : <span className="muted">none</span>}</div>
                </div>
              </div>
            ))}
          </details>
        );
      })}
    </div>
  );
});

const LEVELS = ["debug", "info", "warning", "error"];

const Logs = memo(function Logs({ id, nodes: nodeList, live }: { id: string; nodes: string; live: boolean }) {
  const [level, setLevel] = useState("");
  const [node, setNode] = useState("");
  const nodes = nodeList ? nodeList.split(",") : [];
  const logs = useAsync(() => collect((c) => api.logs(id, { cursor: c, limit: 1000 }), 5000), [id, live]);
  useInterval(logs.reload, live ? 2000 : null);
  if (logs.error) return <ErrorBox error={logs.error} />;
  if (!logs.data) return <Loading />;
  const min = level ? LEVELS.indexOf(level) : 0;
  const lines = logs.data.items.filter(
    (l) => (!node || l.node_id === node) && (LEVELS.indexOf(l.level) < 0 || LEVELS.indexOf(l.level) >= min),
  );
  return (
    <>
      <div className="filters">
        <label>
          Level at least
          <select value={level} onChange={(e) => setLevel(e.target.value)} name="log-level">
            <option value="">any</option>
            {LEVELS.map((l) => <option key={l} value={l}>{l}</option>)}
          </select>
        </label>
        <label>
          Node
          <select value={node} onChange={(e) => setNode(e.target.value)} name="log-node">
            <option value="">any</option>
            {nodes.map((n) => <option key={n} value={n}>{n}</option>)}
          </select>
        </label>
      </div>
      {lines.length === 0 ? (
        <div className="muted">{logs.data.items.length ? "No log line matches these filters." : "This execution wrote no log lines (code nodes write with console.log / print)."}</div>
      ) : (
        <table className="table logs">
          <tbody>
            {lines.map((l) => (
              <tr key={l.id} className={`log-${l.level}`}>
                <td className="mono small-text">{new Date(l.timestamp).toLocaleTimeString()}</td>
                <td><span className={`level level-${l.level}`}>{l.level}</span></td>
                <td>{l.node_id ?? ""}</td>
                <td className="log-msg">{l.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
});

function Children({ id }: { id: string }) {
  const kids = useAsync(async () => {
    const caps = await capabilities();
    if (caps.hasParam("/api/executions", "parent_execution_id"))
      return (await api.executions({ parent_execution_id: id, limit: 50 })).items;
    if (caps.hasPath("/api/executions/{execution_id}/children"))
      return (await collect((c) => fetchChildren(id, c), 200)).items;
    return null; // this server does not list sub-executions
  }, [id]);
  if (!kids.data) return null;
  return (
    <section>
      <h2>Sub-executions</h2>
      {kids.data.length ? <ExecutionTable items={kids.data} /> : <Empty title="No sub-executions.">Loop and sub-workflow nodes start child executions; they appear here.</Empty>}
    </section>
  );
}

async function fetchChildren(id: string, cursor: string | null) {
  const { request } = await import("../api");
  return request<{ items: ExecutionDetail[]; next_cursor: string | null }>("GET", `/api/executions/${id}/children`, { query: { cursor } });
}
