import { lazy, Suspense, useEffect, useMemo, useState } from "react";
import { api, collect } from "../api";
import { ExecutionTable } from "../ExecutionTable";
import { dateTime } from "../format";
import { useAsync } from "../hooks";
import { Link, navigate, useQueryState } from "../router";
import type { Trigger, VersionDiff, Webhook, Workflow } from "../types";
import { Confirm, CopyButton, Empty, ErrorBox, JsonView, Loading, Status, Tabs, Time } from "../ui";

const WorkflowGraph = lazy(() => import("../graph/WorkflowGraph"));

type Tab = "graph" | "versions" | "run" | "triggers" | "events" | "executions";

export default function WorkflowPage({ id }: { id: string }) {
  const [query, setQuery] = useQueryState();
  const tab = (query.get("tab") as Tab) || "graph";
  const wf = useAsync(() => api.workflow(id), [id]);
  const [busy, setBusy] = useState<unknown>(null);

  if (wf.error) return <div className="page"><ErrorBox error={wf.error} onRetry={wf.reload} /></div>;
  if (!wf.data) return <Loading />;
  const w = wf.data;
  const act = async (fn: () => Promise<unknown>) => {
    setBusy(null);
    try {
      await fn();
      wf.reload();
    } catch (e) {
      setBusy(e);
    }
  };
  return (
    <div className="page">
      <div className="crumbs"><Link to="/workflows">Workflows</Link> /</div>
      <div className="page-head">
        <h1>
          {w.name} <Status status={w.status} />
        </h1>
        <div className="actions">
          {w.latest_version !== w.active_version && (
            <button type="button" className="primary" onClick={() => act(() => api.publish(id))}>
              Publish v{w.latest_version}
            </button>
          )}
          {w.active_version !== null && (
            <Confirm
              label="Unpublish"
              question="Unpublish this workflow? Its webhooks, schedules and event triggers stop until you publish again."
              onConfirm={() => act(() => api.unpublish(id))}
            />
          )}
          <Link to={`/workflows/${id}/edit`} className="button-link">Edit</Link>
          <button type="button" onClick={() => setQuery({ tab: "run" })}>Run…</button>
        </div>
      </div>
      <p className="muted">
        {w.active_version ? <>Version {w.active_version} is live</> : <>Not published: triggers do not start it</>}
        {w.latest_version !== w.active_version && <> · latest is v{w.latest_version} (draft)</>}
        {" · "}updated <Time iso={w.updated_at} />
        {w.description && <> · {w.description}</>}
      </p>
      {busy ? <ErrorBox error={busy} /> : null}
      <Tabs<Tab>
        active={tab}
        onSelect={(t) => setQuery({ tab: t === "graph" ? null : t })}
        tabs={[
          { id: "graph", label: "Graph" },
          { id: "versions", label: "Versions" },
          { id: "run", label: "Run" },
          { id: "triggers", label: "Triggers" },
          { id: "events", label: "Webhook events" },
          { id: "executions", label: "Executions" },
        ]}
      />
      <div role="tabpanel" aria-labelledby={`tab-${tab}`} className="tabpanel">
        {tab === "graph" && <GraphTab wf={w} />}
        {tab === "versions" && <VersionsTab wf={w} onChange={wf.reload} />}
        {tab === "run" && <RunTab wf={w} />}
        {tab === "triggers" && <TriggersTab wf={w} />}
        {tab === "events" && <EventsTab wf={w} />}
        {tab === "executions" && <ExecutionsTab wf={w} />}
      </div>
    </div>
  );
}

function GraphTab({ wf }: { wf: Workflow }) {
  const [selected, setSelected] = useState<string | null>(null);
  const node = wf.definition.nodes?.find((n) => n.id === selected);
  return (
    <>
      <Suspense fallback={<Loading what="Drawing the graph" />}>
        <WorkflowGraph definition={wf.definition} selected={selected} onSelect={setSelected} />
      </Suspense>
      <p className="muted small-text">
        Showing version {wf.latest_version}. Branch outputs are labelled; error routes are red and dashed. Click a node for its settings.
      </p>
      {node && (
        <div className="card">
          <h3>{node.name || node.id} <span className="muted">({node.type})</span></h3>
          <JsonView value={node} label={`node ${node.id}`} />
        </div>
      )}
    </>
  );
}

