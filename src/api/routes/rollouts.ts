import { contracts } from "../contract.js";
import type { Deps } from "../deps.js";

/** Traffic management: `/{id}/rollout` (stub; filled in by its feature). */
export function rolloutApi(_deps: Deps) {
  return contracts();
}
