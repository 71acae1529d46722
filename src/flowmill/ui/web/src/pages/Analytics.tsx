import { useState } from "react";
import { api, collect } from "../api";
import { clientSideAnalytics, LIMITS, type AnalyticsReport, type Bucket } from "../analytics";
import { duration } from "../format";
import { useAsync } from "../hooks";
import { Link, useQueryState } from "../router";
import { Empty, ErrorBox, Loading } from "../ui";

const RANGES: Record<string, { ms: number; bucket: number; label: string }> = {
  "24h": { ms: 24 * 3600e3, bucket: 3600e3, label: "last 24 hours, by hour" },
  "7d": { ms: 7 * 86400e3, bucket: 6 * 3600e3, label: "last 7 days, by 6 hours" },
  "30d": { ms: 30 * 86400e3, bucket: 86400e3, label: "last 30 days, by day" },
};
const STACK = ["succeeded", "failed", "cancelled", "running", "waiting", "queued", "pending"];

function Chart({ buckets, bucketMs }: { buckets: Bucket[]; bucketMs: number }) {
  const max = Math.max(1, ...buckets.map((b) => b.total));
  const w = 100 / buckets.length;
  const fmt = (t: number) =>
    bucketMs >= 86400e3
      ? new Date(t).toLocaleDateString(undefined, { month: "short", day: "numeric" })
      : new Date(t).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  return (
    <figure className="chart">
      <svg viewBox="0 0 100 50" preserveAspectRatio="none" role="img" aria-label="Executions over time by status">
        {buckets.map((b, i) => {
          let y = 50;
          return STACK.map((s) => {
            const n = b.counts[s] ?? 0;
            if (!n) return null;
            const h = (n / max) * 48;
            y -= h;
            return (
              <rect key={`${i}-${s}`} x={i * w + w * 0.1} y={y} width={w * 0.8} height={h} className={`fill-${s}`}>
                <title>{`${fmt(b.start)}: ${n} ${s}`}</title>
              </rect>
            );
          });
        })}
      </svg>
      <div className="chart-axis"><span>{fmt(buckets[0].start)}</span><span>max {max} per bucket</span><span>{fmt(buckets[buckets.length - 1].start)}</span></div>
      <figcaption className="legend">
        {STACK.map((s) => <span key={s}><i className={`swatch fill-${s}`} /> {s}</span>)}
      </figcaption>
    </figure>
  );
}