function VersionsTab({ wf, onChange }: { wf: Workflow; onChange: () => void }) {
  const versions = useAsync(() => collect((c) => api.versions(wf.id, { cursor: c, limit: 200 }), 1000), [wf.id, wf.active_version, wf.latest_version]);
  const [pair, setPair] = useState<[number, number] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (wf.latest_version > 1 && !pair) setPair([wf.latest_version - 1, wf.latest_version]);
  }, [wf.latest_version, pair]);
  if (versions.error) return <ErrorBox error={versions.error} />;
  if (!versions.data) return <Loading />;
  const list = versions.data.items;
  return (
    <>
      {error ? <ErrorBox error={error} /> : null}
      <table className="table">
        <thead>
          <tr><th>Version</th><th>Created</th><th>Published</th><th>Note</th><th /></tr>
        </thead>
        <tbody>
          {list.map((v) => (
            <tr key={v.version} data-version={v.version}>
              <td>
                v{v.version} {v.active && <span className="status status-active">live</span>}{" "}
                {v.latest && <span className="tag">latest</span>}
              </td>
              <td><Time iso={v.created_at} /></td>
              <td>{v.published_at ? dateTime(v.published_at) : <span className="muted">never</span>}</td>
              <td>{v.note || <span className="muted">—</span>}</td>
              <td className="row-actions">
                {v.version > 1 && (
                  <button type="button" className="small" onClick={() => setPair([v.version - 1, v.version])}>
                    Diff with v{v.version - 1}
                  </button>
                )}
                {!v.active && (
                  <Confirm
                    className="small"
                    label={v.version < (wf.active_version ?? 0) ? `Roll back to v${v.version}` : `Publish v${v.version}`}
                    question={`Make version ${v.version} the live one? New executions and triggers use it from now on.`}
                    onConfirm={async () => {
                      setError(null);
                      try {
                        await api.publishVersion(wf.id, v.version);
                        onChange();
                      } catch (e) {
                        setError(e);
                      }
                    }}
                  />
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.length > 1 && (
        <div className="card">
          <div className="filters">
            <strong>Compare</strong>
            {(["from", "to"] as const).map((side, i) => (
              <label key={side}>
                {side}
                <select
                  value={pair?.[i] ?? ""}
                  onChange={(e) => {
                    const n = Number(e.target.value);
                    setPair(i === 0 ? [n, pair?.[1] ?? wf.latest_version] : [pair?.[0] ?? 1, n]);
                  }}
                >
                  {list.map((v) => <option key={v.version} value={v.version}>v{v.version}</option>)}
                </select>
              </label>
            ))}
          </div>
          {pair && <Diff wf={wf} a={pair[0]} b={pair[1]} />}
        </div>
      )}
      {list.length === 1 && (
        <Empty title="Only one version so far.">
          Each change (<code>PUT</code>/<code>PATCH /api/workflows/{"{id}"}</code>, or the editor) adds a version; you can compare and roll back here.
        </Empty>
      )}
    </>
  );
}

function Diff({ wf, a, b }: { wf: Workflow; a: number; b: number }) {
  const d = useAsync(() => api.diff(wf.id, a, b), [wf.id, a, b]);
  if (d.error) return <ErrorBox error={d.error} />;
  if (!d.data) return <Loading />;
  return <DiffView d={d.data} />;
}

function Change({ path, before, after }: { path: string; before: unknown; after: unknown }) {
  return (
    <div className="diff-change">
      <code>{path}</code>
      <div className="diff-before" aria-label="before">− {JSON.stringify(before)}</div>
      <div className="diff-after" aria-label="after">+ {JSON.stringify(after)}</div>
    </div>
  );
}

function DiffView({ d }: { d: VersionDiff }) {
  if (d.identical) return <p>v{d.from_version} and v{d.to_version} are identical.</p>;
  const edge = (e: { source: string; target: string; sourceHandle: string | null }) =>
    `${e.source} → ${e.target}${e.sourceHandle ? ` [${e.sourceHandle}]` : ""}`;
  return (
    <div className="diff" data-testid="diff">
      <h4>From v{d.from_version} to v{d.to_version}</h4>
      {d.fields.map((c) => <Change key={c.path} {...c} />)}
      {d.nodes_added.map((n) => <div key={n} className="diff-after">+ node <code>{n}</code></div>)}
      {d.nodes_removed.map((n) => <div key={n} className="diff-before">− node <code>{n}</code></div>)}
      {d.nodes_changed.map((n) => (
        <div key={n.id}>
          <div>node <code>{n.id}</code> changed</div>
          {n.changes.map((c) => <Change key={c.path} {...c} />)}
        </div>
      ))}
      {d.edges_added.map((e) => <div key={edge(e)} className="diff-after">+ edge {edge(e)}</div>)}
      {d.edges_removed.map((e) => <div key={edge(e)} className="diff-before">− edge {edge(e)}</div>)}
    </div>
  );
}

/** Where a JSON text is wrong: "line 3, column 7: ..." (null when it parses). */
export function jsonProblem(text: string): string | null {
  if (!text.trim()) return null;
  try {
    JSON.parse(text);
    return null;
  } catch (e) {
    const msg = (e as Error).message;
    const pos = /position (\d+)/.exec(msg);
    if (!pos) return msg;
    const before = text.slice(0, Number(pos[1]));
    const line = before.split("\n").length;
    const col = before.length - before.lastIndexOf("\n");
    return `line ${line}, column ${col}: ${msg.replace(/ in JSON at position \d+.*$/, "").replace(/\s*\(line \d+ column \d+\)/, "")}`;
  }
}

function RunTab({ wf }: { wf: Workflow }) {
  const [text, setText] = useState('{\n  "message": "hello"\n}');
  const [version, setVersion] = useState<string>(wf.active_version ? "" : String(wf.latest_version));
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const problem = useMemo(() => jsonProblem(text), [text]);
  return (
    <form
      className="card run-form"
      onSubmit={async (e) => {
        e.preventDefault();
        if (problem) return;
        setBusy(true);
        setError(null);
        try {
          const r = await api.execute(wf.id, text.trim() ? JSON.parse(text) : null, version ? Number(version) : undefined);
          navigate(`/executions/${r.execution_id}`);
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <label htmlFor="run-input">Input (JSON): nodes see it as <code>input.data</code></label>
      <textarea
        id="run-input"
        className="code"
        rows={10}
        spellCheck={false}
        value={text}
        onChange={(e) => setText(e.target.value)}
        aria-invalid={Boolean(problem)}
        aria-describedby="run-input-state"
        onKeyDown={(e) => {
          if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey) {
            // two spaces, not focus change, inside the editor; Esc then Tab leaves it
            if (!(e.currentTarget.dataset.escaped === "1")) {
              e.preventDefault();
              const t = e.currentTarget;
              const s = t.selectionStart;
              setText(text.slice(0, s) + "  " + text.slice(t.selectionEnd));
              requestAnimationFrame(() => t.setSelectionRange(s + 2, s + 2));
            }
          }
          e.currentTarget.dataset.escaped = e.key === "Escape" ? "1" : "0";
          if ((e.ctrlKey || e.metaKey) && e.key === "Enter") e.currentTarget.form?.requestSubmit();
        }}
      />
      <div id="run-input-state" className={problem ? "field-error" : "field-ok"} role="status">
        {problem ? `Not valid JSON — ${problem}` : "Valid JSON"}
      </div>
      <div className="filters">
        <label>
          Version
          <select value={version} onChange={(e) => setVersion(e.target.value)}>
            {wf.active_version && <option value="">published (v{wf.active_version})</option>}
            {Array.from({ length: wf.latest_version }, (_, i) => wf.latest_version - i).map((v) => (
              <option key={v} value={v}>v{v}{v === wf.active_version ? " (published)" : ""}</option>
            ))}
          </select>
        </label>
        <button type="button" onClick={() => !problem && setText(JSON.stringify(JSON.parse(text || "null"), null, 2))} disabled={Boolean(problem)}>
          Format
        </button>
        <button type="submit" className="primary" disabled={Boolean(problem) || busy}>
          {busy ? "Starting…" : "Run"}
        </button>
        <span className="muted small-text">Ctrl+Enter runs · Esc then Tab leaves the editor</span>
      </div>
      {error ? <ErrorBox error={error} /> : null}
    </form>
  );
}

function TriggerRow({ t, hooks, onChange }: { t: Trigger; hooks: Map<string, Webhook>; onChange: () => void }) {
  const next = useAsync(async () => (t.kind === "schedule" && t.enabled ? api.nextRuns(t.id, 5) : null), [t.id, t.enabled]);
  const [error, setError] = useState<unknown>(null);
  const hook = hooks.get(t.id);
  const cron = (t.config.cron ?? t.config.expression ?? t.config.every ?? t.config.interval) as string | undefined;
  return (
    <div className="card trigger" data-trigger-id={t.id} data-kind={t.kind}>
      <div className="page-head">
        <h3>
          {t.kind} · {t.name || t.node_id} {t.provider && <span className="tag" title="how its requests are verified">{t.provider === "none" ? "unverified" : t.provider}</span>}{" "}
          <Status status={t.enabled ? "enabled" : "disabled"} />
        </h3>
        <button
          type="button"
          onClick={async () => {
            setError(null);
            try {
              await api.setTrigger(t.id, !t.enabled);
              onChange();
            } catch (e) {
              setError(e);
            }
          }}
        >
          {t.enabled ? "Disable" : "Enable"}
        </button>
      </div>
      {error ? <ErrorBox error={error} /> : null}
      <div className="muted small-text">
        node <code>{t.node_id}</code> · {t.origin === "definition" ? "from the definition" : "registered by API"} · last run{" "}
        <Time iso={t.last_run_at} />
      </div>
      {hook && (
        <ul className="urls">
          {hook.urls.map((u) => (
            <li key={u}>
              <code className="url">{u}</code> <CopyButton text={u} label="Copy URL" />
            </li>
          ))}
        </ul>
      )}
      {t.kind === "schedule" && (
        <div>
          {cron && <div>Schedule: <code>{String(cron)}</code></div>}
          {next.data ? (
            <>
              <div>Next runs ({next.data.timezone}):</div>
              <ol className="next-runs">{next.data.next_runs.map((r) => <li key={r}>{dateTime(r)}</li>)}</ol>
            </>
          ) : !t.enabled ? (
            <div className="muted">Disabled: no next runs.</div>
          ) : next.error ? <ErrorBox error={next.error} /> : null}
        </div>
      )}
      {t.kind === "event" && <div>On events of type <code>{String(t.config.event_type ?? t.config.type ?? "?")}</code></div>}
    </div>
  );
}

function TriggersTab({ wf }: { wf: Workflow }) {
  const data = useAsync(async () => {
    const [triggers, hooks] = await Promise.all([
      collect((c) => api.triggers({ workflow_id: wf.id, cursor: c, limit: 200 }), 1000),
      collect((c) => api.webhooks({ workflow_id: wf.id, cursor: c, limit: 200 }), 1000),
    ]);
    return { triggers: triggers.items, hooks: new Map(hooks.items.map((h) => [h.id, h])) };
  }, [wf.id, wf.active_version]);
  if (data.error) return <ErrorBox error={data.error} />;
  if (!data.data) return <Loading />;
  const triggerNodes = (wf.definition.nodes ?? []).filter((n) => n.type === "trigger");
  if (!data.data.triggers.length) {
    return (
      <Empty title="No active triggers.">
        {wf.active_version === null
          ? `Publish the workflow to turn its trigger nodes (${triggerNodes.map((n) => n.id).join(", ") || "none"}) into webhooks, schedules and event triggers.`
          : "This version's trigger nodes are manual; register a webhook with POST /api/webhooks, or run it from the Run tab."}
      </Empty>
    );
  }
  return (
    <div className="stack">
      {data.data.triggers.map((t) => <TriggerRow key={t.id} t={t} hooks={data.data!.hooks} onChange={data.reload} />)}
    </div>
  );
}

function EventsTab({ wf }: { wf: Workflow }) {
  const data = useAsync(async () => {
    const hooks = await collect((c) => api.webhooks({ workflow_id: wf.id, cursor: c, limit: 200 }), 200);
    const events = await Promise.all(hooks.items.map(async (h) => (await api.webhookEvents(h.id, { limit: 50 })).items));
    return events.flat().sort((a, b) => (a.received_at < b.received_at ? 1 : -1));
  }, [wf.id]);
  if (data.error) return <ErrorBox error={data.error} />;
  if (!data.data) return <Loading />;
  if (!data.data.length)
    return <Empty title="No webhook requests yet.">Requests to this workflow's webhook URLs (see Triggers) are listed here with their verification result.</Empty>;
  return (
    <>
      <div className="filters"><button type="button" onClick={data.reload}>Refresh</button></div>
      <table className="table">
        <thead>
          <tr><th>Received</th><th>Status</th><th>Verified</th><th>Event</th><th>Request</th><th>Executions</th></tr>
        </thead>
        <tbody>
          {data.data.map((e) => (
            <tr key={e.id} data-event-id={e.id}>
              <td><Time iso={e.received_at} /></td>
              <td><Status status={e.status} />{e.error && <div className="field-error small-text">{e.error}</div>}</td>
              <td>
                {e.verified ? <span className="ok">✓ verified</span> : <span className="bad">✗ {e.verification_error || "not verified"}</span>}
              </td>
              <td>{e.event_type ?? <span className="muted">—</span>}{e.dedupe_key && <div className="muted small-text">dedupe {e.dedupe_key}</div>}</td>
              <td><code>{e.method} {e.path}</code></td>
              <td>{e.execution_ids.map((x) => <div key={x}><Link to={`/executions/${x}`} className="mono">{x.slice(0, 8)}…</Link></div>)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function ExecutionsTab({ wf }: { wf: Workflow }) {
  const page = useAsync(() => api.workflowExecutions(wf.id, { limit: 20 }), [wf.id]);
  if (page.error) return <ErrorBox error={page.error} />;
  if (!page.data) return <Loading />;
  return (
    <>
      {page.data.items.length ? (
        <ExecutionTable items={page.data.items} showWorkflow={false} />
      ) : (
        <Empty title="Not run yet.">Run it from the Run tab, or call one of its triggers.</Empty>
      )}
      <p><Link to={`/executions?workflow_id=${wf.id}`}>All executions of this workflow, with filters →</Link></p>
    </>
  );
}
