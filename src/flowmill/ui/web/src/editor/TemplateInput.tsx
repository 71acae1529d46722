// A text field that takes `{{ }}` templates, with completion: typing inside `{{ `
// lists the paths the node can use (from templatePaths), filtered as you type; ↑ ↓
// choose, Enter or Tab takes one, Esc closes. It is an ARIA combobox, so the list is
// announced and keyboard-only use works.
import { useRef, useState } from "react";
import { complete, matching, templateAt, type TemplateSpot } from "./complete";

export function TemplateInput({
  id, value, onChange, paths, multiline = false, rows = 3, placeholder, className,
}: {
  id: string;
  value: string;
  onChange: (text: string) => void;
  paths: string[];
  multiline?: boolean;
  rows?: number;
  placeholder?: string;
  className?: string;
}) {
  const [spot, setSpot] = useState<TemplateSpot | null>(null);
  const [active, setActive] = useState(0);
  const field = useRef<HTMLInputElement & HTMLTextAreaElement>(null);
  const options = spot ? matching(paths, spot.query) : [];
  const open = spot !== null && options.length > 0;
  const listId = `paths-${id}`; // not "f-…": the form's fields are found by that prefix

  const look = (text: string, caret: number | null) => {
    const s = caret === null ? null : templateAt(text, caret);
    setSpot(s);
    setActive(0);
  };
  const take = (path: string) => {
    const el = field.current;
    if (!el || !spot) return;
    const caret = el.selectionStart ?? value.length;
    const next = complete(value, caret, spot, path);
    // The field shows the completed text, caret after it, now: not at React's next
    // render and the next frame. A key typed in between went into the old text, at the
    // old caret ("{{ vars.region }}at" for " at"), and was lost or misplaced. React
    // leaves a field alone whose value already is the one it renders.
    el.value = next.text;
    el.focus();
    el.setSelectionRange(next.caret, next.caret);
    onChange(next.text);
    setSpot(null);
  };
  const props = {
    id,
    ref: field,
    className,
    value,
    placeholder,
    spellCheck: false,
    role: "combobox",
    "aria-autocomplete": "list" as const,
    "aria-expanded": open,
    "aria-controls": listId,
    "aria-activedescendant": open ? `${listId}-${active}` : undefined,
    onChange: (e: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) => {
      onChange(e.target.value);
      look(e.target.value, e.target.selectionStart);
    },
    onClick: (e: React.MouseEvent<HTMLInputElement | HTMLTextAreaElement>) => look(e.currentTarget.value, e.currentTarget.selectionStart),
    onBlur: () => setSpot(null),
    onKeyDown: (e: React.KeyboardEvent<HTMLInputElement | HTMLTextAreaElement>) => {
      if (!open) return;
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        const step = e.key === "ArrowDown" ? 1 : -1;
        setActive((a) => (a + step + options.length) % options.length);
      } else if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        take(options[Math.min(active, options.length - 1)]);
      } else if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        setSpot(null);
      }
    },
  };
  return (
    <div className="template-input">
      {multiline ? <textarea {...props} rows={rows} /> : <input type="text" {...props} />}
      {open && (
        <ul className="template-paths" role="listbox" id={listId} aria-label="Paths this node can use">
          {options.map((p, i) => (
            <li
              key={p}
              id={`${listId}-${i}`}
              role="option"
              aria-selected={i === active}
              className={i === active ? "active" : undefined}
              // mousedown, not click: the field must not lose its caret first
              onMouseDown={(e) => {
                e.preventDefault();
                take(p);
              }}
            >
              <code>{p}</code>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
