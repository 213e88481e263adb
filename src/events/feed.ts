// Live events for SSE streams and webhook deliverers. STUB: owned by the events work (issue 14).
import type { DbHandle } from "../db/client.js";
import type { Logger } from "../lib/logger.js";

/** Wakes subscribers when events may have been added (NOTIFY obiente_events, or a local insert). */
export class EventFeed {
  private readonly listeners = new Set<() => void>();
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  /** Called after a local insert and on every NOTIFY. */
  wake(): void {
    for (const l of this.listeners) {
      l();
    }
  }
}

/** LISTENs on obiente_events and wakes the feed; returns its stop function. */
export async function startEventFeed(
  _feed: EventFeed,
  _handle: DbHandle,
  _logger: Logger,
): Promise<() => Promise<void>> {
  return async () => {};
}
