// What this server offers, read once from /openapi.json: pages for credentials, agents
// and channels, the customer-id filter, sub-execution lists and log filters appear only
// when the server has the endpoints or parameters behind them.

interface OpenApi {
  paths?: Record<string, Record<string, { parameters?: { name: string; in: string }[] }>>;
}

export interface Capabilities {
  hasPath(path: string, method?: string): boolean;
  hasParam(path: string, name: string, method?: string): boolean;
  /** `path/{anything}` with `method`: e.g. DELETE /api/credentials/{credential_id}. */
  hasItem(path: string, method: string): boolean;
}

let loaded: Promise<Capabilities> | null = null;

export function capabilities(): Promise<Capabilities> {
  loaded ??= fetch("/openapi.json")
    .then((r) => (r.ok ? (r.json() as Promise<OpenApi>) : {}))
    .catch(() => ({}) as OpenApi)
    .then(fromDocument);
  return loaded;
}

export function fromDocument(doc: OpenApi): Capabilities {
  const paths = doc.paths ?? {};
  return {
    hasPath: (path, method = "get") => Boolean(paths[path]?.[method]),
    hasParam: (path, name, method = "get") =>
      Boolean(paths[path]?.[method]?.parameters?.some((p) => p.name === name)),
    hasItem: (path, method) =>
      Object.keys(paths).some((p) => /^\{[^}/]+\}$/.test(p.slice(path.length + 1)) && p.startsWith(`${path}/`) && Boolean(paths[p][method])),
  };
}
