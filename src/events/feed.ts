// Live events for SSE streams and webhook deliverers: one LISTEN and one cheap poll per instance, fanned out here.
import type { DbHandle } from "../db/client.js";
import { lastEventId } from "../db/repo/events.js";
import type { Logger } from "../lib/logger.js";

/** The channel the `events_added` trigger NOTIFYs (migration 0007). */
export const EVENTS_CHANNEL = "obiente_events";

/** The safety poll: LISTEN may be unavailable (a transaction pooler) or miss a notification during a reconnect. */
export const EVENT_POLL_MS = 2000;

/** Wakes subscribers when events may have been added (NOTIFY obiente_events, or a local insert). */
export class EventFeed {
  private readonly listeners = new Set<() => void>();
  private readonly closers = new Set<() => void>();
  private isClosed = false;

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

  /** Runs `listener` when the feed closes (server shutdown: open SSE streams end); at once if it has. */
  onClose(listener: () => void): () => void {
    if (this.isClosed) {
      listener();
      return () => {};
    }
    this.closers.add(listener);
    return () => this.closers.delete(listener);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Ends every stream waiting on the feed; later subscribers are told at once. */
  close(): void {
    if (this.isClosed) {
      return;
    }
    this.isClosed = true;
    for (const c of [...this.closers]) {
      c();
    }
    this.closers.clear();
  }
}

/**
 * LISTENs on obiente_events and wakes the feed on each NOTIFY and on each (re)connect (notifications may have been
 * lost meanwhile), plus a poll of the newest event id every EVENT_POLL_MS. Returns its stop function, which also
 * closes the feed so open SSE streams end and the server can close.
 */
export async function startEventFeed(
  feed: EventFeed,
  handle: DbHandle,
  logger: Logger,
  pollMs = EVENT_POLL_MS,
): Promise<() => Promise<void>> {
  let unlisten: (() => Promise<void>) | undefined;
  let last: number | undefined;
  let polling = false;
  let pollFailing = false;
  let stopped = false;

  const subscribe = async () => {
    try {
      unlisten = await handle.listen(
        EVENTS_CHANNEL,
        () => feed.wake(),
        () => feed.wake(),
      );
    } catch (err) {
      logger.warn("event feed: LISTEN failed; relying on polling", { err });
    }
  };

  const poll = async () => {
    if (polling || stopped) {
      return;
    }
    polling = true;
    try {
      const id = await lastEventId(handle.db);
      if (id !== last) {
        last = id;
        feed.wake();
      }
      if (pollFailing) {
        logger.info("event poll: database reachable again");
        pollFailing = false;
      }
      if (!unlisten && handle.notifies) {
        await subscribe();
      }
    } catch (err) {
      if (!pollFailing) {
        logger.warn("event poll failed; retrying", { err });
      }
      pollFailing = true;
    } finally {
      polling = false;
    }
  };

  await subscribe();
  const timer = setInterval(() => void poll(), pollMs);
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    feed.close();
    await unlisten?.().catch(() => {});
  };
}
