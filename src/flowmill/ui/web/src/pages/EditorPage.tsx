// The visual editor: palette, canvas, a side panel with the selected node's form, the
// test run and the JSON. The definition (with undo history) is the only state; every
// change is validated by the server as you type, saved as a new version from the
// version it started from (so a concurrent save is refused, never overwritten), and
// test-run on the saved draft with each node's result drawn on the canvas.
import { ReactFlowProvider } from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api, ApiError, editorNodeTypes, editorWorkflow } from "../api";
import { EditorCanvas, type CanvasHandle } from "../editor/EditorCanvas";
import {
  addNode, autoLayout, connect, EMPTY, fragment, initial, move, nodesOf, paste, pinsBefore, problemsByPlace, templatePaths,
  record, redo, remove, undo, updateNode, withPositions,
  type History, type NodeTypeInfo, type Problem, type XY,
} from "../editor/model";
import { Palette } from "../editor/Palette";
import { NodePanel } from "../editor/NodePanel";
import { JsonPanel } from "../editor/JsonPanel";
import { TestRunPanel, usePins, useTestRun } from "../editor/TestRun";
import { useBodyRun, type BodyRun } from "../editor/bodyRun";
import { nodeOfProblem, problemsIn, scopeOf, scopeOfProblem, withScope } from "../editor/scope";
import { Link, navigate } from "../router";
import type { Definition, VersionDiff } from "../types";
import { ErrorBox, Loading } from "../ui";

type Save =
  | { kind: "idle" }
  | { kind: "saving" }
  | { kind: "saved"; version: number }
  | { kind: "conflict"; message: string }
  | { kind: "error"; error: unknown };

type Panel = "node" | "test" | "json";

const AUTOSAVE_MS = 3000;
const AUTOSAVE_KEY = "flowmill.editor.autosave";

/** The stored definition as the editor holds it: no fields the API owns. */
function editable(def: Definition): Definition {
  const { tenant_id: _t, id: _i, version: _v, status: _s, ...rest } = def as Record<string, unknown>;
  return withPositions(rest as Definition);
}

const same = (a: Definition, b: Definition) => JSON.stringify(a) === JSON.stringify(b);

