// The public API, as the app uses it. Every request carries the session's credential
// as a Bearer token; a 401 signs the user out. Nothing here is private to the app:
// each call is one `curl -H "Authorization: Bearer $KEY"` away.
import { credential, signOut } from "./session";
import type { NodeTypeInfo, Problem } from "./editor/model";
import type {
  ApiKey, ExecutionDetail, ExecutionSummary, LogLine, Page, Queues, Tenant, Trigger,
  Version, VersionDiff, VersionSummary, Webhook, WebhookEvent, Workflow, WorkflowSummary,
} from "./types";

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public details: { field?: string | null; message: string; code: string }[] = [],
  ) {
    super(message);
  }
}

type Query = Record<string, string | number | boolean | string[] | null | undefined>;

export function qs(query: Query = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === null || v === undefined || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => p.append(k, x));
    else p.append(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : "";
}

// Settles once the page's first request has its answer (or after a second and a half
// if it makes none): the app's own background asks (the header's tenant name) wait
// behind what the page draws first, rather than sharing a busy server with it.
let answered: () => void = () => undefined;
export const firstAnswer = new Promise<void>((resolve) => {
  answered = resolve;
  setTimeout(resolve, 1500);
});

export async function request<T>(
  method: string,
  path: string,
  opts: { query?: Query; body?: unknown; token?: string; signal?: AbortSignal } = {},
): Promise<T> {
  const token = opts.token ?? credential();
  const headers: Record<string, string> = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path + qs(opts.query), {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (e) {
    answered();
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "network", "Flowmill did not answer: is the server running?");
  }
  answered();
  if (res.status === 204) return undefined as T;
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    const err = (body as { error?: { code?: string; message?: string; details?: [] } })?.error;
    const e = new ApiError(
      res.status,
      err?.code ?? "error",
      err?.message ?? `${res.status} ${res.statusText}`,
      err?.details ?? [],
    );
    if (res.status === 401 && !opts.token) signOut();
    throw e;
  }
  return body as T;
}

const get = <T>(path: string, query?: Query, signal?: AbortSignal) =>
  request<T>("GET", path, { query, signal });
const post = <T>(path: string, body?: unknown, query?: Query) =>
  request<T>("POST", path, { body, query });

export interface ExecutionQuery {
  workflow_id?: string;
  status?: string[];
  trigger_type?: string;
  started_from?: string;
  started_to?: string;
  limit?: number;
  cursor?: string | null;
  [extra: string]: string | string[] | number | null | undefined;
}

