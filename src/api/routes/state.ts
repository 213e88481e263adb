import { contracts } from "../contract.js";
import type { Deps } from "../deps.js";

/** The declarative routing state: dump, its JSON Schema, diff and apply (issue 12). */
export function stateApi(_deps: Deps) {
  return contracts();
}
