// The shell: sign-in gate, header with navigation and theme, and the pages, each loaded
// on demand so the first load stays small.
import { lazy, Suspense, useEffect, useState, type ReactNode } from "react";
import { api, firstAnswer } from "./api";
import { load } from "./prime";
import { Link, match, navigate, useLocation } from "./router";
import { credential, onSignedOut, signOut } from "./session";
import { applyTheme, savedTheme, type Theme } from "./theme";
import type { Tenant } from "./types";
import { ErrorBox, Loading, Logo } from "./ui";
import Executions from "./pages/Executions";
import { SignIn } from "./pages/SignIn";
import Workflows from "./pages/Workflows";

// The two lists are the pages most often opened first: they come with the shell (a few
// KB) so that they render without another round trip; the rest loads on demand
// (prime.ts starts the opened page's chunk and first requests).
const WorkflowPage = lazy(load.workflow);
const EditorPage = lazy(load.editor);
const ExecutionPage = lazy(load.execution);
const Analytics = lazy(load.analytics);
const Operations = lazy(load.operations);

const NAV = [
  { to: "/workflows", label: "Workflows", key: "w" },
  { to: "/executions", label: "Executions", key: "e" },
  { to: "/analytics", label: "Analytics", key: "a" },
  { to: "/operations", label: "Operations", key: "o" },
];

function route(path: string): ReactNode {
  let m: Record<string, string> | null;
  if (path === "/" || path === "/signin") return null; // redirected below
  if (match("/workflows", path)) return <Workflows />;
  if (path === "/workflows/new") return <EditorPage id={null} />;
  if ((m = match("/workflows/:id/edit", path))) return <EditorPage id={m.id} />;
  if ((m = match("/workflows/:id", path))) return <WorkflowPage id={m.id} />;
  if (match("/executions", path)) return <Executions />;
  if ((m = match("/executions/:id", path))) return <ExecutionPage id={m.id} />;
  if (match("/analytics", path)) return <Analytics />;
  if (match("/operations", path)) return <Operations />;
  return (
    <div className="page">
      <h1>Page not found</h1>
      <p>
        There is no page at <code>{path}</code>. Try the <Link to="/workflows">workflows</Link>.
      </p>
    </div>
  );
}

export function App() {
  const { path } = useLocation();
  const [tenant, setTenant] = useState<Tenant | null>(null);
  // With a credential in the session, draw the pages at once and check it alongside:
  // any 401 (this check's or a page's) signs out.
  const [signedIn, setSignedIn] = useState(Boolean(credential()));
  const [problem, setProblem] = useState<unknown>(null);
  const [theme, setTheme] = useState<Theme>(savedTheme);
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => applyTheme(theme), [theme]);
  useEffect(
    () =>
      onSignedOut(() => {
        setTenant(null);
        setSignedIn(false);
        setNotice("Your key was refused (revoked or expired). Sign in again.");
      }),
    [],
  );
  useEffect(() => {
    if (!credential()) return;
    // after the page's first answer: the name can wait, the page's data cannot (a
    // refused key is refused by the page's own request all the same)
    void firstAnswer.then(() =>
      api.tenant().then(setTenant, (e) => {
        if ((e as { status?: number }).status !== 401) setProblem(e);
      }),
    );
  }, []);
  useEffect(() => {
    if (signedIn && (path === "/" || path === "/signin")) navigate("/workflows", { replace: true });
  }, [signedIn, path]);
  // g then w/e/a/o jumps between the main pages
  useEffect(() => {
    let armed = false;
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (t.closest("input, textarea, select, [contenteditable]") || e.metaKey || e.ctrlKey || e.altKey) return;
      if (armed) {
        armed = false;
        const item = NAV.find((n) => n.key === e.key);
        if (item) navigate(item.to);
        return;
      }
      if (e.key === "g") armed = true;
      if (e.key === "/") {
        const search = document.querySelector<HTMLInputElement>("[data-search]");
        if (search) {
          e.preventDefault();
          search.focus();
        }
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  if (problem) return <div className="page"><ErrorBox error={problem} onRetry={() => location.reload()} /></div>;
  if (!signedIn) {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(t) => {
          setNotice(null);
          setTenant(t);
          setSignedIn(true);
        }}
      />
    );
  }
  const nextTheme: Theme = theme === "system" ? "dark" : theme === "dark" ? "light" : "system";
  return (
    <>
      <a className="skip" href="#main">Skip to content</a>
      <header className="topbar">
        <Link to="/workflows" className="brand">
          <Logo size={22} /> Flowmill
        </Link>
        <nav aria-label="Main">
          {NAV.map((n) => (
            <Link
              key={n.to}
              to={n.to}
              className="nav-link"
              aria-current={path.startsWith(n.to) ? "page" : undefined}
              title={`g then ${n.key}`}
            >
              {n.label}
            </Link>
          ))}
        </nav>
        <div className="topbar-right">
          {tenant && (
            <span className="tenant" title={`tenant ${tenant.id} (${tenant.auth === "jwt" ? "JWT" : "API key"})`}>
              {tenant.name}
            </span>
          )}
          <button type="button" className="small" onClick={() => setTheme(nextTheme)} aria-label={`Theme: ${theme}. Switch to ${nextTheme}`}>
            {theme === "dark" ? "☾ Dark" : theme === "light" ? "☀ Light" : "◐ Auto"}
          </button>
          <button
            type="button"
            className="small"
            onClick={() => {
              signOut();
              setNotice(null);
              navigate("/signin");
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<Loading />}>{route(path)}</Suspense>
      </main>
    </>
  );
}