export const api = {
  tenant: (token?: string) => request<Tenant>("GET", "/api/tenant", { token }),
  workflows: (q: Query, signal?: AbortSignal) =>
    get<Page<WorkflowSummary>>("/api/workflows", q, signal),
  workflow: (id: string) => get<Workflow>(`/api/workflows/${id}`),
  importWorkflow: (doc: unknown) => post<Workflow>("/api/workflows/import", doc),
  publish: (id: string) => post<Workflow>(`/api/workflows/${id}/publish`),
  unpublish: (id: string) => post<Workflow>(`/api/workflows/${id}/unpublish`),
  versions: (id: string, q: Query = {}) =>
    get<Page<VersionSummary>>(`/api/workflows/${id}/versions`, q),
  version: (id: string, v: number) => get<Version>(`/api/workflows/${id}/versions/${v}`),
  publishVersion: (id: string, v: number) =>
    post<Workflow>(`/api/workflows/${id}/versions/${v}/publish`),
  diff: (id: string, a: number, b: number) =>
    get<VersionDiff>(`/api/workflows/${id}/versions/${a}/diff/${b}`),
  execute: (id: string, input: unknown, version?: number) =>
    post<{ execution_id: string; status: string }>(`/api/workflows/${id}/execute`, {
      input,
      ...(version ? { version } : {}),
    }),
  executions: (q: ExecutionQuery, signal?: AbortSignal) =>
    get<Page<ExecutionSummary>>("/api/executions", q as Query, signal),
  workflowExecutions: (id: string, q: ExecutionQuery) =>
    get<Page<ExecutionSummary>>(`/api/workflows/${id}/executions`, q as Query),
  execution: (id: string, signal?: AbortSignal) =>
    get<ExecutionDetail>(`/api/executions/${id}`, undefined, signal),
  children: (id: string, q: Query = {}, signal?: AbortSignal) =>
    get<Page<ExecutionSummary>>(`/api/executions/${id}/children`, q, signal),
  logs: (id: string, q: Query = {}) => get<Page<LogLine>>(`/api/executions/${id}/logs`, q),
  cancel: (id: string) => post<{ status: string }>(`/api/executions/${id}/cancel`),
  retry: (id: string, fromStart: boolean) =>
    post<{ execution_id: string }>(`/api/executions/${id}/retry`, { from_start: fromStart }),
  triggers: (q: Query) => get<Page<Trigger>>("/api/triggers", q),
  setTrigger: (id: string, enabled: boolean) =>
    request<Trigger>("PATCH", `/api/triggers/${id}`, { body: { enabled } }),
  nextRuns: (id: string, n = 5) =>
    get<{ next_runs: string[]; timezone: string }>(`/api/triggers/${id}/next_runs`, { n }),
  webhooks: (q: Query) => get<Page<Webhook>>("/api/webhooks", q),
  webhookEvents: (id: string, q: Query = {}) =>
    get<Page<WebhookEvent>>(`/api/webhooks/${id}/events`, q),
  keys: () => get<{ items: ApiKey[] }>("/api/keys"),
  createKey: (name: string) => post<ApiKey & { key: string }>("/api/keys", { name }),
  revokeKey: (id: string) => request<ApiKey>("DELETE", `/api/keys/${id}`),
  queues: () => get<Queues>("/api/queues"),
  rerunFrom: (executionId: string, fromNode: string, version: number, pinned: Record<string, unknown>) =>
    post<{ execution_id: string }>(`/api/executions/${executionId}/retry`, {
      from_node: fromNode,
      version,
      ...(Object.keys(pinned).length ? { pinned } : {}),
    }),
  nodeTypes: () => get<{ items: NodeTypeInfo[] }>("/api/node-types"),
  validate: (definition: unknown) =>
    post<{ valid: boolean; problems: Problem[] }>("/api/workflows/validate", definition),
  createWorkflow: (definition: unknown) => post<Workflow>("/api/workflows", definition),
  addVersion: (id: string, definition: unknown, baseVersion: number | null, note = "") =>
    post<Version & { created: boolean }>(`/api/workflows/${id}/versions`, {
      definition,
      note,
      ...(baseVersion ? { base_version: baseVersion } : {}),
    }),
};

// The editor's first requests, started with the app (before the editor's code has
// loaded) when the page opened is an editor: one round trip less before the canvas.
let early: { workflow: Map<string, Promise<Workflow>>; types: Promise<{ items: NodeTypeInfo[] }> | null } = {
  workflow: new Map(),
  types: null,
};

export function primeEditor(workflowId: string | null): void {
  if (workflowId) early.workflow.set(workflowId, api.workflow(workflowId));
  early.types = api.nodeTypes();
  // a failed early request is asked again by the page
  for (const p of [...early.workflow.values(), early.types]) p.catch(() => undefined);
}

/** The primed request if there is one (used once), else a new one. */
export function editorWorkflow(id: string): Promise<Workflow> {
  const p = early.workflow.get(id);
  early.workflow.delete(id);
  return p ?? api.workflow(id);
}

export function editorNodeTypes(): Promise<{ items: NodeTypeInfo[] }> {
  const p = early.types;
  early = { ...early, types: null };
  return p ?? api.nodeTypes();
}

/** Every item of a keyset-paged list, up to `max`. */
export async function collect<T>(
  page: (cursor: string | null) => Promise<Page<T>>,
  max: number,
): Promise<{ items: T[]; truncated: boolean }> {
  const items: T[] = [];
  let cursor: string | null = null;
  for (;;) {
    const p = await page(cursor);
    items.push(...p.items);
    if (!p.next_cursor) return { items, truncated: false };
    if (items.length >= max) return { items: items.slice(0, max), truncated: true };
    cursor = p.next_cursor;
  }
}

/** A credential as the picker shows it: name and type only (the API never sends a
 * secret, and the picker does not show even its hint). */
export interface CredentialChoice {
  id: string;
  name: string;
  type: string;
}

/** The tenant's credentials for the editor's pickers; null when the server has no
 * credentials API (the field stays a text field). */
export async function credentialChoices(): Promise<CredentialChoice[] | null> {
  try {
    const r = await request<{ items: CredentialChoice[] }>("GET", "/api/credentials");
    return r.items.map(({ id, name, type }) => ({ id, name, type }));
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405 || e.status === 403)) return null;
    throw e;
  }
}
