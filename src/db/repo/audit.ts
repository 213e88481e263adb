import type { Logger } from "../../lib/logger.js";
import type { DbHandle } from "../client.js";

/** Deletes audit rows older than `days`, at start and then hourly. STUB. */
export function startAuditRetention(_deps: { handle: DbHandle; logger: Logger; days: number }): () => void {
  return () => {};
}
