import { useEffect, useState } from "react";
import { api, request } from "../api";
import { capabilities, type Capabilities } from "../capabilities";
import { useAsync, useInterval } from "../hooks";
import { useQueryState } from "../router";
import { Confirm, CopyButton, Empty, ErrorBox, Loading, Status, Tabs, Time } from "../ui";

type Tab = "queues" | "keys" | "credentials" | "agents" | "channels";
const OPTIONAL: { id: Tab; path: string; label: string }[] = [
  { id: "credentials", path: "/api/credentials", label: "Credentials" },
  { id: "agents", path: "/api/agents", label: "Agents" },
  { id: "channels", path: "/api/channels", label: "Channels" },
];

export default function Operations() {
  const [query, setQuery] = useQueryState();
  const tab = (query.get("tab") as Tab) || "queues";
  const [caps, setCaps] = useState<Capabilities | null>(null);
  useEffect(() => void capabilities().then(setCaps), []);
  return (
    <div className="page">
      <h1>Operations</h1>
      <Tabs<Tab>
        active={tab}
        onSelect={(t) => setQuery({ tab: t === "queues" ? null : t })}
        tabs={[
          { id: "queues", label: "Queues & workers" },
          { id: "keys", label: "API keys" },
          ...OPTIONAL.map((o) => ({ id: o.id, label: o.label, hidden: !caps?.hasPath(o.path) })),
        ]}
      />
      <div role="tabpanel" className="tabpanel">
        {tab === "queues" && <QueuesTab />}
        {tab === "keys" && <KeysTab />}
        {OPTIONAL.filter((o) => o.id === tab).map((o) =>
          caps?.hasPath(o.path) ? <ResourceTab key={o.id} path={o.path} label={o.label} caps={caps} /> : <Empty key={o.id} title={`This server has no ${o.label.toLowerCase()} API.`} />,
        )}
      </div>
    </div>
  );
}

