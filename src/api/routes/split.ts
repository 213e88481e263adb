import { contracts } from "../contract.js";
import type { Deps } from "../deps.js";

/** Traffic management: `/{id}/split` (stub; filled in by its feature). */
export function splitApi(_deps: Deps) {
  return contracts();
}