export default function EditorPage({ id }: { id: string | null }) {
  const [workflowId, setWorkflowId] = useState<string | null>(id);
  const [history, setHistory] = useState<History | null>(id ? null : initial(EMPTY));
  const [saved, setSaved] = useState<Definition | null>(null);
  const [base, setBase] = useState<number | null>(null);
  const [active, setActive] = useState<number | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [types, setTypes] = useState<NodeTypeInfo[] | null>(null);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [checking, setChecking] = useState(false);
  const [save, setSave] = useState<Save>({ kind: "idle" });
  const [selected, setSelected] = useState<string[]>([]);
  const [panel, setPanel] = useState<Panel>("node");
  const [offered, setOffered] = useState<string | null>(null);
  const [review, setReview] = useState<{ version: number; diff: VersionDiff } | null>(null);
  // the loop body being edited: loop ids from the top definition down ([]: the top)
  const [scope, setScope] = useState<string[]>([]);
  // a workflow loaded from the server (opened, or followed from a sub-workflow node)
  // gets a fresh canvas, fitted to it
  const [generation, setGeneration] = useState(0);
  const canvas = useRef<CanvasHandle>(null);
  const created = useRef<string | null>(null);
  const run = useTestRun();
  const [pins, pin] = usePins(workflowId);

  // load the workflow (not when we just created it here: the history stays)
  useEffect(() => {
    setWorkflowId(id);
    setScope([]);
    if (!id || id === created.current) return;
    editorWorkflow(id).then(
      (w) => {
        const def = editable(w.definition);
        setGeneration((g) => g + 1);
        setHistory(initial(def));
        setSaved(def);
        setBase(w.latest_version);
        setActive(w.active_version);
      },
      setLoadError,
    );
  }, [id]);
  useEffect(() => {
    editorNodeTypes().then((r) => setTypes(r.items), setLoadError);
  }, []);

  const root = history?.present ?? EMPTY;
  // what the canvas shows: the top definition, or the loop body being edited
  const scoped = scope.length ? scopeOf(root, scope) : root;
  const def = scoped ?? root;
  useEffect(() => {
    if (scope.length && !scopeOf(root, scope)) setScope([]); // its loop is gone (undo)
  }, [root, scope]);
  // a test run's iteration of the loop body being edited
  const body = useBodyRun(run.execution, scope);
  const states = scope.length ? body.states : run.states;
  const byType = useMemo(() => Object.fromEntries((types ?? []).map((t) => [t.type, t])), [types]);
  const dirty = saved === null ? nodesOf(root).length > 0 : !same(root, saved);

  // leaving with unsaved changes asks first
  useEffect(() => {
    if (!dirty) return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);

  // validation as you type: the server's own rules, the last answer wins
  const asked = useRef(0);
  useEffect(() => {
    if (!history) return;
    const n = ++asked.current;
    setChecking(true);
    const t = window.setTimeout(() => {
      api.validate(root).then(
        (r) => {
          if (n !== asked.current) return;
          setProblems(r.problems);
          setChecking(false);
        },
        () => n === asked.current && setChecking(false),
      );
    }, 300);
    return () => clearTimeout(t);
  }, [root, history]);
  // the problems of what the canvas shows (a body's, relative to it)
  const places = useMemo(() => problemsByPlace(problemsIn(problems, root, scope)), [problems, root, scope]);

  const changeRoot = useCallback((next: Definition, key: string | null = null) => {
    setHistory((h) => (h ? record(h, next, key) : h));
    setSave((s) => (s.kind === "saved" || s.kind === "error" ? { kind: "idle" } : s));
  }, []);
  // edits of what the canvas shows, written back into the top definition
  const edit = useCallback(
    (fn: (d: Definition) => Definition, key: string | null = null) =>
      setHistory((h) => {
        if (!h) return h;
        const here = scopeOf(h.present, scope);
        if (!here) return h;
        return record(h, withScope(h.present, scope, fn(here)), key);
      }),
    [scope],
  );
  const change = useCallback((next: Definition, key: string | null = null) => edit(() => next, key), [edit]);

  const doSave = useCallback(async (): Promise<number | null> => {
    setSave({ kind: "saving" });
    try {
      if (!workflowId) {
        const w = await api.createWorkflow(root);
        created.current = w.id;
        setWorkflowId(w.id);
        setSaved(root);
        setBase(w.latest_version);
        setActive(w.active_version);
        setSave({ kind: "saved", version: w.latest_version });
        navigate(`/workflows/${w.id}/edit`, { replace: true });
        return w.latest_version;
      }
      const v = await api.addVersion(workflowId, root, base);
      setSaved(root);
      setBase(v.version);
      setSave({ kind: "saved", version: v.version });
      return v.version;
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) setSave({ kind: "conflict", message: e.message });
      else setSave({ kind: "error", error: e });
      return null;
    }
  }, [workflowId, root, base]);

  // autosave: a valid draft of a saved workflow is saved after AUTOSAVE_MS without a
  // change (not after a conflict: that waits for the person)
  const [autosave, setAutosave] = useState(() => localStorage.getItem(AUTOSAVE_KEY) !== "off");
  const quiet = !checking && problems.length === 0 && (save.kind === "idle" || save.kind === "saved");
  useEffect(() => {
    if (!autosave || !dirty || !workflowId || !quiet) return;
    const t = window.setTimeout(() => void doSave(), AUTOSAVE_MS);
    return () => clearTimeout(t);
  }, [autosave, dirty, workflowId, quiet, doSave]);

  const savedVersion = async (): Promise<number | null> => (dirty || base === null ? doSave() : base);

  // publishing over a live version shows what changes first
  const publish = async () => {
    const v = await savedVersion();
    if (v === null || !workflowId) return;
    try {
      if (active !== null && active !== v) {
        setReview({ version: v, diff: await api.diff(workflowId, active, v) });
        return;
      }
      await publishNow(v);
    } catch (e) {
      setSave({ kind: "error", error: e });
    }
  };
  const publishNow = async (v: number) => {
    if (!workflowId) return;
    setReview(null);
    try {
      const w = await api.publishVersion(workflowId, v);
      setActive(w.active_version);
    } catch (e) {
      setSave({ kind: "error", error: e });
    }
  };

  const reloadLatest = () => {
    if (!workflowId) return;
    created.current = null;
    setSave({ kind: "idle" });
    api.workflow(workflowId).then((w) => {
      const d = editable(w.definition);
      setHistory(initial(d));
      setSaved(d);
      setBase(w.latest_version);
      setActive(w.active_version);
    }, setLoadError);
  };

  // keyboard: undo / redo, copy / paste as Flowmill JSON
  useEffect(() => {
    const typing = (t: EventTarget | null) => (t as HTMLElement | null)?.closest?.("input, textarea, select, [contenteditable]");
    const onKey = (e: KeyboardEvent) => {
      if (typing(e.target) || !(e.ctrlKey || e.metaKey)) return;
      const k = e.key.toLowerCase();
      if (k === "z" && !e.shiftKey) {
        e.preventDefault();
        setHistory((h) => (h ? undo(h) : h));
      } else if ((k === "z" && e.shiftKey) || k === "y") {
        e.preventDefault();
        setHistory((h) => (h ? redo(h) : h));
      }
    };
    const onCopy = (e: ClipboardEvent) => {
      if (typing(e.target) || !selected.length || !e.clipboardData) return;
      e.clipboardData.setData("text/plain", JSON.stringify(fragment(def, selected), null, 2));
      e.preventDefault();
    };
    const onPaste = (e: ClipboardEvent) => {
      if (typing(e.target) || !e.clipboardData) return;
      try {
        const frag = JSON.parse(e.clipboardData.getData("text/plain")) as Definition;
        if (!Array.isArray(frag.nodes)) return;
        e.preventDefault();
        edit((d) => paste(d, frag)[0]);
      } catch {
        // not a definition: not ours to paste
      }
    };
    window.addEventListener("keydown", onKey);
    document.addEventListener("copy", onCopy);
    document.addEventListener("paste", onPaste);
    return () => {
      window.removeEventListener("keydown", onKey);
      document.removeEventListener("copy", onCopy);
      document.removeEventListener("paste", onPaste);
    };
  }, [def, selected, edit]);

  function enterScope(next: string[], select: string[] = []) {
    setSelected([]);
    setScope(next);
    toSelect.current = select;
  }
  // a node to select in a scope just entered: once its canvas is there (a new canvas
  // reports its empty selection first)
  const toSelect = useRef<string[]>([]);
  useEffect(() => {
    if (!toSelect.current.length) return;
    setSelected(toSelect.current);
    toSelect.current = [];
  }, [scope]);

  if (loadError) return <div className="page"><ErrorBox error={loadError} /></div>;
  if (!history || !types) return <Loading what="Opening the editor" />;

  const node = selected.length === 1 ? nodesOf(def).find((n) => n.id === selected[0]) ?? null : null;
  const add = (type: string, at?: XY) => {
    const where = at ?? canvas.current?.center() ?? { x: 0, y: 0 };
    const [next, newId] = addNode(def, type, where, byType[type]);
    change(next);
    setSelected([newId]);
    setPanel("node");
  };
  const status =
    save.kind === "saving" ? "Saving…"
    : save.kind === "conflict" ? "Not saved"
    : dirty ? "Unsaved changes"
    : base !== null ? `Saved as v${base}` : "Empty";

  return (
    <div className="editor-page">
      <div className="editor-bar">
        <span className="crumbs">
          <Link to="/workflows">Workflows</Link> /{" "}
          {workflowId && <><Link to={`/workflows/${workflowId}`}>{saved?.name ?? "workflow"}</Link> / </>}
        </span>
        <input
          className="editor-name"
          aria-label="Workflow name"
          value={root.name ?? ""}
          onChange={(e) => changeRoot({ ...root, name: e.target.value }, "name")}
        />
        <span className="muted small-text" data-testid="save-state" aria-live="polite">{status}</span>
        <span className="muted small-text" data-testid="live-version">
          {active ? `v${active} is live` : "not published"}
        </span>
        <label className="autosave-toggle">
          <input
            type="checkbox"
            checked={autosave}
            onChange={(e) => {
              setAutosave(e.target.checked);
              localStorage.setItem(AUTOSAVE_KEY, e.target.checked ? "on" : "off");
            }}
          />
          Autosave
        </label>
        <span className="editor-bar-actions">
          <button type="button" className="small" onClick={() => setHistory((h) => h && undo(h))} disabled={!history.past.length} title="Ctrl+Z">Undo</button>
          <button type="button" className="small" onClick={() => setHistory((h) => h && redo(h))} disabled={!history.future.length} title="Ctrl+Shift+Z">Redo</button>
          <button type="button" className="small" onClick={() => { edit(autoLayout); window.setTimeout(() => canvas.current?.fit(), 50); }}>Auto-layout</button>
          <button type="button" className="small" onClick={() => canvas.current?.fit()}>Fit</button>
          <button type="button" onClick={() => void doSave()} disabled={save.kind === "saving" || (!dirty && base !== null) || problems.length > 0}>Save</button>
          <button type="button" className="primary" onClick={() => void publish()} disabled={problems.length > 0 || save.kind === "saving" || (!dirty && active === base && base !== null)}>
            Publish
          </button>
        </span>
      </div>
      {save.kind === "conflict" && (
        <div className="error-box" role="alert" data-testid="save-conflict">
          <strong>Not saved: someone else saved this workflow first.</strong>
          <div>{save.message}</div>
          <div className="actions">
            <button type="button" onClick={reloadLatest}>Load the latest version (drops your changes)</button>
            <button type="button" onClick={() => void navigator.clipboard?.writeText(JSON.stringify(root, null, 2))}>Copy my version as JSON</button>
          </div>
        </div>
      )}
      {save.kind === "error" && <ErrorBox error={save.error} />}
      {review && active !== null && (
        <PublishReview live={active} {...review} onPublish={() => void publishNow(review.version)} onCancel={() => setReview(null)} />
      )}
      <div className="editor-main">
        <Palette types={types} onAdd={(t) => add(t)} />
        <div className="editor-center">
        {scope.length > 0 && (
          <nav className="scope-bar" aria-label="Loop body" data-testid="scope-bar">
            <button type="button" className="small link-like" onClick={() => enterScope([])}>{root.name || "Workflow"}</button>
            {scope.map((loopId, i) => (
              <span key={i}>
                {" / "}
                {i === scope.length - 1 ? (
                  <strong>{loopId}: body</strong>
                ) : (
                  <button type="button" className="small link-like" onClick={() => enterScope(scope.slice(0, i + 1))}>{loopId}: body</button>
                )}
              </span>
            ))}
            <span className="muted small-text"> · each iteration's trigger gets {"{item, index, items, input}"}</span>
            <button type="button" className="small scope-back" onClick={() => enterScope(scope.slice(0, -1))}>Back to {scope.length > 1 ? `${scope[scope.length - 2]}: body` : "the workflow"}</button>
            {run.execution && <BodyRunBar body={body} />}
          </nav>
        )}
        <ReactFlowProvider key={`${generation}:${scope.join("/")}`}>
          <EditorCanvas
            ref={canvas}
            def={def}
            types={byType}
            problems={places}
            runs={states}
            pinned={scope.length ? NONE : pins}
            selected={selected}
            navigation={{
              openBody: (loopId) => enterScope([...scope, loopId]),
              openWorkflow: (wf) => {
                if (dirty && !window.confirm("Leave this workflow? Your unsaved changes are lost.")) return;
                navigate(`/workflows/${wf}/edit`);
              },
            }}
            onDropType={(t, at) => add(t, at)}
            onSelect={(ids) => {
              setSelected((cur) => (cur.join("\n") === ids.join("\n") ? cur : ids));
              if (ids.length === 1) setPanel("node");
            }}
            onConnect={(s, t, h) => edit((d) => connect(d, s, t, h))}
            onMove={(moved) => edit((d) => move(d, moved))}
            onDelete={(ns, es) => edit((d) => remove(d, ns, es))}
          />
        </ReactFlowProvider>
        </div>
        <aside className="editor-panel" aria-label="Editor panel">
          <div className="tabs" role="tablist">
            {(["node", "test", "json"] as Panel[]).map((p) => (
              <button key={p} type="button" role="tab" aria-selected={panel === p} className={panel === p ? "tab active" : "tab"} onClick={() => setPanel(p)}>
                {p === "node" ? "Node" : p === "test" ? "Test run" : "JSON / YAML"}
              </button>
            ))}
          </div>
          {panel === "node" && (
            <NodePanel
              node={node}
              info={node ? byType[node.type] : undefined}
              problems={node ? places.nodes[node.id] ?? [] : []}
              run={node ? states[node.id] : undefined}
              count={selected.length}
              onChange={(change2, key) => node && edit((d) => updateNode(d, node.id, change2), key)}
              pinned={node && !scope.length ? pins[node.id] : undefined}
              inBody={scope.length > 0}
              runLabel={scope.length ? `Test run, ${body.levels.map((l) => `${l.loopId} item ${l.shown?.index ?? "?"}`).join(", ")}` : undefined}
              paths={node ? templatePaths(def, node.id, scope.length ? outputsOf(body.states) : { ...outputsOf(run.states), ...pins }, scope.length ? LOOP_PATHS : []) : []}
              onPin={(output) => node && pin(node.id, output)}
              canRunFrom={Boolean(run.execution && !run.running && workflowId) && problems.length === 0 && !scope.length}
              onRunFrom={async () => {
                if (!node || !run.execution) return;
                const v = await savedVersion();
                if (v === null) return;
                await run.rerunFrom(run.execution.id, node.id, v, pinsBefore(def, node.id, pins));
              }}
              onUseAsInput={(data) => {
                setOffered(JSON.stringify(data, null, 2));
                setPanel("test");
              }}
            />
          )}
          {panel === "test" && (
            <TestRunPanel
              run={run}
              workflowId={workflowId}
              offered={offered}
              canRun={Boolean(workflowId || nodesOf(root).length) && problems.length === 0}
              onRun={async (input) => {
                const v = await savedVersion();
                if (v === null) return;
                const wf = workflowId ?? created.current;
                if (wf) await run.start(wf, v, input);
              }}
            />
          )}
          {panel === "json" && <JsonPanel def={root} onChange={(d) => changeRoot(d, "json")} />}
          <Problems
            problems={problems}
            root={root}
            checking={checking}
            onPick={(p) => {
              // a problem in a loop's body opens that body, with its node selected
              const where = scopeOfProblem(p);
              const id2 = nodeOfProblem(p, root);
              if (where.join("/") !== scope.join("/")) enterScope(where, id2 ? [id2] : []);
              else setSelected(id2 ? [id2] : []);
              setPanel("node");
            }}
          />
        </aside>
      </div>
    </div>
  );
}

