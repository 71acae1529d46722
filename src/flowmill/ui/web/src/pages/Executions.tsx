import { useEffect, useMemo, useState } from "react";
import { api, collect, type ExecutionQuery } from "../api";
import { capabilities, type Capabilities } from "../capabilities";
import { ExecutionTable } from "../ExecutionTable";
import { executionQueryOf, takePrimed } from "../executionQuery";
import { useAsync, useInterval } from "../hooks";
import { useQueryState } from "../router";
import { EXEC_STATUSES } from "../types";
import { Empty, ErrorBox, Loading } from "../ui";

const TRIGGERS = ["manual", "webhook", "schedule", "event", "retry"];

export default function Executions() {
  const [query, setQuery] = useQueryState();
  const statuses = query.getAll("status");
  const workflowId = query.get("workflow_id") ?? "";
  const trigger = query.get("trigger_type") ?? "";
  const from = query.get("from") ?? "";
  const to = query.get("to") ?? "";
  const customer = query.get("customer_id") ?? "";
  const cursor = query.get("cursor");
  const [caps, setCaps] = useState<Capabilities | null>(null);
  const customerFilter = caps?.hasParam("/api/executions", "customer_id") ?? false;
  // The query changes when the customer filter starts to apply, not when the
  // capabilities arrive: they came after the first rows and asked the same list again.
  const customerAsked = customerFilter && customer !== "";
  const q: ExecutionQuery = useMemo(
    () => executionQueryOf(query, customerAsked),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [statuses.join(","), workflowId, trigger, from, to, customer, customerAsked, cursor],
  );
  const page = useAsync((signal) => takePrimed(q) ?? api.executions(q, signal), [q]);
  // what only the filters need (the workflows' names, the optional customer filter)
  // is asked once the first rows are in: the list goes first to a busy server. A
  // customer id in the URL needs the capabilities before the list.
  const first = page.data !== undefined || page.error !== undefined || Boolean(customer);
  useEffect(() => {
    if (first) void capabilities().then(setCaps);
  }, [first]);
  const names = useAsync(
    async () => {
      if (!first) return undefined;
      const all = await collect((c) => api.workflows({ cursor: c, limit: 200 }), 1000);
      return new Map(all.items.map((w) => [w.id, w.name]));
    },
    [first],
  );
  const [live, setLive] = useState(true);
  // The first page follows new executions; older pages stay put.
  useInterval(page.reload, live && !cursor ? 2000 : null);
  const filtered = statuses.length > 0 || workflowId || trigger || from || to || customer;

  return (
    <div className="page">
      <div className="page-head">
        <h1>Executions</h1>
        <label className="inline">
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} /> Follow new executions
        </label>
      </div>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <fieldset className="status-filter">
          <legend>Status</legend>
          {EXEC_STATUSES.map((s) => (
            <label key={s} className="chip">
              <input
                type="checkbox"
                name="status"
                value={s}
                checked={statuses.includes(s)}
                onChange={(e) =>
                  setQuery({
                    status: e.target.checked ? [...statuses, s] : statuses.filter((x) => x !== s),
                    cursor: null,
                  })
                }
              />
              {s}
            </label>
          ))}
        </fieldset>
        <label>
          Workflow
          <select value={workflowId} onChange={(e) => setQuery({ workflow_id: e.target.value, cursor: null })} name="workflow">
            <option value="">any</option>
            {[...(names.data ?? new Map<string, string>()).entries()].map(([id, name]) => (
              <option key={id} value={id}>{name}</option>
            ))}
          </select>
        </label>
        <label>
          Trigger
          <input list="trigger-types" name="trigger" value={trigger} placeholder="any" onChange={(e) => setQuery({ trigger_type: e.target.value, cursor: null })} />
          <datalist id="trigger-types">{TRIGGERS.map((t) => <option key={t} value={t} />)}</datalist>
        </label>
        <label>
          Started after
          <input type="datetime-local" name="from" value={from} onChange={(e) => setQuery({ from: e.target.value, cursor: null })} />
        </label>
        <label>
          Started before
          <input type="datetime-local" name="to" value={to} onChange={(e) => setQuery({ to: e.target.value, cursor: null })} />
        </label>
        {customerFilter && (
          <label>
            Customer id
            <input name="customer" value={customer} onChange={(e) => setQuery({ customer_id: e.target.value, cursor: null })} />
          </label>
        )}
        {filtered && (
          <button type="button" onClick={() => setQuery({ status: null, workflow_id: null, trigger_type: null, from: null, to: null, customer_id: null, cursor: null })}>
            Clear filters
          </button>
        )}
      </form>
      {page.error ? (
        <ErrorBox error={page.error} onRetry={page.reload} />
      ) : !page.data ? (
        <Loading what="Loading executions" />
      ) : page.data.items.length === 0 ? (
        filtered ? (
          <Empty title="No execution matches these filters.">Widen the time range or clear a filter.</Empty>
        ) : cursor ? (
          <Empty title="No older executions." />
        ) : (
          <Empty title="No executions yet.">
            Run a workflow from its page (Workflows → a workflow → Run), call one of its webhook URLs, or wait for a schedule. New executions appear here by themselves.
          </Empty>
        )
      ) : (
        <>
          <ExecutionTable items={page.data.items} names={names.data} />
          <nav className="pager" aria-label="Pages">
            {cursor && <button type="button" onClick={() => window.history.back()}>← Newer</button>}
            {cursor && <button type="button" onClick={() => setQuery({ cursor: null }, true)}>Newest</button>}
            {page.data.next_cursor && (
              <button type="button" onClick={() => setQuery({ cursor: page.data!.next_cursor }, true)}>
                Older →
              </button>
            )}
          </nav>
        </>
      )}
    </div>
  );
}
