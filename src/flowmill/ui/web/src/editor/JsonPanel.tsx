// The definition as JSON, editable: a valid edit replaces the definition (one undo
// step per burst of typing); the canvas's changes show here at once.
import { useEffect, useState } from "react";
import type { Definition } from "../types";

export function JsonPanel({ def, onChange }: { def: Definition; onChange: (def: Definition) => void }) {
  const [text, setText] = useState(() => JSON.stringify(def, null, 2));
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let mine: unknown = null;
    try {
      mine = JSON.parse(text);
    } catch {
      mine = null;
    }
    if (JSON.stringify(mine) !== JSON.stringify(def)) {
      setText(JSON.stringify(def, null, 2));
      setError(null);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [def]);
  return (
    <div className="json-panel">
      <label htmlFor="definition-json">Definition (Flowmill JSON)</label>
      <textarea
        id="definition-json"
        className="code-input"
        spellCheck={false}
        rows={24}
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          try {
            const parsed = JSON.parse(e.target.value) as unknown;
            if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("a definition is a JSON object");
            setError(null);
            onChange(parsed as Definition);
          } catch (err) {
            setError((err as Error).message);
          }
        }}
      />
      {error ? <div className="field-error">Not valid JSON: {error}</div> : <div className="muted small-text">Valid JSON</div>}
    </div>
  );
}
