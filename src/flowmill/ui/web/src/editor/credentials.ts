// Which credentials a picker offers: those of the types the node's config field takes
// (`x-credential-types` in its JSON Schema, from GET /api/node-types), as an n8n user
// expects; any other name, or a `{{ }}` template, through "Other…". Pure, unit-tested.
import type { CredentialChoice } from "../api";

export const CREDENTIAL_TYPES_KEY = "x-credential-types";

export interface CredentialOptions {
  /** The credentials to list: the matching ones, plus the chosen one if it is not. */
  shown: CredentialChoice[];
  /** How many credentials of other types are left out. */
  hidden: number;
  /** The chosen credential when it is of a type the node does not take. */
  mismatch: CredentialChoice | null;
}

/** The types a field's schema says it takes, or null (any type: the field says none). */
export function credentialTypesOf(schema: Record<string, unknown>): string[] | null {
  const types = schema[CREDENTIAL_TYPES_KEY];
  return Array.isArray(types) && types.length && types.every((t) => typeof t === "string") ? (types as string[]) : null;
}

/** What the picker lists for `value` (a credential's name or id, a template, nothing). */
export function credentialOptions(list: CredentialChoice[], types: string[] | null, value: string | undefined): CredentialOptions {
  if (!types) return { shown: list, hidden: 0, mismatch: null };
  const chosen = value ? list.find((c) => c.name === value || c.id === value) : undefined;
  const mismatch = chosen && !types.includes(chosen.type) ? chosen : null;
  const shown = list.filter((c) => types.includes(c.type) || c === mismatch);
  return { shown, hidden: list.length - shown.length, mismatch };
}
