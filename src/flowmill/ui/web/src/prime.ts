// What the opened page needs first, asked before anything else runs: main.tsx imports
// this module first, so these requests leave while React's own modules (most of the
// first script) are still being evaluated, rather than after them. No React here.
//
// Measured with bench/ui.py: the list request of /executions left 40–110 ms after the
// script arrived when it was asked from App.tsx (after React's evaluation) at load 7–9.
import { primeEditor } from "./api";
import { primeExecutions } from "./executionQuery";
import { credential } from "./session";

/** The pages loaded on demand (App.tsx wraps them in `lazy`); the same functions, so
 * the chunk fetched here is the one the page then renders. */
export const load = {
  workflow: () => import("./pages/WorkflowPage"),
  editor: () => import("./pages/EditorPage"),
  execution: () => import("./pages/ExecutionPage"),
  analytics: () => import("./pages/Analytics"),
  operations: () => import("./pages/Operations"),
};

// The opened page's code and first data, in parallel with the sign-in check, rather
// than after it (one round trip less before the first render).
{
  const [first, second, third] = window.location.pathname.split("/").filter(Boolean);
  const editing = first === "workflows" && (second === "new" || third === "edit");
  const key = editing ? "editor" : first === "workflows" && second ? "workflow" : first === "executions" && second ? "execution" : first;
  if (credential() && key in load) void load[key as keyof typeof load]();
  if (credential() && editing) primeEditor(second === "new" ? null : second);
  if (credential() && first === "executions" && !second) primeExecutions();
}