function Report({ r, names, bucketMs }: { r: AnalyticsReport; names: Map<string, string>; bucketMs: number }) {
  const total = r.buckets.reduce((a, b) => a + b.total, 0);
  const failed = r.buckets.reduce((a, b) => a + (b.counts.failed ?? 0), 0);
  return (
    <>
      <div className="cards">
        <div className="card stat"><div className="stat-n">{total}</div>executions</div>
        <div className="card stat"><div className="stat-n">{total ? `${Math.round(((total - failed) / total) * 100)} %` : "—"}</div>not failed</div>
        <div className="card stat"><div className="stat-n">{duration(r.durations.p50)}</div>median duration</div>
        <div className="card stat"><div className="stat-n">{duration(r.durations.p95)}</div>p95 duration</div>
      </div>
      <section>
        <h2>Executions over time</h2>
        {total ? <Chart buckets={r.buckets} bucketMs={bucketMs} /> : <Empty title="No executions in this range." />}
      </section>
      <section className="two-col">
        <div>
          <h2>Duration percentiles</h2>
          <table className="table">
            <tbody>
              {(["p50", "p90", "p95", "p99", "max"] as const).map((k) => (
                <tr key={k}><th>{k}</th><td className="num">{duration(r.durations[k])}</td></tr>
              ))}
              <tr><th>ended executions</th><td className="num">{r.durations.count}</td></tr>
            </tbody>
          </table>
        </div>
        <div>
          <h2>Webhook traffic by outcome</h2>
          {r.webhooks.length ? (
            <table className="table">
              <thead><tr><th>Webhook</th><th className="num">Total</th><th>Outcomes</th></tr></thead>
              <tbody>
                {r.webhooks.map((w) => (
                  <tr key={w.webhookId}>
                    <td>{w.name || w.provider}<div className="muted small-text">{w.provider}</div></td>
                    <td className="num">{w.total}</td>
                    <td>
                      {Object.entries(w.byStatus).map(([s, n]) => <span key={s} className={`status status-${s}`}>{s} {n}</span>)}
                      {w.unverified > 0 && <span className="status status-failed">unverified {w.unverified}</span>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : <Empty title="No webhook requests in this range." />}
        </div>
      </section>
      <section className="two-col">
        <div>
          <h2>Slowest nodes (p95)</h2>
          <NodeTable rows={r.slowestNodes} names={names} metric="p95" />
        </div>
        <div>
          <h2>Most failing nodes</h2>
          <NodeTable rows={r.failingNodes} names={names} metric="failures" />
        </div>
      </section>
      <p className="muted small-text">
        Computed in this browser from the executions API: {r.basis.executions} executions
        {r.basis.truncated && ` (the newest ${LIMITS.executions}; the range holds more)`}, node figures from the
        newest {r.basis.detailed} ended ones. A read-side analytics API will replace this with exact server figures.
      </p>
    </>
  );
}

function NodeTable({ rows, names, metric }: { rows: AnalyticsReport["slowestNodes"]; names: Map<string, string>; metric: "p95" | "failures" }) {
  if (!rows.length) return <Empty title={metric === "failures" ? "No failed steps. 🎉" : "No steps ran."} />;
  return (
    <table className="table">
      <thead><tr><th>Node</th><th className="num">Attempts</th><th className="num">{metric === "p95" ? "p95" : "Failed"}</th><th className="num">{metric === "p95" ? "Average" : "Retries"}</th></tr></thead>
      <tbody>
        {rows.map((n) => (
          <tr key={`${n.workflowId}/${n.nodeId}`}>
            <td><strong>{n.nodeId}</strong><div className="small-text"><Link to={`/workflows/${n.workflowId}`}>{names.get(n.workflowId) ?? n.workflowId.slice(0, 8)}</Link></div></td>
            <td className="num">{n.runs}</td>
            <td className="num">{metric === "p95" ? duration(n.p95Ms) : n.failures}</td>
            <td className="num">{metric === "p95" ? duration(n.avgMs) : n.retries}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export default function Analytics() {
  const [query, setQuery] = useQueryState();
  const range = RANGES[query.get("range") ?? ""] ? (query.get("range") as string) : "24h";
  const workflowId = query.get("workflow_id") ?? "";
  const [progress, setProgress] = useState("");
  const names = useAsync(async () => new Map((await collect((c) => api.workflows({ cursor: c, limit: 200 }), 1000)).items.map((w) => [w.id, w.name])), []);
  const report = useAsync(() => {
    const now = Date.now();
    const r = RANGES[range];
    return clientSideAnalytics.report({ from: now - r.ms, to: now + 1, bucketMs: r.bucket, workflowId: workflowId || undefined }, setProgress);
  }, [range, workflowId]);
  return (
    <div className="page">
      <div className="page-head">
        <h1>Analytics</h1>
        <div className="filters">
          <label>
            Range
            <select value={range} onChange={(e) => setQuery({ range: e.target.value })}>
              {Object.entries(RANGES).map(([k, v]) => <option key={k} value={k}>{v.label}</option>)}
            </select>
          </label>
          <label>
            Workflow
            <select value={workflowId} onChange={(e) => setQuery({ workflow_id: e.target.value })}>
              <option value="">all</option>
              {[...(names.data ?? new Map<string, string>()).entries()].map(([id, n]) => <option key={id} value={id}>{n}</option>)}
            </select>
          </label>
          <button type="button" onClick={report.reload}>Refresh</button>
        </div>
      </div>
      {report.error ? <ErrorBox error={report.error} onRetry={report.reload} /> : report.loading || !report.data ? <Loading what={`Computing (${progress || "starting"})`} /> : <Report r={report.data} names={names.data ?? new Map()} bucketMs={RANGES[range].bucket} />}
    </div>
  );
}