function Problems({ problems, root, checking, onPick }: { problems: Problem[]; root: Definition; checking: boolean; onPick: (p: Problem) => void }) {
  return (
    <section className="editor-problems" aria-label="Problems" data-testid="problems" data-count={problems.length}>
      <h3>
        Problems {problems.length ? `(${problems.length})` : ""}
        {checking && <span className="muted small-text"> checking…</span>}
      </h3>
      {problems.length === 0 ? (
        <div className="muted small-text">None: the workflow is valid.</div>
      ) : (
        <ul>
          {problems.map((p, i) => (
            <li key={i}>
              {p.node_id ? (
                <button type="button" className="link-like" onClick={() => onPick(p)}>
                  {[...scopeOfProblem(p), nodeOfProblem(p, root) ?? "body"].join(" › ")}
                </button>
              ) : (
                <code>{p.path || "workflow"}</code>
              )}{" "}
              {p.message}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** Which iteration of a test run the loop body's canvas shows, one choice per loop. */
function BodyRunBar({ body }: { body: BodyRun }) {
  if (!body.levels.length) return <div className="body-run muted small-text" data-testid="body-run">{body.loading ? "Reading the test run's iterations…" : "The test run has no iteration of this body yet."}</div>;
  return (
    <div className="body-run small-text" data-testid="body-run">
      <span>Test run:</span>
      {body.levels.map((l, depth) => (
        <span key={l.loopId}>
          {l.iterations.length === 0 ? (
            <span className="muted">{l.loopId}: no iteration yet </span>
          ) : (
            <label>
              {l.loopId} item
              <select aria-label={`Iteration of ${l.loopId}`} value={l.shown?.index ?? ""} onChange={(e) => body.choose(depth, Number(e.target.value))}>
                {l.iterations.map((it) => (
                  <option key={it.id} value={it.index}>{`${it.index} · ${it.status}`}</option>
                ))}
              </select>
              <span>of {l.iterations.length}{l.truncated ? "+" : ""}</span>
            </label>
          )}
        </span>
      ))}
      {body.execution && <Link to={`/executions/${body.execution.id}`}>open this iteration ↗</Link>}
    </div>
  );
}

function PublishReview({ live, version, diff, onPublish, onCancel }: { live: number; version: number; diff: VersionDiff; onPublish: () => void; onCancel: () => void }) {
  const lines: string[] = [
    ...diff.fields.map((f) => `${f.path} changed`),
    ...diff.nodes_added.map((n) => `node ${n} added`),
    ...diff.nodes_removed.map((n) => `node ${n} removed`),
    ...diff.nodes_changed.map((n) => `node ${n.id} changed: ${n.changes.map((c) => c.path).join(", ")}`),
    ...diff.edges_added.map((e) => `edge ${e.source} → ${e.target} added`),
    ...diff.edges_removed.map((e) => `edge ${e.source} → ${e.target} removed`),
  ];
  return (
    <div className="notice publish-review" role="region" aria-label="Publish review" data-testid="publish-review">
      <strong>Publishing v{version} replaces the live v{live}.</strong>
      {lines.length ? (
        <ul>{lines.map((l, i) => <li key={i}>{l}</li>)}</ul>
      ) : (
        <div className="muted">The two versions do the same thing.</div>
      )}
      <div className="actions">
        <button type="button" className="primary" onClick={onPublish}>Publish v{version}</button>
        <button type="button" onClick={onCancel}>Cancel</button>
      </div>
    </div>
  );
}

const NONE: Record<string, never> = {};
/** What a loop body's templates see besides its own nodes (docs/nodes.md, loop). */
const LOOP_PATHS = ["item", "index", "trigger.data.item", "trigger.data.index", "trigger.data.items", "trigger.data.input"];

function outputsOf(states: Record<string, { output?: unknown; status: string }>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(states).filter(([, r]) => r.status === "succeeded").map(([id, r]) => [id, r.output]));
}