function QueuesTab() {
  const q = useAsync(() => api.queues(), []);
  useInterval(q.reload, 3000);
  if (q.error) return <ErrorBox error={q.error} onRetry={q.reload} />;
  if (!q.data) return <Loading />;
  const d = q.data;
  const states = [...new Set(d.queues.flatMap((x) => Object.keys(x.counts)))];
  return (
    <div className="stack">
      <section>
        <h2>Your steps in flight</h2>
        <div className="cards">
          {Object.entries(d.steps).map(([s, n]) => (
            <div key={s} className="card stat" data-step-status={s}><div className="stat-n">{n}</div>{s}</div>
          ))}
        </div>
        <p className="muted small-text">Counted from this tenant's live node runs in the database (the source of truth).</p>
      </section>
      <section>
        <h2>Queues <span className="tag">{d.backend === "bullmq" ? "BullMQ on Redis" : "in-process (embedded)"}</span></h2>
        {d.queues_error && <ErrorBox error={{ message: `The queue cannot be read: ${d.queues_error}` }} />}
        {d.queues.length ? (
          <table className="table">
            <thead><tr><th>Queue</th>{states.map((s) => <th key={s} className="num">{s}</th>)}</tr></thead>
            <tbody>
              {d.queues.map((x) => (
                <tr key={x.name} data-queue={x.name}><td className="mono">{x.name}</td>{states.map((s) => <td key={s} className="num">{x.counts[s] ?? 0}</td>)}</tr>
              ))}
            </tbody>
          </table>
        ) : !d.queues_error ? <Empty title="No queue to show." /> : null}
        <p className="muted small-text">Shared by every tenant of this deployment: the figures are totals.</p>
      </section>
      <section>
        <h2>Workers</h2>
        {d.workers.length ? (
          <table className="table">
            <thead><tr><th>Worker</th><th>Kind</th><th>Host</th><th>Started</th><th>Last heartbeat</th><th>State</th></tr></thead>
            <tbody>
              {d.workers.map((w) => (
                <tr key={w.id}>
                  <td className="mono small-text">{w.id}</td><td>{w.kind}</td><td>{w.hostname} (pid {w.pid})</td>
                  <td><Time iso={w.started_at} /></td><td><Time iso={w.heartbeat_at} /></td>
                  <td><Status status={w.alive ? "alive" : "dead"} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : <Empty title="No worker is registered.">Start one with <code>flowmill worker</code>, or run <code>flowmill serve</code> without <code>--no-worker</code>.</Empty>}
      </section>
    </div>
  );
}

function KeysTab() {
  const keys = useAsync(() => api.keys(), []);
  const [name, setName] = useState("");
  const [created, setCreated] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  if (keys.error) return <ErrorBox error={keys.error} />;
  if (!keys.data) return <Loading />;
  return (
    <div className="stack">
      <form
        className="filters"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          try {
            const k = await api.createKey(name.trim());
            setCreated(k.key);
            setName("");
            keys.reload();
          } catch (err) {
            setError(err);
          }
        }}
      >
        <label>New key's name <input value={name} onChange={(e) => setName(e.target.value)} placeholder="ci, zapier…" maxLength={200} /></label>
        <button type="submit" className="primary">Create key</button>
      </form>
      {error ? <ErrorBox error={error} /> : null}
      {created && (
        <div className="notice" role="status">
          New key (shown only now; store it): <code className="secret">{created}</code> <CopyButton text={created} />{" "}
          <button type="button" className="small" onClick={() => setCreated(null)}>Done</button>
        </div>
      )}
      <table className="table">
        <thead><tr><th>Name</th><th>Prefix</th><th>Created</th><th>Last used</th><th>State</th><th /></tr></thead>
        <tbody>
          {keys.data.items.map((k) => (
            <tr key={k.id}>
              <td>{k.name || <span className="muted">unnamed</span>}</td>
              <td className="mono">{k.prefix}</td>
              <td><Time iso={k.created_at} /></td>
              <td><Time iso={k.last_used_at} /></td>
              <td><Status status={k.revoked_at ? "revoked" : "active"} /></td>
              <td>
                {!k.revoked_at && (
                  <Confirm className="small danger" label="Revoke" question={`Revoke key ${k.prefix}? Requests with it fail from now on (including this session, if it is the key you signed in with).`} onConfirm={async () => {
                    try {
                      await api.revokeKey(k.id);
                      keys.reload();
                    } catch (e) {
                      setError(e);
                    }
                  }} />
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

const HIDDEN = /secret|token|password|ciphertext|api_key|private/i;

/** A list of any resource the server has (credentials, agents, channels), read-only
 * except delete when the server has it; secret-looking fields are never shown. */
function ResourceTab({ path, label, caps }: { path: string; label: string; caps: Capabilities }) {
  const list = useAsync(() => request<{ items?: Record<string, unknown>[] } | Record<string, unknown>[]>("GET", path), [path]);
  const [error, setError] = useState<unknown>(null);
  if (list.error) return <ErrorBox error={list.error} />;
  if (!list.data) return <Loading />;
  const items = Array.isArray(list.data) ? list.data : list.data.items ?? [];
  if (!items.length) return <Empty title={`No ${label.toLowerCase()} yet.`}>Create them with <code>POST {path}</code> (see <a href="/docs">/docs</a>).</Empty>;
  const cols = [...new Set(items.flatMap((i) => Object.keys(i)))].filter((c) => !HIDDEN.test(c) && items.every((i) => i[c] === null || typeof i[c] !== "object")).slice(0, 7);
  const canDelete = caps.hasItem(path, "delete");
  return (
    <>
      {error ? <ErrorBox error={error} /> : null}
      <table className="table">
        <thead><tr>{cols.map((c) => <th key={c}>{c}</th>)}{canDelete && <th />}</tr></thead>
        <tbody>
          {items.map((i, n) => (
            <tr key={String(i.id ?? n)}>
              {cols.map((c) => <td key={c}>{String(i[c] ?? "—")}</td>)}
              {canDelete && (
                <td><Confirm className="small danger" label="Delete" question={`Delete ${String(i.name ?? i.id)}?`} onConfirm={async () => {
                  try { await request("DELETE", `${path}/${String(i.id)}`); list.reload(); } catch (e) { setError(e); }
                }} /></td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted small-text">Secrets are never shown. Create and rotate with the API (<a href="/docs">/docs</a>).</p>
    </>
  );
}
