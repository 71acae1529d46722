// The definition as JSON or YAML, editable: a valid edit replaces the definition (one
// undo step per burst of typing); the canvas's changes show here at once. An edit that
// does not parse stays in the box, with the line and column of the problem, and the
// canvas keeps the last valid definition. YAML's parser is a chunk of its own, loaded
// the first time YAML is chosen (the first load stays small).
import { useEffect, useState } from "react";
import type { Definition } from "../types";

export type Format = "json" | "yaml";

type Yaml = typeof import("yaml");
let yamlModule: Promise<Yaml> | null = null;
const loadYaml = () => (yamlModule ??= import("yaml"));

const FORMAT_KEY = "flowmill.editor.format";

/** `{line, column}` (1-based) of `offset` in `text`. */
export function lineCol(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, offset));
  const line = before.split("\n").length;
  return { line, column: before.length - before.lastIndexOf("\n") };
}

/** A JSON.parse error as "line L, column C: what". */
export function jsonProblem(text: string, err: Error): string {
  const m = /position (\d+)/.exec(err.message);
  const what = err.message.replace(/\s*\(line \d+ column \d+\)/, "").replace(/ in JSON at position \d+/, "");
  if (!m) return what;
  const { line, column } = lineCol(text, Number(m[1]));
  return `line ${line}, column ${column}: ${what}`;
}

function show(def: Definition, format: Format, yaml: Yaml | null): string | null {
  if (format === "json") return JSON.stringify(def, null, 2);
  return yaml ? yaml.stringify(def, { lineWidth: 0 }) : null;
}

/** The text as a definition, or the problem with it. */
function read(text: string, format: Format, yaml: Yaml | null): { def: Definition } | { error: string } {
  let parsed: unknown;
  if (format === "json") {
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      return { error: jsonProblem(text, err as Error) };
    }
  } else {
    if (!yaml) return { error: "the YAML parser is still loading" };
    const doc = yaml.parseDocument(text, { prettyErrors: false });
    if (doc.errors.length) {
      const e = doc.errors[0];
      const { line, column } = lineCol(text, e.pos[0]);
      return { error: `line ${line}, column ${column}: ${e.message.split("\n")[0]}` };
    }
    parsed = doc.toJS();
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return { error: "a definition is an object (name, nodes, edges)" };
  return { def: parsed as Definition };
}

export function JsonPanel({ def, onChange }: { def: Definition; onChange: (def: Definition) => void }) {
  const [format, setFormat] = useState<Format>(() => (localStorage.getItem(FORMAT_KEY) === "yaml" ? "yaml" : "json"));
  const [yaml, setYaml] = useState<Yaml | null>(null);
  const [yamlError, setYamlError] = useState<string | null>(null);
  const [text, setText] = useState(() => show(def, format, null) ?? "");
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (format !== "yaml" || yaml) return;
    loadYaml().then(setYaml, (e: Error) => setYamlError(e.message));
  }, [format, yaml]);
  // the canvas changed (or the format, or the parser arrived): show the definition
  // again, unless the text already says the same (the person is typing it)
  useEffect(() => {
    const mine = read(text, format, yaml);
    if ("def" in mine && JSON.stringify(mine.def) === JSON.stringify(def)) return;
    const shown = show(def, format, yaml);
    if (shown === null) return;
    setText(shown);
    setError(null);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [def, format, yaml]);
  const choose = (f: Format) => {
    if (f === format) return;
    localStorage.setItem(FORMAT_KEY, f);
    setFormat(f);
    setError(null);
    setText(show(def, f, yaml) ?? "");
  };
  const label = format === "json" ? "Definition (Flowmill JSON)" : "Definition (YAML)";
  const loading = format === "yaml" && !yaml;
  return (
    <div className="json-panel">
      <div className="format-choice" role="radiogroup" aria-label="Format">
        {(["json", "yaml"] as Format[]).map((f) => (
          <label key={f} className={format === f ? "active" : undefined}>
            <input type="radio" name="definition-format" value={f} checked={format === f} onChange={() => choose(f)} />
            {f.toUpperCase()}
          </label>
        ))}
      </div>
      <label htmlFor="definition-text">{label}</label>
      <textarea
        id="definition-text"
        className="code-input"
        spellCheck={false}
        rows={24}
        value={loading ? "" : text}
        placeholder={loading ? "Loading the YAML parser…" : undefined}
        disabled={loading}
        aria-invalid={error !== null}
        aria-describedby="definition-state"
        data-format={format}
        onChange={(e) => {
          setText(e.target.value);
          const r = read(e.target.value, format, yaml);
          if ("error" in r) {
            setError(r.error);
            return;
          }
          setError(null);
          onChange(r.def);
        }}
      />
      <div id="definition-state" aria-live="polite">
        {yamlError ? (
          <div className="field-error" role="alert">Could not load the YAML parser: {yamlError}</div>
        ) : error ? (
          <div className="field-error definition-error" role="alert" data-testid="definition-error">
            Not valid {format.toUpperCase()}, {error}. The canvas keeps the last valid definition.
          </div>
        ) : (
          <div className="muted small-text">Valid {format.toUpperCase()}: edits here redraw the canvas.</div>
        )}
      </div>
    </div>
  );
}
