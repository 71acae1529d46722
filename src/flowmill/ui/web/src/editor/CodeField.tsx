// A code field (JavaScript, or Python for custom code set to it): a plain textarea (so typing, undo, selection and screen
// readers behave as in any field) over a highlighted copy of its text that scrolls
// with it. The textarea's text is transparent; its caret is not.
import { useMemo, useRef } from "react";
import { tokenize, type Language } from "./highlight";

export function CodeField({
  id, value, placeholder, rows = 8, language = "javascript", onChange,
}: {
  id: string;
  value: string;
  language?: Language;
  placeholder?: string;
  rows?: number;
  onChange: (text: string) => void;
}) {
  const pre = useRef<HTMLPreElement>(null);
  const tokens = useMemo(() => tokenize(value, language), [value, language]);
  return (
    <div className="code-field" data-testid="code-field">
      <pre ref={pre} className="code-highlight" aria-hidden="true">
        {tokens.map((t, i) => (t.kind === "plain" ? t.text : <span key={i} className={`tok-${t.kind}`}>{t.text}</span>))}
        {/* a trailing newline would not take a line in a <pre>: keep the heights equal */}
        {"\n"}
      </pre>
      <textarea
        id={id}
        className="code-input code-overlay"
        rows={rows}
        spellCheck={false}
        autoCapitalize="off"
        autoComplete="off"
        wrap="off"
        data-language={language}
        value={value}
        placeholder={placeholder}
        onScroll={(e) => {
          if (!pre.current) return;
          pre.current.scrollTop = e.currentTarget.scrollTop;
          pre.current.scrollLeft = e.currentTarget.scrollLeft;
        }}
        onKeyDown={(e) => {
          // Tab indents (Esc first, then Tab, leaves the field: see docs/ui.md)
          if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey && !e.altKey && e.currentTarget.dataset.escaped !== "1") {
            e.preventDefault();
            const el = e.currentTarget;
            const { selectionStart: s, selectionEnd: end } = el;
            const next = `${value.slice(0, s)}  ${value.slice(end)}`;
            onChange(next);
            requestAnimationFrame(() => el.setSelectionRange(s + 2, s + 2));
          }
          e.currentTarget.dataset.escaped = e.key === "Escape" ? "1" : "";
        }}
        onChange={(e) => onChange(e.target.value)}
      />
    </div>
  );
}
