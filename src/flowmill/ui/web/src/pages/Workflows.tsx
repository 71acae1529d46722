import { useEffect, useRef, useState } from "react";
import { api, ApiError } from "../api";
import { workflowStats, type WorkflowStats } from "../analytics";
import { percent } from "../format";
import { useAsync } from "../hooks";
import { Link, navigate, useQueryState } from "../router";
import type { WorkflowSummary } from "../types";
import { Empty, ErrorBox, Loading, Status, Time } from "../ui";

function Import({ onDone }: { onDone: () => void }) {
  const input = useRef<HTMLInputElement>(null);
  const [error, setError] = useState<unknown>(null);
  return (
    <>
      <input
        ref={input}
        type="file"
        accept="application/json,.json"
        hidden
        data-testid="import-file"
        onChange={async (e) => {
          const file = e.target.files?.[0];
          e.target.value = "";
          if (!file) return;
          setError(null);
          try {
            const doc = JSON.parse(await file.text());
            const wf = await api.importWorkflow(doc);
            onDone();
            navigate(`/workflows/${wf.id}`);
          } catch (err) {
            setError(err instanceof ApiError ? err : new ApiError(0, "invalid_json", `${file.name} is not JSON: ${(err as Error).message}`));
          }
        }}
      />
      <button type="button" className="primary" onClick={() => input.current?.click()}>
        Import workflow…
      </button>
      {error ? <div className="full"><ErrorBox error={error} /></div> : null}
    </>
  );
}

function StatsCells({ wf }: { wf: WorkflowSummary }) {
  const [s, setS] = useState<WorkflowStats | null>(null);
  useEffect(() => {
    let live = true;
    workflowStats(wf.id).then((x) => live && setS(x), () => live && setS(null));
    return () => {
      live = false;
    };
  }, [wf.id, wf.updated_at]);
  if (!s) return (<><td className="muted">…</td><td className="muted">…</td></>);
  return (
    <>
      <td>
        {s.last ? (
          <Link to={`/executions/${s.last.id}`} title="Open the last execution">
            <Status status={s.last.status} /> <Time iso={s.last.created_at} />
          </Link>
        ) : (
          <span className="muted">never run</span>
        )}
      </td>
      <td title={s.ended ? `${s.succeeded} of the last ${s.ended} ended executions succeeded` : "no ended executions"}>
        {s.ended ? (
          <span className="rate">
            <span className="rate-bar"><span style={{ width: `${(s.succeeded / s.ended) * 100}%` }} /></span>
            {percent(s.succeeded / s.ended)}
          </span>
        ) : (
          <span className="muted">—</span>
        )}
      </td>
    </>
  );
}

export default function Workflows() {
  const [query, setQuery] = useQueryState();
  const search = query.get("search") ?? "";
  const status = query.get("status") ?? "";
  const cursor = query.get("cursor");
  const [text, setText] = useState(search);
  useEffect(() => setText(search), [search]);
  useEffect(() => {
    const t = setTimeout(() => text !== search && setQuery({ search: text, cursor: null }), 250);
    return () => clearTimeout(t);
  }, [text, search, setQuery]);
  const page = useAsync(
    (signal) => api.workflows({ search, status, cursor, limit: 50 }, signal),
    [search, status, cursor],
  );
  return (
    <div className="page">
      <div className="page-head">
        <h1>Workflows</h1>
        <div className="actions">
          <Link to="/workflows/new" className="button-link">New workflow</Link>
          <Import onDone={page.reload} />
        </div>
      </div>
      <div className="filters" role="search">
        <label>
          Search
          <input
            type="search"
            data-search
            placeholder="name or description  ( / )"
            value={text}
            onChange={(e) => setText(e.target.value)}
          />
        </label>
        <label>
          Status
          <select value={status} onChange={(e) => setQuery({ status: e.target.value, cursor: null })}>
            <option value="">any</option>
            <option value="active">active</option>
            <option value="draft">draft</option>
            <option value="inactive">inactive</option>
          </select>
        </label>
      </div>
      {page.error ? (
        <ErrorBox error={page.error} onRetry={page.reload} />
      ) : !page.data ? (
        <Loading />
      ) : page.data.items.length === 0 ? (
        search || status ? (
          <Empty title="No workflow matches these filters.">
            <button type="button" onClick={() => setQuery({ search: null, status: null, cursor: null })}>
              Clear the filters
            </button>
          </Empty>
        ) : (
          <Empty title="No workflows yet.">
            Import a workflow file (try <code>examples/seed-webhook-test.json</code>) with the button
            above, or create one with <code>POST /api/workflows</code>.
          </Empty>
        )
      ) : (
        <>
          <table className="table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Status</th>
                <th>Version</th>
                <th>Last run</th>
                <th>Success (last 20)</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              {page.data.items.map((wf) => (
                <tr key={wf.id} data-workflow-id={wf.id}>
                  <td>
                    <Link to={`/workflows/${wf.id}`} className="strong">{wf.name}</Link>
                    {wf.description && <div className="muted small-text">{wf.description}</div>}
                    {wf.tags.map((t) => <span key={t} className="tag">{t}</span>)}
                  </td>
                  <td><Status status={wf.status} /></td>
                  <td>
                    {wf.active_version ? `v${wf.active_version} live` : "not published"}
                    {wf.latest_version !== wf.active_version && (
                      <div className="muted small-text">draft v{wf.latest_version}</div>
                    )}
                  </td>
                  <StatsCells wf={wf} />
                  <td><Time iso={wf.updated_at} /></td>
                </tr>
              ))}
            </tbody>
          </table>
          <div className="pager">
            {cursor && <button type="button" onClick={() => window.history.back()}>← Newer</button>}
            {page.data.next_cursor && (
              <button type="button" onClick={() => setQuery({ cursor: page.data!.next_cursor }, true)}>
                Older →
              </button>
            )}
          </div>
        </>
      )}
    </div>
  );
}
