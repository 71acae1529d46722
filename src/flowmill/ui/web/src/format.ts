// Dates, durations and ids as people read them.

export function shortId(id: string): string {
  return id.length > 12 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  if (m < 60) return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function span(s: number): string {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "—";
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 0) return `in ${span(-s)}`;
  if (s < 5) return "just now";
  return `${span(s)} ago`;
}

// One formatter, made on first use: `toLocaleString` with options builds a new one on
// every call, which was the costliest function of the executions page's first render
// (31–83 ms for 50 rows at load 7–9, Chromium's profiler).
let dateTimeFormat: Intl.DateTimeFormat | null = null;

export function dateTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  dateTimeFormat ??= new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  return dateTimeFormat.format(new Date(iso));
}

export function percent(x: number | null): string {
  return x === null ? "—" : `${Math.round(x * 100)} %`;
}
