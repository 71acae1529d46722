// A config form drawn from a node type's JSON Schema (GET /api/node-types), so a
// plugin's node gets a form with no UI code. Strings take `{{ }}` templates as they
// are; a field of any type (a mapping, a body) is edited as JSON, and text that is not
// JSON is kept as a string (a template).
import { useEffect, useState } from "react";
import { CodeField } from "./CodeField";
import { CredentialField } from "./CredentialField";
import { credentialTypesOf } from "./credentials";
import { languageOf, type Language } from "./highlight";
import type { JsonSchema } from "./model";
import { TemplateInput } from "./TemplateInput";

type Obj = Record<string, unknown>;

/** `$ref` resolved against the root's `$defs`; `X | null` reduced to X. */
export function resolve(s: JsonSchema, root: JsonSchema): { schema: JsonSchema; nullable: boolean } {
  let cur = s;
  for (let i = 0; i < 10 && cur.$ref; i++) {
    const name = cur.$ref.split("/").pop() ?? "";
    cur = { ...(root.$defs?.[name] ?? {}), ...cur, $ref: undefined };
  }
  if (cur.anyOf) {
    const options = cur.anyOf.filter((o) => o.type !== "null");
    const nullable = options.length < cur.anyOf.length;
    if (options.length === 1) {
      const inner = resolve(options[0], root);
      // keywords of our own (x-credential-types) sit beside the anyOf: keep them
      const own = Object.fromEntries(Object.entries(cur).filter(([k]) => k.startsWith("x-")));
      return { schema: { ...inner.schema, ...own, title: cur.title, description: cur.description ?? inner.schema.description, default: cur.default }, nullable };
    }
    return { schema: { ...cur, anyOf: options }, nullable };
  }
  return { schema: cur, nullable: false };
}

export type FieldKind = "text" | "code" | "script" | "credential" | "number" | "integer" | "boolean" | "enum" | "object" | "json";

const KIND_HINTS: Record<FieldKind, string> = {
  text: "", code: "", script: "JavaScript", credential: "", number: "number", integer: "integer",
  boolean: "boolean", enum: "enum", object: "object", json: "JSON or text",
};

/** How a field is edited. "script" is a type's code field holding source (JavaScript,
 * or Python when its config's `language` says so; highlighted); a code field of another type (a loop's inline body) is JSON.
 * "credential" is a field naming a credential of the vault: one whose schema says
 * which types it takes (`x-credential-types`), or one named `credential`. */
export function kindOf(key: string, s: JsonSchema, codeFields: string[]): FieldKind {
  if (codeFields.includes(key)) return s.type === "string" ? "script" : s.type === "object" && s.properties ? "object" : "json";
  if (s.enum) return "enum";
  if (s.type === "string" && (key === "credential" || credentialTypesOf(s))) return "credential";
  if (s.anyOf) return "json";
  switch (s.type) {
    case "string":
      return /template|code|body|script|prompt|query|text|message/i.test(key) ? "code" : "text";
    case "number":
      return "number";
    case "integer":
      return "integer";
    case "boolean":
      return "boolean";
    case "object":
      return s.properties ? "object" : "json";
    default:
      return "json";
  }
}

export function SchemaForm({
  schema, value, onChange, codeFields, nodeId, problems, paths = [],
}: {
  schema: JsonSchema;
  value: Obj;
  onChange: (next: Obj, field: string) => void;
  codeFields: string[];
  nodeId: string;
  problems: Record<string, string[]>;
  paths?: string[];
}) {
  return (
    <ObjectFields
      root={schema} schema={schema} value={value} path="" nodeId={nodeId}
      codeFields={codeFields} problems={problems} onChange={onChange} paths={paths}
    />
  );
}

function ObjectFields({
  root, schema, value, path, nodeId, codeFields, problems, onChange, paths = [],
}: {
  root: JsonSchema;
  schema: JsonSchema;
  value: Obj;
  path: string;
  nodeId: string;
  codeFields: string[];
  problems: Record<string, string[]>;
  onChange: (next: Obj, field: string) => void;
  paths?: string[];
}) {
  const props = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  return (
    <div className="schema-form">
      {Object.entries(props).map(([key, raw]) => {
        const { schema: s } = resolve(raw, root);
        const field = path ? `${path}.${key}` : key;
        const set = (v: unknown) => {
          const next = { ...value };
          if (v === undefined) delete next[key];
          else next[key] = v;
          onChange(next, field);
        };
        const kind = kindOf(key, s, path ? [] : codeFields);
        // custom code's `language` (or its default) says how its code is highlighted
        const language = languageOf(value.language ?? props.language?.default);
        const label = s.title && s.title.toLowerCase().replace(/ /g, "") !== key.toLowerCase().replace(/_/g, "") ? s.title : key;
        const errors = problems[field] ?? [];
        const id = `f-${nodeId}-${field}`.replace(/[^A-Za-z0-9_-]/g, "_");
        if (kind === "object") {
          return (
            <fieldset key={key} className="schema-group">
              <legend>{label}</legend>
              <ObjectFields
                root={root} schema={s} value={(value[key] as Obj) ?? {}} path={field} nodeId={nodeId}
                codeFields={[]} problems={problems} paths={paths}
                onChange={(inner, f) => {
                  const next = { ...value, [key]: inner };
                  onChange(next, f);
                }}
              />
            </fieldset>
          );
        }
        return (
          <div key={key} className={`schema-field${errors.length ? " has-error" : ""}`} data-field={field}>
            <label htmlFor={id}>
              <span>
                {label}
                {required.has(key) && <span aria-hidden="true"> *</span>}
                <span className="muted small-text"> {kind === "script" && language === "python" ? "Python" : KIND_HINTS[kind]}</span>
              </span>
            </label>
            <Field id={id} kind={kind} schema={s} value={value[key]} onChange={set} required={required.has(key)} paths={paths} language={language} />
            {paths.length > 0 && templated(kind, codeFields.includes(key), value[key]) && (
              <select
                className="insert-path"
                aria-label={`Insert a path into ${key}`}
                value=""
                onChange={(e) => {
                  const cur = value[key];
                  set(`${typeof cur === "string" ? cur : ""}{{ ${e.target.value} }}`);
                }}
              >
                <option value="">Insert {"{{ }}"} path…</option>
                {paths.map((p) => <option key={p} value={p}>{p}</option>)}
              </select>
            )}
            {s.description && <div className="muted small-text">{s.description}</div>}
            {errors.map((m, i) => (
              <div key={i} className="field-error">{m}</div>
            ))}
          </div>
        );
      })}
    </div>
  );
}

