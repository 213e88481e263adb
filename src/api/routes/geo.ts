import { contracts } from "../contract.js";
import type { Deps } from "../deps.js";

/** Traffic management: `/{id}/geo` (stub; filled in by its feature). */
export function geoApi(_deps: Deps) {
  return contracts();
}
