// The palette: every node type the server runs (GET /api/node-types), grouped by
// category, searchable; drag one onto the canvas, or press Enter / double-click to add
// it in the middle.
import { useMemo, useState } from "react";
import type { NodeTypeInfo } from "./model";

const ICONS: Record<string, string> = {
  bolt: "⚡", circle: "○", reply: "↩", shuffle: "⇄", branch: "◇", switch: "☰", merge: "⊕",
  clock: "◔", shield: "⚠", "life-ring": "◎", x: "✕", globe: "◍", code: "{}", sparkles: "✦",
  message: "✉", mail: "✉", database: "▤", puzzle: "✚", smile: "☺",
  // glyphs every system font has (Debian's headless Chromium draws ⧉ and ⏸ as empty boxes)
  repeat: "↻", workflow: "⊞", pause: "‖",
};

export function iconOf(hint: string): string {
  return ICONS[hint] ?? "◆";
}

export function Palette({ types, onAdd }: { types: NodeTypeInfo[]; onAdd: (type: string) => void }) {
  const [search, setSearch] = useState("");
  const groups = useMemo(() => {
    const q = search.trim().toLowerCase();
    const found = types.filter(
      (t) => !q || t.type.includes(q) || t.label.toLowerCase().includes(q) || t.description.toLowerCase().includes(q) || t.category.includes(q),
    );
    const out: Record<string, NodeTypeInfo[]> = {};
    for (const t of found) (out[t.category] ??= []).push(t);
    return Object.entries(out).sort(([a], [b]) => (a === "triggers" ? -1 : b === "triggers" ? 1 : a.localeCompare(b)));
  }, [types, search]);
  return (
    <nav className="palette" aria-label="Node types">
      <input
        type="search"
        data-search
        placeholder="Search nodes…"
        aria-label="Search node types"
        value={search}
        onChange={(e) => setSearch(e.target.value)}
      />
      {groups.length === 0 && <div className="muted small-text">No node type matches.</div>}
      {groups.map(([category, list]) => (
        <section key={category}>
          <h4>{category}</h4>
          {list.map((t) => (
            <div
              key={t.type}
              className="palette-item"
              role="button"
              tabIndex={0}
              draggable
              data-node-type={t.type}
              aria-label={`${t.label}: ${t.description}`}
              title={`${t.description} (drag onto the canvas, or press Enter)`}
              onDragStart={(e) => {
                e.dataTransfer.setData("application/x-flowmill-node-type", t.type);
                e.dataTransfer.effectAllowed = "copy";
              }}
              onDoubleClick={() => onAdd(t.type)}
              onKeyDown={(e) => {
                if (e.key === "Enter" || e.key === " ") {
                  e.preventDefault();
                  onAdd(t.type);
                }
              }}
            >
              <span className="palette-icon" aria-hidden="true">{iconOf(t.icon)}</span>
              <span>
                <span className="palette-label">{t.label}</span>
                {t.plugin && <span className="tag">plugin</span>}
              </span>
            </div>
          ))}
        </section>
      ))}
    </nav>
  );
}