function Field({
  id, kind, schema, value, onChange, required, paths, language,
}: {
  id: string;
  kind: FieldKind;
  schema: JsonSchema;
  value: unknown;
  onChange: (v: unknown) => void;
  required: boolean;
  paths: string[];
  language: Language;
}) {
  const text = (t: string) => onChange(t === "" && !required ? undefined : t);
  switch (kind) {
    case "text":
      return <TemplateInput id={id} paths={paths} value={typeof value === "string" ? value : value === undefined ? "" : String(value)} placeholder={placeholder(schema)} onChange={text} />;
    case "code":
      return <TemplateInput id={id} multiline rows={5} className="code-input" paths={paths} value={typeof value === "string" ? value : ""} placeholder={placeholder(schema)} onChange={text} />;
    case "script":
      return <CodeField id={id} language={language} value={typeof value === "string" ? value : ""} placeholder={placeholder(schema)} onChange={text} />;
    case "credential":
      return (
        <CredentialField
          id={id} required={required} types={credentialTypesOf(schema)} value={typeof value === "string" ? value : undefined} onChange={onChange}
          renderText={(textId) => (
            <TemplateInput id={textId} paths={paths} value={typeof value === "string" ? value : ""} placeholder="a credential's name, or a {{ }} template" onChange={text} />
          )}
        />
      );
    case "number":
    case "integer":
      return <NumberField id={id} value={value} integer={kind === "integer"} onChange={onChange} schema={schema} />;
    case "boolean":
      return <input id={id} type="checkbox" checked={value === undefined ? Boolean(schema.default) : Boolean(value)} onChange={(e) => onChange(e.target.checked)} />;
    case "enum":
      return (
        <select id={id} value={value === undefined ? "" : String(value)} onChange={(e) => onChange(e.target.value === "" ? undefined : schema.enum!.find((x) => String(x) === e.target.value))}>
          <option value="">{schema.default !== undefined ? `default (${String(schema.default)})` : "—"}</option>
          {schema.enum!.map((x) => (
            <option key={String(x)} value={String(x)}>{String(x)}</option>
          ))}
        </select>
      );
    default:
      return <JsonField id={id} value={value} onChange={onChange} paths={paths} />;
  }
}

/** Fields that take a `{{ }}` template: text (not code), and JSON fields holding text. */
function templated(kind: FieldKind, code: boolean, value: unknown): boolean {
  if (code) return false;
  if (kind === "text" || kind === "code") return true;
  return kind === "json" && (value === undefined || typeof value === "string");
}

function placeholder(s: JsonSchema): string {
  return s.default !== undefined && s.default !== null ? `default: ${String(s.default)}` : "";
}

/** A number, or a `{{ }}` template (kept as a string; validation says if the type
 * takes one). */
function NumberField({ id, value, integer, onChange, schema }: { id: string; value: unknown; integer: boolean; onChange: (v: unknown) => void; schema: JsonSchema }) {
  const [text, setText] = useState(value === undefined || value === null ? "" : String(value));
  useEffect(() => {
    const shown = text === "" ? undefined : Number.isNaN(Number(text)) ? text : Number(text);
    if (shown !== value) setText(value === undefined || value === null ? "" : String(value));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [value]);
  return (
    <input
      id={id} type="text" inputMode={integer ? "numeric" : "decimal"} value={text} placeholder={placeholder(schema)}
      onChange={(e) => {
        const t = e.target.value;
        setText(t);
        if (t.trim() === "") onChange(undefined);
        else if (!Number.isNaN(Number(t))) onChange(Number(t));
        else onChange(t);
      }}
    />
  );
}

/** JSON when it parses, else the text itself (a template). */
export function parseLoose(text: string): unknown {
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function showLoose(value: unknown): string {
  if (value === undefined) return "";
  if (typeof value === "string") {
    try {
      JSON.parse(value);
      return JSON.stringify(value); // a string that looks like JSON stays a string
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

function JsonField({ id, value, onChange, paths }: { id: string; value: unknown; onChange: (v: unknown) => void; paths: string[] }) {
  const [text, setText] = useState(() => showLoose(value));
  useEffect(() => {
    if (JSON.stringify(parseLoose(text)) !== JSON.stringify(value)) setText(showLoose(value));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [value]);
  return (
    <TemplateInput
      id={id} multiline className="code-input" rows={3} value={text} paths={paths}
      onChange={(t) => {
        setText(t);
        onChange(parseLoose(t));
      }}
    />
  );
}
