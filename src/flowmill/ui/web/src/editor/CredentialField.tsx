// A credential picker: the tenant's credentials by name and type, from
// GET /api/credentials (which never sends a secret; the picker shows not even the
// hint), only those of the types the node takes when its schema says (credentials.ts).
// A value that is not one of them (a `{{ }}` template, a credential deleted since)
// stays, shown as such; "Other…" lets one type a name or a template.
import { useEffect, useState } from "react";
import { credentialChoices, type CredentialChoice } from "../api";
import { credentialOptions } from "./credentials";

let cached: Promise<CredentialChoice[] | null> | null = null;

/** The list, asked once per page load (and again after a failure or on refresh). */
function choices(refresh = false): Promise<CredentialChoice[] | null> {
  if (refresh || !cached) {
    cached = credentialChoices();
    cached.catch(() => (cached = null));
  }
  return cached;
}

const OTHER = "\u0000other";

export function CredentialField({
  id, value, required, types, onChange, renderText,
}: {
  id: string;
  /** The credential types the node takes; null: any. */
  types: string[] | null;
  value: string | undefined;
  required: boolean;
  onChange: (v: string | undefined) => void;
  renderText: (id: string) => React.ReactNode;
}) {
  const [list, setList] = useState<CredentialChoice[] | null | undefined>(undefined);
  const [typing, setTyping] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const load = (refresh: boolean) =>
    choices(refresh).then(
      (l) => {
        setList(l);
        setError(null);
      },
      (e: Error) => setError(e.message),
    );
  useEffect(() => void load(false), []);
  if (list === null) return <>{renderText(id)}</>; // no credentials API here
  const { shown, hidden, mismatch } = credentialOptions(list ?? [], types, value);
  const known = shown.some((c) => c.name === value || c.id === value);
  const custom = value !== undefined && value !== "" && !known;
  const kinds = types ? types.join(" or ") : "";
  return (
    <div className="credential-field">
      <select
        id={id}
        data-credential-picker=""
        data-credential-types={types?.join(" ")}
        value={typing || custom ? OTHER : value ?? ""}
        onChange={(e) => {
          if (e.target.value === OTHER) {
            setTyping(true);
            return;
          }
          setTyping(false);
          onChange(e.target.value === "" ? undefined : e.target.value);
        }}
      >
        <option value="">{list === undefined ? "Loading credentials…" : required ? `Choose a credential${kinds ? ` (${kinds})` : ""}…` : "none"}</option>
        {shown.map((c) => (
          <option key={c.id} value={c.name}>{`${c.name} (${c.type})`}</option>
        ))}
        <option value={OTHER}>{custom ? `Other: ${value}` : "Other (a name or a {{ }} template)…"}</option>
      </select>
      <button type="button" className="small link-like" onClick={() => void load(true)} title="Read the list of credentials again">
        Refresh
      </button>
      {(typing || custom) && renderText(`text-${id}`)}
      {list && shown.length === 0 && (
        <div className="muted small-text">
          No {kinds ? `${kinds} ` : ""}credentials yet: add one under Operations → Credentials.
        </div>
      )}
      {hidden > 0 && (
        <div className="muted small-text" data-testid="credentials-hidden">
          {hidden === 1 ? "1 credential" : `${hidden} credentials`} of other types not listed: this node takes {kinds}.
        </div>
      )}
      {mismatch && (
        <div className="field-error">{`${mismatch.name} is a ${mismatch.type} credential; this node takes ${kinds}.`}</div>
      )}
      {error && <div className="field-error">Could not list credentials: {error}</div>}
    </div>
  );
}
