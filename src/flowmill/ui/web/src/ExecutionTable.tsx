import { duration, shortId } from "./format";
import { Link } from "./router";
import type { ExecutionSummary } from "./types";
import { Status, Time } from "./ui";

export function ExecutionTable({
  items, names, showWorkflow = true, extraColumns = [],
}: {
  items: ExecutionSummary[];
  names?: Map<string, string>;
  showWorkflow?: boolean;
  extraColumns?: { label: string; field: string }[];
}) {
  return (
    <table className="table executions-table">
      <thead>
        <tr>
          <th>Status</th>
          <th>Execution</th>
          {showWorkflow && <th>Workflow</th>}
          <th>Trigger</th>
          {extraColumns.map((c) => <th key={c.field}>{c.label}</th>)}
          <th>Started</th>
          <th className="num">Duration</th>
        </tr>
      </thead>
      <tbody>
        {items.map((e) => (
          <tr key={e.id} data-execution-id={e.id} data-status={e.status}>
            <td><Status status={e.status} /></td>
            <td>
              <Link to={`/executions/${e.id}`} className="mono" title={e.id}>{shortId(e.id)}</Link>
              {e.retry_of && <span className="tag" title={`retry of ${e.retry_of}`}>retry</span>}
              {e.parent_execution_id && <span className="tag" title={`child of ${e.parent_execution_id}`}>child</span>}
            </td>
            {showWorkflow && (
              <td>
                <Link to={`/workflows/${e.workflow_id}`}>{names?.get(e.workflow_id) ?? shortId(e.workflow_id)}</Link>
                <span className="muted"> v{e.version}</span>
              </td>
            )}
            <td>{e.trigger_type}</td>
            {extraColumns.map((c) => <td key={c.field}>{String(e[c.field] ?? "—")}</td>)}
            <td><Time iso={e.started_at ?? e.created_at} /></td>
            <td className="num">{duration(e.duration_ms)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
