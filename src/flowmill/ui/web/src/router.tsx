// A small router over the History API: every page has a URL, reloads and deep links
// work (the server answers index.html on the app's paths), filters live in the query.
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";

interface Loc {
  path: string;
  query: URLSearchParams;
}

function current(): Loc {
  return { path: window.location.pathname, query: new URLSearchParams(window.location.search) };
}

const Ctx = createContext<Loc>(current());

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  if (to === window.location.pathname + window.location.search) return;
  if (opts.replace) window.history.replaceState(null, "", to);
  else window.history.pushState(null, "", to);
  window.dispatchEvent(new Event("flowmill:navigate"));
  if (!opts.replace) window.scrollTo(0, 0);
}

export function RouterProvider({ children }: { children: ReactNode }) {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const update = () => setLoc(current());
    window.addEventListener("popstate", update);
    window.addEventListener("flowmill:navigate", update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener("flowmill:navigate", update);
    };
  }, []);
  return <Ctx.Provider value={loc}>{children}</Ctx.Provider>;
}

export function useLocation(): Loc {
  return useContext(Ctx);
}

/** Query-string state: read a parameter, write several (replacing the history entry). */
export function useQueryState(): [URLSearchParams, (changes: Record<string, string | string[] | null>, push?: boolean) => void] {
  const { path, query } = useLocation();
  const set = (changes: Record<string, string | string[] | null>, push = false) => {
    const q = new URLSearchParams(query);
    for (const [k, v] of Object.entries(changes)) {
      q.delete(k);
      if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
      else if (v !== null && v !== "") q.set(k, v);
    }
    const s = q.toString();
    navigate(path + (s ? `?${s}` : ""), { replace: !push });
  };
  return [query, set];
}

/** `/executions/:id` against `/executions/0193...` → `{id: "0193..."}`, else null. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const a = pattern.split("/").filter(Boolean);
  const b = path.split("/").filter(Boolean);
  if (a.length !== b.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    if (a[i].startsWith(":")) out[a[i].slice(1)] = decodeURIComponent(b[i]);
    else if (a[i] !== b[i]) return null;
  }
  return out;
}

export function Link(props: {
  to: string;
  children: ReactNode;
  className?: string;
  title?: string;
  "aria-current"?: "page" | undefined;
}) {
  const { to, children, ...rest } = props;
  return (
    <a
      href={to}
      {...rest}
      onClick={(e) => {
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(to);
      }}
    >
      {children}
    </a>
  );
}
