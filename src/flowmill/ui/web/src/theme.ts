// Light, dark, or the system's choice; remembered in localStorage (not a secret).
export type Theme = "light" | "dark" | "system";
const KEY = "flowmill.theme";

export function savedTheme(): Theme {
  const t = localStorage.getItem(KEY);
  return t === "light" || t === "dark" ? t : "system";
}

export function applyTheme(t: Theme): void {
  localStorage.setItem(KEY, t);
  const dark = t === "dark" || (t === "system" && matchMedia("(prefers-color-scheme: dark)").matches);
  document.documentElement.dataset.theme = dark ? "dark" : "light";
}
