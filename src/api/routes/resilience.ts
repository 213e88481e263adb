import { contracts } from "../contract.js";
import type { Deps } from "../deps.js";

/** Traffic management: `/{id}/resilience` (stub; filled in by its feature). */
export function resilienceApi(_deps: Deps) {
  return contracts();
}
