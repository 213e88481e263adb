import { contracts } from "../contract.js";
import type { Deps } from "../deps.js";

/** Issue 13: change safety (stub until built). */
export function previewApi(_deps: Deps) {
  return contracts();
}
