// A credential picker: the tenant's credentials by name and type, from
// GET /api/credentials (which never sends a secret; the picker shows not even the
// hint). A value that is not one of them (a `{{ }}` template, a credential deleted
// since) stays, shown as such; "Other…" lets one type a name or a template.
import { useEffect, useState } from "react";
import { credentialChoices, type CredentialChoice } from "../api";

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
  id, value, required, onChange, renderText,
}: {
  id: string;
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
  const known = list?.some((c) => c.name === value || c.id === value) ?? false;
  const custom = value !== undefined && value !== "" && !known;
  return (
    <div className="credential-field">
      <select
        id={id}
        data-credential-picker=""
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
        <option value="">{list === undefined ? "Loading credentials…" : required ? "Choose a credential…" : "none"}</option>
        {(list ?? []).map((c) => (
          <option key={c.id} value={c.name}>{`${c.name} (${c.type})`}</option>
        ))}
        <option value={OTHER}>{custom ? `Other: ${value}` : "Other (a name or a {{ }} template)…"}</option>
      </select>
      <button type="button" className="small link-like" onClick={() => void load(true)} title="Read the list of credentials again">
        Refresh
      </button>
      {(typing || custom) && renderText(`text-${id}`)}
      {list && list.length === 0 && (
        <div className="muted small-text">No credentials yet: add one under Operations → Credentials.</div>
      )}
      {error && <div className="field-error">Could not list credentials: {error}</div>}
    </div>
  );
}
