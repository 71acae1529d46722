// Shared pieces: status badges, empty states, errors, the JSON viewer, copy buttons.
import { useState, type ReactNode } from "react";
import { ApiError } from "./api";
import { ago, dateTime } from "./format";

export function Status({ status, live }: { status: string; live?: boolean }) {
  return (
    <span className={`status status-${status}`} data-status={status}>
      {live && <span className="pulse" aria-hidden="true" />}
      {status}
    </span>
  );
}

/** "5 min ago", with the full date as a tooltip. The tooltip is written when the
 * pointer comes (a list's first render formats no date: the first use of the locale's
 * date formatting is the slow part); the machine-readable time is in `dateTime`. */
export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span className="muted">—</span>;
  return (
    <time
      dateTime={iso}
      onPointerEnter={(e) => {
        e.currentTarget.title ||= dateTime(iso);
      }}
    >
      {ago(iso)}
    </time>
  );
}

/** Flowmill's mark, drawn inline: as an `<img>` of the favicon it was a second request
 * for the same file (the icon link's fetch is not shared with an image's). */
export function Logo({ size }: { size: number }) {
  return (
    <svg viewBox="0 0 32 32" width={size} height={size} aria-hidden="true" focusable="false">
      <rect width="32" height="32" rx="7" fill="#4f46e5" />
      <circle cx="9" cy="10" r="3.2" fill="#fff" />
      <circle cx="23" cy="10" r="3.2" fill="#fff" />
      <circle cx="16" cy="23" r="3.2" fill="#fff" />
      <path d="M9 10 16 23 23 10" stroke="#fff" strokeWidth="2" fill="none" />
    </svg>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty" role="status">
      <strong>{title}</strong>
      {children && <div className="empty-hint">{children}</div>}
    </div>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <div className="loading" role="status" aria-live="polite">
      {what}…
    </div>
  );
}

export function ErrorBox({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const e = error as ApiError;
  return (
    <div className="error-box" role="alert">
      <strong>{e.status === 404 ? "Not found" : "Something went wrong"}</strong>
      <div>{e.message}</div>
      {e.details?.length ? (
        <ul>
          {e.details.map((d, i) => (
            <li key={i}>
              {d.field && <code>{d.field}</code>} {d.message}
            </li>
          ))}
        </ul>
      ) : null}
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      className="small"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
        } catch {
          // Without clipboard permission (plain http on another host): select a textarea.
          const t = document.createElement("textarea");
          t.value = text;
          document.body.appendChild(t);
          t.select();
          document.execCommand("copy");
          t.remove();
        }
        setDone(true);
        setTimeout(() => setDone(false), 1500);
      }}
      aria-label={`${label}: ${text}`}
    >
      {done ? "Copied" : label}
    </button>
  );
}

function Scalar({ value }: { value: unknown }) {
  if (value === null) return <span className="j-null">null</span>;
  if (typeof value === "string") return <span className="j-str">"{value}"</span>;
  if (typeof value === "number") return <span className="j-num">{String(value)}</span>;
  if (typeof value === "boolean") return <span className="j-bool">{String(value)}</span>;
  return <span className="j-null">undefined</span>;
}

function JsonNode({ name, value, depth }: { name?: string; value: unknown; depth: number }) {
  const isObj = value !== null && typeof value === "object";
  const [open, setOpen] = useState(depth < 2);
  const label = name !== undefined ? <span className="j-key">{name}: </span> : null;
  if (!isObj) {
    return (
      <div className="j-row">
        {label}
        <Scalar value={value} />
      </div>
    );
  }
  const entries = Array.isArray(value)
    ? value.map((v, i) => [String(i), v] as const)
    : Object.entries(value as Record<string, unknown>);
  const brackets = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  return (
    <div className="j-row">
      <button
        type="button"
        className="j-toggle"
        aria-expanded={open}
        onClick={() => setOpen(!open)}
      >
        {open ? "▾" : "▸"}
      </button>
      {label}
      {brackets[0]}
      {!open && (
        <span className="muted">
          {" "}
          {entries.length} {Array.isArray(value) ? "items" : "keys"} {brackets[1]}
        </span>
      )}
      {open && (
        <>
          <div className="j-children">
            {entries.map(([k, v]) => (
              <JsonNode key={k} name={Array.isArray(value) ? undefined : k} value={v} depth={depth + 1} />
            ))}
          </div>
          {brackets[1]}
        </>
      )}
    </div>
  );
}

/** A collapsible JSON tree (objects past the second level start folded). */
export function JsonView({ value, label }: { value: unknown; label?: string }) {
  return (
    <div className="json" aria-label={label}>
      <JsonNode value={value} depth={0} />
    </div>
  );
}

export function Tabs<T extends string>(props: {
  tabs: { id: T; label: string; hidden?: boolean }[];
  active: T;
  onSelect: (id: T) => void;
}) {
  const visible = props.tabs.filter((t) => !t.hidden);
  return (
    <div className="tabs" role="tablist">
      {visible.map((t, i) => (
        <button
          key={t.id}
          type="button"
          role="tab"
          id={`tab-${t.id}`}
          aria-selected={t.id === props.active}
          tabIndex={t.id === props.active ? 0 : -1}
          onClick={() => props.onSelect(t.id)}
          onKeyDown={(e) => {
            const d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
            if (!d) return;
            const next = visible[(i + d + visible.length) % visible.length];
            props.onSelect(next.id);
            document.getElementById(`tab-${next.id}`)?.focus();
          }}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

export function Confirm({
  label, question, onConfirm, className,
}: { label: string; question: string; onConfirm: () => void; className?: string }) {
  return (
    <button
      type="button"
      className={className}
      onClick={() => {
        if (window.confirm(question)) onConfirm();
      }}
    >
      {label}
    </button>
  );
}
